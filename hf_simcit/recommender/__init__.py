"""The generative recommender: SID prompts, the causal LM with the SID vocabulary, inference on raw item ids.

Full-ranking evaluation is :mod:`hf_simcit.recommender.evaluation` (used by training, the CLI and the pipeline);
decoding is :mod:`hf_simcit.generation`; the training loop lives in :mod:`hf_simcit.training.recommender`.
"""

from ..tokenization_simcit import SimCITTokenizer, sid_token
from .data import PromptTemplate, RecommenderCollator, SIDPromptFormatter, build_training_dataset
from .dense import DenseItemLoss, dense_item_scores
from .modeling import (
    Recommender,
    RecommenderModelArguments,
    build_recommender,
    load_recommender,
    save_recommender,
    smollm2_checkpoint,
)

__all__ = [
    "DenseItemLoss",
    "PromptTemplate",
    "Recommender",
    "RecommenderCollator",
    "RecommenderModelArguments",
    "SIDPromptFormatter",
    "SimCITTokenizer",
    "build_recommender",
    "build_training_dataset",
    "dense_item_scores",
    "load_recommender",
    "save_recommender",
    "sid_token",
    "smollm2_checkpoint",
]
