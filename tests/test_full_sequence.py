"""The full-sequence objective: windows give exactly the prefix examples' supervision; loss, sampler, dropout,
early stopping, and a tiny model that learns with it."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from datasets import Dataset, DatasetDict
from test_recommender import NUM_ITEMS, tiny_model_args, tiny_sids, tiny_splits, train_args

from hf_simcit.data import leave_one_out, training_sequences_from_splits, training_windows
from hf_simcit.errors import SimCITInputError
from hf_simcit.recommender.data import (
    IGNORE_INDEX,
    LengthGroupedSampler,
    RecommenderCollator,
    SIDPromptFormatter,
    build_full_sequence_dataset,
    build_training_dataset,
)
from hf_simcit.recommender.evaluation import evaluate_recommender
from hf_simcit.recommender.modeling import add_residual_dropout, build_recommender, load_recommender
from hf_simcit.recommender.objective import LabelledTokenLoss
from hf_simcit.training.recommender import RecommenderDataArguments, train_recommender

# tiny models on a shared 2-core machine: one intra-op thread is ~10x faster than two fighting
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# users with repeats (held-out items inside the training part: those targets are dropped), a long user
# (several windows), and a user too short to split
SEQUENCES = [
    [0, 1, 2, 3, 4, 5, 6],
    [3, 4, 3, 5, 4, 3],                         # training targets equal to 4 or 3 (validation/test) are dropped
    [(7 * j) % NUM_ITEMS for j in range(15)],   # longer than a window of max_history + 1 = 5 items
    [1, 2],
    [5, 6, 7],
]
MAX_HISTORY = 4


def _splits() -> DatasetDict:
    split = leave_one_out(SEQUENCES, max_history=MAX_HISTORY)
    assert split.train_targets_dropped_as_eval_targets > 0
    return DatasetDict({name: Dataset.from_dict(getattr(split, name))
                        for name in ("train", "validation", "test")})


def _supervision(dataset, bos: int, num_levels: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(context tokens, target SID tokens) for every labelled item in ``dataset``."""
    pairs = []
    for ids, labels in zip(dataset["input_ids"], dataset["labels"]):
        assert ids[0] == bos and labels[0] == IGNORE_INDEX
        for start in range(1, len(ids), num_levels):
            span = labels[start:start + num_levels]
            assert all(t == IGNORE_INDEX for t in span) or span == ids[start:start + num_levels]
            if span[0] != IGNORE_INDEX:
                pairs.append((tuple(ids[1:start]), tuple(span)))
    return pairs


def test_sequences_rebuilt_from_the_splits_are_the_users_training_items():
    splits = _splits()
    rebuilt = training_sequences_from_splits(splits["train"][:], splits["validation"][:], splits["test"][:])
    for user, seq in enumerate(SEQUENCES):
        if len(seq) < 3:
            assert user not in rebuilt
            continue
        items, held_out = rebuilt[user]
        assert held_out == {seq[-1], seq[-2]}
        assert seq[:-2][-len(items):] == items     # leading items no example ever shows may be left out


def test_full_sequence_labels_are_the_prefix_examples_supervision():
    """stride=1: every training target once, with exactly the prompt's context; held-out targets masked."""
    splits = _splits()
    rec = build_recommender(tiny_model_args(), tiny_sids())
    prompts = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
    prefix = build_training_dataset(splits["train"], prompts)
    full = build_full_sequence_dataset(splits, prompts, stride=1)
    bos, levels = rec.tokenizer.bos_token_id, rec.item_token_ids.shape[1]
    expected = Counter((tuple(ids[1:len(ids) - levels]), tuple(ids[len(ids) - levels:]))
                       for ids in prefix["input_ids"])
    assert Counter(_supervision(full, bos, levels)) == expected
    assert sum(expected.values()) == len(splits["train"])


def test_strided_windows_count_every_target_once_with_a_suffix_of_its_prompt_context():
    splits = _splits()
    rec = build_recommender(tiny_model_args(), tiny_sids())
    prompts = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
    prefix = build_training_dataset(splits["train"], prompts)
    full = build_full_sequence_dataset(splits, prompts, stride=2)
    bos, levels = rec.tokenizer.bos_token_id, rec.item_token_ids.shape[1]
    got = _supervision(full, bos, levels)
    assert len(got) == len(prefix)
    assert len(full) < len(prefix)                              # fewer sequences than examples
    wanted = [(tuple(ids[1:len(ids) - levels]), tuple(ids[len(ids) - levels:])) for ids in prefix["input_ids"]]
    # each target's context is the last >= max_history + 1 - stride items of its prompt's context
    unmatched = Counter(wanted)
    for context, target in got:
        match = next(w for w in unmatched if unmatched[w] and w[1] == target and w[0][len(w[0]) - len(context):]
                     == context and len(context) >= min(len(w[0]), (MAX_HISTORY + 1 - 2) * levels))
        unmatched[match] -= 1
    assert not +unmatched


def test_windows_stride_and_bad_options():
    seqs = {0: (list(range(10)), {98, 99})}
    windows = training_windows(seqs, max_history=4, stride=2)
    assert [w.items[0] for w in windows] == [0, 2, 4, 5]          # the last window ends with the last item
    counted = [w.items[j] for w in windows for j, f in enumerate(w.is_target) if f]
    assert counted == list(range(1, 10))
    first = training_windows(seqs, max_history=4, stride=2, predict_first=True)
    assert first[0].is_target[0] is True and sum(sum(w.is_target) for w in first) == 10
    with pytest.raises(SimCITInputError, match="stride"):
        training_windows(seqs, max_history=4, stride=5)
    default = training_windows(seqs, max_history=4)             # stride max_history: windows share one item
    assert [w.items[0] for w in default] == [0, 4, 5]


def test_splits_that_are_not_every_prefix_are_refused_with_the_row():
    split = leave_one_out(SEQUENCES, max_history=MAX_HISTORY, train_examples="last")
    splits = {name: getattr(split, name) for name in ("train", "validation", "test")}
    with pytest.raises(SimCITInputError, match=r"train split, row \d+ \(user_id \d+\).*objective 'prefix'"):
        training_sequences_from_splits(splits["train"], splits["validation"], splits["test"])
    # an empty validation split: the training rows cannot be rebuilt; one line, not a TypeError from the check
    full = leave_one_out(SEQUENCES, max_history=MAX_HISTORY)
    empty = {key: [] for key in ("user_id", "history", "target")}
    with pytest.raises(SimCITInputError, match=r"train split, row 0 \(user_id \d+\).*objective 'prefix'"):
        training_sequences_from_splits(full.train, empty, full.test)


# ------------------------------------------------------------------------------------------------ loss
@pytest.mark.parametrize("softmax_over", ["vocab", "sid"])
def test_labelled_token_loss_is_cross_entropy_on_the_labelled_tokens(softmax_over):
    rec = build_recommender(tiny_model_args(), tiny_sids(), seed=0)
    prompts = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
    ds = build_full_sequence_dataset(tiny_splits(), prompts)
    batch = RecommenderCollator(rec.tokenizer.pad_token_id)([ds[i] for i in range(4)])
    loss = LabelledTokenLoss(rec.model, rec.sid_token_ids, softmax_over)(rec.model, batch)
    logits = rec.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    if softmax_over == "sid":
        first = min(rec.sid_token_ids)
        logits = logits[..., first:]
        labels = torch.where(labels == IGNORE_INDEX, labels, labels - first)
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                               ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(loss, manual, rtol=1e-5, atol=1e-6)
    if softmax_over == "vocab":
        torch.testing.assert_close(loss, rec.model(**batch).loss, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert rec.model.lm_head.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ sampler
def test_length_grouped_sampler_is_a_seeded_permutation_with_uniform_batches():
    lengths = [int(x) for x in torch.randint(1, 200, (1000,), generator=torch.Generator().manual_seed(0))]
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=3, group_batches=8)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    assert list(sampler) == order                              # same epoch, same order
    sampler.use_epoch(1)
    assert list(sampler) != order
    batches = [order[i:i + 16] for i in range(0, 1000, 16)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    random_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b)
                        for b in (list(range(i, min(i + 16, 1000))) for i in range(0, 1000, 16))) / len(batches)
    assert spread < random_spread / 4
    assert len(batches[-1]) == 1000 % 16                       # the one short batch is the last


# ------------------------------------------------------------------------------------------------ dropout
def test_residual_dropout_acts_in_training_only():
    rec = build_recommender(tiny_model_args(tiny_dropout=0.3), tiny_sids(), seed=0)
    plain = build_recommender(tiny_model_args(), tiny_sids(), seed=0)
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    rec.model.eval()
    plain.model.eval()
    torch.testing.assert_close(rec.model(ids).logits, plain.model(ids).logits)
    rec.model.train()
    assert not torch.allclose(rec.model(ids).logits, rec.model(ids).logits)
    with pytest.raises(SimCITInputError, match="tiny_dropout"):
        add_residual_dropout(plain.model, 1.0)


def test_tied_embeddings_train_one_matrix_and_stay_tied_when_saved(tmp_path):
    """tiny_tie_word_embeddings: the output layer is the input embedding (fewer parameters, as in T5); the
    full-sequence loss trains it through both uses, and the saved generator loads tied with the same weights."""
    tied = build_recommender(tiny_model_args(tiny_tie_word_embeddings=True), tiny_sids(), seed=0)
    untied = build_recommender(tiny_model_args(), tiny_sids(), seed=0)
    head, embed = tied.model.get_output_embeddings().weight, tied.model.get_input_embeddings().weight
    assert head is embed and untied.model.get_output_embeddings().weight is not untied.model.get_input_embeddings().weight
    count = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    assert count(untied.model) - count(tied.model) == embed.numel()
    args = train_args(tmp_path, max_steps=3)
    train_recommender(tiny_model_args(tiny_tie_word_embeddings=True), RecommenderDataArguments(eval_max_examples=None),
                      args, splits=tiny_splits(), sid_source=tiny_sids())
    saved = load_recommender(args.output_dir)
    weight = saved.model.get_input_embeddings().weight
    assert saved.model.get_output_embeddings().weight is weight and not torch.equal(weight, embed)


# ------------------------------------------------------------------------------------------------ training
def test_tiny_model_learns_with_the_full_sequence_objective(tmp_path):
    splits = tiny_splits()
    args = train_args(tmp_path, max_steps=-1, num_train_epochs=60, eval_epochs=20, learning_rate=1e-2)
    result = train_recommender(tiny_model_args(), RecommenderDataArguments(eval_max_examples=None), args,
                               splits=splits, sid_source=tiny_sids())
    assert result["objective"] == "full_sequence"
    # 8 users, one window each: 8 sequences of 1 + 4 items x 2 levels tokens
    assert result["token_positions_per_epoch"] == 8 * (1 + 4 * 2)
    rec = load_recommender(args.output_dir)
    seen = evaluate_recommender(rec.model, rec.tokenizer, rec.item_token_ids, splits["train"], num_beams=5,
                                ks=(1, 5))
    assert seen["recall@1"] == 1.0 and seen["invalid_items"] == 0     # it recommends the next items it saw
    log = json.loads((tmp_path / "rec" / "train_log.json").read_text())
    curve = [e for e in log["log"] if "ndcg@5" in e]
    assert [round(e["epoch"]) for e in curve] == [20, 40, 60]
    assert all(e["train_seconds"] > 0 for e in curve)
    assert curve == sorted(curve, key=lambda e: e["train_seconds"])


def test_early_stopping_stops_after_patience_and_keeps_the_best(tmp_path):
    splits = tiny_splits()
    # a learning rate so high that validation collapses after the first validations
    args = train_args(tmp_path, max_steps=-1, num_train_epochs=200, eval_epochs=2, early_stopping_patience=2,
                      learning_rate=1e-2)
    seen = []

    def record(step, logs):
        seen.append(step)

    result = train_recommender(tiny_model_args(), RecommenderDataArguments(eval_max_examples=None), args,
                               splits=splits, sid_source=tiny_sids(), step_callback=record)
    log = [e for e in result["log"] if "ndcg@5" in e]
    assert result["stopped_early"] is True and result["epochs"] < 200
    best = max(log, key=lambda e: e["ndcg@5"])
    assert result["best_step"] == best["step"]
    after = [e for e in log if e["step"] > best["step"]]
    assert len(after) == 2 and all(e["ndcg@5"] <= best["ndcg@5"] for e in after)
    saved = json.loads((tmp_path / "rec" / "recommender_config.json").read_text())
    assert saved["step"] == best["step"]                       # the saved model is the best one


def test_objective_options_are_checked():
    with pytest.raises(SimCITInputError, match="objective"):
        RecommenderDataArguments(objective="everything").resolved_objective()
    assert RecommenderDataArguments(prompt_template="chat").resolved_objective() == "prefix"
    rec = build_recommender(tiny_model_args(), tiny_sids())
    rec.tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    from hf_simcit.recommender.data import PromptTemplate

    chat = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids, PromptTemplate(kind="chat"))
    with pytest.raises(SimCITInputError, match="full_sequence objective needs the 'plain'"):
        build_full_sequence_dataset(tiny_splits(), chat)
