"""hf-simcit: generative recommendation with contrastive semantic item IDs, on the Hugging Face stack.

The pipeline, one sub-package per stage::

    data -> features -> lgmd -> (configuration|modeling)_simcit + quantizers -> tokenization_simcit
         -> recommender (LLM + LoRA) -> generation (trie-constrained decoding) -> metrics -> hub

Importing the package registers ``SimCITConfig``/``SimCITQuantizer``/``SimCITTokenizer`` with
``AutoConfig``/``AutoModel``/``AutoTokenizer``.
"""

from __future__ import annotations

from .registration import register_auto_classes

__version__ = "0.1.0"

register_auto_classes()
