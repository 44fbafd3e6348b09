#!/usr/bin/env bash
# Fresh machine to first answer: install build dependencies, build, fetch the
# default model (SmolLM2-135M-Instruct, Q4_1), and answer a prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
make -j"$(nproc)" >/dev/null
model=$(python3 scripts/fetch_models.py --path smollm2)
exec build/release/hyperlama run "$model" "${1:-Why is the sky blue? Answer in two sentences.}"
