#!/usr/bin/env bash
# Runs every test from a fresh machine: setup, release + ASan/UBSan builds,
# fuzz targets, then pytest, which runs the C unit-test binaries (both builds),
# the fuzzers for a bounded time, the reference comparisons and the
# integration tests. pytest's summary is the closing line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
jobs=$(nproc)
# the Vulkan kernels are checked on lavapipe (mesa-vulkan-drivers, installed above): a missing
# driver is a failure here, not a skip
export HYPERLAMA_TEST_REQUIRE_VULKAN=1
make -s -j"$jobs" MODE=release all tests
make -s -j"$jobs" MODE=asan tests
make -s -j"$jobs" MODE=fuzz fuzz
exec .venv/bin/python -m pytest -q -ra --durations=25 tests "$@"
