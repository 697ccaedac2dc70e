#!/usr/bin/env bash
# The shipped overoptimization study (Gao et al. 2022, best-of-n), CPU, one command:
#   bash src/rewardkit/configs/overopt-study.sh [OUT]          # default OUT: runs/overopt-study
# Sizes (environment): PROMPTS=16 N=64 MAX_NEW_TOKENS=96 GOLD_PAIRS=all PROXY_PAIRS=200 MEMBERS=3 BOOTSTRAP=1000
# 1. hold out 5% of the bundled HH-RLHF prompts (by prompt) for the study; 2. gold: an ensemble of MiniLM members on
# all the other pairs; 3. proxy: MiniLM members on a small share of them; 4. the bundled SmolLM2-135M-Instruct
# samples N responses to held-out prompts; 5. `rewardkit overopt` with the proxy ensemble's objectives.
set -euo pipefail
mkdir -p "${1:-runs/overopt-study}"
OUT=$(cd "${1:-runs/overopt-study}" && pwd)
PROMPTS=${PROMPTS:-16} N=${N:-64} MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-96} PROXY_PAIRS=${PROXY_PAIRS:-200}
MEMBERS=${MEMBERS:-3} BOOTSTRAP=${BOOTSTRAP:-1000} GOLD_PAIRS=${GOLD_PAIRS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="$HERE/../demo_data/hh-rlhf-harmless-base-test.jsonl.gz"
rewardkit data prepare "$DATA" --output-dir "$OUT/data" --eval-fraction 0.05 --on-bad-record skip
gold_cap=(); [ -n "$GOLD_PAIRS" ] && gold_cap=(--set "data.train.0.max_pairs=$GOLD_PAIRS")
rewardkit train --config "$HERE/overopt-gold.yaml" --output-dir "$OUT/gold" --ensemble "$MEMBERS" --overwrite \
  --set "data.train.0.path=$OUT/data/train.jsonl" "${gold_cap[@]}"
rewardkit train --config "$HERE/overopt-proxy.yaml" --output-dir "$OUT/proxy" --ensemble "$MEMBERS" --overwrite \
  --set "data.train.0.path=$OUT/data/train.jsonl" --set "data.train.0.max_pairs=$PROXY_PAIRS"
rewardkit sample --prompts "$OUT/data/eval.jsonl" --output "$OUT/pool.jsonl" --n "$N" --limit "$PROMPTS" \
  --max-new-tokens "$MAX_NEW_TOKENS" --temperature 1.0 --seed 0
rewardkit overopt --pool "$OUT/pool.jsonl" --proxy "$OUT/proxy/model" --gold "$OUT/gold/model" \
  --output-dir "$OUT/study" --lambda 0.5 --lambda 1 --lambda 2 --bootstrap "$BOOTSTRAP"
