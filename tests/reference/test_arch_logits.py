"""Each architecture against transformers: the tiny random-weight fixtures of
tests/data/arch/ (made by tests/reference/make_arch_fixtures.py, which also
wrote transformers' logits beside them) run through `hyperlama logits` on
the CPU backend, the scalar reference backend and the Vulkan backend
(HYPERLAMA_VULKAN_DEVICE, default device 0: lavapipe in CI), which runs
every fixture (softcaps, residual and logit scales, LongRoPE's magnitude
scale included); VULKAN_REFUSES lists what it must refuse by name, if any.

Asserted, per fixture and weight type, over every position of three token
sequences: max |logit - transformers' logit| within the tolerance, the same
top-1 token wherever transformers' top-2 margin exceeds twice that
tolerance, and the same 8-token greedy continuation (the generator picked
weights whose greedy steps have margins >= 0.05).

The tight reference is transformers with K and V rounded to f16 after rope
(the engine's KV cache; everything else float32): F32 weights 1e-3, F16
weights 3e-3 (measured: 1e-5 typical, 4e-4 worst, phi3 apart: see TOL_ARCH).
With F32 weights the logits are also compared with plain transformers
within 2e-2 (measured up to 9.6e-3 on logits of magnitude 15: the f16 KV
rounding).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from hltest import HYPERLAMA, ROOT

DATA = ROOT / "tests" / "data" / "arch"
NAMES = ["llama", "llama3", "llama_yarn", "mistral", "qwen3", "gemma2", "phi3", "phi4mini", "olmo2", "granite",
         "qwen3moe", "qwen2moe", "mixtral", "olmoe"]
TOL = {"F32": 1e-3, "F16": 3e-3}
# phi3 folds LongRoPE's attn_factor into the score scale, so its cached K is
# k rounded to f16, where transformers' is (k * factor) rounded: a rounding
# difference of f16's order that the emulated reference cannot remove
TOL_ARCH = {"phi3": {"F32": 6e-3, "F16": 1e-2}}
RAW_TOL = 2e-2  # against plain transformers (K/V unrounded), F32 weights
# LongRoPE's long factors on a sequence past the original context (F32): phi3's
# folded attention factor (above) over 80 positions, measured 9.6e-3 at worst,
# 2.1e-3 on average (cpu, ref and vulkan alike); phi4mini, whose factor the
# rope applies, 2.2e-4 within TOL. Without the long factors: 6.3 and 17.7.
LONG_TOL = {"phi3": 1.5e-2}
BACKENDS = ["cpu", "ref", "vulkan"]
# what the Vulkan backend refuses (the op it names), asserted as a clear error:
# nothing since it has MOE, attention sinks and the clamped SwiGLU (gpt-oss)
VULKAN_REFUSES: dict[str, str] = {}
# gpt-oss (tests/reference/make_gptoss_fixture.py): F32, and MXFP4 experts
# whose reference is transformers on the dequantized weights. The engine
# multiplies MXFP4 by Q8_0-rounded activations, and this fixture's experts
# (a spread that reaches the clamp) amplify that rounding: measured mean
# |diff| 0.02-0.08 per sequence and one router flip (2.4 at a position whose
# top-2 margin is 0.4); a numpy emulation of the Q8_0 rounding shows the same.
# So MXFP4 is held to the mean, the greedy continuation and top-1 where the
# margin exceeds MXFP4_MARGIN, and the same file dequantized to F32 to TOL.
MXFP4_MEAN_TOL = 0.15
MXFP4_MARGIN = 0.5


@pytest.fixture(scope="module")
def f16_files(tmp_path_factory):
    """NAME-F16.gguf: the committed F32 file with every matrix rounded to F16
    (IEEE round to nearest even, as the generator rounded transformers'
    weights for the F16 reference), written at test time to keep the
    committed fixtures small."""
    d = tmp_path_factory.mktemp("arch-f16")
    to_f16 = {"*": lambda a: a.astype(np.float16) if a.ndim >= 2 else a}  # matrices and 3-D expert tensors
    for n in NAMES:
        copy_without(DATA / f"{n}-F32.gguf", d / f"{n}-F16.gguf", {"general.file_type"}, to_f16)
    return d


@pytest.fixture(scope="module")
def exe():
    p = pathlib.Path(os.environ.get("HL_HYPERLAMA_BIN", HYPERLAMA))
    if not p.exists():
        pytest.fail(f"{p} not built: run make")
    return p


def backend_arg(backend):
    # lavapipe in CI: a CPU device, so named by index (plain "vulkan" skips CPU devices)
    return f"vulkan:{os.environ.get('HYPERLAMA_VULKAN_DEVICE', '0')}" if backend == "vulkan" else backend


def run_cmd(exe, model, ids, backend, out, greedy=0, num_ctx=None):
    cmd = [str(exe), "logits", str(model), "--tokens", ",".join(map(str, ids)), "--all", "--out", str(out),
           "--backend", backend_arg(backend)]
    if greedy:
        cmd += ["--greedy", str(greedy)]
    if num_ctx:
        cmd += ["--num-ctx", str(num_ctx)]
    return cmd, subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def run_logits(exe, model, ids, backend, tmp_path, greedy=0, num_ctx=None):
    out = tmp_path / "logits.bin"
    cmd, r = run_cmd(exe, model, ids, backend, out, greedy, num_ctx)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}"
    raw = out.read_bytes()
    n_rows, n_vocab = (int(v) for v in np.frombuffer(raw[:8], np.int32))
    lg = np.frombuffer(raw[8:], np.float32).reshape(n_rows, n_vocab)
    gen = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("[")][-1]) if greedy else None
    return lg, gen


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wtype", ["F32", "F16"])
@pytest.mark.parametrize("name", NAMES)
def test_arch_matches_transformers(exe, f16_files, tmp_path, name, wtype, backend):
    ref = np.load(DATA / f"{name}.npz")
    seqs = json.loads(str(ref["seqs"]))
    tol = TOL_ARCH.get(name, TOL)[wtype]
    model = DATA / f"{name}-F32.gguf" if wtype == "F32" else f16_files / f"{name}-F16.gguf"
    if backend == "vulkan" and name in VULKAN_REFUSES:
        _, r = run_cmd(exe, model, seqs[0], backend, tmp_path / "logits.bin")
        assert r.returncode != 0 and VULKAN_REFUSES[name] in r.stderr and "Vulkan" in r.stderr, \
            f"expected the Vulkan backend to refuse {name} naming {VULKAN_REFUSES[name]}:\n{r.stderr[-2000:]}"
        return
    fails = []
    # LongRoPE: transformers rotates these short sequences by the short
    # factors, which the engine uses within the original context
    num_ctx = int(ref["orig_ctx"]) if "orig_ctx" in ref else None
    for i, ids in enumerate(seqs):
        want = ref[f"logits_f32_{i}"].astype(np.float32)
        if wtype == "F16":
            want = want + ref[f"delta_f16_{i}"].astype(np.float32)
        got, gen = run_logits(exe, model, ids, backend, tmp_path, greedy=len(ref["greedy_f32"]) if i == 0 else 0,
                              num_ctx=num_ctx)
        assert got.shape == want.shape, f"seq {i}: shape {got.shape}, transformers {want.shape}"
        err = np.abs(got - want).max(axis=-1)
        if err.max() > tol:
            fails.append(f"seq {i}: max |diff| {err.max():.3g} > {tol} at position {int(err.argmax())} "
                         f"(per position: {np.round(err, 4).tolist()})")
        if wtype == "F32":  # plain transformers, its K/V unrounded
            raw = ref[f"logits_f32_{i}"].astype(np.float32) + ref[f"raw_delta_f32_{i}"].astype(np.float32)
            raw_err = np.abs(got - raw).max()
            if raw_err > RAW_TOL:
                fails.append(f"seq {i}: max |diff| from plain transformers {raw_err:.3g} > {RAW_TOL}")
        srt = np.sort(want, axis=-1)
        clear = (srt[:, -1] - srt[:, -2]) > 2 * tol
        bad = np.nonzero(clear & (got.argmax(-1) != want.argmax(-1)))[0]
        if len(bad):
            fails.append(f"seq {i}: top-1 differs at positions {bad.tolist()}")
        if gen is not None:
            want_gen = ref[f"greedy_{wtype.lower()}"].tolist()
            if gen != want_gen:
                fails.append(f"greedy continuation {gen}, transformers {want_gen}")
    assert not fails, f"{name} {wtype} on {backend}:\n" + "\n".join(fails)


def dequantized_mxfp4(src, dst):
    """src with its MXFP4 tensors dequantized to F32 by gguf.quants."""
    import gguf
    r = gguf.GGUFReader(str(src))
    Q = gguf.GGMLQuantizationType.MXFP4
    deq = {t.name: (lambda a, t=t: gguf.quants.dequantize(a, Q).reshape([int(v) for v in reversed(t.shape.tolist())])
                    .astype(np.float32)) for t in r.tensors if t.tensor_type == Q}
    assert deq, f"{src} has no MXFP4 tensors"
    copy_without(src, dst, {"general.file_type"}, deq)


# the dequantized file proves the MXFP4 layout once, on cpu
GPTOSS_CASES = [(w, b) for w in ("F32", "MXFP4") for b in BACKENDS] + [("MXFP4-dequantized", "cpu")]


@pytest.mark.parametrize("wtype,backend", GPTOSS_CASES)
def test_gptoss_matches_transformers(exe, tmp_path, wtype, backend):
    ref = np.load(DATA / "gptoss.npz")
    seqs = json.loads(str(ref["seqs"]))
    tag = "f32" if wtype == "F32" else "mxfp4"
    model = DATA / f"gptoss-{tag.upper()}.gguf"
    if wtype == "MXFP4-dequantized":
        model = tmp_path / "gptoss-deq.gguf"
        dequantized_mxfp4(DATA / "gptoss-MXFP4.gguf", model)
    if backend == "vulkan" and "gptoss" in VULKAN_REFUSES:
        _, r = run_cmd(exe, model, seqs[0], backend, tmp_path / "logits.bin")
        assert r.returncode != 0 and VULKAN_REFUSES["gptoss"] in r.stderr and "Vulkan" in r.stderr, \
            f"expected the Vulkan backend to refuse gptoss naming {VULKAN_REFUSES['gptoss']}:\n{r.stderr[-2000:]}"
        return
    loose = wtype == "MXFP4"
    tol = TOL["F32"]
    fails = []
    for i, ids in enumerate(seqs):
        want = ref[f"logits_{tag}_{i}"].astype(np.float32)
        got, gen = run_logits(exe, model, ids, backend, tmp_path, greedy=len(ref[f"greedy_{tag}"]) if i == 0 else 0)
        assert got.shape == want.shape, f"seq {i}: shape {got.shape}, transformers {want.shape}"
        err = np.abs(got - want)
        if loose and err.mean() > MXFP4_MEAN_TOL:
            fails.append(f"seq {i}: mean |diff| {err.mean():.3g} > {MXFP4_MEAN_TOL}")
        if not loose:
            if err.max() > tol:
                fails.append(f"seq {i}: max |diff| {err.max():.3g} > {tol} (per position: "
                             f"{np.round(err.max(-1), 4).tolist()})")
            raw = want + ref[f"raw_delta_{tag}_{i}"].astype(np.float32)
            if np.abs(got - raw).max() > RAW_TOL:
                fails.append(f"seq {i}: max |diff| from plain transformers {np.abs(got - raw).max():.3g} > {RAW_TOL}")
        srt = np.sort(want, axis=-1)
        clear = (srt[:, -1] - srt[:, -2]) > (MXFP4_MARGIN if loose else 2 * tol)
        bad = np.nonzero(clear & (got.argmax(-1) != want.argmax(-1)))[0]
        if len(bad):
            fails.append(f"seq {i}: top-1 differs at positions {bad.tolist()}")
        if gen is not None and gen != ref[f"greedy_{tag}"].tolist():
            fails.append(f"greedy continuation {gen}, transformers {ref[f'greedy_{tag}'].tolist()}")
    assert not fails, f"gptoss {wtype} on {backend}:\n" + "\n".join(fails)


def copy_without(src, dst, drop, tensors=None):
    """src rewritten by the gguf package's writer without the keys in drop;
    tensors maps a tensor name (or "*": every tensor) to a function of its
    array returning the array to write, of any dtype (None: drop it)."""
    import gguf
    r = gguf.GGUFReader(str(src))
    arch = str(bytes(r.fields["general.architecture"].parts[-1]), "utf-8")
    w = gguf.GGUFWriter(str(dst), arch)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture" or k in drop:
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                val = [str(bytes(f.parts[i]), "utf-8") for i in f.data]
            else:
                val = [f.parts[i][0].item() for i in f.data]
            w.add_array(k, val)
        elif vt == gguf.GGUFValueType.STRING:
            w.add_string(k, str(bytes(f.parts[-1]), "utf-8"))
        else:
            w.add_key_value(k, f.parts[-1][0].item(), vt)
    for t in r.tensors:
        data = np.array(t.data)
        fn = (tensors or {}).get(t.name, (tensors or {}).get("*", lambda a: a))
        if fn is None:
            continue
        new = fn(data)
        w.add_tensor(t.name, new, raw_dtype=t.tensor_type if new.dtype == data.dtype else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["phi3", "phi4mini"])
def test_longrope_long_context_matches_transformers(exe, tmp_path, name, backend):
    """A context beyond LongRoPE's original one rotates by the long factors
    (rope_factors_long): a sequence 16 tokens past the original context, run
    with num_ctx = the model's context, matches transformers on it (which
    switches to the long factors for a sequence that long) at every
    position, those beyond the original context included; the same file
    without rope_factors_long (so the short factors) does not."""
    ref = np.load(DATA / f"{name}.npz")
    ids = json.loads(str(ref["long_seq"]))
    orig, n_ctx = int(ref["orig_ctx"]), int(ref["n_ctx_train"])
    assert len(ids) > orig
    model = DATA / f"{name}-F32.gguf"
    want = ref["long_logits_f32"].astype(np.float32)
    tol = LONG_TOL.get(name, TOL["F32"])
    got, _ = run_logits(exe, model, ids, backend, tmp_path, num_ctx=n_ctx)
    err = np.abs(got - want).max(axis=-1)
    assert err.max() <= tol, f"max |diff| {err.max():.3g} > {tol} at position {int(err.argmax())} (orig {orig})"
    srt = np.sort(want, axis=-1)
    clear = (srt[:, -1] - srt[:, -2]) > 2 * tol
    assert not np.any(clear & (got.argmax(-1) != want.argmax(-1))), "top-1 differs"
    # the factors matter here: without rope_factors_long the same run keeps the short ones and misses
    short = tmp_path / f"{name}-no-long.gguf"
    copy_without(model, short, set(), {"rope_factors_long.weight": None})
    off, _ = run_logits(exe, short, ids, backend, tmp_path, num_ctx=n_ctx)
    assert np.abs(off - want).max() > 10 * tol, "the short factors give the same logits: the long ones are not tested"


def test_phi3_attn_factor_defaults_from_the_context_lengths(exe, tmp_path):
    """Without rope.scaling.attn_factor, LongRoPE's factor comes from
    context_length / original_context_length as transformers computes it:
    the same logits as the file that states it."""
    src = DATA / "phi3-F32.gguf"
    bare = tmp_path / "phi3-bare.gguf"
    copy_without(src, bare, {"phi3.rope.scaling.attn_factor"})
    ids = json.loads(str(np.load(DATA / "phi3.npz")["seqs"]))[1]
    want, _ = run_logits(exe, src, ids, "cpu", tmp_path)
    got, _ = run_logits(exe, bare, ids, "cpu", tmp_path)
    assert np.array_equal(got, want)
    # and the key matters: without original_context_length there is no factor
    flat = tmp_path / "phi3-flat.gguf"
    copy_without(src, flat, {"phi3.rope.scaling.attn_factor", "phi3.rope.scaling.original_context_length"})
    off, _ = run_logits(exe, flat, ids, "cpu", tmp_path)
    assert np.abs(off - want).max() > 0.05


@pytest.mark.parametrize("case,tensors,message", [
    ("missing qkv", {"blk.1.attn_qkv.weight": None}, "tensor blk.1.attn_qkv.weight is missing"),
    ("short qkv", {"blk.0.attn_qkv.weight": lambda a: a[:-8]}, "tensor blk.0.attn_qkv.weight has shape [32, 56], expected [32, 64]"),
    ("odd gate+up", {"blk.0.ffn_up.weight": lambda a: a[:-1]}, "tensor blk.0.ffn_up.weight has shape [32, 127], expected [32, 128]"),
    ("zero long factor", {"rope_factors_long.weight": lambda a: a * 0}, "rope_factors_long.weight[0] = 0 is not a positive number"),
])
def test_phi3_malformed_fused_tensors_are_refused(exe, tmp_path, case, tensors, message):
    bad = tmp_path / "phi3-bad.gguf"
    copy_without(DATA / "phi3-F32.gguf", bad, set(), tensors)
    _, r = run_cmd(exe, bad, [1, 2, 3], "cpu", tmp_path / "x.bin")
    assert r.returncode != 0 and message in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("case,drop,tensors,message", [
    ("missing router", set(), {"blk.1.ffn_gate_inp.weight": None}, "tensor blk.1.ffn_gate_inp.weight is missing"),
    ("one expert short", set(), {"blk.0.ffn_up_exps.weight": lambda a: a[:-1]},
     "tensor blk.0.ffn_up_exps.weight has shape [32, 32, 7], expected [32, 32, 8]"),
    ("no expert count", {"qwen2moe.expert_count"}, None, "model metadata lacks qwen2moe.expert_count"),
    ("shared expert gate too short", set(), {"blk.0.ffn_gate_inp_shexp.weight": lambda a: a[:-1]},
     "tensor blk.0.ffn_gate_inp_shexp.weight has shape [31], expected [32]"),
])
def test_moe_malformed_tensors_are_refused(exe, tmp_path, case, drop, tensors, message):
    bad = tmp_path / "qwen2moe-bad.gguf"
    copy_without(DATA / "qwen2moe-F32.gguf", bad, drop, tensors)
    _, r = run_cmd(exe, bad, [1, 2, 3], "cpu", tmp_path / "x.bin")
    assert r.returncode != 0 and message in r.stderr, r.stderr[-2000:]
