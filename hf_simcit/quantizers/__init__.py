"""Semantic-ID quantizers with one interface (``fit`` / ``encode`` -> codes ``(n, L)``), the pieces they share,
and :func:`assign_semantic_ids` (raw codes -> unique SIDs + collision statistics).

- SimCIT itself is :class:`hf_simcit.modeling_simcit.SimCITQuantizer` (a ``PreTrainedModel``), trained by
  :func:`hf_simcit.training.quantizer.train_quantizer`; baselines: :class:`RQVAEQuantizer` (TIGER),
  :class:`RQKMeansQuantizer`, :class:`RandomIDQuantizer`.
"""

from .assignment import (
    DISAMBIGUATION_ORDERS,
    RESOLVE_METHODS,
    SemanticIDAssignment,
    add_cold_start_items,
    assign_semantic_ids,
    load_quantizer,
    resolve_collisions,
    save_semantic_ids,
)
from .base import SemanticIDQuantizer, concat_modalities
from .collisions import add_disambiguation_level, sinkhorn, sinkhorn_reassign_last_level
from .features import ItemFeatures, check_features, check_item_ids, load_item_features
from .random_ids import RandomIDQuantizer
from .residual import codebook_statistics, collision_rate, kmeans, residual_kmeans, squared_distances
from .rqkmeans import RQKMeansQuantizer
from .rqvae import RQVAEQuantizer
from .simcit import initialize_simcit_codebooks

BASELINES = {"rqvae": RQVAEQuantizer, "rqkmeans": RQKMeansQuantizer, "random": RandomIDQuantizer}

__all__ = [
    "BASELINES",
    "DISAMBIGUATION_ORDERS",
    "RESOLVE_METHODS",
    "ItemFeatures",
    "RQKMeansQuantizer",
    "RQVAEQuantizer",
    "RandomIDQuantizer",
    "SemanticIDAssignment",
    "SemanticIDQuantizer",
    "add_cold_start_items",
    "add_disambiguation_level",
    "assign_semantic_ids",
    "check_features",
    "check_item_ids",
    "codebook_statistics",
    "collision_rate",
    "concat_modalities",
    "initialize_simcit_codebooks",
    "kmeans",
    "load_quantizer",
    "load_item_features",
    "resolve_collisions",
    "residual_kmeans",
    "save_semantic_ids",
    "sinkhorn",
    "sinkhorn_reassign_last_level",
    "squared_distances",
]
