#!/usr/bin/env python3
"""HyperLlama vs llama.cpp on this machine: same model file, same thread count,
same run. Prints a markdown table of prompt processing (pp512) and generation
(tg128) tokens/s with ratios, each side's spread (10th / 90th percentiles of
all samples), the machine's measured read bandwidth and the decode limit it
implies (bandwidth / weight bytes), and peak RSS.

    bench/compare.py [--models smollm2,qwen2.5-coder] [--threads 2] [--reps 5] [--rounds 3]
                     [--baseline OLD_HYPERLAMA]

--baseline adds an earlier build of hyperlama to every round (alternating
with the other two) and prints a before/after table: how a change moved our
own speed, measured in the same sitting.

The peer is llama.cpp as vendored in the llama-cpp-python source package
(bench/build_peer.sh builds it once, cached). Runs alternate between the two
engines for --rounds rounds so background noise hits both; the medians of all
samples are compared. `hyperlama bench --json` reports its own summary per run
(mean, stddev, median, p10, p90); here its raw samples are pooled over the
rounds with llama-bench's and summarized the same way for both (percentiles
interpolated between the sorted samples, as numpy's default and `hyperlama
bench` compute them). Check `top` first: these machines are shared.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HYPERLAMA = ROOT / "build/release/hyperlama"
BANDWIDTH = ROOT / "build/release/bench/bench_bandwidth"


def quantile(samples, q):
    """The q-quantile, linear between the closest ranks (numpy's default)."""
    xs = sorted(samples)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def spread(samples):
    """'p10 / p90' of the samples, or '' when there are none."""
    if not samples:
        return ""
    return f"{quantile(samples, 0.1):.2f} / {quantile(samples, 0.9):.2f}"


def run_measured(cmd):
    """Runs cmd, returns (stdout, peak RSS in MiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    _pid, status, ru = os.wait4(p.pid, 0) if p.returncode is None else (p.pid, 0, None)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{err[-3000:]}")
    return out, err


def peak_rss_mib(cmd):
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)], capture_output=True, text=True)
    try:
        return int(r.stderr.strip().splitlines()[-1]) / 1024.0
    except (ValueError, IndexError):
        return float("nan")


def llama_bench(binary, model, threads, reps, pp, tg):
    out, _ = run_measured([binary, "-m", model, "-t", str(threads), "-p", str(pp), "-n", str(tg),
                           "-r", str(reps), "-o", "json"])
    res = {}
    for row in json.loads(out):
        name = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        res[name] = row.get("samples_ts") or [row["avg_ts"]]
    return res


def our_bench(model, threads, reps, pp, tg, binary=HYPERLAMA, strict=True):
    out, _ = run_measured([binary, "bench", model, "--threads", str(threads), "-p", str(pp), "-n", str(tg),
                           "-r", str(reps), "--json"])
    doc = json.loads(out)
    for r in doc["results"]:
        missing = ({"median", "p10", "p90", "samples"} if strict else {"samples"}) - set(r)
        if missing:
            raise SystemExit(f"{binary} bench --json lacks {sorted(missing)} in {r.get('test')}: rebuild it")
    return {r["test"]: r["samples"] for r in doc["results"]}, doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,qwen2.5-coder")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--baseline", help="an earlier hyperlama binary to compare with, in the same rounds")
    args = ap.parse_args()
    before_after = []

    peer_bin = subprocess.run([str(ROOT / "bench/build_peer.sh")], capture_output=True, text=True, check=True).stdout.strip()
    llama_bench_bin = os.path.join(peer_bin, "llama-bench")
    subprocess.run(["make", "-C", str(ROOT), "-j", str(os.cpu_count()), "all", "benches"], check=True,
                   stdout=subprocess.DEVNULL)
    bw = json.loads(subprocess.run([BANDWIDTH, "--threads", str(args.threads), "--json"], capture_output=True,
                                   text=True, check=True).stdout)["read_gbs"]
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f}; read bandwidth with {args.threads} "
          f"thread(s): {bw:.1f} GB/s\n")
    print("| model | test | llama.cpp t/s (median) | p10 / p90 | hyperlama t/s (median) | p10 / p90 | ratio | "
          "decode limit t/s | peak RSS MiB (llama.cpp / ours) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name in args.models.split(","):
        model = subprocess.run([sys.executable, str(ROOT / "scripts/fetch_models.py"), "--path", name],
                               capture_output=True, text=True, check=True).stdout.strip()
        peer, ours, base = {}, {}, {}
        doc = None
        for _ in range(args.rounds):
            for k, v in llama_bench(llama_bench_bin, model, args.threads, args.reps, args.p, args.n).items():
                peer.setdefault(k, []).extend(v)
            if args.baseline:
                o, _ = our_bench(model, args.threads, args.reps, args.p, args.n, args.baseline, strict=False)
                for k, v in o.items():
                    base.setdefault(k, []).extend(v)
            o, doc = our_bench(model, args.threads, args.reps, args.p, args.n)
            for k, v in o.items():
                ours.setdefault(k, []).extend(v)
        for test in sorted(base, key=lambda t: t[0] != "p"):
            if test in ours:
                before_after.append((name, test, base[test], ours[test]))
        rss_peer = peak_rss_mib([llama_bench_bin, "-m", model, "-t", str(args.threads), "-p", str(args.p), "-n", "16", "-r", "1"])
        rss_ours = doc["peak_rss_mib"]
        limit = bw * 1e9 / doc["weight_bytes"]
        for test in sorted(ours, key=lambda t: t[0] != "p"):
            ps, os_ = peer.get(test, []), ours[test]
            a = statistics.median(ps) if ps else float("nan")
            b = statistics.median(os_)
            lim = f"{limit:.1f}" if test.startswith("tg") else ""
            print(f"| {name} | {test} | {a:.2f} | {spread(ps)} | {b:.2f} | {spread(os_)} | {b / a:.2f}x | {lim} | "
                  f"{rss_peer:.0f} / {rss_ours:.0f} |")
    print(f"\nmedians and p10 / p90 over {args.rounds} rounds x {args.reps} repetitions, {args.threads} threads, "
          "same model files")
    if before_after:
        print(f"\nbefore ({args.baseline}) and after ({HYPERLAMA}), same rounds:\n")
        print("| model | test | before t/s (median) | p10 / p90 | after t/s (median) | p10 / p90 | after / before |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for name, test, b, a in before_after:
            mb, ma = statistics.median(b), statistics.median(a)
            print(f"| {name} | {test} | {mb:.2f} | {spread(b)} | {ma:.2f} | {spread(a)} | {ma / mb:.2f}x |")


if __name__ == "__main__":
    main()
