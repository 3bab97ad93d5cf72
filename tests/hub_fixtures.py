"""Pytest plugin: a local Hub stand-in (``tests/hub_server.py``) for every push/pull test; never the network.

Loaded by ``pytest_plugins = ["hub_fixtures"]`` in the hub test modules, and best also in
``tests/conftest.py`` (``tests/`` is on ``sys.path`` there), so that it is configured before any test module
is imported.

``huggingface_hub`` (and ``datasets.config``) read ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE`` and
``HF_HUB_DISABLE_XET`` once, at import. So ``pytest_configure`` binds the server and exports the variables
(``HF_ENDPOINT=http://127.0.0.1:<port>``, a fake ``HF_TOKEN``, a temporary ``HF_HOME`` + caches,
``HF_HUB_DISABLE_XET=1``, ``HF_HUB_OFFLINE=0``, telemetry off) for the whole session; they also reach
subprocesses. When ``huggingface_hub`` was imported before (by another test module or plugin),
:func:`point_hf_libraries_at` patches the import-time copies: ``huggingface_hub.constants`` (ENDPOINT,
HUGGINGFACE_CO_URL_TEMPLATE, HF_HUB_OFFLINE, HF_HUB_DISABLE_XET, HF_HOME, HF_HUB_CACHE, token paths), the
default ``HfApi`` behind the module-level functions (``huggingface_hub.hf_api.api``), ``transformers.utils.
hub``'s cached ``HfApi`` and ``datasets.config`` (HF_ENDPOINT, HUB_DATASETS_URL, offline flags). The
variables are restored and the temporary ``HF_HOME`` removed in ``pytest_unconfigure``.

Fixtures:

* ``local_hub`` (session): the running :class:`hub_server.LocalHub` (``.endpoint``, ``.fail_next(...)``,
  ``.files(repo_id, repo_type)``, ``.head(...)``, ``.commits(...)``, ``.requests``).
* ``hub`` (function): the same server with injected failures cleared before and after the test.
* ``hub_repo_id`` (function): a fresh ``"hf-simcit-tester/test-<hex>"`` repo id (not yet created).
* ``hub_env`` (function): the environment variables a subprocess needs to talk to the local hub.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from hub_server import USER, LocalHub  # noqa: E402

HUB_TOKEN = "hf_localhubtesttoken0000000000000000"
_STATE: dict = {}


def hub_environment(endpoint: str, hf_home: str) -> dict[str, str]:
    """The variables that point huggingface_hub / transformers / datasets at ``endpoint``."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": HUB_TOKEN,
        "HF_HOME": hf_home,
        "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
        "HF_DATASETS_CACHE": os.path.join(hf_home, "datasets"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def point_hf_libraries_at(endpoint: str, hf_home: str) -> None:
    """Patch the import-time copies of the settings in already-imported HF libraries (no-op otherwise)."""
    env = hub_environment(endpoint, hf_home)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.ENDPOINT = endpoint
        constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        constants.HF_HUB_OFFLINE = False
        constants.HF_HUB_DISABLE_XET = True
        constants.HF_HUB_DISABLE_TELEMETRY = True
        constants.HF_HOME = hf_home
        constants.HF_HUB_CACHE = env["HF_HUB_CACHE"]
        constants.HF_TOKEN_PATH = os.path.join(hf_home, "token")
        constants.HF_STORED_TOKENS_PATH = os.path.join(hf_home, "stored_tokens")
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None:
        hf_api.api.endpoint = endpoint
    tf_hub = sys.modules.get("transformers.utils.hub")
    if tf_hub is not None and getattr(tf_hub, "_hf_api", None) is not None:
        tf_hub._hf_api.endpoint = endpoint
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None:
        ds_config.HF_ENDPOINT = endpoint
        ds_config.HUB_DATASETS_URL = endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        ds_config.HF_HUB_OFFLINE = False
        ds_config.HF_DATASETS_OFFLINE = False


def pytest_configure(config: pytest.Config) -> None:
    if _STATE:
        return
    hub = LocalHub().start()
    hf_home = tempfile.mkdtemp(prefix="hf-simcit-hub-home-")
    env = hub_environment(hub.endpoint, hf_home)
    _STATE.update(hub=hub, hf_home=hf_home, env=env, saved={k: os.environ.get(k) for k in env})
    os.environ.update(env)
    point_hf_libraries_at(hub.endpoint, hf_home)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _STATE:
        return
    _STATE["hub"].stop()
    for key, value in _STATE["saved"].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(_STATE["hf_home"], ignore_errors=True)
    _STATE.clear()


@pytest.fixture(scope="session")
def local_hub() -> LocalHub:
    """The session's local Hub; also re-applies the client settings in case a library was imported early."""
    point_hf_libraries_at(_STATE["hub"].endpoint, _STATE["hf_home"])
    return _STATE["hub"]


@pytest.fixture
def hub(local_hub: LocalHub):
    local_hub.clear_failures()
    yield local_hub
    local_hub.clear_failures()


@pytest.fixture
def hub_repo_id() -> str:
    return f"{USER}/test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def hub_env(local_hub: LocalHub) -> dict[str, str]:
    """A copy of ``os.environ`` that a subprocess can use to reach the local hub."""
    return {**os.environ, **_STATE["env"]}
