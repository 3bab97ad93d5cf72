"""Auto-class registration: lazy (``import hf_simcit`` stays light), import-order independent, and a saved
quantizer folder (SimCITQuantizer + SimCITTokenizer in ONE folder) reloads through AutoConfig/AutoModel/
AutoTokenizer with hf_simcit, and with trust_remote_code=True where hf_simcit cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_simcit  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, tmp_path: Path, *args: str, hide_hf_simcit: bool = False) -> dict:
    """Run ``code`` in a fresh interpreter; returns the JSON object it prints last."""
    prelude = ""
    if hide_hf_simcit:
        prelude = textwrap.dedent(
            """
            import sys
            class HideHfSimcit:
                def find_spec(self, name, path=None, target=None):
                    if name == "hf_simcit" or name.startswith("hf_simcit."):
                        raise ImportError("hf_simcit is hidden in this test")
            sys.meta_path.insert(0, HideHfSimcit())
            """
        )
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def quantizer_parts():
    try:
        from hf_simcit.configuration_simcit import SimCITConfig
        from hf_simcit.modeling_simcit import SimCITQuantizer
    except ImportError:
        pytest.skip("SimCITConfig/SimCITQuantizer not available yet")
    return SimCITConfig, SimCITQuantizer


def test_import_is_light_and_registration_lazy(tmp_path):
    """One fresh interpreter: ``import hf_simcit`` imports neither torch nor transformers; importing the model
    module first (it pulls transformers in mid-import) still registers everything before a save."""
    has_model = (ROOT / "hf_simcit" / "modeling_simcit.py").exists()
    out = run_python(
        """
        import json, os, sys
        import hf_simcit
        light = not any(m in sys.modules for m in ("torch", "transformers"))
        result = {"light": light}
        if sys.argv[2] == "1":
            from hf_simcit.modeling_simcit import SimCITQuantizer
            from hf_simcit.configuration_simcit import SimCITConfig
            config = SimCITConfig(modality_names=["text"], modality_dims=[4], encoder_hidden_sizes=[8],
                                  latent_dim=4, num_levels=2, codebook_size=4)
            SimCITQuantizer(config).save_pretrained(sys.argv[1])
            result["auto_map"] = json.load(open(os.path.join(sys.argv[1], "config.json"))).get("auto_map")
            result["files"] = sorted(os.listdir(sys.argv[1]))
        from transformers import AutoTokenizer
        from transformers.models.auto.tokenization_auto import REGISTERED_TOKENIZER_CLASSES
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        result["tokenizer"] = "SimCITTokenizer" in REGISTERED_TOKENIZER_CLASSES
        result["config"] = "simcit" in CONFIG_MAPPING
        print(json.dumps(result))
        """,
        tmp_path,
        str(tmp_path / "model"),
        "1" if has_model else "0",
    )
    assert out["light"], "import hf_simcit must not import torch/transformers"
    assert out["tokenizer"]
    assert out["config"] == has_model
    if has_model:
        assert out["auto_map"] == {
            "AutoConfig": "configuration_simcit.SimCITConfig",
            "AutoModel": "modeling_simcit.SimCITQuantizer",
        }
        assert {"configuration_simcit.py", "modeling_simcit.py", "errors.py"} <= set(out["files"])


def disambiguate(codes: np.ndarray) -> np.ndarray:
    """TIGER-style extra level 0, 1, 2, ... among items sharing a code tuple (test helper)."""
    seen: Counter = Counter()
    extra = []
    for row in map(tuple, codes.tolist()):
        extra.append(seen[row])
        seen[row] += 1
    return np.concatenate([codes, np.array(extra)[:, None]], axis=1)


@pytest.fixture
def saved_quantizer_folder(tmp_path):
    """A tiny SimCITQuantizer + its SimCITTokenizer saved together, plus the features and expected results."""
    SimCITConfig, SimCITQuantizer = quantizer_parts()
    from safetensors.torch import save_file

    from hf_simcit.tokenization_simcit import SimCITTokenizer

    torch.manual_seed(0)
    config = SimCITConfig(
        modality_names=["text", "cf"],
        modality_dims=[8, 4],
        encoder_hidden_sizes=[16],
        latent_dim=8,
        num_levels=2,
        codebook_size=4,
    )
    model = SimCITQuantizer(config).eval()
    features = {"text": torch.randn(30, 8), "cf": torch.randn(30, 4)}
    masks = {"text": torch.ones(30, dtype=torch.bool), "cf": torch.arange(30) % 3 != 0}
    codes = model.encode(features, masks).numpy()
    unique = disambiguate(codes)
    item_ids = [f"item{i}" for i in range(30)]
    tokenizer = SimCITTokenizer.from_codes(unique, item_ids, [4, 4, int(unique[:, -1].max()) + 1])

    folder = tmp_path / "quantizer"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_file(
        {**{f"f_{k}": v for k, v in features.items()}, **{f"m_{k}": v for k, v in masks.items()}},
        str(tmp_path / "features.safetensors"),
    )
    expected = {"codes": codes.tolist(), "sids": tokenizer.items_to_sids(item_ids)}
    return folder, tmp_path / "features.safetensors", expected


def test_auto_classes_with_hf_simcit(saved_quantizer_folder):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from hf_simcit.configuration_simcit import SimCITConfig
    from hf_simcit.modeling_simcit import SimCITQuantizer
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    folder, features_file, expected = saved_quantizer_folder
    config_json = json.loads((folder / "config.json").read_text())
    assert config_json["model_type"] == "simcit" and set(config_json["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
    }
    assert type(AutoConfig.from_pretrained(folder)) is SimCITConfig
    model = AutoModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model) is SimCITQuantizer and type(tokenizer) is SimCITTokenizer

    from safetensors.torch import load_file

    tensors = load_file(str(features_file))
    features = {k[2:]: v for k, v in tensors.items() if k.startswith("f_")}
    masks = {k[2:]: v for k, v in tensors.items() if k.startswith("m_")}
    assert model.encode(features, masks).tolist() == expected["codes"]
    assert tokenizer.items_to_sids(tokenizer.item_ids) == expected["sids"]


REMOTE = """
import json, sys
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

folder, features_file = sys.argv[1], sys.argv[2]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
tensors = load_file(features_file)
features = {k[2:]: v for k, v in tensors.items() if k.startswith("f_")}
masks = {k[2:]: v for k, v in tensors.items() if k.startswith("m_")}
print(json.dumps({
    "classes": [type(config).__module__, type(model).__module__, type(tokenizer).__module__],
    "codes": model.eval().encode(features, masks).tolist(),
    "sids": tokenizer.items_to_sids(tokenizer.item_ids),
    "hf_simcit_loaded": any(m == "hf_simcit" or m.startswith("hf_simcit.") for m in sys.modules),
}))
"""


def test_auto_classes_with_remote_code_without_hf_simcit(saved_quantizer_folder, tmp_path):
    folder, features_file, expected = saved_quantizer_folder
    out = run_python(REMOTE, tmp_path, str(folder), str(features_file), hide_hf_simcit=True)
    assert all(module.startswith("transformers_modules.") for module in out["classes"]), out["classes"]
    assert not out["hf_simcit_loaded"]
    assert out["codes"] == expected["codes"]
    assert out["sids"] == expected["sids"]
