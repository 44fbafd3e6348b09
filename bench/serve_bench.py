#!/usr/bin/env python3
"""Serving benchmark: HyperLlama's server beside llama.cpp's llama-server, in
the same run, on the same model file with the same threads and the same
context per slot. Both are driven through the OpenAI-compatible
/v1/completions with stream=true, and every stream generates exactly --tokens
tokens (ignore_eos on both: vLLM's extension on ours, llama-server's own).

For each concurrency level N, N streams start together (prompt lengths mixed:
short, medium and long, each made unique so no prefix is shared), and we
measure the aggregate generated tokens/s (all tokens / wall time of the
wave) and the median and p99 time to first token. Then time to first token
for a request whose ~1,000-token prefix is cached vs the same request cold
(ours: the paged prefix cache; llama-server: cache_prompt on its slot).

    bench/serve_bench.py [--models smollm2,qwen2.5-coder] [--concurrency 1,4,8,16]
                         [--tokens 128] [--threads 2] [--ctx 2048] [--out FILE]

llama-server runs with -np N (one instance per level, restarted), -cb, -t
THREADS and -c N*CTX (CTX per slot). Ours runs once per model with
HYPERLAMA_NUM_PARALLEL=max(N) and HYPERLAMA_CONTEXT_LENGTH=CTX. Servers never
run at the same time as each other's load. Everything listens on 127.0.0.1;
every request loop is bounded in count and time. The machine's load average
is printed with the table: these machines are shared, check `top` first.
"""
import argparse
import concurrent.futures as cf
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
HYPERLAMA = ROOT / "build/release/hyperlama"
MODELS_DIR = pathlib.Path(os.environ.get("HL_MODELS_DIR", pathlib.Path.home() / ".cache/hyperlama/models"))
MODELS = {
    "smollm2": "smollm2-135m-instruct-q4_1.gguf",
    "qwen2.5-coder": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
REQUEST_TIMEOUT = 300  # seconds, per stream
LEVEL_TIMEOUT = 900    # seconds, per concurrency level and server

PARAGRAPH = ("The old lighthouse keeper climbed the spiral stairs every evening, counting the steps and listening "
             "to the sea below. Ships passed in the dark, their lights blinking like slow stars, and he wrote "
             "each one down in a worn notebook with the date, the weather and a small drawing of the hull. ")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompt_of(words, nonce):
    """About `words` words of text (roughly 1.3 tokens each), starting with a
    nonce so no two prompts share a cached prefix."""
    base = PARAGRAPH.split()
    body = " ".join(base[i % len(base)] for i in range(words))
    return f"Log entry {nonce}: {body}\nSummary:"


# short / medium / long prompts, cycled over the streams of a wave
MIX = (24, 96, 384)


class Server:
    """One server process on 127.0.0.1; stop() kills it (and only it)."""

    def __init__(self, name, cmd, env, model_field, log_path):
        self.name, self.model_field = name, model_field
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([*cmd(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited at start; see {log_path}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{name} did not become healthy in 180 s; see {log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def body_for(server, prompt, tokens, cache_prompt=None):
    b = {"model": server.model_field, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
         "ignore_eos": True, "stream_options": {"include_usage": True}}
    if server.name == "llama.cpp":
        b["n_predict"] = tokens
        if cache_prompt is not None:
            b["cache_prompt"] = cache_prompt
    return b


def stream_one(server, prompt, tokens, cache_prompt=None, deadline=None):
    """One streamed completion: (ttft seconds, generated tokens, end seconds
    from start). Past `deadline` (perf_counter) it stops reading and returns
    what it has, so one slow level cannot lose the whole run."""
    t0 = time.perf_counter()
    deadline = min(deadline or float("inf"), t0 + REQUEST_TIMEOUT)
    ttft, n_chunks, usage = None, 0, None
    try:
        ttft, n_chunks, usage = read_stream(server, prompt, tokens, cache_prompt, t0, deadline)
    except requests.exceptions.ReadTimeout:
        pass  # silent past the deadline: counted as short
    n = (usage or {}).get("completion_tokens") or n_chunks
    return ttft if ttft is not None else float("nan"), n, time.perf_counter() - t0


def read_stream(server, prompt, tokens, cache_prompt, t0, deadline):
    ttft, n_chunks, usage = None, 0, None
    # the read timeout bounds a stream that sends nothing at all before the deadline
    with requests.post(server.url + "/v1/completions", json=body_for(server, prompt, tokens, cache_prompt),
                       stream=True, timeout=(10, max(5.0, deadline - t0))) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{server.name}: HTTP {r.status_code}: {r.text[:300]}")
        for line in r.iter_lines():
            if time.perf_counter() > deadline:
                break  # the caller sees fewer tokens than asked
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                break
            ev = json.loads(data)
            if ev.get("usage"):
                usage = ev["usage"]
            if ev.get("timings") and not usage:
                usage = {"completion_tokens": ev["timings"].get("predicted_n")}
            for ch in ev.get("choices") or []:
                if ch.get("text"):
                    n_chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
    return ttft, n_chunks, usage


def wave(server, n_streams, tokens, tag):
    """n_streams streams at once; returns (tokens/s aggregate, ttfts, token counts)."""
    prompts = [prompt_of(MIX[i % len(MIX)], f"{tag}-{i}-{time.time_ns()}") for i in range(n_streams)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(n_streams) as ex:
        futs = [ex.submit(stream_one, server, p, tokens, None, t0 + LEVEL_TIMEOUT) for p in prompts]
        res = [f.result() for f in futs]
    wall = time.perf_counter() - t0
    total = sum(r[1] for r in res)
    return total / wall, [r[0] for r in res], [r[1] for r in res]


def pct(xs, p):
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def cache_ttft(server, reps=3):
    """Median TTFT of a ~1,000-token-prefix request cold (fresh prefix) and
    warm (same prefix, new question), one token each."""
    cold, warm = [], []
    for i in range(reps):
        prefix = prompt_of(760, f"cache-{i}-{time.time_ns()}")
        c = stream_one(server, prefix + " Question one:", 1, cache_prompt=True)
        w = stream_one(server, prefix + " Question two:", 1, cache_prompt=True)
        cold.append(c[0])
        warm.append(w[0])
    return statistics.median(cold), statistics.median(warm)


def ours(model_path, max_streams, args, tmp):
    env = dict(os.environ)
    env.update({
        "HYPERLAMA_CONFIG": str(tmp / "config.toml"),
        "HYPERLAMA_MODELS": str(tmp / "models"),
        "HYPERLAMA_NUM_THREADS": str(args.threads),
        "HYPERLAMA_NUM_PARALLEL": str(max_streams),
        "HYPERLAMA_CONTEXT_LENGTH": str(args.ctx),
        "HYPERLAMA_KV_BUDGET": args.kv_budget,
        "HYPERLAMA_KEEP_ALIVE": "-1",
    })
    for k in ("HYPERLAMA_HOST", "HYPERLAMA_API_KEY"):
        env.pop(k, None)
    return Server("hyperlama", lambda port: [str(HYPERLAMA), "serve", "--port", str(port)], env, str(model_path),
                  tmp / "hyperlama.log")


def peer(bin_dir, model_path, n, args, tmp):
    cmd = lambda port: [str(bin_dir / "llama-server"), "-m", str(model_path), "-t", str(args.threads), "-tb",
                        str(args.threads), "-np", str(n), "-c", str(n * args.ctx), "-cb", "--host", "127.0.0.1",
                        "--port", str(port), "--no-webui"]
    return Server("llama.cpp", cmd, dict(os.environ), "model", tmp / f"llama-server-np{n}.log")


def measure(server, levels, tokens, rows, key, cache=None):
    stream_one(server, prompt_of(16, f"warmup-{time.time_ns()}"), 4)  # pages in the weights
    for n in levels:
        tps, ttfts, counts = wave(server, n, tokens, f"{key}-{n}")
        short = sum(c != tokens for c in counts)
        rows.setdefault(n, {})[server.name] = (tps, pct(ttfts, 50), pct(ttfts, 99), short)
        print(f"  {server.name:9s} streams={n:2d}: {tps:7.1f} tok/s, TTFT p50 {pct(ttfts, 50) * 1e3:7.0f} ms,"
              f" p99 {pct(ttfts, 99) * 1e3:7.0f} ms{f', {short} streams short of {tokens}' if short else ''}",
              file=sys.stderr, flush=True)
    if cache is not None:
        cache[server.name] = cache_ttft(server)
        print(f"  {server.name:9s} ~1,000-token prefix TTFT: cold {cache[server.name][0] * 1e3:.0f} ms, cached "
              f"{cache[server.name][1] * 1e3:.0f} ms", file=sys.stderr, flush=True)


def fmt_ratio(a, b):
    return f"{a / b:.2f}x" if b and b == b and a == a else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2,qwen2.5-coder")
    ap.add_argument("--concurrency", default="1,4,8,16")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048, help="context per slot (tokens)")
    ap.add_argument("--kv-budget", default="1GiB", help="our KV memory (llama-server sizes its own from -c)")
    ap.add_argument("--no-peer", action="store_true", help="only our server")
    ap.add_argument("--level-timeout", type=float, default=900.0,
                    help="seconds one wave may take; a slower wave is cut and marked (!)")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args()
    global LEVEL_TIMEOUT
    LEVEL_TIMEOUT = args.level_timeout
    levels = [int(x) for x in args.concurrency.split(",") if x]
    if not levels or min(levels) < 1 or max(levels) > 64:
        raise SystemExit("--concurrency: 1..64 streams per level")
    if not 1 <= args.tokens <= 4096:
        raise SystemExit("--tokens: 1..4096")
    if not HYPERLAMA.exists():
        raise SystemExit(f"{HYPERLAMA} not built: run make")
    bin_dir = None
    if not args.no_peer:
        out = subprocess.run([str(ROOT / "bench/build_peer.sh")], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit("bench/build_peer.sh failed:\n" + out.stderr[-3000:])
        bin_dir = pathlib.Path(out.stdout.strip().splitlines()[-1])
    load_before = os.getloadavg()
    lines = []
    for name in [m for m in args.models.split(",") if m]:
        if name not in MODELS:
            raise SystemExit(f"unknown model {name}: one of {', '.join(MODELS)}")
        path = MODELS_DIR / MODELS[name]
        if not path.exists():
            print(f"skipping {name}: {path} not fetched", file=sys.stderr)
            continue
        print(f"{name}:", file=sys.stderr, flush=True)
        rows, cache = {}, {}
        with tempfile.TemporaryDirectory(prefix="serve_bench_") as td:
            tmp = pathlib.Path(td)
            s = ours(path, max(levels), args, tmp)
            try:
                measure(s, levels, args.tokens, rows, "ours", cache)
            finally:
                s.stop()
            if bin_dir:
                for i, n in enumerate(levels):
                    p = peer(bin_dir, path, n, args, tmp)
                    try:
                        measure(p, [n], args.tokens, rows, "peer", cache if i == 0 else None)
                    finally:
                        p.stop()
        lines.append(f"\n**{name}** (`{MODELS[name]}`), {args.tokens} tokens per stream, prompts of "
                     f"~{'/'.join(str(int(w * 1.3)) for w in MIX)} tokens mixed, {args.threads} threads, "
                     f"{args.ctx} tokens of context per slot\n")
        lines.append("| streams | ours tok/s | llama-server tok/s | ratio | ours TTFT p50 / p99 (ms) "
                     "| llama-server TTFT p50 / p99 (ms) | p50 ratio |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|")
        for n in levels:
            o = rows.get(n, {}).get("hyperlama")
            p = rows.get(n, {}).get("llama.cpp")
            nan = (float("nan"),) * 4
            o, p = o or nan, p or nan
            warn = " (!)" if (o[3] or p[3]) else ""
            lines.append(f"| {n}{warn} | {o[0]:.1f} | {p[0]:.1f} | {fmt_ratio(o[0], p[0])} | {o[1] * 1e3:.0f} / "
                         f"{o[2] * 1e3:.0f} | {p[1] * 1e3:.0f} / {p[2] * 1e3:.0f} | {fmt_ratio(p[1], o[1])} |")
        oc = cache.get("hyperlama", (float("nan"),) * 2)
        pc = cache.get("llama.cpp", (float("nan"),) * 2)
        lines.append(f"\nTTFT with a ~1,000-token prefix, median of 3 (ms): ours cold {oc[0] * 1e3:.0f}, cached "
                     f"{oc[1] * 1e3:.0f} ({fmt_ratio(oc[0], oc[1])} faster); llama-server (cache_prompt, one slot) "
                     f"cold {pc[0] * 1e3:.0f}, cached {pc[1] * 1e3:.0f} ({fmt_ratio(pc[0], pc[1])} faster)")
    load_after = os.getloadavg()
    lines.append(f"\nRatios: tok/s ours ÷ llama-server (higher is better for us); TTFT ratio llama-server ÷ ours "
                 f"(higher is better for us). (!) marks a level where a stream ended short of {args.tokens} tokens "
                 f"(the level ran past {LEVEL_TIMEOUT} s and was cut; its tok/s counts what arrived).")
    lines.append(f"Load average before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, after "
                 f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} ({os.cpu_count()} CPUs; "
                 f"shared machine: other jobs were running).")
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        pathlib.Path(args.out).write_text(md)


if __name__ == "__main__":
    main()
