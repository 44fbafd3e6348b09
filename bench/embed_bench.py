#!/usr/bin/env python3
"""Embeddings per second: 512 short inputs sent one per request (batch 1,
one request at a time) against the same inputs sent as requests of --batch
inputs each (the engine packs them into shared forward passes), on one
`hyperlama serve` started here with a temporary store. Rounds alternate the
two modes; medians of the rounds are printed. The machines are shared: check
`top` first and quote medians.

    bench/embed_bench.py [--model PATH.gguf] [--n 512] [--batch 64] [--rounds 3] [--threads 2]

The default model is the tiny random BERT fixture (tests/data/embed); a real
one is all-MiniLM-L6-v2 converted by tests/reference/make_embed_fixtures.py
--hf (docs/performance.md).
"""
import argparse
import os
import pathlib
import random
import socket
import statistics
import subprocess
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORDS = ("the quick brown fox jumps over the lazy dog while embeddings of short sentences are computed by "
         "an encoder for retrieval augmented generation").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "tests/data/embed/tiny-bert-f32.gguf"))
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hyperlama", default=str(ROOT / "build/release/hyperlama"))
    a = ap.parse_args()
    rng = random.Random(1)
    inputs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))) for _ in range(a.n)]
    tmp = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, HYPERLAMA_MODELS=tmp + "/models", HYPERLAMA_CONFIG=tmp + "/config.toml",
               HYPERLAMA_NUM_THREADS=str(a.threads))
    proc = subprocess.Popen([a.hyperlama, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/embed"
    try:
        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        requests.post(url, json={"model": a.model, "input": "warm up"}, timeout=600).raise_for_status()
        res = {"batch 1": [], f"batch {a.batch}": []}
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            with requests.Session() as s:
                for t in inputs:
                    s.post(url, json={"model": a.model, "input": t}, timeout=600).raise_for_status()
            res["batch 1"].append(a.n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            with requests.Session() as s:
                for i in range(0, a.n, a.batch):
                    s.post(url, json={"model": a.model, "input": inputs[i:i + a.batch]}, timeout=600).raise_for_status()
            res[f"batch {a.batch}"].append(a.n / (time.perf_counter() - t0))
        print(f"model {pathlib.Path(a.model).name}, {a.n} inputs of 4-16 words, {a.threads} threads, {a.rounds} rounds")
        print("| mode | embeddings/s (median) | rounds |")
        print("|---|---|---|")
        for k, v in res.items():
            print(f"| {k} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    main()
