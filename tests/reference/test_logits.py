"""Logits of our engine against the independent numpy reference
(scripts/reference/forward.py): every position of several prompts, in both
reference modes, plus greedy continuations. Tolerances and the reasoning
behind them: docs/testing.md, "Logits against the numpy reference".

stories260K (seven files, F32 to Q4_1) is computed live; SmolLM2-135M Q4_1,
Qwen2.5-Coder-1.5B Q4_K_M and Gemma-3-270M Q4_K_M are compared with committed
fixtures made by scripts/reference/gen_fixtures.py (tests/data/reference/*.npz).

Engine interface: `hyperlama logits MODEL --tokens IDS --all --out FILE`
writes int32 n_rows, int32 n_vocab, then n_rows x n_vocab f32; `--greedy N`
prints the N greedy ids after the tokens as a JSON array.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from hltest import HYPERLAMA, ROOT, SHARED, model_path

sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import forward as F  # noqa: E402

FIXTURES = ROOT / "tests" / "data" / "reference"


# ---------------------------------------------------------------------------
# engine access
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hyperlama():
    """The release binary; HL_HYPERLAMA_BIN overrides it (to test another
    build tree without touching this one)."""
    exe = pathlib.Path(os.environ.get("HL_HYPERLAMA_BIN", HYPERLAMA))
    if not exe.exists():
        pytest.fail(f"{exe} not built: run make")
    return exe


def read_logits_file(path) -> np.ndarray:
    raw = path.read_bytes()
    if len(raw) < 8:
        raise AssertionError(f"{path}: {len(raw)} bytes, no header")
    n_rows, n_vocab = (int(v) for v in np.frombuffer(raw[:8], np.int32))
    want = 8 + 4 * n_rows * n_vocab
    assert n_rows > 0 and n_vocab > 0 and len(raw) == want, \
        f"{path}: header says {n_rows} x {n_vocab} ({want} bytes), file has {len(raw)}"
    return np.frombuffer(raw[8:], np.float32).reshape(n_rows, n_vocab)


def engine_logits(exe, model, ids, tmp_path, greedy=0):
    """All-position logits [len(ids), n_vocab] (and greedy ids when asked)."""
    out = tmp_path / "logits.bin"
    cmd = [str(exe), "logits", str(model), "--tokens", ",".join(map(str, ids)), "--all", "--out", str(out)]
    if greedy:
        cmd += ["--greedy", str(greedy)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"{' '.join(cmd[:3])} ... failed ({r.returncode}):\n{r.stderr[-3000:]}"
    lg = read_logits_file(out)
    assert lg.shape[0] == len(ids), f"expected {len(ids)} rows with --all, got {lg.shape[0]}"
    gen = None
    if greedy:
        lines = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("[")]
        assert lines, f"--greedy printed no JSON array:\n{r.stdout[-2000:]}"
        gen = json.loads(lines[-1])
    return lg, gen


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tol:
    float_max: float      # max |engine - float ref| over top-32 logits, any position
    float_mean: float     # mean of that per-position max over positions
    emu_max: float        # max |engine - emulated ref|, any position (rounding-flip events)
    emu_median: float | None  # median over positions of the per-position max (None: see stories)
    top1: float = 0.99    # fraction of positions whose argmax equals the emulated reference's
    float_max_rest: float | None = None  # float max over positions >= 1 (position 0 can be an outlier)


def compare(label, eng, ref, tol: Tol):
    """eng: [n_pos, n_vocab] engine logits. ref: dict with top_ids, top_float,
    top_emu, argmax_emu, lse_float, lse_emu (per position). Returns a report
    string and the per-position max error against the emulated reference;
    raises AssertionError with all the numbers on failure."""
    top = ref["top_ids"]
    e_top = np.take_along_axis(eng, top, axis=-1).astype(np.float64)
    err_f = np.abs(e_top - ref["top_float"]).max(-1)
    err_e = np.abs(e_top - ref["top_emu"]).max(-1)
    m = eng.max(-1, keepdims=True).astype(np.float64)
    lse = m[:, 0] + np.log(np.exp(eng.astype(np.float64) - m).sum(-1))
    lse_err = np.abs(lse - ref["lse_emu"])
    top1 = float((eng.argmax(-1) == ref["argmax_emu"]).mean())
    rep = (f"{label}: vs float max {err_f.max():.4g} mean {err_f.mean():.4g} | vs emulated max "
           f"{err_e.max():.4g} median {np.median(err_e):.4g} | logsumexp err {lse_err.max():.4g} | "
           f"top-1 {top1:.3f} over {len(err_f)} positions")
    fails = []
    if err_f.max() > tol.float_max:
        fails.append(f"float max {err_f.max():.4g} > {tol.float_max} at position {int(err_f.argmax())}")
    if tol.float_max_rest is not None and len(err_f) > 1 and err_f[1:].max() > tol.float_max_rest:
        fails.append(f"float max after position 0 {err_f[1:].max():.4g} > {tol.float_max_rest} "
                     f"at position {1 + int(err_f[1:].argmax())}")
    if err_f.mean() > tol.float_mean:
        fails.append(f"float mean {err_f.mean():.4g} > {tol.float_mean}")
    if err_e.max() > tol.emu_max:
        fails.append(f"emulated max {err_e.max():.4g} > {tol.emu_max} at position {int(err_e.argmax())}")
    if tol.emu_median is not None and np.median(err_e) > tol.emu_median:
        fails.append(f"emulated median {np.median(err_e):.4g} > {tol.emu_median}")
    if lse_err.max() > tol.emu_max:
        fails.append(f"logsumexp (whole vocabulary) off by {lse_err.max():.4g} > {tol.emu_max}")
    if top1 < tol.top1:
        bad = np.nonzero(eng.argmax(-1) != ref["argmax_emu"])[0].tolist()
        fails.append(f"top-1 agreement {top1:.3f} < {tol.top1} (positions {bad[:20]})")
    assert not fails, rep + "\n  " + "\n  ".join(fails)
    return rep, err_e


def top1_agreement(eng, ref, tie):
    """(raw, tie-aware) per-position booleans: the engine's argmax is the
    emulated reference's. Tie-aware also accepts a different choice whose
    reference logit is within tie of the reference maximum: when the
    reference's own noise floor (a differently rounded twin of it) moves
    logits by that much, either token is a correct answer."""
    am = eng.argmax(-1)
    raw = am == ref["argmax_emu"]
    hit = ref["top_ids"] == am[:, None]
    ref_at = np.where(hit.any(-1), np.where(hit, ref["top_emu"], -np.inf).max(-1), -np.inf)
    ok = raw | (ref_at >= ref["top_emu"].max(-1) - tie)
    return raw, ok


def check_greedy_forced(label, eng, n_prompt, want, gaps, tie):
    """Teacher-forced greedy: eng holds the engine's logits over prompt +
    want[:-1]; at every step i its argmax (row n_prompt - 1 + i) must be
    want[i] unless the reference was at a near-tie there. Unlike the free run
    this checks all steps, whatever happened at earlier ties. Returns the
    number of tie-exempt steps."""
    exempt, bad = 0, []
    for i, w in enumerate(want):
        got = int(eng[n_prompt - 1 + i].argmax())
        if got != w:
            if gaps[i] < tie:
                exempt += 1
            else:
                bad.append((i, got, w, round(float(gaps[i]), 3)))
    assert not bad, f"{label}: teacher-forced greedy differs at (step, engine, reference, gap) {bad}"
    return exempt


def check_greedy(label, got, want, gaps, tie, eos=()):
    """Greedy ids must equal the emulated reference's up to the first step
    where the reference itself was at a near-tie (top-1 minus top-2 logit
    below tie, the size of a rounding-flip event for this model): there, two
    exact implementations may legitimately pick different tokens, and after
    that the texts are unrelated. The engine may stop at an end-of-sequence
    token; then its ids must be a prefix ending there. Returns the number of
    steps compared."""
    got, want = list(got), list(want)
    if len(got) < len(want):
        assert got and got[-1] in eos, f"{label}: {len(got)} greedy ids, want {len(want)}"
    n = min(len(got), len(want))
    for i in range(n):
        if got[i] != want[i]:
            assert gaps[i] < tie, (
                f"{label}: greedy ids differ from the emulated reference at step {i}, where the "
                f"reference's top-2 gap is {gaps[i]:.3g} (>= near-tie {tie}):\n"
                f"  engine    {got}\n  reference {want}")
            return i
    return n


# ---------------------------------------------------------------------------
# stories260K: all seven files, reference computed live
# ---------------------------------------------------------------------------

STORIES = ["stories260K", "stories260K-F16", "stories260K-Q8_0", "stories260K-Q5_0",
           "stories260K-Q5_1", "stories260K-Q4_0", "stories260K-Q4_1"]

# BOS (1) + ids llama.cpp produced for these strings (shared reference file),
# and a longer one that continues "Once upon a time" with llama.cpp's greedy
# output, so positions run past the first KV blocks.
STORIES_PROMPTS = {
    "once": [1, 403, 407, 261, 378],
    "lily": [1, 410, 317, 269, 274, 287, 263, 377, 267, 265, 282, 295, 433, 426],
    "unicode": [1, 410, 231, 192, 163, 232, 168, 192, 242, 191, 132, 453, 420, 287, 307, 438, 412,
                446, 447, 426, 429, 339],
    "long": [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
             396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358,
             394, 261, 370, 432, 352, 266, 268, 388, 426],
}

# A 64-dimensional model: one activation that lands on the other side of an
# 8-bit rounding boundary (a 1-ulp difference in summation order decides it)
# moves the logits by up to ~0.3, and through the KV cache every later position
# too. The f64-accumulating twin of the emulated reference shows such events
# itself (0.26 on Q4_0 "long", median 0.065 on Q4_1 "long"). So per prompt only
# loose bounds hold; the tight check is per file: most positions (measured
# with STORIES_MODE: 78-100%) agree with the emulated reference to 1e-3 (mostly ~5e-6), which a
# wrong kernel or layer cannot do. Float mode: quantized files sit 0.13-0.33
# from it (that is the 8-bit activation error itself), F32/F16 0.015.
# The emulated reference accumulates its matmuls in f64 and rounds once: in
# f32, numpy's BLAS sums in an order that depends on the CPU's kernels (AVX2 vs
# AVX-512 hosts), which moves which activations land on a rounding boundary --
# on an AVX-512 host Q4_0 agreed at 48% in f32, 98% in f64. The engine's
# integer sums are exact, so the f64 twin is the host-independent reference.
STORIES_MODE = dataclasses.replace(F.EMULATED, f64_matmul=True, name="emulated-f64")
STORIES_TOL = Tol(float_max=0.6, float_mean=0.3, emu_max=0.6, emu_median=None, top1=0.0)
STORIES_EXACT = 1e-3          # "agrees up to rounding"
STORIES_EXACT_FRACTION = 0.5  # of all positions of a file's prompts
STORIES_TIE = 0.3             # a greedy step closer than this may go either way
STORIES_TOP1 = 0.97           # argmax agreement over all positions of a file


@pytest.fixture(scope="module")
def stories_models():
    return {}


def stories_reference(model: F.Model, ids):
    lf = model.logits(ids, F.FLOAT)
    le = model.logits(ids, STORIES_MODE)
    top = np.argsort(-lf, axis=-1, kind="stable")[:, :32]
    return {
        "top_ids": top,
        "top_float": np.take_along_axis(lf, top, axis=-1),
        "top_emu": np.take_along_axis(le, top, axis=-1),
        "argmax_emu": le.argmax(-1),
        "lse_float": F.logsumexp(lf),
        "lse_emu": F.logsumexp(le),
    }


@pytest.mark.parametrize("name", STORIES)
def test_stories260k_logits(hyperlama, name, tmp_path):
    path = SHARED / "models" / f"{name}.gguf"
    assert path.exists(), f"{path} missing (shared test data)"
    model = F.Model(path)
    reports, errs, agree = [], [], []
    for pname, ids in STORIES_PROMPTS.items():
        eng, _ = engine_logits(hyperlama, path, ids, tmp_path)
        ref = stories_reference(model, ids)
        rep, err = compare(f"{name} {pname}", eng, ref, STORIES_TOL)
        reports.append(rep)
        errs.append(err)
        agree.append(top1_agreement(eng, ref, STORIES_TIE)[0])
    exact = float((np.concatenate(errs) <= STORIES_EXACT).mean())
    top1 = float(np.mean(np.concatenate(agree)))
    reports.append(f"{name}: {exact:.0%} of positions within {STORIES_EXACT} of the emulated "
                   f"reference; top-1 agreement {top1:.3f}")
    print("\n".join(reports))
    assert exact >= STORIES_EXACT_FRACTION, "\n".join(reports)
    assert top1 >= STORIES_TOP1, "\n".join(reports)


@pytest.mark.parametrize("name", STORIES)
def test_stories260k_greedy(hyperlama, name, tmp_path):
    """40 greedy tokens after BOS + "Once upon a time" equal the emulated
    reference's for every file (llama.cpp, which also quantizes activations,
    produced the same 40 ids as that reference on all seven files)."""
    path = SHARED / "models" / f"{name}.gguf"
    ids = STORIES_PROMPTS["once"]
    _, got = engine_logits(hyperlama, path, ids, tmp_path, greedy=40)
    gaps: list[float] = []
    want = F.Model(path).greedy(ids, 40, STORIES_MODE, gaps=gaps)
    n = check_greedy(name, got, want, gaps, STORIES_TIE)
    eng, _ = engine_logits(hyperlama, path, ids + want[:-1], tmp_path)
    ex = check_greedy_forced(name, eng, len(ids), want, gaps, STORIES_TIE)
    print(f"{name}: free-running greedy identical for {n} of 40 steps"
          + ("" if n == 40 else f" (then a reference near-tie, gap {gaps[n]:.3g})")
          + f"; teacher-forced: every step agrees except {ex} near-ties")


# ---------------------------------------------------------------------------
# i-quants and MXFP4: files written by gguf-py (tests/reference/iqmodels.py)
# ---------------------------------------------------------------------------

# stories260K requantized to IQ4_NL / MXFP4 (32-element blocks), and a random
# 256-wide llama for the formats with 256-element blocks (IQ4_XS with integer
# kernels; the lattice i-quants, which the engine runs as dequantized rows
# times f32 activations). Criteria as for the stories260K files above.
IQ_STORIES = ["IQ4_NL", "MXFP4"]
IQ_WIDE = ["IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M"]


@pytest.fixture(scope="module")
def iq_files(tmp_path_factory):
    import iqmodels
    out = tmp_path_factory.mktemp("iq")
    made = {}

    def get(qname):
        if qname not in made:
            qt = iqmodels.QT[qname]
            src = SHARED / "models" / "stories260K.gguf"
            if qname in IQ_STORIES:
                made[qname] = iqmodels.requantized(src, out / f"stories260K-{qname}.gguf", qt)
            else:
                made[qname] = iqmodels.widened(src, out / f"wide-{qname}.gguf", qt)
        return made[qname]
    return get


def check_file_logits(hyperlama, path, prompts, tmp_path):
    model = F.Model(path)
    reports, errs, agree = [], [], []
    for pname in prompts:
        ids = STORIES_PROMPTS[pname]
        eng, _ = engine_logits(hyperlama, path, ids, tmp_path)
        ref = stories_reference(model, ids)
        rep, err = compare(f"{path.name} {pname}", eng, ref, STORIES_TOL)
        reports.append(rep)
        errs.append(err)
        agree.append(top1_agreement(eng, ref, STORIES_TIE)[0])
    exact = float((np.concatenate(errs) <= STORIES_EXACT).mean())
    top1 = float(np.mean(np.concatenate(agree)))
    reports.append(f"{path.name}: {exact:.0%} of positions within {STORIES_EXACT} of the emulated reference; "
                   f"top-1 agreement {top1:.3f}")
    print("\n".join(reports))
    assert exact >= STORIES_EXACT_FRACTION, "\n".join(reports)
    assert top1 >= STORIES_TOP1, "\n".join(reports)


@pytest.mark.parametrize("qname", IQ_STORIES + IQ_WIDE)
def test_iquant_logits(hyperlama, iq_files, qname, tmp_path):
    prompts = list(STORIES_PROMPTS) if qname in IQ_STORIES else ["long"]
    check_file_logits(hyperlama, iq_files(qname), prompts, tmp_path)


@pytest.mark.parametrize("qname", IQ_STORIES)
def test_iquant_greedy(hyperlama, iq_files, qname, tmp_path):
    """stories260K in IQ4_NL / MXFP4 still tells the reference's story."""
    path = iq_files(qname)
    ids = STORIES_PROMPTS["once"]
    _, got = engine_logits(hyperlama, path, ids, tmp_path, greedy=40)
    gaps: list[float] = []
    want = F.Model(path).greedy(ids, 40, STORIES_MODE, gaps=gaps)
    n = check_greedy(qname, got, want, gaps, STORIES_TIE)
    print(f"{qname}: greedy identical to the emulated reference for {n} of 40 steps")


# ---------------------------------------------------------------------------
# SmolLM2-135M Q4_1, Qwen2.5-Coder-1.5B Q4_K_M, Gemma-3-270M Q4_K_M: committed fixtures
# ---------------------------------------------------------------------------

# See docs/testing.md for the measurements behind these numbers. Per prompt:
# Tol bounds; per model: top-1 agreement over all positions of all prompts;
# tie: the greedy near-tie threshold (check_greedy).
BIG = {
    # emulated noise floor (twin): median 0.47, max 1.38; engine observed:
    # median 0.29-0.52, max 1.32; float: max 2.26, mean 0.29-0.59
    "smollm2": dict(file="smollm2-135m-instruct-q4_1.gguf", tie=1.0, top1=0.99, top1_raw=0.95,
                    tol=Tol(float_max=4.0, float_mean=1.5, emu_max=3.0, emu_median=1.0, top1=0.0)),
    # twin: median 0.22, max 0.43; engine: median 0.20-0.22, max 0.53; float:
    # 15.3 at position 0 (massive first-token activations), after it max 0.50,
    # mean 0.54-0.83 (0.19-0.27 without position 0)
    "qwen2.5-coder": dict(file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", tie=1.0, top1=0.99, top1_raw=0.95,
                          tol=Tol(float_max=20.0, float_mean=1.5, emu_max=1.0, emu_median=0.5, top1=0.0,
                                  float_max_rest=1.5)),
    # the 0.5B draft model (same family and quantization): engine observed: see docs/testing.md
    "qwen2.5-coder-0.5b": dict(file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", tie=1.0, top1=0.99, top1_raw=0.95,
                               tol=Tol(float_max=20.0, float_mean=1.5, emu_max=1.0, emu_median=0.5, top1=0.0,
                                       float_max_rest=1.5)),
    # twin: median 0.39-0.46, max 2.0; engine: median 0.36-0.60, max 2.18
    # (logsumexp 1.85); float: 4.41 at position 1 of the chat prompts (the
    # <start_of_turn> after <bos>; float vs emulated differ by 4.4 there), mean
    # 0.42-1.0. Raw top-1: the twin itself misses 5 of 72 argmaxes (all at gaps
    # <= 0.11), the engine 5 (gaps <= 0.21), so 0.95 would fail on noise alone.
    "gemma3": dict(file="gemma-3-270m-q4_k_m.gguf", tie=1.0, top1=0.99, top1_raw=0.90,
                   tol=Tol(float_max=8.0, float_mean=2.0, emu_max=4.0, emu_median=1.2, top1=0.0)),
}


def load_fixture(key):
    path = FIXTURES / f"{key}.npz"
    assert path.exists(), f"{path} missing: run scripts/reference/gen_fixtures.py {key}"
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    prompts = []
    for p in meta["prompts"]:
        d = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(p["name"] + "/")}
        prompts.append((p, d))
    return meta, prompts


def _big_cases():
    out = []
    for key in BIG:
        try:
            _, prompts = load_fixture(key)
            names = [p["name"] for p, _ in prompts]
        except AssertionError:
            names = ["missing-fixture"]
        out += [(key, n) for n in names]
    return out


@pytest.mark.parametrize("key", list(BIG))
def test_big_model_logits(hyperlama, key, tmp_path):
    spec = BIG[key]
    meta, prompts = load_fixture(key)
    assert meta["model"] == spec["file"]
    path = model_path(spec["file"])
    reports, agree, tied = [], [], []
    for info, ref in prompts:
        eng, _ = engine_logits(hyperlama, path, ref["ids"].tolist(), tmp_path)
        rep, _ = compare(f"{key} {info['name']}", eng, ref, spec["tol"])
        reports.append(rep)
        raw, ok = top1_agreement(eng, ref, spec["tie"])
        agree.append(raw)
        tied.append(ok)
    top1, top1_tie = float(np.mean(np.concatenate(agree))), float(np.mean(np.concatenate(tied)))
    reports.append(f"{key}: top-1 agreement with the emulated reference {top1:.3f} "
                   f"({top1_tie:.3f} counting near-ties within {spec['tie']}) "
                   f"over {len(np.concatenate(agree))} positions")
    print("\n".join(reports))
    assert top1_tie >= spec["top1"], "\n".join(reports)
    assert top1 >= spec["top1_raw"], "\n".join(reports)


@pytest.mark.parametrize("key,prompt", _big_cases())
def test_big_model_greedy(hyperlama, key, prompt, tmp_path):
    spec = BIG[key]
    _, prompts = load_fixture(key)
    info, ref = next((p, d) for p, d in prompts if p["name"] == prompt)
    path = model_path(spec["file"])
    n_greedy = int(info["n_greedy"])
    _, got = engine_logits(hyperlama, path, ref["ids"].tolist(), tmp_path, greedy=n_greedy)
    ids, want, gaps = ref["ids"].tolist(), ref["greedy_emu"].tolist(), ref["greedy_emu_gap"].tolist()
    n = check_greedy(f"{key} {prompt}", got, want, gaps, spec["tie"], eos=tuple(info.get("eos", ())))
    eng, _ = engine_logits(hyperlama, path, ids + want[:-1], tmp_path)
    ex = check_greedy_forced(f"{key} {prompt}", eng, len(ids), want, gaps, spec["tie"])
    print(f"{key} {prompt}: free-running greedy identical for {n} of {n_greedy} steps"
          + ("" if n == n_greedy else f" (then a reference near-tie, gap {gaps[n]:.3g})")
          + f"; teacher-forced: every step agrees except {ex} near-ties")


@pytest.mark.parametrize("key", list(BIG))
def test_fixture_prompts_tokenize_independently(key):
    """The stored ids are what Hugging Face `tokenizers`, built from the GGUF's
    vocabulary, makes of the stored text (guards fixtures against drift)."""
    import hf_tokenizer as H
    _, prompts = load_fixture(key)
    tok, _ = H.from_gguf(model_path(BIG[key]["file"]))
    for info, ref in prompts:
        assert H.encode(tok, info["text"]) == ref["ids"].tolist(), info["name"]


# ---------------------------------------------------------------------------
# the comparison can fail
# ---------------------------------------------------------------------------

def test_compare_rejects_wrong_logits():
    """A reference compared with itself passes; perturbed like a real bug
    would (a swapped RoPE style, a wrong scale) it must not."""
    model = F.Model(SHARED / "models" / "stories260K-Q8_0.gguf")
    ids = STORIES_PROMPTS["long"]
    ref = stories_reference(model, ids)
    compare("self", model.logits(ids, F.EMULATED), ref, STORIES_TOL)

    class NeoxModel(F.Model):  # the classic llama/qwen2 RoPE mix-up
        def __init__(self, p):
            super().__init__(p)
            self.hp.rope_neox = True
    wrong = NeoxModel(SHARED / "models" / "stories260K-Q8_0.gguf").logits(ids, F.EMULATED)
    with pytest.raises(AssertionError):
        compare("neox", wrong, ref, STORIES_TOL)
    with pytest.raises(AssertionError):
        compare("scaled", model.logits(ids, F.EMULATED) * 1.05, ref, STORIES_TOL)
    # a small systematic error (here: unquantized activations, i.e. the float
    # reference) passes the loose per-prompt bounds but not the per-file
    # "agrees up to rounding" fraction
    _, err = compare("float", model.logits(ids, F.FLOAT), ref, STORIES_TOL)
    assert (err <= STORIES_EXACT).mean() < STORIES_EXACT_FRACTION
    with pytest.raises(AssertionError):
        check_greedy("g", [1, 2, 3], [1, 2, 4], [5.0, 5.0, 5.0], STORIES_TIE)
    assert check_greedy("g", [1, 2, 3], [1, 2, 4], [5.0, 5.0, 0.01], STORIES_TIE) == 2


def _llamacpp_greedy():
    """{file name: greedy ids} from the shared llama.cpp reference file."""
    out, cur = {}, None
    for line in (SHARED / "models" / "stories260K-llamacpp-reference.txt").read_text().splitlines():
        if line.startswith("## "):
            cur = line.split()[1].removesuffix(".gguf")
        elif line.startswith("greedy ids:") and cur:
            out[cur] = json.loads(line.split(":", 1)[1])
    return out


@pytest.mark.parametrize("name", STORIES)
def test_reference_matches_llamacpp(name):
    """The emulated reference itself against a third implementation: llama.cpp
    (which also quantizes activations) produced these 40 greedy ids. GGML
    rounds Q8_1's block sum from the unrounded scale, our engine from the f16
    one; on Q5_1 that flips a near-tie, so there the reference runs with an
    unrounded sum (q8_1_sum_f16 off), which is equal to GGML's up to f16."""
    want = _llamacpp_greedy()[name]
    mode = F.EMULATED if name != "stories260K-Q5_1" else dataclasses.replace(F.EMULATED, q8_1_sum_f16=False)
    got = F.Model(SHARED / "models" / f"{name}.gguf").greedy(STORIES_PROMPTS["once"], 40, mode)
    assert got == want
