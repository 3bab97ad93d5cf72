"""Registers the SimCIT config/model/tokenizer with the transformers Auto classes.

After ``import hf_simcit``, ``AutoConfig``/``AutoModel``/``AutoTokenizer.from_pretrained(dir)`` load a saved SimCIT
quantizer folder. Each class is also marked with ``register_for_auto_class`` so ``save_pretrained`` copies its
module file next to the weights and writes ``auto_map``: the folder then loads with ``trust_remote_code=True``
where ``hf_simcit`` is not installed.

Why lazily: importing transformers + torch takes seconds, and ``import hf_simcit`` (hence ``hf-simcit --help``)
should not pay for it. An import hook registers each SimCIT class as soon as both it and
``transformers.models.auto`` are fully imported, whichever comes last, i.e. before any ``AutoX`` can be used and
before any instance can be saved. (Registering eagerly from inside the auto import would see half-imported
SimCIT modules when one of them is what pulled transformers in.) A missing or broken module leaves the others
registered and the package importable.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys

logger = logging.getLogger(__name__)

AUTO_MODULE = "transformers.models.auto"
PIECES = {  # module (under hf_simcit) -> class
    "configuration_simcit": "SimCITConfig",
    "modeling_simcit": "SimCITQuantizer",
    "tokenization_simcit": "SimCITTokenizer",
}
_registered: set[str] = set()


def _loaded_class(module: str, name: str, import_missing: bool):
    """The class if its module is fully imported (importing it when allowed); None while it is mid-import."""
    full = f"hf_simcit.{module}"
    if full not in sys.modules:
        if not import_missing:
            return None
        try:
            importlib.import_module(full)
        except ImportError as err:
            logger.debug("hf_simcit: %s not registered with the Auto classes (%s)", full, err)
            return None
    return getattr(sys.modules.get(full), name, None)


def _register_available(import_missing: bool) -> None:
    """Register every SimCIT class that is ready and not registered yet (needs transformers' auto module)."""
    if AUTO_MODULE not in sys.modules or len(_registered) == len(PIECES):
        return
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.models.auto.tokenization_auto import REGISTERED_TOKENIZER_CLASSES

    config_class = _loaded_class("configuration_simcit", PIECES["configuration_simcit"], import_missing)
    if config_class is not None and "configuration_simcit" not in _registered:
        AutoConfig.register(getattr(config_class, "model_type", "simcit"), config_class, exist_ok=True)
        config_class.register_for_auto_class("AutoConfig")
        _registered.add("configuration_simcit")
    if config_class is not None and "modeling_simcit" not in _registered:
        model_class = _loaded_class("modeling_simcit", PIECES["modeling_simcit"], import_missing)
        if model_class is not None:
            AutoModel.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class("AutoModel")
            _registered.add("modeling_simcit")
    tokenizer_class = _loaded_class("tokenization_simcit", PIECES["tokenization_simcit"], import_missing)
    if tokenizer_class is not None and "tokenization_simcit" not in _registered:
        # By name first: `tokenizer_class` in tokenizer_config.json resolves even without a config class.
        REGISTERED_TOKENIZER_CLASSES[tokenizer_class.__name__] = tokenizer_class
        tokenizer_class.register_for_auto_class("AutoTokenizer")
        if config_class is not None:
            AutoTokenizer.register(config_class, tokenizer_class=tokenizer_class, exist_ok=True)
            _registered.add("tokenization_simcit")


def _safe_register(import_missing: bool) -> None:
    try:
        _register_available(import_missing)
    except Exception as err:  # never break an import for the whole program
        logger.warning("hf_simcit: could not register the SimCIT Auto classes: %s", err)


class _RegistrationHook(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Wraps the loaders of ``transformers.models.auto`` and the SimCIT modules: registers after each has run."""

    WATCHED = {AUTO_MODULE, *(f"hf_simcit.{module}" for module in PIECES)}

    def __init__(self):
        self._loaders: dict[str, importlib.abc.Loader] = {}
        self._finding: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if name not in self.WATCHED or name in self._finding:
            return None
        self._finding.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding.discard(name)
        if spec is None or spec.loader is None:
            return spec
        self._loaders[name] = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loaders[spec.name].create_module(spec)

    def exec_module(self, module):
        self._loaders[module.__spec__.name].exec_module(module)
        # After the auto module: import the SimCIT modules not yet imported; after a SimCIT module: register it.
        _safe_register(import_missing=module.__spec__.name == AUTO_MODULE)
        if len(_registered) == len(PIECES) and self in sys.meta_path:
            sys.meta_path.remove(self)


def register_auto_classes() -> None:
    """Register ``simcit`` with AutoConfig, AutoModel and AutoTokenizer (idempotent; lazy until transformers'
    Auto classes are imported)."""
    if AUTO_MODULE in sys.modules:
        _safe_register(import_missing=True)
    if len(_registered) < len(PIECES) and not any(isinstance(f, _RegistrationHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegistrationHook())


def ensure_registered() -> None:
    """Register right now (imports transformers and the SimCIT modules)."""
    importlib.import_module(AUTO_MODULE)
    _safe_register(import_missing=True)
