"""The dense item head (LIGER): the generator learns to predict the next item's content embedding, which ranks
items it never saw as targets."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict
from test_recommender import NUM_ITEMS, tiny_model_args, tiny_sids, tiny_splits, train_args

from hf_simcit.errors import SimCITInputError
from hf_simcit.generation import Recommendations, recommend, rerank_with_item_scores
from hf_simcit.recommender.data import IGNORE_INDEX, SIDPromptFormatter
from hf_simcit.recommender.dense import (
    DENSE_HEAD_NAME,
    DenseItemLoss,
    HybridRanking,
    dense_head_of,
    dense_item_scores,
)
from hf_simcit.recommender.evaluation import evaluate_recommender
from hf_simcit.recommender.modeling import HybridWeightNotChosenWarning, build_recommender, load_recommender
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


def test_catalogue_negatives_are_a_softmax_over_every_item_of_the_table():
    rec = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids())
    table, embeddings = rec.item_token_ids, _embeddings()
    targets = torch.tensor([[IGNORE_INDEX, *table[3].tolist(), *table[7].tolist(), *table[3].tolist()]])
    hidden = torch.randn(1, targets.shape[1], rec.model.config.hidden_size)
    head = dense_head_of(rec.model)
    with torch.no_grad():
        levels = table.shape[1]
        query = torch.nn.functional.normalize(head(hidden[0, [1, 1 + levels, 1 + 2 * levels]]), dim=-1)
        logits = query @ embeddings.T / 0.1                         # the embeddings are unit vectors already
        expected_catalogue = torch.nn.functional.cross_entropy(logits, torch.tensor([3, 7, 3]))
        expected_batch = torch.nn.functional.cross_entropy(logits[:, [3, 7]], torch.tensor([0, 1, 0]))
        catalogue = DenseItemLoss(rec.model, table, embeddings, 0.1, negatives="catalogue")(hidden, targets)
        batch = DenseItemLoss(rec.model, table, embeddings, 0.1)(hidden, targets)
    torch.testing.assert_close(catalogue, expected_catalogue)
    torch.testing.assert_close(batch, expected_batch)
    assert catalogue > batch          # 12 candidates instead of the batch's 2
    with pytest.raises(SimCITInputError, match="dense_negatives must be one of batch, catalogue, got 'all'"):
        DenseItemLoss(rec.model, table, embeddings, negatives="all")


@pytest.mark.parametrize("negatives", ["batch", "catalogue"])
def test_dense_head_learns_the_next_items_embedding_and_ranks_items_it_never_saw(tmp_path, negatives):
    embeddings = _embeddings()
    splits = tiny_splits()
    args = train_args(tmp_path, max_steps=-1, num_train_epochs=60, eval_epochs=60, learning_rate=1e-2,
                      dense_negatives=negatives)
    train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=None), args,
                      splits=splits, sid_source=tiny_sids(), item_embeddings=embeddings)
    assert (tmp_path / "rec" / DENSE_HEAD_NAME).exists()
    rec = load_recommender(args.output_dir)
    assert dense_head_of(rec.model) is not None
    # the folder keeps what the hybrid ranking needs: the items' embeddings and the head's temperature
    assert torch.equal(rec.item_embeddings, embeddings) and rec.dense_temperature == args.dense_temperature
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


def test_training_chooses_the_hybrid_weight_on_validation_and_the_folder_serves_it(tmp_path):
    """``hybrid_weights``: the best checkpoint ranks the validation sample at each weight; the best NDCG (first
    listed on a tie) is saved as the folder's ``hybrid_weight``, which ``recommend_items`` and
    ``evaluate_saved_recommender`` use unless given another."""
    import json

    from hf_simcit.recommender.inference import recommend_items

    splits, embeddings = tiny_splits(), _embeddings()
    args = train_args(tmp_path, max_steps=12, eval_steps=6, hybrid_weights="0, 1, 1000")
    result = train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=None),
                               args, splits=splits, sid_source=tiny_sids(), item_embeddings=embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HybridWeightNotChosenWarning)   # the weight was chosen: no warning
        rec = load_recommender(args.output_dir)
    found = {w: evaluate_recommender(rec.model, rec.tokenizer, rec.item_token_ids, splits["validation"], ks=(1, 5),
                                     num_beams=5, hybrid=HybridRanking(embeddings, w, 0.07) if w else None)["ndcg@5"]
             for w in (0.0, 1.0, 1000.0)}
    chosen = max(found, key=found.get)
    assert rec.hybrid_weight == chosen == result["hybrid"]["weight"]
    assert result["hybrid"]["validation_ndcg@5"] == pytest.approx({f"{w:g}": v for w, v in found.items()})
    assert json.loads((Path(args.output_dir) / "train_log.json").read_text())["hybrid"]["weight"] == chosen
    saved = json.loads((Path(args.output_dir) / "recommender_config.json").read_text())
    assert saved["hybrid_weight_validation_ndcg@5"] == result["hybrid"]["validation_ndcg@5"]
    assert saved["hybrid_weight_chosen"] is True and saved["hybrid_weight"] == chosen
    histories = [[f"item{i}" for i in h] for h in splits["test"]["history"]]
    assert recommend_items(rec, histories, k=3) == recommend_items(rec, histories, k=3, hybrid_weight=chosen)
    other = 1000.0 if chosen != 1000.0 else 0.0
    rec.hybrid_weight = other        # the default follows the folder's weight, whatever it is
    assert recommend_items(rec, histories, k=3) == recommend_items(rec, histories, k=3, hybrid_weight=other)
    with pytest.raises(SimCITInputError, match="need a dense item head"):
        train_recommender(tiny_model_args(), RecommenderDataArguments(), train_args(tmp_path, hybrid_weights="0,1"),
                          splits=splits, sid_source=tiny_sids())
    with pytest.raises(SimCITInputError, match="chosen on the validation sample"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=0),
                          train_args(tmp_path, hybrid_weights="0,1"), splits=splits, sid_source=tiny_sids(),
                          item_embeddings=embeddings)
    for bad in ("0,-1", "0,x", "1,1"):
        with pytest.raises(SimCITInputError, match="hybrid_weights must be distinct comma-separated weights >= 0"):
            train_args(tmp_path, hybrid_weights=bad)


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
    with pytest.raises(SimCITInputError, match="dense_negatives must be one of batch, catalogue, got 'every'"):
        train_args(tmp_path, dense_negatives="every")
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
    args = load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run")})
    plan = plan_stages(args)       # the demo's recipe has a head, and serves the hybrid its training chooses
    assert plan.recommender[0].dense_head_dim == 384 and plan.recommender[2].hybrid_weight_choices() == (0, 0.5, 1, 2)
    assert plan.recommender[1].dense_item_features == str(plan.quantizer_items)   # the run's own, not the recipe's
    plain = plan_stages(load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run"),
                                                                  "recommender.dense_head_dim": 0,
                                                                  "recommender.hybrid_weights": ""}))
    assert not plain.recommender[0].dense_head_dim
    with pytest.raises(SimCITInputError, match="hybrid_weights '0,0.5,1,2' need a dense item head"):
        plan_stages(load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run"),
                                                              "recommender.dense_head_dim": 0}))


def test_rerank_with_item_scores_orders_the_candidates_by_the_sum_and_keeps_empty_places_last():
    ranked = Recommendations(item_indices=torch.tensor([[4, 2, 7, -1], [1, 0, 3, 5]]),
                             scores=torch.tensor([[-1.0, -2.0, -3.0, float("-inf")], [-0.5, -0.6, -3.0, -4.0]]),
                             sequences=torch.arange(16).view(2, 4, 2))
    extra = torch.zeros(2, 8)
    extra[0, 7], extra[1, 5] = 2.5, 1.0        # item 7: -3 + 2.5 = -0.5 leads; item 5: -4 + 1 = -3 stays last
    out = rerank_with_item_scores(ranked, extra, weight=1.0, k=3)
    assert out.item_indices.tolist() == [[7, 4, 2], [1, 0, 3]]
    assert out.scores[0].tolist() == [-0.5, -1.0, -2.0]
    assert out.sequences[0].tolist() == [[4, 5], [0, 1], [2, 3]]   # each item keeps its SID
    # weight 0 is the beam's own order; an empty place stays last whatever the weight
    assert rerank_with_item_scores(ranked, extra, 0.0).item_indices.tolist() == ranked.item_indices.tolist()
    assert rerank_with_item_scores(ranked, extra * 100, 1.0).item_indices[0, -1] == -1
    with pytest.raises(SimCITInputError, match="item_scores must be"):
        rerank_with_item_scores(ranked, torch.zeros(3, 8))


def test_hybrid_ranking_reorders_the_beams_candidates_by_the_heads_logit():
    rec = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids(), seed=0)
    split, embeddings = tiny_splits()["validation"], _embeddings()
    pad = rec.tokenizer.pad_token_id
    prompts = [SIDPromptFormatter(rec.tokenizer, rec.item_token_ids).prompt_ids(h) for h in split["history"]]

    def rankings(hybrid=None, beams=6):
        return evaluate_recommender(rec.model, rec.tokenizer, rec.item_token_ids, split, num_beams=beams, ks=(1, 5),
                                    return_rankings=True, hybrid=hybrid)["rankings"]

    assert torch.equal(rankings(HybridRanking(embeddings, weight=0.0)), rankings())
    # by hand: the beam's 6 candidates, re-ordered by log P(SID) + cos / 0.07
    beam = recommend(rec.model, prompts, rec.item_token_ids, k=6, num_beams=6, pad_token_id=pad)
    cosine = dense_item_scores(rec.model, prompts, embeddings, pad)
    fused = beam.scores + cosine.gather(1, beam.item_indices) / 0.07
    expected = beam.item_indices.gather(1, fused.argsort(1, descending=True))
    hybrid = rankings(HybridRanking(embeddings, weight=1.0))
    assert torch.equal(hybrid, expected) and not torch.equal(hybrid, rankings())
    # every item a candidate and a dominant head: the head's own order
    everything = rankings(HybridRanking(embeddings, weight=1e4), beams=NUM_ITEMS)
    assert torch.equal(everything, cosine.argsort(1, descending=True))
    with pytest.raises(SimCITInputError, match="do not combine"):
        evaluate_recommender(rec.model, rec.tokenizer, rec.item_token_ids, split, num_beams=6, ks=(5,),
                             hybrid=HybridRanking(embeddings), new_items=[0, 1], new_item_slots=1)
    plain = build_recommender(tiny_model_args(), tiny_sids(), seed=0)
    with pytest.raises(SimCITInputError, match="needs a recommender with a dense item head"):
        evaluate_recommender(plain.model, plain.tokenizer, plain.item_token_ids, split, num_beams=6, ks=(5,),
                             hybrid=HybridRanking(embeddings))
    with pytest.raises(SimCITInputError, match="must be \\(12, 8\\)"):
        rankings(HybridRanking(embeddings[:5]))
    with pytest.raises(SimCITInputError, match="weight must be finite"):
        HybridRanking(embeddings, weight=-1.0)


def test_one_beam_search_and_one_head_pass_rank_every_hybrid_weight():
    """``hybrid_weights``: each weight's metrics equal its own evaluation, from one beam search and one forward
    pass of the head per batch; ``recommend_items`` with a hybrid and new-item places runs the head once too."""
    from hf_simcit.recommender.inference import recommend_items

    rec = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids(), seed=0)
    rec.item_embeddings = embeddings = _embeddings()
    split = tiny_splits()["validation"]
    head_passes = []
    dense_head_of(rec.model).register_forward_hook(lambda *_: head_passes.append(1))

    def evaluate(**kw):
        head_passes.clear()
        return evaluate_recommender(rec.model, rec.tokenizer, rec.item_token_ids, split, num_beams=6, ks=(1, 5),
                                    batch_size=len(split), **kw)

    weights = (0.0, 0.5, 1.0, 1000.0)
    each = {w: evaluate(hybrid=HybridRanking(embeddings, w) if w else None) for w in weights}
    shared = evaluate(hybrid=HybridRanking(embeddings, 0.0), hybrid_weights=weights)
    assert len(head_passes) == 1                               # one batch: one pass for all four weights
    assert {w: m["ndcg@5"] for w, m in shared["by_hybrid_weight"].items()} == pytest.approx(
        {w: m["ndcg@5"] for w, m in each.items()})
    assert len({round(m["ndcg@5"], 6) for m in each.values()}) > 1   # the weights do rank differently here
    with pytest.raises(SimCITInputError, match="hybrid_weights need a hybrid ranking"):
        evaluate(hybrid_weights=weights)
    histories = [[f"item{i}" for i in h] for h in split["history"]]
    head_passes.clear()
    recommend_items(rec, histories, k=4, hybrid_weight=1.0, new_items=["item0", "item1"], new_item_slots=1,
                    batch_size=len(histories))
    assert len(head_passes) == 1


def test_a_saved_folder_ranks_by_the_hybrid_from_the_command_line(tmp_path, capsys):
    """The folder keeps the head's item embeddings and temperature: ``hf-simcit recommend --hybrid-weight W``
    lists the items with the best log P(SID) + W x cos / temperature (every item a candidate here: 12 items,
    20 beams), scored by that sum; a model without a head, a negative weight or new-item places are one line."""
    import json

    from hf_simcit.cli import main
    from hf_simcit.generation import sid_log_probs
    from hf_simcit.recommender.modeling import save_recommender

    rec = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids(), seed=0)
    rec.item_embeddings, rec.dense_temperature = _embeddings(), 0.1
    save_recommender(rec, tmp_path / "dense")
    loaded = load_recommender(tmp_path / "dense")
    assert torch.equal(loaded.item_embeddings, rec.item_embeddings) and loaded.dense_temperature == 0.1
    prompt = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids).prompt_ids([1, 2])
    log_p = sid_log_probs(rec.model, [prompt], rec.item_token_ids, pad_token_id=rec.tokenizer.pad_token_id).sum(-1)
    cosine = dense_item_scores(rec.model, [prompt], rec.item_embeddings, rec.tokenizer.pad_token_id)
    fused = (log_p + 2.0 * cosine / 0.1)[0]
    best = fused.topk(5)
    model = str(tmp_path / "dense")
    assert main(["recommend", "--model", model, "--history", "item1", "item2", "-k", "5", "--hybrid-weight", "2"]) == 0
    listed = json.loads(capsys.readouterr().out)["recommendations"]
    assert [r["item_id"] for r in listed] == [f"item{i}" for i in best.indices.tolist()]
    assert [r["score"] for r in listed] == pytest.approx(best.values.tolist(), abs=1e-4)
    # with new items too: the hybrid's best 4, then the new item the head scores best of those not listed
    new = [i for i in fused.argsort().tolist() if i not in best.indices.tolist()[:4]][:3]
    assert main(["recommend", "--model", model, "--history", "item1", "item2", "-k", "5", "--hybrid-weight", "2",
                 "--new-items", *(f"item{i}" for i in new), "--new-item-slots", "1"]) == 0
    listed = json.loads(capsys.readouterr().out)["recommendations"]
    head_pick = max(new, key=lambda i: float(cosine[0, i]))
    assert [r["item_id"] for r in listed] == [f"item{i}" for i in best.indices.tolist()[:4]] + [f"item{head_pick}"]
    plain = tmp_path / "plain"
    save_recommender(build_recommender(tiny_model_args(), tiny_sids(), seed=0), plain)
    capsys.readouterr()
    for argv, message in (([str(plain), "--hybrid-weight", "1"], "needs a recommender with a dense item head"),
                          ([model, "--hybrid-weight", "-1"], "weight must be finite and >= 0")):
        assert main(["recommend", "--history", "item1", "-k", "4", "--model", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_a_folder_with_a_head_gives_the_new_items_places_by_the_heads_cosine(tmp_path, capsys):
    """``--new-items`` with a dense head: the reserved place goes to the new item the head scores best (its
    cosine is the score), not the one whose SID the model finds likelier; the other places stay the beam's."""
    import json

    from hf_simcit.cli import main
    from hf_simcit.recommender.dense import dense_queries
    from hf_simcit.recommender.modeling import save_recommender

    rec = build_recommender(tiny_model_args(dense_head_dim=DIM), tiny_sids(), seed=0)
    rec.item_embeddings, rec.dense_temperature = _embeddings(), 0.1
    model = str(tmp_path / "dense")
    save_recommender(rec, model)
    history = ["--history", "item1", "item2"]
    assert main(["recommend", "--model", model, *history, "-k", "12"]) == 0
    ordinary = [r["item_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    by_sid, by_head = ordinary[-2], ordinary[-1]            # the SIDs prefer by_sid of the two
    prompt = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids).prompt_ids([1, 2])
    query = dense_queries(rec.model, [prompt], rec.tokenizer.pad_token_id)[0]
    rec.item_embeddings[int(by_head[4:])], rec.item_embeddings[int(by_sid[4:])] = query, -query   # the head: by_head
    save_recommender(rec, model)
    assert main(["recommend", "--model", model, *history, "-k", "4", "--new-items", by_sid, by_head,
                 "--new-item-slots", "1"]) == 0
    listed = json.loads(capsys.readouterr().out)["recommendations"]
    assert [r["item_id"] for r in listed] == ordinary[:3] + [by_head]
    assert listed[-1]["score"] == pytest.approx(1.0, abs=1e-5)          # the head's cosine to its own query
    # without the head's embeddings the SIDs decide, as for any recommender
    plain = tmp_path / "plain"
    save_recommender(build_recommender(tiny_model_args(), tiny_sids(), seed=0), plain)
    assert main(["recommend", "--model", str(plain), *history, "-k", "12"]) == 0
    plain_order = [r["item_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    assert main(["recommend", "--model", str(plain), *history, "-k", "4", "--new-items", *plain_order[-2:],
                 "--new-item-slots", "1"]) == 0
    assert [r["item_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]] == \
        plain_order[:3] + [plain_order[-2]]
    assert main(["recommend", "--model", model, *history, "-k", "4", "--new-items", by_head,
                 "--new-item-slots", "2"]) == 2                           # checked as the SID path checks
    assert "only 1 new item" in capsys.readouterr().err


def test_the_pipelines_evaluate_stage_takes_the_hybrid_weight(tmp_path):
    """``eval_hybrid_weight`` reaches the evaluate stage and its fingerprint (a changed weight re-evaluates);
    left unset (the folder's own weight) the fingerprint is the one of runs made before the option."""
    from hf_simcit.pipeline import REGISTRY, load_pipeline, plan_stages

    recipes = Path(__file__).resolve().parents[1] / "recipes" / "ml-100k"
    stage = next(s for s in REGISTRY if s.name == "evaluate")
    plain = load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run")})
    hybrid = load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run"), "eval_hybrid_weight": 1.0,
                                                       "recommender.dense_head_dim": 384})
    assert "hybrid_weight" not in stage.settings(plain, plan_stages(plain))
    assert stage.settings(hybrid, plan_stages(hybrid))["hybrid_weight"] == 1.0
    # refused before anything trains: a weight without a head, a negative weight
    for overrides, message in (({"eval_hybrid_weight": 1.0, "recommender.dense_head_dim": 0,
                                 "recommender.hybrid_weights": ""}, "needs a dense item head"),
                               ({"eval_hybrid_weight": -1.0, "recommender.dense_head_dim": 384}, "must be >= 0")):
        with pytest.raises(SimCITInputError, match=message):
            plan_stages(load_pipeline(recipes / "pipeline.yaml", {"run_dir": str(tmp_path / "run"), **overrides}))


def test_a_run_stopped_before_the_hybrid_choice_loads_with_a_warning_and_serves_the_beam_order(tmp_path):
    """The best checkpoint is written while training, the hybrid weight only after it: a folder left by a run that
    stopped in between says so when loaded, instead of silently serving the beam order."""
    class Stop(Exception):
        pass

    def stop_after_first_validation(step, logs):
        if step == 6:
            raise Stop

    args = train_args(tmp_path, max_steps=12, eval_steps=6, hybrid_weights="0, 1")
    with pytest.raises(Stop):
        train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=None),
                          args, splits=tiny_splits(), sid_source=tiny_sids(), item_embeddings=_embeddings(),
                          step_callback=stop_after_first_validation)
    with pytest.warns(HybridWeightNotChosenWarning,
                      match="stopped before choosing the hybrid weight among '0, 1'; it ranks by hybrid_weight 0"):
        rec = load_recommender(args.output_dir)
    assert rec.hybrid_weight == 0.0
    splits = tiny_splits()
    no_validation = DatasetDict({**splits, "validation": splits["validation"].select([])})
    with pytest.raises(SimCITInputError, match="hybrid_weights '0, 1' are chosen on validation data; the splits "
                                               "have no validation rows"):
        train_recommender(tiny_model_args(dense_head_dim=DIM), RecommenderDataArguments(eval_max_examples=None),
                          args, splits=no_validation, sid_source=tiny_sids(), item_embeddings=_embeddings())
