# neurorack — set-up and the two fresh-machine commands (see README).
#   make play   set up, then run the instrument's main job
#   make test   set up (with test tools and system packages), then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch, installed before anything that depends on torch
# (a bare `torch` requirement would pull a multi-GB CUDA build). On a machine
# without a local wheel, add: TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
TORCH_ARGS ?=

.PHONY: setup setup-dev sysdeps play demo test lint clean

$(VENV)/.setup: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_ARGS) "$(TORCH)"
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.setup-dev: $(VENV)/.setup
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev

# Debian packages the tests use (drum samples are fetched by the tests themselves with apt-get download).
sysdeps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  [ -f $(VENV)/.apt-updated ] || { apt-get update -qq && mkdir -p $(VENV) && touch $(VENV)/.apt-updated; }; \
	else echo "sysdeps: not root or no apt-get; skipping system packages"; fi

play: demo

demo: setup
	$(VENV)/bin/neurorack demo --out demo

test: setup-dev sysdeps
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: setup-dev
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
