# neurorack — set-up and the two fresh-machine commands (see README).
#   make play   set up, then play the instrument on the bundled model (web faceplate on 127.0.0.1:8000)
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

# Debian packages the tests use (drum samples are fetched by the tests themselves with apt-get download):
# jackd2 (the engine's tests start a private `jackd -d dummy`) and libjack-jackd2-0 (JACK-Client loads it);
# chromium (the web panel's tests drive it headless with Playwright, never `playwright install`);
# fluidsynth (pyfluidsynth loads libfluidsynth) and the TimGM6mb SoundFont (the note-render tests play it).
SYSDEPS ?= jackd2 libjack-jackd2-0 chromium fluidsynth timgm6mb-soundfont
sysdeps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  [ -f $(VENV)/.apt-updated ] || { apt-get update -qq && mkdir -p $(VENV) && touch $(VENV)/.apt-updated; }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSDEPS) >/dev/null; \
	else echo "sysdeps: not root or no apt-get; skipping system packages"; fi

play: setup
	$(VENV)/bin/neurorack play --panel

demo: setup
	$(VENV)/bin/neurorack demo --out demo

test: setup-dev sysdeps
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: setup-dev
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
