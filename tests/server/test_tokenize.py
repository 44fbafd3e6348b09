"""Tokenization over HTTP: Ollama-style /api/tokenize and /api/detokenize and
llama-server's /tokenize and /detokenize, checked against llama.cpp's own
token ids for stories260K (the shared reference file)."""
import requests

from hltest import SHARED

REF = {}
for line in (SHARED / "models" / "stories260K-llamacpp-reference.txt").read_text().splitlines():
    if line.startswith("## ") and REF:
        break
    if line.startswith('"') and " -> " in line:
        text, ids = line.rsplit(" -> ", 1)
        REF[text[1:-1]] = [int(x) for x in ids.strip("[]").split(",")]


def post(server, path, body):
    return requests.post(server.url + path, json=body, timeout=60)


def test_llama_server_routes_pick_the_sole_model(server, stories, smollm):
    r = post(server, "/tokenize", {"content": "Once upon a time"})
    assert r.status_code == 400 and "no model is loaded" in r.json()["error"]
    assert post(server, "/api/generate", {"model": stories, "prompt": "", "stream": False}).status_code == 200
    for text, ids in REF.items():  # no BOS on llama-server's route, as llama.cpp's tokenize(text)
        assert post(server, "/tokenize", {"content": text}).json() == {"tokens": ids}, text
    ids = REF["Once upon a time"]
    assert post(server, "/tokenize", {"content": "Once upon a time", "add_special": True}).json()["tokens"] == [1] + ids
    pieces = post(server, "/tokenize", {"content": "Once upon a time", "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == ids and "".join(p["piece"] for p in pieces).strip() == "Once upon a time"
    assert post(server, "/detokenize", {"tokens": ids}).json() == {"content": "Once upon a time"}
    # a second model makes the bare route ambiguous
    assert post(server, "/api/generate", {"model": smollm, "prompt": "", "stream": False}).status_code == 200
    r = post(server, "/tokenize", {"content": "x"})
    assert r.status_code == 400 and "several models" in r.json()["error"]
    assert post(server, "/tokenize", {"content": "Once upon a time", "model": stories}).json() == {"tokens": ids}


def test_ollama_routes(server, stories):
    ids = REF["Hello world"]
    r = post(server, "/api/tokenize", {"model": stories, "text": "Hello world"})
    assert r.status_code == 200 and r.json() == {"model": stories, "tokens": [1] + ids}  # BOS, as a prompt gets
    r = post(server, "/api/detokenize", {"model": stories, "tokens": [1] + ids})
    assert r.json() == {"model": stories, "text": "Hello world"}
    # every id and text round-trips, UTF-8 split across byte tokens included
    text = "你好！From LLaMA.cpp"
    ids = post(server, "/api/tokenize", {"model": stories, "text": text, "add_special": False}).json()["tokens"]
    assert ids == REF[text]
    assert post(server, "/api/detokenize", {"model": stories, "tokens": ids}).json()["text"] == text


def test_bad_requests(server, stories):
    cases = [
        ("/api/tokenize", {"text": "x"}, 400),
        ("/api/tokenize", {"model": stories}, 400),
        ("/api/tokenize", {"model": stories, "text": "x", "add_special": "yes"}, 400),
        ("/api/detokenize", {"model": stories, "tokens": [1, 10 ** 9]}, 400),
        ("/api/detokenize", {"model": stories, "tokens": [-1]}, 400),
        ("/api/detokenize", {"model": stories, "tokens": "1 2"}, 400),
        ("/api/detokenize", {"model": "no-such-model", "tokens": [1]}, 404),
    ]
    for path, body, status in cases:
        r = post(server, path, body)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["error"]
    r = requests.post(server.url + "/api/tokenize", data=b"{not json", timeout=30)
    assert r.status_code == 400
    assert requests.get(server.url + "/tokenize", timeout=30).status_code == 405
    assert server.healthy()
