#!/usr/bin/env python3
"""Embeddings per second: 512 short inputs sent one per request (batch 1,
one request at a time) against the same inputs sent as requests of --batch
inputs each (the engine packs them into shared forward passes), on one
`hyperlama serve` started here with a temporary store. Rounds alternate the
two modes; medians of the rounds are printed. The machines are shared: check
`top` first and quote medians.

    bench/embed_bench.py [--model PATH.gguf] [--n 512] [--batch 64] [--rounds 3] [--threads 2]
                         [--parallel 32] [--peer]

--peer also starts llama-server --embeddings (bench/build_peer.sh) on the same
file with -np PARALLEL (our max_seqs is PARALLEL too) and drives its
/v1/embeddings the same two ways; rounds alternate servers and modes.

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


def wait_up(port, proc, what):
    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up")


def peer_bin():
    out = subprocess.run([str(ROOT / "bench/build_peer.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("bench/build_peer.sh failed:\n" + out.stderr[-3000:])
    return pathlib.Path(out.stdout.strip()) / "llama-server"


def run_mode(url, body, inputs, batch):
    """embeddings/s for inputs sent `batch` per request, one request at a time"""
    t0 = time.perf_counter()
    with requests.Session() as s:
        for i in range(0, len(inputs), batch):
            chunk = inputs[i:i + batch]
            r = s.post(url, json=body(chunk[0] if batch == 1 else chunk), timeout=600)
            r.raise_for_status()
    return len(inputs) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "tests/data/embed/tiny-bert-f32.gguf"))
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=32,
                    help="sequences per forward pass: our max_seqs and llama-server's -np")
    ap.add_argument("--peer", action="store_true",
                    help="also llama-server --embeddings (bench/build_peer.sh) on /v1/embeddings, same file")
    ap.add_argument("--hyperlama", default=str(ROOT / "build/release/hyperlama"))
    a = ap.parse_args()
    rng = random.Random(1)
    inputs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))) for _ in range(a.n)]
    tmp = tempfile.mkdtemp()
    procs = []
    servers = []  # (name, url, body(input) -> json)
    try:
        port = free_port()
        env = dict(os.environ, HYPERLAMA_MODELS=tmp + "/models", HYPERLAMA_CONFIG=tmp + "/config.toml",
                   HYPERLAMA_NUM_THREADS=str(a.threads), HYPERLAMA_NUM_PARALLEL=str(a.parallel))
        procs.append(subprocess.Popen([a.hyperlama, "serve", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_up(port, procs[-1], "hyperlama")
        servers.append(("hyperlama", f"http://127.0.0.1:{port}/api/embed", lambda x: {"model": a.model, "input": x}))
        if a.peer:
            pport = free_port()
            log = open(os.path.join(tmp, "peer.log"), "w")
            procs.append(subprocess.Popen(
                [str(peer_bin()), "-m", a.model, "--embeddings", "--host", "127.0.0.1", "--port", str(pport),
                 "-t", str(a.threads), "-np", str(a.parallel), "-c", str(512 * a.parallel),
                 "-b", "8192", "-ub", "8192"], stdout=log, stderr=log))
            wait_up(pport, procs[-1], f"llama-server (log {log.name})")
            servers.append(("llama-server", f"http://127.0.0.1:{pport}/v1/embeddings",
                            lambda x: {"input": x, "model": "m"}))
        vecs = []
        for _, url, body in servers:
            j = requests.post(url, json=body(inputs[0]), timeout=600).json()
            vecs.append(j["embeddings"][0] if "embeddings" in j else j["data"][0]["embedding"])
        if len(vecs) == 2:  # the same computation on both sides, or the comparison means nothing
            dot = sum(x * y for x, y in zip(*vecs))
            norm = (sum(x * x for x in vecs[0]) * sum(y * y for y in vecs[1])) ** 0.5
            print(f"cosine(ours, llama-server) of the first input's embedding: {dot / norm:.6f}")
        modes = [1, a.batch]
        res = {(name, b): [] for name, _, _ in servers for b in modes}
        for r in range(a.rounds):  # alternate servers and modes so drift hits all alike
            order = [(srv, b) for srv in servers for b in modes]
            for (name, url, body), b in (order if r % 2 == 0 else order[::-1]):
                res[(name, b)].append(run_mode(url, body, inputs, b))
        print(f"model {pathlib.Path(a.model).name}, {a.n} inputs of 4-16 words, {a.threads} threads, "
              f"{a.parallel} sequences per pass, {a.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
        print("| server | mode | embeddings/s (median) | rounds |")
        print("|---|---|---|---|")
        for (name, b), v in res.items():
            print(f"| {name} | batch {b} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)


if __name__ == "__main__":
    main()
