"""Item modalities as columns of the item table: ``text_embedding``, ``cf_embedding``, ``geo_embedding``,
``image_embedding`` (``list<float32>``, null where an item lacks the modality).

- :func:`encode_texts` - any HF text encoder, mean-pooled, L2-normalised (default: bundled MiniLM);
- :func:`collaborative_embeddings` - truncated SVD or LGMD of the *training* interactions only, or SPPMI-SVD
  of which items follow each other in the training sequences;
- :func:`geo_features` - unit-sphere xyz + multi-scale Fourier features of latitude/longitude;
- :func:`encode_images` - any HF vision encoder;
- :func:`build_features` / :func:`run_features` - the pipeline stage, cached by content;
- :func:`modality_tensors` - the columns back as ``(features, present-mask)`` tensors for the quantizer.
"""

from .builder import MODALITIES, FeaturesArguments, build_features, format_report, run_features
from .cache import FeatureCache, default_cache_dir
from .collaborative import collaborative_embeddings
from .columns import add_embedding_column, embedding_column, modality_tensors
from .geo import geo_features, lat_lon_to_xyz
from .image import encode_images
from .text import default_text_encoder, encode_texts

__all__ = [
    "MODALITIES",
    "FeatureCache",
    "FeaturesArguments",
    "add_embedding_column",
    "build_features",
    "collaborative_embeddings",
    "default_cache_dir",
    "default_text_encoder",
    "embedding_column",
    "encode_images",
    "encode_texts",
    "format_report",
    "geo_features",
    "lat_lon_to_xyz",
    "modality_tensors",
    "run_features",
]
