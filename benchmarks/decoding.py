"""Decoding benchmark: trie-constrained SID beam search, side by side in one run.

One tiny random Qwen3 (hidden 128, 2 layers), vocabulary = Qwen3's base vocabulary + the SID tokens
(3 levels x 256 codes + a disambiguation level), a Beauty-sized catalogue (12,101 items), 64 histories of
20 items (82 prompt tokens), beam 20, 4 new tokens. Methods:

* ``recommend()``: the fixed-depth SID beam search (prefill once, tree-attention KV sharing); also the
  ``"repeat"`` KV-sharing variant;
* ``generate`` + :class:`SIDTrieLogitsProcessor` (exact constrained beam search: the reference for top-1);
* ``generate`` unconstrained;
* ``generate`` + ``prefix_allowed_tokens_fn`` over a Python dict trie;
* ``flashrec`` (PyPI) search ops in a KV-cached loop, run in its own venv (it needs transformers < 5) as a
  subprocess on the same weights and prompts: exact mode (every SID token is a candidate) and its engine's
  default (top-40 candidates, then the trie).

For each: latency for the 64 histories (best of ``--repeats`` interleaved rounds), histories/s, share of returned beams that
are real items, top-1 agreement with exact search, mean overlap of the top-20 sets with exact search.

    nice -n 10 .venv/bin/python benchmarks/decoding.py            # appends to benchmarks/RESULTS.md
    .venv/bin/python benchmarks/decoding.py --histories 8 --items 2000 --no-write   # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import reporting
import torch
from safetensors.torch import save_file
from transformers import Qwen3Config, Qwen3ForCausalLM

from hf_simcit.generation import SIDTrie, SIDTrieLogitsProcessor, prepare_prompts, recommend

FLASHREC_PYTHON = os.environ.get("FLASHREC_PYTHON", "/tmp/flashrec-venv/bin/python")
MODEL_KWARGS = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def build_catalogue(num_items: int, codebook: int, seed: int) -> torch.Tensor:
    """Codes ``(num_items, 4)``: 3 skewed levels (as real SIDs are) + a disambiguation index."""
    generator = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, codebook + 1).float() ** 0.7
    codes = torch.stack(
        [torch.multinomial(weights, num_items, replacement=True, generator=generator) for _ in range(3)], 1
    )
    order = torch.argsort(codes[:, 0] * codebook**2 + codes[:, 1] * codebook + codes[:, 2], stable=True)
    codes = codes[order]
    _, inverse, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts
    disambiguation = torch.arange(num_items) - first[inverse]
    return torch.cat([codes, disambiguation.unsqueeze(1)], 1)


def sid_token_ids(codes: torch.Tensor, base_vocab: int, codebook: int) -> torch.Tensor:
    offsets = torch.tensor([0, codebook, 2 * codebook, 3 * codebook])
    return base_vocab + offsets + codes


def build_prompts(
    item_token_ids: torch.Tensor, histories: int, history_length: int, seed: int
) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed + 1)
    prompts = []
    for _ in range(histories):
        items = torch.randint(item_token_ids.shape[0], (history_length,), generator=generator)
        prompts.append([1] + item_token_ids[items].flatten().tolist() + [3])  # BOS, SIDs, separator
    return prompts


def run_generate(model, input_ids, attention_mask, beams, levels, logits_processor=None, prefix_fn=None):
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=beams,
        num_return_sequences=beams,
        max_new_tokens=levels,
        min_new_tokens=levels,
        length_penalty=0.0,
        early_stopping=True,
        do_sample=False,
        logits_processor=logits_processor,
        prefix_allowed_tokens_fn=prefix_fn,
        pad_token_id=0,
    )
    return out[:, input_ids.shape[1] :].reshape(input_ids.shape[0], beams, -1)


def dict_trie(item_token_ids: torch.Tensor) -> dict:
    root: dict = {}
    for sid in item_token_ids.tolist():
        node = root
        for token in sid:
            node = node.setdefault(token, {})
    return root


def make_prefix_fn(root: dict, prompt_length: int):
    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        node = root
        for token in sent[prompt_length:].tolist():
            node = node.get(token)
            if node is None:
                return []
        return list(node.keys())

    return allowed


FLASHREC_RUNNER = r'''
import json, sys, time
import torch
from safetensors.torch import load_file
from transformers import Qwen3Config, Qwen3ForCausalLM
from transformers.cache_utils import DynamicCache
from flashrec.search.expand import init_from_prefill_batch, expand_step
from flashrec.search.trie import build_trie_from_sequences

work = sys.argv[1]
spec = json.load(open(f"{work}/spec.json"))
torch.set_num_threads(spec["threads"])
model = Qwen3ForCausalLM(Qwen3Config(**spec["config"]))
model.load_state_dict(load_file(f"{work}/model.safetensors"), strict=True)
model.eval()
data = load_file(f"{work}/data.safetensors")
input_ids, attention_mask, item_token_ids = data["input_ids"], data["attention_mask"], data["item_token_ids"]
beams, levels = spec["beams"], item_token_ids.shape[1]
sid_lo, sid_hi = int(item_token_ids.min()), int(item_token_ids.max()) + 1
sid_ids = torch.arange(sid_lo, sid_hi)

w_sid = model.lm_head.weight[sid_lo:sid_hi]
trie = build_trie_from_sequences(item_token_ids.tolist())  # built once, outside the timings (as ours)

def step_logprobs(hidden_states):
    """Full-vocabulary log-softmax sliced to the SID range, or (sid_head) the head over the SID rows only."""
    if SID_HEAD:
        return torch.nn.functional.linear(hidden_states, w_sid).float().log_softmax(-1)
    return model.lm_head(hidden_states).float().log_softmax(-1)[:, sid_lo:sid_hi]

def search(ids, mask, candidates):
    """flashrec's search ops in a KV-cached loop (its engine needs CUDA): prefill, init, expand per step."""
    n = ids.shape[0]
    with torch.no_grad():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache = out.past_key_values
        logprobs = step_logprobs(out.last_hidden_state[:, -1])
        lists = init_from_prefill_batch(logprobs, beams, candidates, levels, [ids.shape[1]] * n,
                                        valid_path=trie, candidate_token_ids=sid_ids)
        cache.batch_repeat_interleave(beams)
        step_mask = mask.repeat_interleave(beams, 0)
        next_pos = mask.sum(-1).repeat_interleave(beams)
        for step in range(1, levels):
            tokens = torch.stack([bl.last_tokens for bl in lists]).reshape(-1, 1)
            step_mask = torch.cat([step_mask, step_mask.new_ones(n * beams, 1)], 1)
            out = model.model(input_ids=tokens, attention_mask=step_mask,
                              position_ids=(next_pos + step - 1)[:, None], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logprobs = step_logprobs(out.last_hidden_state[:, -1])
            top_lp, top_idx = logprobs.topk(min(candidates, logprobs.shape[1]), dim=-1)
            top_tok = sid_ids[top_idx]
            for i, bl in enumerate(lists):
                expand_step(bl, top_tok[i * beams:(i + 1) * beams], top_lp[i * beams:(i + 1) * beams], beams,
                            valid_path=trie, will_finish=step == levels - 1)
            if step < levels - 1:  # move each history's beam caches to the surviving parents
                order = torch.cat([bl._last_parents.long() + i * beams for i, bl in enumerate(lists)])
                cache.reorder_cache(order)
    seqs = torch.stack([bl.token_ids[:beams, :levels] for bl in lists])
    scores = torch.stack([bl.cum_logprobs[:beams] for bl in lists])
    return seqs, scores

# expand_step does not return parents when will_finish; record them by wrapping expand_token_ids.
from flashrec.search.state import BeamSearchList
_orig = BeamSearchList.expand_token_ids
def _record(self, parent_idx, tokens):
    self._last_parents = parent_idx.clone()
    return _orig(self, parent_idx, tokens)
BeamSearchList.expand_token_ids = _record

results = {}
for name, (candidates, SID_HEAD) in spec["modes"].items():
    search(input_ids[:4], attention_mask[:4], candidates)  # warm-up
    best, out = float("inf"), None
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        out = search(input_ids, attention_mask, candidates)
        best = min(best, time.perf_counter() - start)
    results[name] = {"seconds": best, "sequences": out[0].tolist(), "scores": out[1].tolist()}
json.dump(results, open(f"{work}/results.json", "w"))
'''


def run_flashrec(model, config_kwargs, input_ids, attention_mask, item_token_ids, beams, repeats, threads):
    """Run flashrec in its own venv on the same weights and prompts; returns {mode: (seconds, sequences)}."""
    if not Path(FLASHREC_PYTHON).exists():
        return None, f"no flashrec venv at {FLASHREC_PYTHON}"
    sid_range = int(item_token_ids.max() - item_token_ids.min() + 1)
    with tempfile.TemporaryDirectory() as work:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{work}/model.safetensors")
        save_file(
            {"input_ids": input_ids, "attention_mask": attention_mask, "item_token_ids": item_token_ids},
            f"{work}/data.safetensors",
        )
        spec = {
            "config": config_kwargs,
            "beams": beams,
            "repeats": repeats,
            "threads": threads,
            "modes": {"exact": (sid_range, False), "exact_sid_head": (sid_range, True), "top40": (40, False)},
        }
        Path(work, "spec.json").write_text(json.dumps(spec))
        Path(work, "runner.py").write_text(FLASHREC_RUNNER)
        proc = subprocess.run(
            [FLASHREC_PYTHON, f"{work}/runner.py", work], capture_output=True, text=True, timeout=3600
        )
        if proc.returncode != 0:
            return None, proc.stderr.strip().splitlines()[
                -1
            ] if proc.stderr.strip() else "flashrec runner failed"
        results = json.loads(Path(work, "results.json").read_text())
    return {name: (r["seconds"], torch.tensor(r["sequences"])) for name, r in results.items()}, None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--histories", type=int, default=64)
    parser.add_argument("--history-length", type=int, default=20)
    parser.add_argument("--items", type=int, default=12101)
    parser.add_argument("--codebook", type=int, default=256)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--base-vocab", type=int, default=Qwen3Config().vocab_size)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="method keys to skip (e.g. dict_trie flashrec)")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every method (flashrec too); 1 avoids OpenMP stalls on an oversubscribed CPU",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    codes = build_catalogue(args.items, args.codebook, args.seed)
    item_token_ids = sid_token_ids(codes, args.base_vocab, args.codebook)
    num_disambiguation = int(codes[:, 3].max()) + 1
    vocab_size = args.base_vocab + 3 * args.codebook + num_disambiguation
    config_kwargs = dict(MODEL_KWARGS, vocab_size=vocab_size)
    torch.manual_seed(args.seed)
    model = Qwen3ForCausalLM(Qwen3Config(**config_kwargs)).eval()
    prompts = build_prompts(item_token_ids, args.histories, args.history_length, args.seed)
    input_ids, attention_mask = prepare_prompts(prompts)
    trie = SIDTrie(item_token_ids, vocab_size=vocab_size)
    levels = trie.num_levels
    print(
        f"catalogue {args.items} items, {levels} levels ({num_disambiguation} disambiguation tokens), "
        f"vocab {vocab_size}, {args.histories} histories x {input_ids.shape[1]} prompt tokens, beam {args.beams}, "
        f"{threads} threads",
        flush=True,
    )

    def ours(kv_sharing: str, score_vocab: str):
        def run(ids, mask):
            return recommend(
                model,
                ids,
                trie,
                k=args.beams,
                num_beams=args.beams,
                attention_mask=mask,
                kv_sharing=kv_sharing,
                score_vocab=score_vocab,
            ).sequences

        return run

    # key -> (label, function, scoring: "full" = log-softmax over the whole vocabulary, "sid" = over SID tokens)
    methods: dict[str, tuple[str, object, str]] = {
        "recommend_tree": (
            "`recommend()` (fixed-depth SID beam search, tree-attention KV sharing)",
            ours("tree", "full"),
            "full",
        ),
        "recommend_repeat": (
            '`recommend(kv_sharing="repeat")` (prefill once, cache repeated per beam)',
            ours("repeat", "full"),
            "full",
        ),
        "recommend_sid": (
            '`recommend(score_vocab="sid")` (tree attention, output layer over the SID tokens only)',
            ours("tree", "sid"),
            "sid",
        ),
        "generate_processor": (
            "`generate` + `SIDTrieLogitsProcessor` (exact constrained beam search)",
            lambda ids, mask: run_generate(
                model,
                ids,
                mask,
                args.beams,
                levels,
                logits_processor=[SIDTrieLogitsProcessor(trie, ids.shape[1])],
            ),
            "full",
        ),
        "generate_unconstrained": (
            "`generate`, unconstrained",
            lambda ids, mask: run_generate(model, ids, mask, args.beams, levels),
            "full",
        ),
        "dict_trie": (
            "`generate` + `prefix_allowed_tokens_fn` (Python dict trie)",
            lambda ids, mask: run_generate(
                model,
                ids,
                mask,
                args.beams,
                levels,
                prefix_fn=make_prefix_fn(dict_trie(item_token_ids), ids.shape[1]),
            ),
            "full",
        ),
    }
    timings: dict[str, float] = {}
    sequences: dict[str, torch.Tensor] = {}
    labels: dict[str, str] = {}
    scoring = {key: method[2] for key, method in methods.items()}
    active = {key: value for key, value in methods.items() if key not in args.skip}
    with torch.no_grad():
        for key, (label, function, _) in active.items():  # warm-up
            function(input_ids[:4], attention_mask[:4])
            labels[key], timings[key] = label, float("inf")
        # Rounds over all methods (not method after method), so that load from other jobs on this shared
        # machine hits every method alike; each method's best round is reported.
        flashrec_labels = {
            "flashrec_exact": (
                "`flashrec` search ops, KV-cached loop, exact trie (all SID tokens candidates)",
                "full",
            ),
            "flashrec_exact_sid_head": (
                "`flashrec` search ops, exact trie, `lm_head` over the SID range only (as its engine)",
                "sid",
            ),
            "flashrec_top40": (
                "`flashrec` search ops, engine default (top-40 candidates, then trie)",
                "full",
            ),
        }
        flashrec_note = ""
        for round_index in range(args.repeats):
            for key, (_, function, _) in active.items():
                start = time.perf_counter()
                sequences[key] = function(input_ids, attention_mask)
                seconds = time.perf_counter() - start
                timings[key] = min(timings[key], seconds)
                print(f"round {round_index}: {key:24s} {seconds:8.2f} s", flush=True)
            if "flashrec" in args.skip or flashrec_note:
                continue
            # flashrec runs in its own venv, one subprocess per round (warm-up inside, untimed), so that it
            # shares each round's load conditions with the methods above.
            flash, error = run_flashrec(
                model, config_kwargs, input_ids, attention_mask, item_token_ids, args.beams, 1, threads
            )
            if flash is None:
                flashrec_note = f"flashrec could not be run: {error}"
                print(flashrec_note, flush=True)
                continue
            for name, (seconds, seqs) in flash.items():
                key = f"flashrec_{name}"
                labels[key], scoring[key] = flashrec_labels[key]
                timings[key], sequences[key] = min(timings.get(key, float("inf")), seconds), seqs
                print(f"round {round_index}: {key:24s} {seconds:8.2f} s", flush=True)

    # Exact search under each scoring: generate + our processor (full vocabulary; tests check it against
    # brute force) and recommend(score_vocab="sid") (restricted softmax; tests check it against brute force).
    references = {}
    for score_kind, reference_key in (("full", "generate_processor"), ("sid", "recommend_sid")):
        if reference_key in sequences:
            references[score_kind] = trie.items_of(sequences[reference_key].reshape(-1, levels)).reshape(
                args.histories, -1
            )
    rows = []
    base_key = "recommend_tree" if "recommend_tree" in timings else next(iter(timings))
    for key, seconds in timings.items():
        items = trie.items_of(sequences[key].reshape(-1, levels)).reshape(args.histories, -1)
        valid = float((items >= 0).float().mean())
        reference = references.get(scoring[key])
        if reference is None:
            top1 = overlap = float("nan")
        else:
            top1 = float((items[:, 0] == reference[:, 0]).float().mean())
            overlap = (
                sum(
                    len(set(a.tolist()) & set(b.tolist()) - {-1}) / args.beams
                    for a, b in zip(items, reference)
                )
                / args.histories
            )
        rows.append((key, seconds, valid, top1, overlap))

    header = (
        f"| method | scores over | latency / {args.histories} | histories/s | time / recommend() | valid SIDs | "
        f"top-1 = exact | top-{args.beams} overlap with exact |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for key, seconds, valid, top1, overlap in rows:
        lines.append(
            f"| {labels[key]} | {'all tokens' if scoring[key] == 'full' else 'SID tokens'} | {seconds:.2f} s | "
            f"{args.histories / seconds:.1f} | {seconds / timings[base_key]:.2f}x | {100 * valid:.0f}% | "
            f"{100 * top1:.0f}% | {100 * overlap:.0f}% |"
        )
    table = "\n".join(lines)
    print(table)
    if flashrec_note:
        print(flashrec_note)
    if args.no_write:
        return
    command = reporting.command_line("nice -n 10 .venv/bin/python benchmarks/decoding.py")
    section = [
        "",
        f"## Decoding: trie-constrained SID beam search ({reporting.utc_minute()})",
        "",
        f"Machine: {platform.machine()}, 2 CPU cores shared with other jobs ({threads} torch threads), torch "
        f"{torch.__version__}. Command: `{command}`",
        "",
        f"Tiny random Qwen3 (hidden 128, 2 layers), vocab {vocab_size} = {args.base_vocab} base + "
        f"{3 * args.codebook + num_disambiguation} SID tokens; {args.items} items with 4-token SIDs (3 x "
        f"{args.codebook} + {num_disambiguation} disambiguation codes); {args.histories} histories x "
        f"{args.history_length} items ({input_ids.shape[1]} prompt tokens); beam {args.beams}; best of "
        f"{args.repeats} interleaved rounds after a warm-up. 'time / recommend()' = that method's latency / the first row's. "
        "'exact' = exact constrained beam search under the same scoring: `generate` + `SIDTrieLogitsProcessor` "
        '(`length_penalty=0`) for scores over all tokens, `recommend(score_vocab="sid")` for scores over the '
        "SID tokens (both checked against brute-force teacher forcing in tests/test_generation.py).",
        "",
        table,
        "",
    ]
    if flashrec_note:
        section += [flashrec_note, ""]
    reporting.append_results("\n".join(section))


if __name__ == "__main__":
    main()
