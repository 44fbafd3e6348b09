"""The Ollama API through the official ollama Python client (generate, chat,
list, show, ps) and plain HTTP for the fields the client hides."""
import json

import ollama
import pytest
import time

import requests


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url, timeout=120)


def test_generate_raw_greedy(client, stories):
    r = client.generate(model=stories, prompt="Once upon a time", raw=True,
                        options={"temperature": 0, "num_predict": 10})
    assert r.response == ", there was a little girl named Lily"
    assert r.done and r.done_reason == "length"
    assert r.eval_count == 10 and r.prompt_eval_count == 5
    assert r.total_duration >= r.eval_duration > 0 and r.load_duration >= 0 and r.prompt_eval_duration > 0
    # context = prompt + response tokens; continuing from it works
    assert len(r.context) == 15
    r2 = client.generate(model=stories, prompt="", context=r.context, raw=True, options={"temperature": 0, "num_predict": 3})
    assert r2.response == ". She lo"  # the greedy text goes on where it stopped


def test_generate_stream(client, stories):
    parts = list(client.generate(model=stories, prompt="Once upon a time", raw=True, stream=True,
                                 options={"temperature": 0, "num_predict": 10, "stop": ["Lily"]}))
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert "".join(p.response for p in parts) == ", there was a little girl named "
    assert all(not p.done for p in parts[:-1])


def test_chat(client, smollm):
    r = client.chat(model=smollm, messages=[{"role": "user", "content": "What is the capital of France?"}],
                    options={"temperature": 0, "num_predict": 20})
    assert r.message.role == "assistant" and "Paris" in r.message.content
    parts = list(client.chat(model=smollm, messages=[{"role": "user", "content": "What is the capital of France?"}],
                             options={"temperature": 0, "num_predict": 20}, stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content


def test_ps_size_counts_one_context_of_kv(make_server, smollm):
    """/api/ps "size" is what the model occupies as Ollama counts it: the
    weights plus the f16 KV cache of one full context (not the whole pool,
    which /metrics reports), computed here from the GGUF with gguf-py."""
    gguf = pytest.importorskip("gguf")
    server = make_server(env={"HYPERLAMA_KV_BUDGET": "1GiB"})  # a pool far larger than one context
    client = ollama.Client(host=server.url, timeout=120)
    client.generate(model=smollm, prompt="x", raw=True, options={"num_predict": 1}, keep_alive="10m")
    m = [x for x in requests.get(server.url + "/api/ps").json()["models"] if x["model"].endswith("smollm2-135m-instruct-q4_1.gguf")]
    assert m, "smollm2 is not loaded"
    r = gguf.GGUFReader(smollm)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    f = lambda k: int(r.fields[f"{arch}.{k}"].parts[-1][0])  # noqa: E731
    head_dim = f("embedding_length") // f("attention.head_count")
    per_token = f("block_count") * f("attention.head_count_kv") * head_dim * 2 * 2  # K and V, f16
    weights = sum(int(t.n_bytes) for t in r.tensors)
    want = weights + per_token * m[0]["context_length"]
    assert abs(m[0]["size"] - want) <= 0.01 * want, (m[0]["size"], want)
    pool = server.metric("hyperlama_kv_pool_bytes")
    assert pool == 1 << 30 and m[0]["size"] < weights + pool / 2


def test_list_show_ps(client, server, stories):
    client.generate(model=stories, prompt="x", raw=True, options={"num_predict": 1}, keep_alive="10m")
    ps = client.ps()
    m = [x for x in ps.models if x.name == "stories260K.gguf"]
    assert m and m[0].size > 0 and m[0].details.family == "llama"
    assert requests.get(server.url + "/api/ps").json()["models"][0]["context_length"] > 0
    assert isinstance(client.list().models, list)
    sh = client.show(stories)
    assert sh.modelinfo["general.architecture"] == "llama"
    with pytest.raises(ollama.ResponseError) as e:
        client.show("no-such-model")
    assert e.value.status_code == 404


def test_unknown_model(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="no-such-model", prompt="hi")
    assert e.value.status_code == 404 and "not found" in e.value.error


def test_keep_alive_unload(server, stories):
    u = server.url + "/api/generate"
    r = requests.post(u, json={"model": stories}).json()
    assert r["done_reason"] == "load" and r["done"] is True
    r = requests.post(u, json={"model": stories, "keep_alive": 0}).json()
    assert r["done_reason"] == "unload"
    assert all(m["name"] != "stories260K.gguf" for m in requests.get(server.url + "/api/ps").json()["models"])
    r = requests.post(u, json={"model": stories, "prompt": "x", "raw": True, "stream": False,
                               "keep_alive": -1, "options": {"num_predict": 1}}).json()
    # the request's keep_alive applies when its run is released, just after the reply
    for _ in range(50):
        ps = [m for m in requests.get(server.url + "/api/ps").json()["models"] if m["name"] == "stories260K.gguf"]
        if len(ps) == 1 and ps[0]["expires_at"].startswith("9999"):
            break
        time.sleep(0.05)
    assert len(ps) == 1 and ps[0]["expires_at"].startswith("9999"), ps


def test_options_and_warnings(server, stories):
    r = requests.post(server.url + "/api/generate", json={
        "model": stories, "prompt": "Once upon a time", "raw": True, "stream": False,
        "options": {"temperature": 0, "num_predict": 4, "bogus_key": 1, "num_ctx": 64, "seed": 2**62}})
    assert r.status_code == 200 and r.json()["eval_count"] == 4
    assert "bogus_key" in server.logtext()
    r = requests.post(server.url + "/api/generate", json={
        "model": stories, "prompt": "x", "options": {"temperature": "hot"}})
    assert r.status_code == 400 and "temperature" in r.json()["error"]


def test_context_too_long_and_truncate(server, smollm):
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "blah " * 40} for i in range(12)]
    long.append({"role": "user", "content": "Say hi."})
    sysmsg = [{"role": "system", "content": "You are terse."}]
    base = {"model": smollm, "stream": False, "options": {"num_ctx": 256, "num_predict": 4, "temperature": 0}}
    r = requests.post(server.url + "/api/chat", json={**base, "messages": sysmsg + long})
    assert r.status_code == 400 and "context" in r.json()["error"]
    r = requests.post(server.url + "/api/chat", json={**base, "messages": sysmsg + long, "truncate": True})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["truncated_messages"] > 0 and j["prompt_eval_count"] < 256


def test_ndjson_content_type(server, stories):
    r = requests.post(server.url + "/api/generate", json={"model": stories, "prompt": "a", "raw": True,
                                                          "options": {"num_predict": 3}}, stream=True)
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.iter_lines() if x]
    assert lines[-1]["done"] is True
