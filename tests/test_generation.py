"""Trie-constrained SID decoding: trie tensors, the LogitsProcessor, the fixed-depth beam search, recommend()."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from hf_simcit.errors import SimCITInputError
from hf_simcit.generation import (
    PAD_TOKEN,
    SIDTrie,
    SIDTrieLogitsProcessor,
    prepare_prompts,
    recommend,
    sid_beam_search,
    sid_log_probs,
)

VOCAB = 96


def tiny_model(kind: str = "qwen3", vocab_size: int = VOCAB, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    if kind == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=8, **common))
    elif kind == "gpt2":  # learned absolute positions, no tree-attention support: the "repeat" path
        config = GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=128)
        config.pad_token_id, config.bos_token_id, config.eos_token_id = 0, 1, 2
        model = GPT2LMHeadModel(config)
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    # Random init is nearly uniform; sharpen it so that beams are well separated (no near-ties).
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    return model.eval()


def sid_table(num_items: int, levels: list[range], seed: int = 0) -> torch.Tensor:
    """Distinct SIDs: level l draws its token ids from levels[l]."""
    generator = torch.Generator().manual_seed(seed)
    rows: set[tuple[int, ...]] = set()
    while len(rows) < num_items:
        rows.add(tuple(int(r[torch.randint(len(r), (1,), generator=generator)]) for r in levels))
    return torch.tensor(sorted(rows), dtype=torch.long)


def random_prompts(count: int, seed: int = 0, low: int = 1, high: int = 40) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (count,), generator=generator)
    return [torch.randint(low, high, (int(n),), generator=generator).tolist() for n in lengths]


def generate_beams(model, input_ids, attention_mask, trie, num_beams):
    """Reference: exact constrained beam search through transformers' generate."""
    processor = SIDTrieLogitsProcessor(trie, input_ids.shape[1])
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=num_beams,
        num_return_sequences=num_beams,
        max_new_tokens=trie.num_levels,
        length_penalty=0.0,
        early_stopping=True,
        do_sample=False,
        logits_processor=[processor],
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=0,
    )
    n = input_ids.shape[0]
    sequences = out.sequences[:, input_ids.shape[1] :]
    return trie.items_of(sequences).reshape(n, num_beams), out.sequences_scores.reshape(n, num_beams)


def teacher_forced_scores(model, prompt: list[int], item_token_ids: torch.Tensor) -> torch.Tensor:
    """Brute force: log p(SID | prompt) of every item, one forward pass each."""
    scores = []
    with torch.no_grad():
        for sid in item_token_ids.tolist():
            ids = torch.tensor([prompt + sid])
            log_probs = model(ids).logits.float().log_softmax(-1)[0]
            scores.append(sum(log_probs[len(prompt) - 1 + j, t] for j, t in enumerate(sid)))
    return torch.stack(scores)


# --------------------------------------------------------------------------------------------- trie


def test_trie_tables_and_lookup():
    sids = torch.tensor([[5, 7, 9], [5, 7, 8], [5, 6, 9], [4, 7, 9]])
    trie = SIDTrie(sids)
    assert trie.num_nodes == [1, 2, 3]
    assert trie.max_children == [2, 2, 2]
    assert trie.children_tokens[0][0].tolist() == [4, 5]
    # node ids follow the sorted prefixes: depth 1 -> (4,), (5,); depth 2 -> (4,7), (5,6), (5,7)
    assert trie.children_tokens[1][1].tolist() == [6, 7]
    assert trie.children_tokens[1][0].tolist() == [7, PAD_TOKEN]
    assert trie.children_nodes[2][2].tolist() == [1, 0]  # (5,7,8) -> item 1, (5,7,9) -> item 0
    assert trie.items_of(sids).tolist() == [0, 1, 2, 3]
    assert trie.items_of(torch.tensor([[5, 6, 8], [4, 6, 9], [9, 9, 9]])).tolist() == [-1, -1, -1]
    assert trie.lookup(torch.tensor([[5, 7], [4, 6]])).tolist() == [2, -1]
    mask = trie.allowed_tokens_mask(2, torch.tensor([2, -1]), vocab_size=12)
    assert mask[0].nonzero().flatten().tolist() == [8, 9]
    assert not mask[1].any()  # a dead prefix allows nothing


def test_trie_same_token_at_several_levels_and_single_level():
    sids = torch.tensor([[3, 3], [3, 4], [4, 3]])
    trie = SIDTrie(sids)
    assert trie.items_of(sids).tolist() == [0, 1, 2]
    single = SIDTrie(torch.tensor([[7], [2], [5]]))
    assert single.items_of(torch.tensor([[2], [5], [7], [3]])).tolist() == [1, 2, 0, -1]


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (torch.tensor([[1, 2], [3, 4], [1, 2]]), "items 0 and 2 have the same SID"),
        (torch.tensor([[1, 2], [3, -1]]), "item 1 has a negative SID token"),
        (torch.zeros(0, 3, dtype=torch.long), "at least one item"),
        (torch.tensor([[0.5, 1.0]]), "integer token ids"),
    ],
)
def test_trie_rejects_bad_tables(table, match):
    with pytest.raises(SimCITInputError, match=match):
        SIDTrie(table)


def test_trie_rejects_tokens_outside_vocab():
    with pytest.raises(SimCITInputError, match="item 1 has SID token ids"):
        SIDTrie(torch.tensor([[1, 2], [3, 99]]), vocab_size=50)
    trie = SIDTrie(torch.tensor([[1, 2], [3, 99]]))
    with pytest.raises(SimCITInputError, match="vocabulary has 50 tokens"):
        trie.check_vocab(50)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_processor_mask_equals_dict_trie(data):
    """Random tries and random prefixes: the vectorised mask is exactly the dict trie's allowed set."""
    num_levels = data.draw(st.integers(1, 4))
    vocab = data.draw(st.integers(4, 30))
    rows = data.draw(
        st.lists(
            st.lists(st.integers(0, vocab - 1), min_size=num_levels, max_size=num_levels),
            min_size=1,
            max_size=25,
        )
    )
    sids = torch.unique(torch.tensor(rows), dim=0)
    trie = SIDTrie(sids, vocab_size=vocab)
    allowed_after: dict[tuple[int, ...], set[int]] = {}
    for sid in sids.tolist():
        for depth in range(num_levels):
            allowed_after.setdefault(tuple(sid[:depth]), set()).add(sid[depth])
    step = data.draw(st.integers(0, num_levels - 1))
    prefixes = [sid[:step] for sid in sids.tolist()]  # real prefixes ...
    prefixes += data.draw(  # ... and random ones, mostly invalid
        st.lists(st.lists(st.integers(0, vocab - 1), min_size=step, max_size=step), min_size=1, max_size=6)
    )
    prompt = torch.full((len(prefixes), 3), 1)
    input_ids = torch.cat([prompt, torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), step)], 1)
    scores = torch.randn(len(prefixes), vocab)
    masked = SIDTrieLogitsProcessor(trie, prompt_length=3)(input_ids, scores)
    for row, prefix in enumerate(prefixes):
        expected = allowed_after.get(tuple(prefix), set())
        assert set(torch.isfinite(masked[row]).nonzero().flatten().tolist()) == expected
        assert torch.equal(masked[row][list(expected)], scores[row][list(expected)])


def test_processor_past_the_sid():
    trie = SIDTrie(torch.tensor([[1, 2], [1, 3]]))
    scores = torch.zeros(2, 8)
    input_ids = torch.tensor([[5, 1, 2], [5, 1, 3]])
    with pytest.raises(SimCITInputError, match="max_new_tokens=2"):
        SIDTrieLogitsProcessor(trie, prompt_length=1)(input_ids, scores)
    masked = SIDTrieLogitsProcessor(trie, prompt_length=1, eos_token_id=7)(input_ids, scores)
    assert torch.isfinite(masked).nonzero()[:, 1].tolist() == [7, 7]


# ------------------------------------------------------------------------------ beam search: validity


class RandomLogitsModel(torch.nn.Module):
    """Stub causal LM: random logits, a cache that does nothing. Enough to exercise the search logic."""

    class Config:
        model_type = "stub"
        is_encoder_decoder = False
        pad_token_id = 0

    class Cache:
        def batch_repeat_interleave(self, repeats):
            pass

        def reorder_cache(self, index):
            pass

    def __init__(self, vocab_size: int, seed: int):
        super().__init__()
        self.config = self.Config()
        self.vocab_size = vocab_size
        self.generator = torch.Generator().manual_seed(seed)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def get_input_embeddings(self):
        return None

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=True
    ):
        logits = 4 * torch.randn(*input_ids.shape, self.vocab_size, generator=self.generator)

        class Output:
            pass

        out = Output()
        out.logits, out.cache = logits, past_key_values or self.Cache()
        return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_beam_search_never_yields_invalid_sid_random_logits(data):
    num_levels = data.draw(st.integers(1, 4))
    vocab = data.draw(st.integers(3, 40))
    rows = data.draw(
        st.lists(
            st.lists(st.integers(0, vocab - 1), min_size=num_levels, max_size=num_levels),
            min_size=1,
            max_size=40,
        )
    )
    sids = torch.unique(torch.tensor(rows), dim=0)
    trie = SIDTrie(sids, vocab_size=vocab)
    num_beams = data.draw(st.integers(1, 12))
    model = RandomLogitsModel(vocab, seed=data.draw(st.integers(0, 1000)))
    input_ids, attention_mask = prepare_prompts(random_prompts(3, high=vocab))
    out = sid_beam_search(
        model,
        input_ids,
        attention_mask,
        trie,
        num_beams,
        kv_sharing=data.draw(st.sampled_from(["tree", "repeat"])),
    )
    valid = min(num_beams, trie.num_items)
    items = out.item_indices
    assert (items[:, :valid] >= 0).all()
    assert (items[:, valid:] == -1).all() and torch.isneginf(out.scores[:, valid:]).all()
    assert torch.isfinite(out.scores[:, :valid]).all()
    assert torch.equal(out.sequences[:, :valid], sids[items[:, :valid]])  # the SID is the item's SID
    assert (out.scores[:, :-1] >= out.scores[:, 1:]).all()  # best first
    for row in items[:, :valid].tolist():
        assert len(set(row)) == len(row)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), num_levels=st.integers(1, 4), num_beams=st.integers(2, 9))
def test_generate_with_processor_never_yields_invalid_sid_real_model(seed, num_levels, num_beams):
    model = tiny_model("llama", seed=seed)
    generator = torch.Generator().manual_seed(seed)
    levels = [
        range(40 + 10 * level, 40 + 10 * level + int(torch.randint(2, 8, (1,), generator=generator)))
        for level in range(num_levels)
    ]
    sids = sid_table(min(12, math.prod(len(r) for r in levels)), levels, seed=seed)
    trie = SIDTrie(sids)
    input_ids, attention_mask = prepare_prompts(random_prompts(3, seed=seed))
    items, scores = generate_beams(model, input_ids, attention_mask, trie, num_beams)
    real = scores > -1e8  # generate pads missing beams with -1e9 / -inf scores
    assert (items[real] >= 0).all()
    assert real[:, : min(num_beams, trie.num_items)].all()
    fast = recommend(
        model,
        input_ids,
        trie,
        k=min(num_beams, trie.num_items),
        num_beams=num_beams,
        attention_mask=attention_mask,
    )
    assert (fast.item_indices >= 0).all()


# ------------------------------------------------------------------- beam search: equals exact search


@pytest.mark.parametrize(
    ("kind", "kv_sharing"),
    [("qwen3", "tree"), ("qwen3", "repeat"), ("llama", "tree"), ("llama", "repeat"), ("gpt2", "auto")],
)
def test_fast_path_equals_generate_beam_search(kind, kv_sharing):
    model = tiny_model(kind)
    sids = sid_table(60, [range(40, 48), range(48, 56), range(56, 64), range(64, 67)])
    trie = SIDTrie(sids)
    input_ids, attention_mask = prepare_prompts(random_prompts(5, seed=1))
    assert (attention_mask[:, 0] == 0).any()  # the batch really is left-padded
    num_beams = 6
    reference_items, reference_scores = generate_beams(model, input_ids, attention_mask, trie, num_beams)
    out = sid_beam_search(model, input_ids, attention_mask, trie, num_beams, kv_sharing=kv_sharing)
    assert torch.equal(out.item_indices[:, 0], reference_items[:, 0])  # same top-1
    assert torch.equal(out.item_indices, reference_items)  # same beams, same order
    torch.testing.assert_close(out.scores, reference_scores, atol=1e-4, rtol=0)


def test_fast_path_equals_generate_when_beams_outnumber_first_level_tokens():
    """3 first-level tokens, 8 beams: generate pads with -1e9 copies, ours with dead beams; results agree."""
    model = tiny_model("qwen3", seed=19)
    sids = sid_table(40, [range(40, 43), range(43, 50), range(50, 53)], seed=19)
    trie = SIDTrie(sids)
    input_ids, attention_mask = prepare_prompts(random_prompts(3, seed=19))
    reference_items, reference_scores = generate_beams(model, input_ids, attention_mask, trie, 8)
    out = sid_beam_search(model, input_ids, attention_mask, trie, 8)
    assert (reference_scores > -1e8).all() and (out.item_indices >= 0).all()
    assert torch.equal(out.item_indices, reference_items)
    torch.testing.assert_close(out.scores, reference_scores, atol=1e-4, rtol=0)


def test_beam_scores_equal_brute_force_when_beam_covers_catalogue():
    model = tiny_model("qwen3", seed=3)
    sids = sid_table(20, [range(40, 44), range(44, 48), range(48, 50)], seed=3)
    prompts = random_prompts(3, seed=2)
    out = recommend(model, prompts, sids, k=20, num_beams=24)  # beam >= catalogue: exhaustive
    for row, prompt in enumerate(prompts):
        exact = teacher_forced_scores(model, prompt, sids)
        assert sorted(out.item_indices[row].tolist()) == list(range(20))
        torch.testing.assert_close(out.scores[row], exact[out.item_indices[row]], atol=1e-4, rtol=0)
        assert int(out.item_indices[row, 0]) == int(exact.argmax())
        assert torch.equal(out.item_indices[row], exact.argsort(descending=True))


@pytest.mark.parametrize("kind", ["qwen3", "llama"])
def test_sid_vocab_scores_equal_brute_force_restricted_softmax(kind):
    """score_vocab="sid": exact beam search of log-probabilities normalised over the SID tokens."""
    model = tiny_model(kind, seed=17)
    sids = sid_table(18, [range(40, 44), range(44, 48), range(60, 62)], seed=17)
    sid_tokens = torch.unique(sids)
    prompts = random_prompts(2, seed=17)
    outputs = {
        mode: recommend(model, prompts, sids, k=18, num_beams=18, kv_sharing=mode, score_vocab="sid")
        for mode in ("tree", "repeat")
    }
    torch.testing.assert_close(outputs["tree"].scores, outputs["repeat"].scores, atol=1e-5, rtol=0)
    with torch.no_grad():
        for row, prompt in enumerate(prompts):
            exact = []
            for sid in sids.tolist():
                logits = model(torch.tensor([prompt + sid])).logits[0, :, sid_tokens].log_softmax(-1)
                columns = torch.searchsorted(sid_tokens, torch.tensor(sid))
                exact.append(sum(logits[len(prompt) - 1 + j, c] for j, c in enumerate(columns.tolist())))
            exact = torch.stack(exact)
            out = outputs["tree"]
            assert torch.equal(out.item_indices[row], exact.argsort(descending=True))
            torch.testing.assert_close(out.scores[row], exact[out.item_indices[row]], atol=1e-4, rtol=0)


def test_left_padded_batch_equals_single_prompts_and_right_padding():
    model = tiny_model("llama", seed=5)
    sids = sid_table(30, [range(40, 46), range(46, 52), range(52, 55)], seed=5)
    prompts = random_prompts(4, seed=4)
    batch = recommend(model, prompts, sids, k=5, num_beams=8)
    for row, prompt in enumerate(prompts):
        single = recommend(model, [prompt], sids, k=5, num_beams=8)
        assert torch.equal(single.item_indices[0], batch.item_indices[row])
        torch.testing.assert_close(single.scores[0], batch.scores[row], atol=1e-5, rtol=0)
    width = max(map(len, prompts))
    right_ids = torch.tensor([p + [0] * (width - len(p)) for p in prompts])
    right_mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts])
    right = recommend(model, right_ids, sids, k=5, num_beams=8, attention_mask=right_mask, batch_size=3)
    assert torch.equal(right.item_indices, batch.item_indices)
    assert torch.equal(right.sequences, sids[batch.item_indices])


def test_recommend_with_peft_model_and_restores_train_mode():
    peft = pytest.importorskip("peft")
    model = tiny_model("qwen3", seed=7)
    sids = sid_table(25, [range(40, 45), range(45, 50), range(50, 53)], seed=7)
    prompts = random_prompts(3, seed=7)
    expected = recommend(model, prompts, sids, k=4, num_beams=6)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    wrapped.train()
    got = recommend(wrapped, prompts, sids, k=4, num_beams=6)  # fresh LoRA (B = 0) == base model
    assert wrapped.training
    assert torch.equal(got.item_indices, expected.item_indices)


def test_overfit_tiny_model_recommends_its_targets():
    """A tiny Llama memorises 4 histories -> target SIDs; recommend() then ranks each target first."""
    torch.manual_seed(0)
    model = tiny_model("llama", seed=11).train()
    sids = sid_table(40, [range(40, 46), range(46, 52), range(52, 56)], seed=11)
    prompts = random_prompts(4, seed=11)
    targets = [3, 17, 28, 35]
    examples = [p + sids[t].tolist() for p, t in zip(prompts, targets)]
    width = max(map(len, examples))
    input_ids = torch.tensor([e + [0] * (width - len(e)) for e in examples])
    attention_mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in examples])
    labels = torch.full_like(input_ids, -100)
    for row, (prompt, example) in enumerate(zip(prompts, examples)):
        labels[row, len(prompt) : len(example)] = input_ids[
            row, len(prompt) : len(example)
        ]  # loss on the SID only
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for _ in range(40):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = recommend(model, prompts, sids, k=3, num_beams=4)
    assert out.item_indices[:, 0].tolist() == targets
    assert model.training  # recommend() ran in eval mode and restored the mode it found


# ------------------------------------------------------------------------------------------ bad input


def test_excluded_items_are_never_recommended_and_the_rest_keep_their_exact_order():
    """exclude_items (e.g. the history's own items) = the exhaustive ranking with those items taken out."""
    model = tiny_model("qwen3", seed=3)
    sids = sid_table(20, [range(40, 44), range(44, 48), range(48, 50)], seed=3)
    prompts = random_prompts(3, seed=2)
    exclude = [[0, 5, 7], [], list(range(15))]
    out = recommend(model, prompts, sids, k=5, num_beams=24, exclude_items=exclude)
    for row, prompt in enumerate(prompts):
        exact = teacher_forced_scores(model, prompt, sids).argsort(descending=True).tolist()
        assert out.item_indices[row].tolist() == [i for i in exact if i not in exclude[row]][:5]
    # beams narrower than the catalogue: whole prefixes of excluded items are pruned early, so the beams
    # reach the 5 items left instead of dying at the last level
    narrow = recommend(model, prompts, sids, k=5, num_beams=5, exclude_items=[list(range(15))] * 3)
    assert all(sorted(row) == [15, 16, 17, 18, 19] for row in narrow.item_indices.tolist())
    few = recommend(model, prompts[:1], sids, k=6, num_beams=24, exclude_items=[list(range(15))])
    assert few.item_indices[0, 5] == -1 and torch.isneginf(few.scores[0, 5])   # only 5 items left
    with pytest.raises(SimCITInputError, match="exclude_items has 1 lists for 3 histories"):
        recommend(model, prompts, sids, k=5, exclude_items=[[1]])
    with pytest.raises(SimCITInputError, match="exclude_items row 0: item indices must be in 0..19"):
        recommend(model, prompts[:1], sids, k=5, exclude_items=[[20]])


def test_new_item_slots_hold_the_best_new_items_after_the_ordinary_top():
    """new_item_slots=m: the exhaustive ranking's first k - m items (new ones among them stay), then the m best
    new items not listed yet, in the model's own order among the new items; with exclusions too."""
    model = tiny_model("qwen3", seed=3)
    sids = sid_table(20, [range(40, 44), range(44, 48), range(48, 50)], seed=3)
    prompts = random_prompts(3, seed=2)
    exact = [teacher_forced_scores(model, p, sids).argsort(descending=True).tolist() for p in prompts]
    new = [exact[0][-1], exact[0][-2], exact[0][1], 11]          # row 0's two worst items, its second best, 11
    out = recommend(model, prompts, sids, k=5, num_beams=24, new_items=new, new_item_slots=2)
    for row, ranking in enumerate(exact):
        head = ranking[:3]
        reserved = [i for i in ranking if i in new and i not in head][:2]
        assert out.item_indices[row].tolist() == head + reserved
        assert torch.isfinite(out.scores[row]).all()
        assert torch.equal(out.sequences[row], sids[out.item_indices[row]])
    # row 0: its second best (new) keeps its place; 11 and the better of its two worst fill the reserved places
    assert out.item_indices[0, 1] == exact[0][1] and 11 in out.item_indices[0, 3:].tolist()
    assert exact[0][-2] in out.item_indices[0].tolist()
    plain = recommend(model, prompts, sids, k=5, num_beams=24)
    assert exact[0][-2] not in plain.item_indices[0].tolist()
    # exclusions apply to both searches
    excluded = recommend(model, prompts[:1], sids, k=5, num_beams=24, exclude_items=[[new[0]]], new_items=new,
                         new_item_slots=2)
    assert new[0] not in excluded.item_indices[0].tolist()
    assert excluded.item_indices[0].tolist() == exact[0][:3] + [i for i in exact[0] if i in new and
                                                                 i not in exact[0][:3] and i != new[0]][:2]
    # a prebuilt trie builds the new items' trie once and reuses it, batch after batch
    trie = SIDTrie(sids)
    first = recommend(model, prompts, trie, k=5, num_beams=24, new_items=new, new_item_slots=2)
    subset = trie.subset(torch.tensor(new))
    assert torch.equal(subset.item_token_ids, sids[new]) and trie.subset(torch.tensor(new)) is subset
    assert torch.equal(recommend(model, prompts, trie, k=5, num_beams=24, new_items=new,
                                 new_item_slots=2).item_indices, first.item_indices)
    assert torch.equal(first.item_indices, out.item_indices) and trie.subset(torch.tensor(new)) is subset
    assert trie.subset(torch.tensor(new[:3])) is not subset
    for bad, match in (({"new_item_slots": 2}, "needs new_items"), ({"new_items": [1], "new_item_slots": 2},
                       "only 1 new item"), ({"new_items": [1, 1], "new_item_slots": 1}, "more than once"),
                       ({"new_items": [25], "new_item_slots": 1}, "outside 0..19"),
                       ({"new_items": new, "new_item_slots": 6}, "integer in 1..k=5")):
        with pytest.raises(SimCITInputError, match=match):
            recommend(model, prompts, sids, k=5, num_beams=24, **bad)


@pytest.fixture(scope="module")
def small_setup():
    model = tiny_model("qwen3", seed=13)
    sids = sid_table(10, [range(40, 44), range(44, 48)], seed=13)
    return model, sids


def test_recommend_rejects_bad_requests(small_setup):
    model, sids = small_setup
    prompts = random_prompts(2)
    with pytest.raises(SimCITInputError, match="prompt 1 is empty"):
        recommend(model, [[5, 6], []], sids, k=2)
    with pytest.raises(SimCITInputError, match="prompt 0 is empty"):
        recommend(
            model, torch.tensor([[0, 0], [3, 4]]), sids, k=2, attention_mask=torch.tensor([[0, 0], [1, 1]])
        )
    with pytest.raises(SimCITInputError, match="k=11 is larger than the catalogue"):
        recommend(model, prompts, sids, k=11, num_beams=12)
    with pytest.raises(SimCITInputError, match="num_beams=3 is smaller than k=5"):
        recommend(model, prompts, sids, k=5, num_beams=3)
    with pytest.raises(SimCITInputError, match="k must be a positive integer"):
        recommend(model, prompts, sids, k=0)
    with pytest.raises(SimCITInputError, match="vocabulary has 96 tokens"):
        recommend(model, prompts, torch.tensor([[40, 41], [40, 500]]), k=1)
    with pytest.raises(SimCITInputError, match="kv_sharing"):
        recommend(model, prompts, sids, k=1, kv_sharing="fast")
    with pytest.raises(SimCITInputError, match="score_vocab"):
        recommend(model, prompts, sids, k=1, score_vocab="partial")


def test_recommend_k_equal_catalogue_and_more_beams_than_items(small_setup):
    model, sids = small_setup
    out = recommend(model, random_prompts(2), sids, k=10, num_beams=30)
    for row in out.item_indices.tolist():
        assert sorted(row) == list(range(10))
    assert torch.isfinite(out.scores).all()


@pytest.mark.parametrize("kind", ["qwen3", "llama", "gpt2"])
def test_sid_log_probs_equal_brute_force_per_level(kind):
    """sid_log_probs: per-level teacher-forced log-probabilities of given SIDs after left-padded prompt batches
    (one prefill per prompt, its cache shared by the SIDs) equal one full forward pass per (prompt, SID)."""
    model = tiny_model(kind, seed=3)
    sids = sid_table(12, [range(40, 44), range(44, 48), range(48, 50)], seed=3)
    prompts = random_prompts(5, seed=2)
    model.train()
    scores = sid_log_probs(model, prompts, sids, batch_size=2)   # batches of 2 prompts of different lengths
    assert scores.shape == (5, 12, 3) and model.training
    with torch.no_grad():
        model.eval()
        for row, prompt in enumerate(prompts):
            for item, sid in enumerate(sids.tolist()):
                log_probs = model(torch.tensor([prompt + sid])).logits.float().log_softmax(-1)[0]
                expected = torch.stack([log_probs[len(prompt) - 1 + j, t] for j, t in enumerate(sid)])
                torch.testing.assert_close(scores[row, item], expected, atol=1e-4, rtol=0)
    # the best SID under exhaustive beam search is the best under exact scoring
    best = recommend(model, prompts, sids, k=1, num_beams=12).item_indices[:, 0]
    assert torch.equal(best, scores.sum(-1).argmax(-1))
    with pytest.raises(SimCITInputError, match="vocabulary"):
        sid_log_probs(model, prompts, torch.tensor([[40, 44, VOCAB + 3]]))
    with pytest.raises(SimCITInputError, match="non-empty"):
        sid_log_probs(model, prompts, torch.empty(0, 3, dtype=torch.long))
