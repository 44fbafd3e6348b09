"""`FROM ./dir` imports a Hugging Face checkpoint (src/store/convert*.c,
safetensors.c), checked against independent references:

- logits at every position of the prompts and 8-token greedy continuations
  against transformers' own (tests/data/hf/*/reference.json, written by
  tests/reference/make_hf_fixtures.py from the same files; CI has no torch);
- our tokenizer on the converted GGUF against HF `tokenizers` on the
  directory's tokenizer.json;
- the GGUF's tensors and keys read back with the `gguf` package against the
  SafeTensors values (Q/K of llama permuted as GGUF llama expects);
- broken directories fail with a clear message and leave the store as it was.

Tolerance: the engine keeps the KV cache in F16 and the reference runs F32,
so logits differ by rounding: max |engine - transformers| over every logit of
every position <= 0.03 for F32 weights (llama, observed ~0.018), <= 0.08 for
F16 weights (qwen2 and gemma3, observed ~0.04 and ~0.046; gemma3's prompts
cross its 8-token sliding window) and <= 0.03 for BF16 weights (qwen3,
observed ~0.005); the reference runs F32 on the same rounded weights, logits
are O(8); argmax equal at every position.
"""
import json
import pathlib
import re
import shutil
import struct

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HF = ROOT / "tests" / "data" / "hf"
TOL = {"llama": 0.03, "qwen2": 0.08, "qwen3": 0.03, "gemma3": 0.08}
TEXTS = ["Hello world, this is a test.", "numbers 1234567 and    spaces\n\n\ttabs", "ünïcödé — 日本語 🙂",
         "<|im_start|>user\nhi<|im_end|>", "don't WE'LL it's"]


def model_file(hl, name):
    out = hl("show", name, "--modelfile").stdout
    return pathlib.Path(re.search(r"^FROM (\S+)$", out, re.M).group(1))


def engine_logits(hl, path, ids, tmp_path, greedy):
    out = tmp_path / "logits.bin"
    r = hl("logits", path, "--tokens", ",".join(map(str, ids)), "--all", "--out", out, "--greedy", greedy)
    raw = out.read_bytes()
    n, v = (int(x) for x in np.frombuffer(raw[:8], np.int32))
    gen = json.loads([ln for ln in r.stdout.splitlines() if ln.strip().startswith("[")][-1])
    return np.frombuffer(raw[8:], np.float32).reshape(n, v), gen


def gdata(t):
    """A GGUF float tensor's values as float32 (gguf-py hands BF16 out raw)."""
    import gguf
    a = np.asarray(t.data)
    if t.tensor_type == gguf.GGMLQuantizationType.BF16:
        return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(a.shape[:-1] + (-1,))
    return a.astype(np.float32)


def create_dir(hl, tmp_path, name, d, *extra, check=True):
    mf = tmp_path / f"Modelfile.{name}"
    mf.write_text(f"FROM {d}\n")
    return hl("create", name, "-f", mf, *extra, check=check)


def test_import_hf_archs(hl, tmp_path):
    from tokenizers import Tokenizer
    import gguf

    for arch in ("llama", "qwen2", "qwen3", "gemma3"):
        d = HF / arch
        r = create_dir(hl, tmp_path, f"hf-{arch}", d)
        assert "converting" in r.stdout + r.stderr
        path = model_file(hl, f"hf-{arch}")
        ref = json.loads((d / "reference.json").read_text())
        for case in ref["cases"]:
            lg, gen = engine_logits(hl, path, case["ids"], tmp_path, len(case["greedy"]))
            want = np.array(case["logits"], np.float32)
            assert lg.shape == want.shape
            err = np.abs(lg - want).max()
            assert err <= TOL[arch], f"{arch} {case['text']!r}: max logit error {err:.4g} > {TOL[arch]}"
            assert (lg.argmax(-1) == want.argmax(-1)).all()
            assert gen == case["greedy"], f"{arch}: greedy {gen} != transformers {case['greedy']}"
        # tokenizer: ours on the converted GGUF == HF tokenizers on tokenizer.json
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        for text in TEXTS:
            ours = json.loads(hl("tokenize", path, text).stdout)
            assert ours == tok.encode(text, add_special_tokens=False).ids, f"{arch}: {text!r}"
        # BOS as HF adds it (llama: the post-processor's template; the others: none)
        text = TEXTS[0]
        assert json.loads(hl("tokenize", path, text, "--add-special").stdout) == tok.encode(text).ids, arch
        # tensors and keys read back independently
        g = gguf.GGUFReader(str(path))
        kv = {f.name: f for f in g.fields.values()}
        assert bytes(kv["general.architecture"].parts[-1]).decode() == arch
        assert bytes(kv["tokenizer.ggml.pre"].parts[-1]).decode() == {"llama": "llama-bpe"}.get(arch, "qwen2")
        assert bytes(kv["tokenizer.chat_template"].parts[-1]).decode() == json.loads(
            (d / "tokenizer_config.json").read_text())["chat_template"]
        st = {}
        for f in sorted(d.glob("*.safetensors")):
            st.update(load_file(str(f)))
        gt = {t.name: t for t in g.tensors}
        cfg = json.loads((d / "config.json").read_text())
        hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        q = gdata(gt["blk.1.attn_q.weight"])
        hf_q = st["model.layers.1.self_attn.q_proj.weight"].astype(np.float32)
        if arch == "llama":  # GGUF llama: rotary pairs interleaved within each head
            n = cfg["num_attention_heads"]
            hf_q = hf_q.reshape(n, 2, hd // 2, -1).swapaxes(1, 2).reshape(hf_q.shape)
        np.testing.assert_array_equal(q, hf_q)
        np.testing.assert_array_equal(gdata(gt["blk.0.ffn_down.weight"]),
                                      st["model.layers.0.mlp.down_proj.weight"].astype(np.float32))
        assert gt["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
        want_norm = st["model.norm.weight"].astype(np.float32) + (1 if arch == "gemma3" else 0)  # Gemma: (1 + w)
        np.testing.assert_array_equal(gdata(gt["output_norm.weight"]), want_norm)
        assert ("output.weight" in gt) == (not cfg["tie_word_embeddings"])
    # --quantize goes through the requantizer: Q8_0 matrices, still the same model
    create_dir(hl, tmp_path, "hf-q8", HF / "llama", "--quantize", "q8_0")
    g = gguf.GGUFReader(str(model_file(hl, "hf-q8")))
    assert {t.tensor_type for t in g.tensors if t.name.endswith("attn_q.weight")} == {gguf.GGMLQuantizationType.Q8_0}
    case = json.loads((HF / "llama" / "reference.json").read_text())["cases"][0]
    lg, _ = engine_logits(hl, model_file(hl, "hf-q8"), case["ids"], tmp_path, 1)
    # Q8_0 rounds each weight to its block's scale (max |w| / 127): dequantized
    # by gguf-py, ffn_down is the HF tensor within half a step (+ 127 x the f16 scale's
    # rounding); the logits stay close (observed ~0.6 on logits of O(8); the
    # random fixture has near-ties, so the argmax is not compared)
    from gguf.quants import dequantize
    t = {x.name: x for x in g.tensors}["blk.0.ffn_down.weight"]
    deq = dequantize(np.asarray(t.data), t.tensor_type).reshape(-1, 32)
    hf = np.concatenate([np.asarray(v) for f in sorted((HF / "llama").glob("*.safetensors"))
                         for k, v in load_file(f).items() if k == "model.layers.0.mlp.down_proj.weight"]).reshape(-1, 32)
    step = np.abs(hf).max(-1, keepdims=True) / 127
    assert (np.abs(deq - hf) <= step * (0.5 + 127 * 2.0**-11) + 1e-7).all()  # half a step + f16 scale error
    assert np.abs(lg - np.array(case["logits"])).max() < 1.2


def load_file(path):
    """SafeTensors -> {name: numpy array} (the format is a JSON header and
    raw little-endian data; written here from the format's description)."""
    raw = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    out = {}
    for k, e in json.loads(raw[8:8 + n]).items():
        if k == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = raw[8 + n + b:8 + n + end]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(buf, {"F32": "<f4", "F16": "<f2"}[e["dtype"]])
        out[k] = a.reshape(e["shape"])
    return out


def rewrite_st(path, edit):
    """Rewrites a SafeTensors header through edit(header dict) (data kept)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    edit(h)
    hb = json.dumps(h).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])


def _missing_shard(d):
    (d / "model-00002-of-00002.safetensors").unlink()


def _wrong_dtype(d):
    def edit(h):  # same byte length as F16 [384, 64], but F64
        h["model.embed_tokens.weight"].update(dtype="F64", shape=[96, 64])
    rewrite_st(d / "model.safetensors", edit)


def _shape_mismatch(d):
    c = json.loads((d / "config.json").read_text())
    c["intermediate_size"] = 96
    (d / "config.json").write_text(json.dumps(c))


def _unknown_arch(d):
    c = json.loads((d / "config.json").read_text())
    c["architectures"] = ["FalconForCausalLM"]
    (d / "config.json").write_text(json.dumps(c))


def _truncated(d):
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _offsets_outside(d):
    rewrite_st(d / "model.safetensors", lambda h: h["model.norm.weight"].update(data_offsets=[10**9, 10**9 + 128]))


def _duplicate_in_shards(d):
    def edit(h):
        h["model.norm.weight"] = h.pop("lm_head.weight")
    rewrite_st(d / "model-00001-of-00002.safetensors", edit)


def _unknown_pretok(d):
    t = json.loads((d / "tokenizer.json").read_text())
    t["pre_tokenizer"] = {"type": "Whitespace"}
    (d / "tokenizer.json").write_text(json.dumps(t))


BAD = [
    ("llama", _missing_shard, r"model-00002-of-00002\.safetensors: shard is missing"),
    ("qwen2", _wrong_dtype, r"model\.embed_tokens\.weight' has dtype F64 \(supported: F32, F16, BF16\)"),
    ("qwen2", _shape_mismatch, r"mlp\.gate_proj\.weight has shape \[128, 64\], config\.json implies \[96, 64\]"),
    ("qwen2", _unknown_arch, r"architecture FalconForCausalLM is not supported"),
    ("qwen2", _truncated, r"outside the file's \d+ data bytes \(truncated\?\)|header length \d+ does not fit"),
    ("qwen2", _offsets_outside, r"model\.norm\.weight': data \[1000000000, 1000000128\) lies outside"),
    ("llama", _duplicate_in_shards, r"duplicate tensor 'model\.norm\.weight'|the index says"),
    ("qwen2", _unknown_pretok, r"unknown pre-tokenizer \{\"type\":\"Whitespace\"\}"),
]


def test_import_bad_dirs(hl, tmp_path):
    create_dir(hl, tmp_path, "good", HF / "qwen2")
    def names():
        return sorted(ln.split()[0] for ln in hl("list").stdout.splitlines()[1:])

    before = names()
    blobs = sorted(p.name for p in (hl.root / "blobs").iterdir())
    for i, (base, breaker, msg) in enumerate(BAD):
        d = tmp_path / f"bad{i}"
        shutil.copytree(HF / base, d)
        breaker(d)
        r = create_dir(hl, tmp_path, f"bad{i}", d, check=False)
        assert r.returncode != 0, f"{breaker.__name__}: create succeeded"
        assert re.search(msg, r.stderr + r.stdout), f"{breaker.__name__}: {r.stderr + r.stdout}"
        assert names() == before
        assert sorted(p.name for p in (hl.root / "blobs").iterdir()) == blobs, breaker.__name__
