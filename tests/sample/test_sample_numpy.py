"""The sampler chain and stop matcher checked against independent Python/numpy
references, through ctypes on a shared build of src/sample (compiled here from
source, so the test needs only a C compiler). numpy does the chain in float64
with full sorts; the C code must agree on log-probabilities (to 1e-4) and on
sampling distributions (no draw outside the reference support, chi-square
within a wide bound), and the stop matcher must match a naive Python scan on
random texts split at random points."""
import ctypes
import pathlib
import random
import subprocess

import numpy as np
import pytest

from hltest import ROOT


class LogitBias(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("bias", ctypes.c_float)]


class Params(ctypes.Structure):
    _fields_ = [
        ("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float), ("typical_p", ctypes.c_float), ("repeat_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int32), ("presence_penalty", ctypes.c_float),
        ("frequency_penalty", ctypes.c_float), ("seed", ctypes.c_uint64), ("has_seed", ctypes.c_int),
        ("logit_bias", ctypes.POINTER(LogitBias)), ("n_logit_bias", ctypes.c_int32),
        ("n_top_logprobs", ctypes.c_int32),
    ]


class TokLp(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("logprob", ctypes.c_float)]


class Lps(ctypes.Structure):
    _fields_ = [("chosen", TokLp), ("n_top", ctypes.c_int32), ("top", TokLp * 20)]


class Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 1024)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "libsample.so"
    srcs = [ROOT / "src/sample" / f for f in ("sampler.c", "select.c", "stop.c")]
    srcs += [ROOT / "src/base" / f for f in ("err.c", "utf8.c")]
    avx = ROOT / "src/sample/exp_avx2.c"
    obj = out.with_suffix(".avx2.o")
    subprocess.run(["cc", "-std=c17", "-O2", "-fPIC", "-mavx2", "-mfma", "-I", str(ROOT / "src"),
                    "-c", str(avx), "-o", str(obj)], check=True)
    subprocess.run(["cc", "-std=c17", "-O2", "-fPIC", "-shared", "-D_GNU_SOURCE", "-I", str(ROOT / "src"),
                    *map(str, srcs), str(obj), "-o", str(out), "-lm"], check=True)
    L = ctypes.CDLL(str(out))
    L.hl_sampling_default_params.restype = Params
    L.hl_sampler_new.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Params), ctypes.c_int32,
                                 ctypes.POINTER(Err)]
    L.hl_sampler_sample.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(Lps)]
    L.hl_sampler_sample.restype = ctypes.c_int32
    L.hl_sampler_accept.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    L.hl_sampler_free.argtypes = [ctypes.c_void_p]
    L.hl_stop_new.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_char_p),
                              ctypes.POINTER(ctypes.c_size_t), ctypes.c_int32, ctypes.POINTER(Err)]
    L.hl_stop_push.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                               ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    L.hl_stop_flush.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    L.hl_stop_free.argtypes = [ctypes.c_void_p]
    return L


def make_sampler(lib, n, **kw):
    p = lib.hl_sampling_default_params()
    p.has_seed, p.seed = 1, 1234
    bias = kw.pop("bias", [])
    for k, v in kw.items():
        setattr(p, k, v)
    if bias:
        arr = (LogitBias * len(bias))(*[LogitBias(t, b) for t, b in bias])
        p.logit_bias, p.n_logit_bias = ctypes.cast(arr, ctypes.POINTER(LogitBias)), len(bias)
    s, err = ctypes.c_void_p(), Err()
    assert lib.hl_sampler_new(ctypes.byref(s), ctypes.byref(p), n, ctypes.byref(err)) == 0, err.msg
    return s, p


def np_penalized(logits, p, hist, bias):
    l = logits.astype(np.float64).copy()
    window = hist if p.repeat_last_n < 0 else (hist[-p.repeat_last_n:] if p.repeat_last_n > 0 else [])
    tok, cnt = np.unique(np.array(window, dtype=np.int64), return_counts=True)
    for t, c in zip(tok, cnt):
        v = l[t]
        v = v / p.repeat_penalty if v > 0 else v * p.repeat_penalty
        l[t] = v - c * p.frequency_penalty - p.presence_penalty
    for t, b in bias:
        l[t] = -np.inf if b <= -100 else l[t] + b
    return l


def np_chain(l, p):
    """Sampling distribution of the chain in float64 with full sorts."""
    order = np.lexsort((np.arange(len(l)), -l))  # logit desc, id asc
    order = order[np.isfinite(l[order])]
    if p.top_k > 0:
        order = order[:p.top_k]
    if p.top_p < 1:
        pr = np.exp(l[order] - l[order].max())
        pr /= pr.sum()
        keep = int(np.argmax(np.cumsum(pr) >= p.top_p)) + 1
        order = order[:keep]
    if p.min_p > 0:
        pr = np.exp(l[order] - l[order].max())
        order = order[pr >= p.min_p * pr.max()]
    w = np.exp((l[order] - l[order].max()) / p.temperature)
    dist = np.zeros(len(l))
    dist[order] = w / w.sum()
    return dist


def test_logprobs_match_numpy_log_softmax(lib):
    rng = np.random.default_rng(5)
    n = 5000
    logits = rng.normal(0, 3, n).astype(np.float32)
    hist = list(rng.integers(0, n, 100))
    bias = [(3, 2.5), (10, -100), (int(np.argmax(logits)), -1.0)]
    s, p = make_sampler(lib, n, temperature=0.7, top_k=50, top_p=0.9, repeat_penalty=1.2, repeat_last_n=64,
                        presence_penalty=0.3, frequency_penalty=0.2, n_top_logprobs=10, bias=bias)
    for t in hist:
        lib.hl_sampler_accept(s, int(t))
    l = np_penalized(logits, p, [int(t) for t in hist], bias)
    ref = l - (np.max(l) + np.log(np.sum(np.exp(l - np.max(l)))))
    top = np.lexsort((np.arange(n), -ref))[:10]
    lp = Lps()
    ptr = logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    for _ in range(10):
        tok = lib.hl_sampler_sample(s, ptr, ctypes.byref(lp))
        assert lp.chosen.token == tok
        assert abs(lp.chosen.logprob - ref[tok]) < 1e-4
        assert lp.n_top == 10
        assert [lp.top[i].token for i in range(10)] == list(top)
        assert np.allclose([lp.top[i].logprob for i in range(10)], ref[top], atol=1e-4)
    lib.hl_sampler_free(s)


@pytest.mark.parametrize("cfg", [
    dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0),
    dict(temperature=0.8, top_k=40, top_p=0.9, min_p=0.0),
    dict(temperature=1.3, top_k=0, top_p=0.7, min_p=0.0),
    dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1),
    dict(temperature=0.6, top_k=25, top_p=0.95, min_p=0.05),
])
def test_distribution_matches_numpy(lib, cfg):
    rng = np.random.default_rng(11)
    n, draws = 3000, 20000
    logits = rng.normal(0, 1.5, n).astype(np.float32)
    logits[rng.choice(n, 30, replace=False)] += 6  # a head of likely tokens
    s, p = make_sampler(lib, n, repeat_penalty=1.0, **cfg)
    dist = np_chain(logits.astype(np.float64), p)
    ptr = logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    counts = np.bincount([lib.hl_sampler_sample(s, ptr, None) for _ in range(draws)], minlength=n)
    lib.hl_sampler_free(s)
    assert counts[dist == 0].sum() == 0
    # group the support into cells of >= 50 expected draws, then chi-square
    order = np.argsort(-dist)
    order = order[dist[order] > 0]
    cells, acc_e, acc_o = [], 0.0, 0
    for t in order:
        acc_e += dist[t] * draws
        acc_o += counts[t]
        if acc_e >= 50:
            cells.append((acc_o, acc_e))
            acc_e, acc_o = 0.0, 0
    if acc_e > 0:
        cells.append((acc_o, acc_e))
    chi = sum((o - e) ** 2 / e for o, e in cells)
    df = max(len(cells) - 1, 1)
    assert chi < df + 8 * np.sqrt(2 * df) + 10, (chi, df)


def py_stop_reference(text, stops):
    for e in range(1, len(text) + 1):
        best = None
        for i, st in enumerate(stops):
            if st and len(st) <= e and text[e - len(st):e] == st and (best is None or len(st) > len(stops[best])):
                best = i
        if best is not None:
            return text[:e - len(stops[best])], best
    return text, -1


def test_stop_matcher_matches_python_scan(lib):
    rnd = random.Random(3)
    alphabet = ["a", "b", "é", "€", "\n"]
    for it in range(400):
        stops = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 4))) for _ in range(rnd.randint(1, 3))]
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30))).encode()
        bstops = [st.encode() for st in stops]
        arr = (ctypes.c_char_p * len(bstops))(*bstops)
        m, err = ctypes.c_void_p(), Err()
        assert lib.hl_stop_new(ctypes.byref(m), arr, None, len(bstops), ctypes.byref(err)) == 0
        cuts = sorted(rnd.sample(range(1, len(text)), min(len(text) - 1, rnd.randint(0, 8)))) if len(text) > 1 else []
        out, pos, rc = b"", 0, 0
        e, ne = ctypes.c_void_p(), ctypes.c_size_t()
        for c in cuts + [len(text)]:
            rc = lib.hl_stop_push(m, text[pos:c], c - pos, ctypes.byref(e), ctypes.byref(ne))
            out += ctypes.string_at(e, ne.value) if ne.value else b""
            # what was shown so far decodes (no split character) and is a prefix
            out.decode("utf-8")
            pos = c
            if rc == 1:
                break
        if rc == 0:
            lib.hl_stop_flush(m, ctypes.byref(e), ctypes.byref(ne))
            out += ctypes.string_at(e, ne.value) if ne.value else b""
        lib.hl_stop_free(m)
        want, which = py_stop_reference(text, bstops)
        assert out == want, (text, stops, cuts)
        assert (rc == 1) == (which >= 0)
