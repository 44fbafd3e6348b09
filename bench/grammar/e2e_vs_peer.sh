#!/usr/bin/env bash
# Structured-output decode speed, ours beside llama-server, alternating round by round so a
# busy machine affects both alike: starts `hyperlama serve` (HYPERLAMA_SPECULATIVE=0, so both
# decode one token per step) and llama-server (bench/build_peer.sh; -t 2 -np 4 -c 4096) on the
# same GGUF, then runs bench/grammar/e2e.py --rounds 1 against each in turn, ROUNDS times.
#   bench/grammar/e2e_vs_peer.sh [MODEL.gguf] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-$HOME/.cache/hyperlama/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf}
ROUNDS=${2:-3}
PY=${PYTHON:-.venv/bin/python}
PEER=$(bench/build_peer.sh)
HYPERLAMA_SPECULATIVE=0 build/release/hyperlama serve --port 11600 >/tmp/e2e_ours.log 2>&1 &
ours=$!
"$PEER/llama-server" -m "$M" -t 2 -np 4 -c 4096 --port 11601 >/tmp/e2e_peer.log 2>&1 &
peer=$!
trap 'kill $ours $peer 2>/dev/null' EXIT
for _ in $(seq 90); do
    curl -sf localhost:11601/health >/dev/null && curl -sf localhost:11600/ >/dev/null && break
    sleep 2
done
"$PY" bench/grammar/e2e.py http://127.0.0.1:11600 "$M" --tokens 16 --batch 1 --rounds 1 >/dev/null  # warm up
"$PY" bench/grammar/e2e.py http://127.0.0.1:11601 x --peer --tokens 16 --batch 1 --rounds 1 >/dev/null
for r in $(seq "$ROUNDS"); do
    echo "== round $r, load $(cut -d' ' -f1 /proc/loadavg)"
    echo "-- ours"
    "$PY" bench/grammar/e2e.py http://127.0.0.1:11600 "$M" --tokens 96 --batch 4 --rounds 1
    echo "-- llama-server"
    "$PY" bench/grammar/e2e.py http://127.0.0.1:11601 x --peer --tokens 96 --batch 4 --rounds 1
done
