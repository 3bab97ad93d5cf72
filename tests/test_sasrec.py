"""SASRec baseline: learns a deterministic next-item pattern, full-ranking metrics, bad input."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset, DatasetDict

from hf_simcit.baselines.sasrec import SASRec, SASRecConfig, encode_histories, rank_items, train_sasrec
from hf_simcit.errors import SimCITInputError

NUM_ITEMS = 15


# tiny models on a shared 2-core machine: one intra-op thread is ~10x faster than two fighting
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cyclic_splits(num_users: int = 15) -> DatasetDict:
    rows = {"train": [], "validation": [], "test": []}
    for u in range(num_users):
        seq = [(u + j) % NUM_ITEMS for j in range(8)]
        for end in range(1, 6):
            rows["train"].append({"user_id": u, "history": seq[:end], "target": seq[end]})
        rows["validation"].append({"user_id": u, "history": seq[:6], "target": seq[6]})
        rows["test"].append({"user_id": u, "history": seq[:7], "target": seq[7]})
    return DatasetDict({k: Dataset.from_list(v) for k, v in rows.items()})


@pytest.mark.parametrize("layer_norm", ["pre", "post"])
def test_sasrec_learns_the_next_item_and_ranks_full_catalogue(layer_norm):
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=32, num_layers=1, num_heads=2, dropout=0.0,
                          learning_rate=1e-2, batch_size=32, num_epochs=40, patience=40, layer_norm=layer_norm)
    model, result = train_sasrec(cyclic_splits(), config, device="cpu", ks=(1, 5), verbose=False)
    assert result["test"]["recall@1"] >= 0.9
    assert result["validation"]["recall@5"] == 1.0
    ranked = rank_items(model, [[0, 1, 2]], top=NUM_ITEMS)
    assert sorted(ranked[0].tolist()) == list(range(NUM_ITEMS))     # every item ranked exactly once
    assert ranked[0, 0].item() == 3


def _sid_codes() -> torch.Tensor:
    """Items 0..14 on distinct (a, b) pairs with last code 0; item 15 (never in the data) is item 3 but for its
    last code."""
    pairs = [(a, b) for a in range(4) for b in range(4)][:NUM_ITEMS]
    codes = [[a, b, 0] for a, b in pairs]
    return torch.as_tensor(codes + [[*pairs[3], 1]])


def test_sid_items_are_their_codes_sums_and_a_new_item_ranks_by_its_sid():
    """``sid_sizes``: the item table is the sum of the items' code embeddings and the model learns the walk;
    after training, item 15 joins the catalogue (``set_item_codes``, no retraining) and ranks next to item 3,
    whose SID it shares but for the last code."""
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=32, num_layers=1, num_heads=2,
                          dropout=0.0, learning_rate=1e-2, batch_size=32, num_epochs=40, patience=40,
                          sid_sizes=[4, 4, 2])
    model, result = train_sasrec(cyclic_splits(), config, device="cpu", ks=(1, 5), verbose=False,
                                 item_codes=_sid_codes()[:NUM_ITEMS])
    expected = model.code_embedding.weight[_sid_codes()[:NUM_ITEMS] + torch.tensor([0, 4, 8])].sum(1)
    torch.testing.assert_close(model.item_table()[1:], expected)
    assert not model.item_table()[0].any()
    assert result["test"]["recall@1"] >= 0.9
    model.set_item_codes(_sid_codes())
    assert model.config.num_items == NUM_ITEMS + 1 and model(encode_histories([[0]], 8, NUM_ITEMS)).shape == (1, 16)
    # (which of the two comes first varies with the seed: item 15's own last code was never trained)
    assert set(rank_items(model, [[0, 1, 2]], top=2, exclude_history=True)[0].tolist()) == {3, NUM_ITEMS}
    with pytest.raises(SimCITInputError, match="item 2 has code 4 at level 1, outside 0..3"):
        SASRec(config, torch.as_tensor([[0, 0, 0], [1, 1, 1], [0, 4, 0]] + [[0, 0, 0]] * 12))
    with pytest.raises(SimCITInputError, match="expected shape \\(15, 3\\)"):
        SASRec(config, _sid_codes()[:NUM_ITEMS, :2])
    with pytest.raises(SimCITInputError, match="needs item_codes"):
        SASRec(config)
    with pytest.raises(SimCITInputError, match="sid_sizes must list >= 1 code per level"):
        SASRecConfig(num_items=3, sid_sizes=[4, 0])
    with pytest.raises(SimCITInputError, match="an id model cannot rank items it never saw"):
        SASRec(SASRecConfig(num_items=3)).set_item_codes(_sid_codes())


def test_sasrec_budget_in_steps_and_padding_invariance():
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=6, hidden_size=16, num_layers=1, num_heads=1, dropout=0.0)
    _, result = train_sasrec(cyclic_splits(), config, device="cpu", max_steps=3, verbose=False)
    assert result["steps"] == 3 and {"validation", "test"} <= set(result)
    # a caller that scores the test itself asks for the validation only (no second ranking of every test user)
    _, result = train_sasrec(cyclic_splits(), config, device="cpu", max_steps=3, verbose=False,
                             evaluate_splits=("validation",))
    assert "validation" in result and "test" not in result
    model = SASRec(config).eval()
    short = encode_histories([[4, 5]], max_len=6, num_items=NUM_ITEMS)
    assert short.tolist() == [[0, 0, 0, 0, 5, 6]]
    with torch.no_grad():
        # left padding never changes the scores of the real tokens
        torch.testing.assert_close(model(short), model(encode_histories([[4, 5]], 4, NUM_ITEMS)[:, -2:]))


def test_excluded_history_is_the_full_ranking_without_the_history_items():
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=NUM_ITEMS, max_len=4, hidden_size=16, num_layers=1, num_heads=2)).eval()
    histories = [[3, 1, 4], [0], [5, 9, 2, 6, 7]]            # the last one is longer than max_len
    full = rank_items(model, histories, top=NUM_ITEMS)
    kept = rank_items(model, histories, top=5, exclude_history=True)
    for row, history in enumerate(histories):
        visible = set(history[-4:])                           # what the model sees is what is excluded
        assert kept[row].tolist() == [i for i in full[row].tolist() if i not in visible][:5]


def test_sasrec_bad_histories():
    with pytest.raises(SimCITInputError, match="empty history"):
        encode_histories([[1], []], 4, NUM_ITEMS)
    with pytest.raises(SimCITInputError, match=r"\[99\]"):
        encode_histories([[1, 99]], 4, NUM_ITEMS)


@pytest.mark.parametrize("layer_norm", ["pre", "post"])
def test_sasrec_no_grad_eval_matches_autograd_path_on_padded_histories(layer_norm):
    """Regression: ``mask=causal`` + ``src_key_padding_mask`` left fully blocked rows for left padding, and the
    fused no-grad eval fast path turned them into NaN scores for every history shorter than ``max_len``."""
    torch.manual_seed(0)
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=16, num_layers=2, num_heads=2, dropout=0.0,
                          layer_norm=layer_norm)
    model = SASRec(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    seqs = encode_histories([[1, 2, 3], [5], list(range(10))], 8, NUM_ITEMS)
    slow = model(seqs)                                      # grad enabled: the autograd (slow) path
    with torch.no_grad():
        fast = model(seqs)                                  # eval + no_grad: PyTorch's fused fast path
    assert not fast.isnan().any()
    torch.testing.assert_close(fast, slow.detach(), atol=1e-4, rtol=1e-4)
    assert rank_items(model, [[1, 2, 3]], top=NUM_ITEMS)[0].tolist() == fast[0].argsort(descending=True).tolist()


def test_all_position_labels_are_the_training_targets_each_once():
    from collections import Counter

    from hf_simcit.baselines.sasrec import IGNORE_INDEX, all_position_examples
    from hf_simcit.data import leave_one_out

    sequences = [[0, 1, 2, 3, 4, 5], [3, 4, 3, 5, 4, 3], [(2 * j) % NUM_ITEMS for j in range(12)], [7, 8, 9]]
    split = leave_one_out(sequences, max_history=4)
    splits = {name: getattr(split, name) for name in ("train", "validation", "test")}
    inputs, labels = all_position_examples(splits, max_len=4)
    got = Counter()
    for x, y in zip(inputs.tolist(), labels.tolist()):
        for j, label in enumerate(y):
            if label != IGNORE_INDEX:
                context = tuple(i - 1 for i in x[:j + 1] if i > 0)
                got[(context[-1], label)] += 1      # (the item just before, the target)
    wanted = Counter((h[-1], t) for h, t in zip(split.train["history"], split.train["target"]))
    assert got == wanted and sum(got.values()) == len(split.train["target"])
    assert (labels != IGNORE_INDEX).sum() < inputs.numel()


def test_last_position_objective_still_learns():
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=32, num_layers=1, num_heads=2, dropout=0.0,
                          learning_rate=1e-2, batch_size=32, num_epochs=40, patience=40, objective="last_position")
    _, result = train_sasrec(cyclic_splits(), config, device="cpu", ks=(1, 5), verbose=False)
    assert result["validation"]["recall@5"] == 1.0


def test_early_stopping_stops_at_patience_and_restores_the_best(monkeypatch):
    import hf_simcit.baselines.sasrec as sasrec

    scores = iter([0.1, 0.3, 0.2, 0.25, 0.2, 0.9])     # best after epoch 1, then 3 worse validations
    snapshots = []

    def fake_metrics(model, *args, **kwargs):
        snapshots.append(model.item_embedding.weight.detach().clone())
        return {"ndcg@5": next(scores), "recall@5": 0.0}

    monkeypatch.setattr(sasrec, "_sample_metrics", fake_metrics)
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=16, num_layers=1, num_heads=1,
                          num_epochs=50, patience=3, learning_rate=1e-2)
    model, result = train_sasrec(cyclic_splits(), config, device="cpu", ks=(1, 5), verbose=False)
    assert result["epochs"] == 5 and result["best_epoch"] == 1 and len(result["history"]) == 5
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2, 3, 4]
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(result["history"], result["history"][1:]))
    torch.testing.assert_close(model.item_embedding.weight, snapshots[1])     # the best epoch's weights
    assert not torch.equal(snapshots[1], snapshots[-1])


@pytest.mark.parametrize("exclude", [False, True])
def test_the_early_stopping_validation_can_rank_without_the_history(exclude):
    """``eval_exclude_history``: the validation that chooses the checkpoint is RecBole's (history items never
    ranked), the protocol whose figures are reported; off, it ranks every item."""
    from hf_simcit.baselines.sasrec import evaluate_sasrec

    splits = cyclic_splits()
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=16, num_layers=1, num_heads=1, num_epochs=1,
                          learning_rate=1e-2, eval_exclude_history=exclude)
    model, result = train_sasrec(splits, config, device="cpu", ks=(1, 5), verbose=False)
    logged = {k: result["history"][0][k] for k in ("ndcg@5", "recall@5")}
    plain, without = (evaluate_sasrec(model, splits["validation"], (1, 5), exclude_history=flag)
                      for flag in (False, True))
    assert plain["ndcg@5"] != pytest.approx(without["ndcg@5"])      # the two protocols differ on this data
    expected = without if exclude else plain
    assert logged == pytest.approx({k: expected[k] for k in logged})


def test_no_validation_trains_every_epoch_and_keeps_the_last_state(monkeypatch):
    """``eval_max_examples=0`` (a final fit): all ``num_epochs`` run, patience never stops them, nothing is
    restored, and a negative sample size is one clear line."""
    import hf_simcit.baselines.sasrec as sasrec

    monkeypatch.setattr(sasrec, "_sample_metrics", lambda *a, **k: pytest.fail("validated although 0 users"))
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=16, num_layers=1, num_heads=1,
                          num_epochs=4, patience=1, learning_rate=1e-2, eval_max_examples=0)
    model, result = train_sasrec(cyclic_splits(), config, device="cpu", ks=(1, 5), verbose=False)
    assert result["epochs"] == 4 and result["history"] == [] and result["best_epoch"] == -1
    with pytest.raises(SimCITInputError, match="eval_max_examples must be >= 0 or None, got -1"):
        SASRecConfig(num_items=3, eval_max_examples=-1)


def test_bad_objective_is_one_clear_line():
    with pytest.raises(SimCITInputError, match="objective must be one of all_positions, last_position; got 'all'"):
        SASRecConfig(num_items=3, objective="all")
    with pytest.raises(SimCITInputError, match="layer_norm must be one of pre, post; got 'none'"):
        SASRecConfig(num_items=3, layer_norm="none")


def test_layer_norm_layouts():
    """``pre``: Kang & McAuley (scaled embeddings, pre-LN blocks, final LayerNorm; the saved keys of earlier
    runs); ``post``: RecBole (LayerNorm of the summed embeddings, post-LN blocks)."""
    pre = SASRec(SASRecConfig(num_items=NUM_ITEMS, layer_norm="pre"))
    post = SASRec(SASRecConfig(num_items=NUM_ITEMS, layer_norm="post"))
    assert pre.encoder.layers[0].norm_first and not post.encoder.layers[0].norm_first
    assert "final_norm.weight" in pre.state_dict() and "embedding_norm.weight" not in pre.state_dict()
    assert "embedding_norm.weight" in post.state_dict() and "final_norm.weight" not in post.state_dict()


def test_sampled_softmax_is_the_full_softmax_over_target_and_draws():
    """``negatives``: the loss equals cross entropy over [target, drawn items] computed from the full score
    matrix, and a draw that hits the target is masked out (never counted as its own negative)."""
    from hf_simcit.baselines.sasrec import sampled_softmax_loss

    torch.manual_seed(0)
    table, hidden = torch.randn(NUM_ITEMS + 1, 8), torch.randn(5, 8)
    targets = torch.tensor([0, 3, 3, 7, 14])
    loss = sampled_softmax_loss(hidden, table, targets, 40, torch.Generator().manual_seed(1))
    drawn = torch.randint(0, NUM_ITEMS, (5, 40), generator=torch.Generator().manual_seed(1))   # the same draws
    full = hidden @ table[1:].T
    expected = []
    for row in range(5):
        negatives = [int(i) for i in drawn[row] if int(i) != int(targets[row])]
        assert len(negatives) < 40                        # 40 draws of 15 items: some hit the target
        logits = torch.cat([full[row, targets[row]][None], full[row, negatives]])
        expected.append(-torch.log_softmax(logits, 0)[0])
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_sampled_softmax_training_learns_the_walk():
    config = SASRecConfig(num_items=NUM_ITEMS, max_len=8, hidden_size=32, num_layers=1, num_heads=2, dropout=0.0,
                          learning_rate=1e-2, batch_size=32, num_epochs=40, patience=40, negatives=5)
    _, result = train_sasrec(cyclic_splits(), config, device="cpu", ks=(1, 5), verbose=False)
    assert result["validation"]["recall@5"] == 1.0 and result["test"]["recall@1"] >= 0.9
    with pytest.raises(SimCITInputError, match="negatives must be >= 0"):
        SASRecConfig(num_items=3, negatives=-1)


def test_training_step_is_the_cross_entropy_at_the_labelled_positions_and_one_adamw_step():
    """``training_step`` (the step ``train_sasrec`` runs and the dropout benchmark times): the loss is the full
    softmax CE over the labelled positions only, the count is theirs, and the optimizer moved the weights."""
    from hf_simcit.baselines.sasrec import IGNORE_INDEX, training_step

    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=9, hidden_size=16, inner_size=32, num_layers=1, dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inputs = torch.tensor([[0, 0, 1, 2], [3, 4, 5, 6]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 1, 2], [3, IGNORE_INDEX, 5, 8]])
    chosen = labels != IGNORE_INDEX
    with torch.no_grad():
        scores = model.item_scores(model.hidden_states(inputs))                  # (2, 4, 9)
        expected = torch.nn.functional.cross_entropy(scores[chosen], labels[chosen]).item()
    before = model.item_table().detach().clone()
    loss, count = training_step(model, optimizer, inputs, labels)
    assert count == 5
    assert loss == pytest.approx(expected, rel=1e-5)
    assert not torch.equal(before, model.item_table().detach())
    losses = [training_step(model, optimizer, inputs, labels)[0] for _ in range(30)]
    assert losses[-1] < 0.5 * loss
