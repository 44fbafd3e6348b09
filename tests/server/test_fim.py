"""Fill-in-the-middle: "suffix" on /api/generate and /v1/completions for a
model with FIM tokens (Qwen2.5-Coder's <|fim_prefix|> ...), checked by running
the completed program; a model without them is refused clearly, and
/api/show lists the "insert" capability only where it is true."""
import subprocess
import sys

import ollama
import openai
import pytest
import requests

from hltest import model_path

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\n\nprint(add(2, 3) * 7)\n"


@pytest.fixture(scope="module")
def qwen():
    return str(model_path("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"))


def runs_to(program):
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def test_generate_and_completions_fill_the_middle(server, qwen):
    o = ollama.Client(host=server.url, timeout=300)
    r = o.generate(model=qwen, prompt=PREFIX, suffix=SUFFIX, options={"temperature": 0, "num_predict": 24})
    middle = r.response
    assert middle.strip(), "nothing generated"
    assert runs_to(PREFIX + middle + SUFFIX) == "35", PREFIX + middle + SUFFIX
    # the FIM prompt is the three markers around the halves: the first prompt
    # token is <|fim_prefix|> and the last <|fim_middle|> (ids from the vocabulary)
    ids = {t: requests.post(server.url + "/api/tokenize", json={"model": qwen, "text": t, "add_special": False}).json()["tokens"]
           for t in ("<|fim_prefix|>", "<|fim_middle|>")}
    assert r.context[0] == ids["<|fim_prefix|>"][0] and r.context[r.prompt_eval_count - 1] == ids["<|fim_middle|>"][0]
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)
    r2 = c.completions.create(model=qwen, prompt=PREFIX, suffix=SUFFIX, max_tokens=24, temperature=0)
    assert r2.choices[0].text == middle  # the same prompt on both routes
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model=qwen, prompt=PREFIX, suffix=SUFFIX, max_tokens=24, temperature=0, stream=True) if ch.choices)
    assert streamed == middle


def test_capability_and_refusal(server, qwen, stories):
    show = lambda m: requests.post(server.url + "/api/show", json={"model": m}).json()  # noqa: E731
    assert "insert" in show(qwen)["capabilities"]
    assert "insert" not in show(stories)["capabilities"]
    r = requests.post(server.url + "/api/generate", json={"model": stories, "prompt": "a", "suffix": "b", "stream": False})
    assert r.status_code == 400 and "fill in the middle" in r.json()["error"]
    r = requests.post(server.url + "/v1/completions", json={"model": stories, "prompt": "a", "suffix": "b"})
    assert r.status_code == 400 and "fill in the middle" in r.json()["error"]["message"]
    r = requests.post(server.url + "/api/generate", json={"model": stories, "prompt": "a", "suffix": 5})
    assert r.status_code == 400


def test_capabilities_follow_a_replaced_file(server, qwen, stories, tmp_path):
    """Capabilities are remembered per model file (the server caches them so
    /api/tags does not load every vocabulary on every call): a file replaced
    in place at the same path is decided anew, from its new contents."""
    import os
    import shutil
    show = lambda m: requests.post(server.url + "/api/show", json={"model": m}).json()["capabilities"]  # noqa: E731
    path = tmp_path / "model.gguf"
    shutil.copyfile(stories, path)
    assert "insert" not in show(str(path)) and "insert" not in show(str(path))  # the second answer from the cache
    tmp = tmp_path / "model.gguf.new"
    os.symlink(qwen, tmp)  # replaced the way a store replaces a file: rename over it
    os.replace(tmp, path)
    assert "insert" in show(str(path))
