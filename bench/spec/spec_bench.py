#!/usr/bin/env python3
"""Speculative decoding benchmark: single-stream decode tokens/s with
speculation off vs prompt lookup (n-gram) vs a draft model, for three tasks on
one model, beside llama-server with its own n-gram speculation when the peer
build supports it (and its -md draft mode with the same draft file); then the
aggregate tokens/s of 8 concurrent streams with and without.

    bench/spec/spec_bench.py [--model qwen2.5-coder-1.5b-instruct-q4_k_m.gguf]
                             [--draft qwen2.5-coder-0.5b-instruct-q4_k_m.gguf | --draft ""]
                             [--rounds 3] [--tokens 256] [--threads 2] [--streams 8]
                             [--peer-spec "--spec-type ngram-simple --spec-draft-n-max 8"]

The draft model (scripts/fetch_models.py qwen2.5-coder-0.5b) is named per
request (option draft_model); --draft "" leaves that column out.

Tasks (plain greedy: temperature 0 and repeat_penalty 1.0 on ours, whose Ollama-style default
is 1.1, llama-server's default being 1.0; chat template, the same messages for every server):
  rewrite  a ~450-token Python file (rewrite_input.py) asked back with one change
  rag      a passage, and a question whose answer quotes it
  chat     free-form writing (little to look up: the control)

All servers (ours, and llama-server once per configuration) are started
first and stay up; each round runs every configuration once, ours and the
peer's, in alternating order (forward, then backward), so drift on a shared
machine hits all alike; the table shows the
median over rounds and the min-max spread. Decode rate is the server's own
eval_count / eval_duration (ours: Ollama's final object; llama-server: its
timings.predicted_per_second), so prefill does not count. The aggregate run
starts N streams together (the rewrite task with N different changes) and
divides all generated tokens by the wall time. Also printed: the acceptance
our server reported (draft_accepted_count / draft_count) and the load
average, since these machines are shared.
"""
import argparse
import concurrent.futures as cf
import os
import pathlib
import statistics
import subprocess
import sys
import time

import requests

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from serve_bench import Server  # noqa: E402  (one server process on 127.0.0.1)

HYPERLAMA = ROOT / "build/release/hyperlama"
MODELS_DIR = pathlib.Path(os.environ.get("HL_MODELS_DIR", pathlib.Path.home() / ".cache/hyperlama/models"))

CODE = (HERE / "rewrite_input.py").read_text()
PASSAGE = (
    "The Aldermoor Bridge was completed in 1887 after eleven years of construction. It spans 412 metres across "
    "the River Tane and was, at the time of its opening, the longest iron truss bridge in the northern counties. "
    "The chief engineer, Margaret Holloway, insisted on a wrought-iron lattice rather than cast iron, arguing "
    "that cast iron was brittle under the sudden loads of passing trains. Her design was criticised as too "
    "expensive, but in the flood of 1894 the bridge survived a strike from a loose barge that would have "
    "broken a cast-iron span. The bridge carried rail traffic until 1961, when the line was closed, and was "
    "converted to a footpath and cycleway in 1978. It was listed as a protected structure in 1983. Today "
    "about 3,000 people cross it every day, and a small museum at the southern end displays Holloway's "
    "original drawings, her correspondence with the railway company and a section of the original lattice.")


def tasks():
    return {
        "rewrite": f"Here is a Python file:\n\n```python\n{CODE}```\n\nRename the function run_job to execute_job "
                   "everywhere. Reply with the whole updated file and nothing else.",
        "rag": f"Passage:\n\"\"\"\n{PASSAGE}\n\"\"\"\n\nUsing only the passage, answer: why did the chief engineer "
               "choose wrought iron, and what happened in 1894? Quote the relevant sentences of the passage "
               "word for word, then summarise the rest of the passage's history of the bridge sentence by sentence.",
        "chat": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    }


def ours_chat(url, model, prompt, tokens, spec, draft=None):
    opts = {"temperature": 0, "num_predict": tokens, "speculative": spec, "repeat_penalty": 1.0}
    if draft:
        opts["draft_model"] = draft
    r = requests.post(url + "/api/chat", json={
        "model": model, "messages": [{"role": "user", "content": prompt}], "stream": False,
        "options": opts}, timeout=900)
    r.raise_for_status()
    j = r.json()
    rate = j["eval_count"] / (j["eval_duration"] / 1e9) if j.get("eval_duration") else float("nan")
    return rate, j["eval_count"], j.get("draft_count", 0), j.get("draft_accepted_count", 0), j["message"]["content"]


def peer_chat(url, prompt, tokens):
    r = requests.post(url + "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": tokens,
        "n_predict": tokens, "cache_prompt": True}, timeout=900)
    r.raise_for_status()
    j = r.json()
    t = j.get("timings", {})
    return t.get("predicted_per_second", float("nan")), t.get("predicted_n", 0), t.get("draft_n", 0), \
        t.get("draft_n_accepted", 0), j["choices"][0]["message"]["content"]


def peer_bin():
    """llama-server as bench/build_peer.sh builds it (the one place that
    knows the peer's build: version, flags, cache dir), or None."""
    out = subprocess.run([str(ROOT / "bench/build_peer.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        print("bench/build_peer.sh failed:\n" + out.stderr[-2000:])
        return None
    server = pathlib.Path(out.stdout.strip()) / "llama-server"
    return server if server.exists() else None


def peer_supports_ngram(binary):
    try:
        h = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--spec-type" in h and "ngram" in h


def fmt(xs):
    xs = [x for x in xs if x == x]
    if not xs:
        return "-"
    return f"{statistics.median(xs):6.2f} ({min(xs):.2f}-{max(xs):.2f})"


def aggregate(url, model, streams, tokens, spec, draft=None):
    prompts = [tasks()["rewrite"].replace("run_job to execute_job", f"run_job to execute_job_{i}")
               for i in range(streams)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(streams) as ex:
        outs = list(ex.map(lambda p: ours_chat(url, model, p, tokens, spec, draft), prompts))
    wall = time.perf_counter() - t0
    return sum(o[1] for o in outs) / wall, sum(o[2] for o in outs), sum(o[3] for o in outs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    ap.add_argument("--draft", default="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    help='draft model file in the models dir ("": no draft-model column)')
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--agg-tokens", type=int, default=128)
    ap.add_argument("--peer-spec", default="--spec-type ngram-simple --spec-draft-n-max 8")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--peer-only", action="store_true", help="skip our server (peer figures only)")
    ap.add_argument("--only", default="rewrite,rag,chat")
    a = ap.parse_args()
    model = str(MODELS_DIR / a.model)
    draft = str(MODELS_DIR / a.draft) if a.draft else None
    if draft and not pathlib.Path(draft).exists():
        sys.exit(f"{draft} is missing: scripts/fetch_models.py qwen2.5-coder-0.5b (or --draft '')")
    configs = ("off", "on", "draft") if draft else ("off", "on")
    names = [n for n in a.only.split(",") if n]
    log_dir = pathlib.Path(os.environ.get("TMPDIR", "/tmp"))

    env = dict(os.environ, HYPERLAMA_NUM_THREADS=str(a.threads), HYPERLAMA_NUM_PARALLEL=str(max(a.streams, 1)),
               HYPERLAMA_CONTEXT_LENGTH="4096", HYPERLAMA_MODELS=str(log_dir / "spec_bench_models"),
               HYPERLAMA_CONFIG=str(log_dir / "spec_bench_config.toml"))
    results = {(n, c): [] for n in names for c in ("off", "on", "draft", "peer", "peer-spec", "peer-draft")}
    acc = {(n, c): [0, 0] for n in names for c in ("on", "draft")}
    agg = {c: [] for c in configs}
    # Every server is started first and stays up (idle ones cost nothing), so
    # each round runs every configuration, ours and the peer's, back to back
    # in alternating order: drift on a shared machine hits all of them alike.
    servers = {}  # config -> Server
    run = {}      # config -> function(task, tokens) -> (rate, ntok, drafted, accepted, text)
    peer = None if a.no_peer else peer_bin()
    peer_ngram = peer is not None and peer_supports_ngram(peer)
    try:
        if not a.peer_only:
            ours = servers["ours"] = Server("hyperlama", lambda port: [str(HYPERLAMA), "serve", "--port", str(port)],
                                            env, model, log_dir / "spec_bench_hyperlama.log")
            for c in configs:
                run[c] = (lambda c: lambda n, t: ours_chat(ours.url, model, tasks()[n], t, c != "off",
                                                           draft if c == "draft" else None))(c)
        if peer:
            for c in ["peer"] + (["peer-spec"] if peer_ngram else []) + (["peer-draft"] if draft else []):
                extra = a.peer_spec.split() if c == "peer-spec" else \
                    ["-md", draft, "--spec-draft-n-max", "8"] if c == "peer-draft" else []
                srv = servers[c] = Server(
                    "llama.cpp", lambda port: [str(peer), "-m", model, "--port", str(port), "--host", "127.0.0.1",
                                               "-t", str(a.threads), "-c", "4096", "-np", "1", *extra],
                    dict(os.environ), model, log_dir / f"spec_bench_{c}.log")
                run[c] = (lambda srv: lambda n, t: peer_chat(srv.url, tasks()[n], t))(srv)
        for n in names:  # warm: load, prefill into the prefix caches (the drafts' too)
            for c in run:
                run[c](n, 8)
        for r in range(a.rounds):
            for n in names:
                order = list(run) if r % 2 == 0 else list(run)[::-1]
                for c in order:
                    rate, ntok, d, acc_n, _ = run[c](n, a.tokens)
                    results[(n, c)].append(rate)
                    if c in ("on", "draft"):
                        acc[(n, c)][0] += d
                        acc[(n, c)][1] += acc_n
                    print(f"round {r} {n:8s} {c:10s} {rate:6.2f} tok/s ({ntok} tokens, {acc_n}/{d} drafts)",
                          flush=True)
            if a.streams > 1 and "ours" in servers:
                for c in (configs if r % 2 == 0 else configs[::-1]):
                    tps, d, acc_n = aggregate(servers["ours"].url, model, a.streams, a.agg_tokens, c != "off",
                                              draft if c == "draft" else None)
                    agg[c].append(tps)
                    print(f"round {r} {a.streams} streams {c:5s} {tps:6.2f} tok/s aggregate ({acc_n}/{d} drafts)",
                          flush=True)
    finally:
        for srv in servers.values():
            srv.stop()

    print(f"\nmodel {a.model}, {a.threads} threads, {a.tokens} tokens, {a.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    def ratio(x, y):
        return statistics.median(x) / statistics.median(y) if x and y else float("nan")

    def accept(n, c):
        t = acc[(n, c)]
        return f"{100 * t[1] / t[0]:.0f}% of {t[0] // max(a.rounds, 1)}" if t[0] else "-"

    print(f"{'task':8s} | {'off':>18s} | {'prompt lookup':>18s} | speedup | acceptance | "
          f"{'draft model':>18s} | speedup | acceptance | "
          f"{'llama-server':>18s} | {'llama-server ngram':>18s} | {'llama-server -md':>18s}")
    for n in names:
        off, on, dr = results[(n, 'off')], results[(n, 'on')], results[(n, 'draft')]
        print(f"{n:8s} | {fmt(off):>18s} | {fmt(on):>18s} | {ratio(on, off):6.2f}x | {accept(n, 'on'):>10s} | "
              f"{fmt(dr):>18s} | {ratio(dr, off):6.2f}x | {accept(n, 'draft'):>10s} | "
              f"{fmt(results[(n, 'peer')]):>18s} | {fmt(results[(n, 'peer-spec')]):>18s} | "
              f"{fmt(results[(n, 'peer-draft')]):>18s}")
    if agg["off"]:
        print(f"{a.streams} streams aggregate: " + ", ".join(
            f"{c} {fmt(agg[c])} tok/s ({ratio(agg[c], agg['off']):.2f}x)" for c in configs))
    if peer and not peer_ngram:
        print("llama-server: this build has no n-gram speculation (--spec-type ngram*)")
    if not peer:
        print("llama-server: not built (bench/build_peer.sh)")


if __name__ == "__main__":
    main()
