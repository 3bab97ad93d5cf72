"""hf-simcit: generative recommendation with contrastive semantic item IDs, on the Hugging Face stack.

The pipeline, one sub-package per stage::

    data -> features -> lgmd -> (configuration|modeling)_simcit + quantizers -> tokenization_simcit
         -> recommender (LLM + LoRA) -> generation (trie-constrained decoding) -> metrics -> report -> hub

``hf_simcit.pipeline.run_pipeline`` (``hf-simcit run``) wires them into one resumable run folder.

The names below are imported on first use, so ``import hf_simcit`` stays light (no torch/transformers
import until something is used: ``hf-simcit --help`` answers in a fraction of a second, not ~8 s).
``SimCITConfig``/``SimCITQuantizer``/``SimCITTokenizer`` register themselves with
``AutoConfig``/``AutoModel``/``AutoTokenizer`` where they are defined, i.e. once one of them is imported
(``from hf_simcit import SimCITQuantizer``); a saved quantizer folder also loads with
``trust_remote_code=True`` without the package.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily by __getattr__)
_EXPORTS = {
    "SimCITInputError": ".errors",
    # data
    "PrepareConfig": ".data", "RecDataset": ".data", "prepare_dataset": ".data", "load_prepared": ".data",
    "training_matrix": ".data", "training_cooccurrence": ".data",
    # features, LGMD
    "FeaturesArguments": ".features", "build_features": ".features", "run_features": ".features",
    "LGMD": ".lgmd", "LGMDTransform": ".lgmd",
    # SimCIT quantizer, baselines, tokenizer
    "SimCITConfig": ".configuration_simcit", "SimCITQuantizer": ".modeling_simcit",
    "SimCITTokenizer": ".tokenization_simcit",
    "RQVAEQuantizer": ".quantizers", "RQKMeansQuantizer": ".quantizers", "RandomIDQuantizer": ".quantizers",
    "assign_semantic_ids": ".quantizers", "save_semantic_ids": ".quantizers",
    "QuantizerTrainingArguments": ".training.quantizer", "train_quantizer": ".training.quantizer",
    # generative recommender, decoding, metrics
    "RecommenderModelArguments": ".recommender", "build_recommender": ".recommender",
    "load_recommender": ".recommender", "train_recommender": ".training.recommender",
    "evaluate_recommender": ".recommender.evaluation",
    "SIDTrie": ".generation", "SIDTrieLogitsProcessor": ".generation", "recommend": ".generation",
    "compute_metrics": ".metrics",
    # pipeline, report, Hub
    "PipelineArguments": ".pipeline", "load_pipeline": ".pipeline", "run_pipeline": ".pipeline",
    "write_report": ".report", "push_run": ".hub", "load_recommender_from_hub": ".hub",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_simcit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
