"""Registers the SimCIT config/model/tokenizer with the transformers Auto classes.

After ``import hf_simcit``, ``AutoConfig``/``AutoModel``/``AutoTokenizer.from_pretrained(dir)`` load a saved SimCIT
quantizer folder. Each class is also marked with ``register_for_auto_class`` so ``save_pretrained`` copies its
module file next to the weights and writes ``auto_map``: the folder then loads with ``trust_remote_code=True``
where ``hf_simcit`` is not installed.

Every piece is imported lazily and guarded: a module that is missing (or broken) leaves the rest registered and
the package importable.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger(__name__)

_REGISTERED = False


def _import(module: str, name: str):
    try:
        return getattr(importlib.import_module(f"hf_simcit.{module}"), name)
    except (ImportError, AttributeError) as err:
        logger.debug("hf_simcit: %s.%s not registered with the Auto classes (%s)", module, name, err)
        return None


def register_auto_classes() -> None:
    """Idempotent: register ``simcit`` with AutoConfig, AutoModel and AutoTokenizer (whatever exists)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.models.auto.tokenization_auto import REGISTERED_TOKENIZER_CLASSES

    config_class = _import("configuration_simcit", "SimCITConfig")
    model_class = _import("modeling_simcit", "SimCITQuantizer")
    tokenizer_class = _import("tokenization_simcit", "SimCITTokenizer")

    if config_class is not None:
        AutoConfig.register(getattr(config_class, "model_type", "simcit"), config_class, exist_ok=True)
        config_class.register_for_auto_class("AutoConfig")
        if model_class is not None:
            AutoModel.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class("AutoModel")
    if tokenizer_class is not None:
        if config_class is not None:
            AutoTokenizer.register(config_class, tokenizer_class=tokenizer_class, exist_ok=True)
        else:
            # No config class yet: `tokenizer_class` in tokenizer_config.json still resolves by name.
            REGISTERED_TOKENIZER_CLASSES[tokenizer_class.__name__] = tokenizer_class
        tokenizer_class.register_for_auto_class("AutoTokenizer")
    _REGISTERED = True
