"""The dense item head (LIGER): the generator learns to predict the next item's content embedding, which ranks
items it never saw as targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_recommender import NUM_ITEMS, tiny_model_args, tiny_sids, tiny_splits, train_args

from hf_simcit.errors import SimCITInputError
from hf_simcit.recommender.data import IGNORE_INDEX, SIDPromptFormatter
from hf_simcit.recommender.dense import DENSE_HEAD_NAME, DenseItemLoss, dense_head_of, dense_item_scores
from hf_simcit.recommender.modeling import build_recommender, load_recommender
from hf_simcit.training.recommender import RecommenderDataArguments, train_recommender

DIM = 8


# tiny models on a shared 2-core machine: one intra-op thread is ~10x faster than two fighting
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _embeddings() -> torch.Tensor:
    vectors = torch.randn(NUM_ITEMS, DIM, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.normalize(vectors, dim=-1)


def test_dense_loss_finds_each_labelled_item_and_skips_runs_cut_by_masking():
    rec = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids())
    table = rec.item_token_ids
    loss = DenseItemLoss(rec.model, table, _embeddings())
    first, second = table[3].tolist(), table[7].tolist()
    targets = torch.tensor([[IGNORE_INDEX, *first, *second],
                            [IGNORE_INDEX, first[0], IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])   # item 3 dropped
    where, items = loss.target_items(targets)
    assert where.tolist() == [[0, 1], [0, 3]] and items.tolist() == [3, 7]
    hidden = torch.randn(2, 5, rec.model.config.hidden_size, requires_grad=True)
    value = loss(hidden, targets)
    value.backward()
    assert value.item() > 0 and hidden.grad[1].abs().sum() == 0     # the cut run gives no gradient


def test_dense_head_learns_the_next_items_embedding_and_ranks_items_it_never_saw(tmp_path):
    embeddings = _embeddings()
    splits = tiny_splits()
    args = train_args(tmp_path, max_steps=-1, num_train_epochs=60, eval_epochs=60, learning_rate=1e-2)
    train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=None), args,
                      splits=splits, sid_source=tiny_sids(), item_embeddings=embeddings)
    assert (tmp_path / "rec" / DENSE_HEAD_NAME).exists()
    rec = load_recommender(args.output_dir)
    assert dense_head_of(rec.model) is not None
    formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
    prompts = [formatter.prompt_ids(h) for h in splits["train"]["history"]]
    targets = torch.tensor(splits["train"]["target"])
    # new items: noisy copies of the catalogue's embeddings, never seen by the model
    new = torch.nn.functional.normalize(
        embeddings + 0.2 * torch.randn(NUM_ITEMS, DIM, generator=torch.Generator().manual_seed(1)), dim=-1)
    scores = dense_item_scores(rec.model, prompts, new, rec.tokenizer.pad_token_id, batch_size=5)
    assert scores.shape == (len(prompts), NUM_ITEMS)
    # padding changes nothing: prompts of 1-3 items scored together or one by one
    torch.testing.assert_close(dense_item_scores(rec.model, prompts, new, rec.tokenizer.pad_token_id, batch_size=1),
                               scores)
    hit = (scores.argmax(1) == targets).float().mean().item()
    assert hit >= 0.9          # an untrained head: about 1 / 12
    untrained = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids(), seed=0)
    baseline = dense_item_scores(untrained.model, prompts, new, untrained.tokenizer.pad_token_id)
    assert (baseline.argmax(1) == targets).float().mean().item() < 0.5
    # saved and reloaded: the same scores (the head travels in its own file)
    again = dense_item_scores(load_recommender(args.output_dir).model, prompts, new, rec.tokenizer.pad_token_id)
    torch.testing.assert_close(again, scores)


def test_dense_head_options_are_checked(tmp_path):
    splits, sids = tiny_splits(), tiny_sids()
    data = RecommenderDataArguments(eval_max_examples=None)
    with pytest.raises(SimCITInputError, match="needs item embeddings"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), data, train_args(tmp_path), splits=splits,
                          sid_source=sids)
    with pytest.raises(SimCITInputError, match="needs item embeddings"):
        train_recommender(tiny_model_args(), data, train_args(tmp_path), splits=splits, sid_source=sids,
                          item_embeddings=_embeddings())
    with pytest.raises(SimCITInputError, match=r"must be \(12, 8\).*got \(12, 5\)"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), data, train_args(tmp_path), splits=splits,
                          sid_source=sids, item_embeddings=torch.zeros(NUM_ITEMS, 5))
    bad = _embeddings()
    bad[4, 2] = float("nan")
    with pytest.raises(SimCITInputError, match="item 4 is not finite"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), data, train_args(tmp_path), splits=splits,
                          sid_source=sids, item_embeddings=bad)
    with pytest.raises(SimCITInputError, match="use_lora: false"):
        build_recommender(tiny_model_args(dense_head_dim=DIM, use_lora=True), sids)
    with pytest.raises(SimCITInputError, match="dense_head_dim must be >= 0"):
        tiny_model_args(dense_head_dim=-1)
    with pytest.raises(SimCITInputError, match="no dense item head"):
        plain = build_recommender(tiny_model_args(), sids)
        dense_item_scores(plain.model, [[1, 2]], _embeddings(), 0)


def _item_table(tmp_path, embeddings: torch.Tensor, drop: int | None = None):
    from datasets import Dataset

    rows = [i for i in reversed(range(NUM_ITEMS)) if i != drop]     # not the SID table's order
    path = tmp_path / "items"
    Dataset.from_dict({"item_id": [f"item{i}" for i in rows],
                       "text_embedding": [embeddings[i].tolist() for i in rows]}).save_to_disk(str(path))
    return str(path)


def test_a_recipe_names_the_item_table_whose_embeddings_the_head_learns(tmp_path):
    """``dense_item_features`` (``hf-simcit features``' table, set by the pipeline): its text embeddings, aligned
    to the SID table's items by id, are what the head learns: a table in reverse order trains exactly as the
    embeddings handed over in the SID table's order."""
    embeddings = _embeddings()
    path = _item_table(tmp_path, embeddings)
    splits, sids = tiny_splits(), tiny_sids()
    data = RecommenderDataArguments(eval_max_examples=None, dense_item_features=path)
    args = train_args(tmp_path, max_steps=10)
    from_table = train_recommender(tiny_model_args(dense_head_dim=DIM), data, args, splits=splits, sid_source=sids)
    head = dense_head_of(from_table["recommender"].model).weight.detach().clone()
    given = train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=None),
                              train_args(tmp_path, max_steps=10, output_dir=str(tmp_path / "given")),
                              splits=splits, sid_source=sids, item_embeddings=embeddings)
    torch.testing.assert_close(dense_head_of(given["recommender"].model).weight.detach(), head)
    with pytest.raises(SimCITInputError, match="item 'item5' of the SID table is not in it"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(
            eval_max_examples=None, dense_item_features=_item_table(tmp_path / "gap", embeddings, drop=5)),
            args, splits=splits, sid_source=sids)
    with pytest.raises(SimCITInputError, match="dense_item_features '.*nowhere' does not exist"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(
            eval_max_examples=None, dense_item_features=str(tmp_path / "nowhere")), args, splits=splits,
            sid_source=sids)


def test_the_pipeline_gives_the_head_its_own_item_table(tmp_path):
    from hf_simcit.pipeline import load_pipeline, plan_stages

    recipes = Path(__file__).resolve().parents[1] / "recipes" / "ml-100k"
    args = load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run"),
                                                     "recommender.dense_head_dim": 384})
    plan = plan_stages(args)
    assert plan.recommender[0].dense_head_dim == 384
    assert plan.recommender[1].dense_item_features == str(plan.quantizer_items)
    plain = plan_stages(load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run")}))
    assert plain.recommender[1].dense_item_features is None
