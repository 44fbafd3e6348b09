"""Speculative decoding through a real server: prompt lookup is on by default;
greedy text with it is byte-identical to the text without it (Qwen2.5-Coder on
a rewrite task, where drafts are accepted: asserted from /metrics, under our
names and vLLM's, so the test cannot pass vacuously), alone and with 16
concurrent streams; the options "speculative" and "num_draft" per request and
as Modelfile PARAMETERs; the draft counts in Ollama's final response and the
request's log line."""
import hashlib
import json
import pathlib
from concurrent.futures import ThreadPoolExecutor

import requests

from hltest import ROOT, model_path

QWEN = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
# the first 24 lines of the benchmark's rewrite input (a small Python file)
CODE = "\n".join((ROOT / "bench/spec/rewrite_input.py").read_text().splitlines()[:24])
RENAMES = [("load_jobs", "read_jobs"), ("Job", "Task"), ("retries", "attempts"), ("timeout", "deadline")]


def rewrite_prompt(i):
    old, new = RENAMES[i % len(RENAMES)]
    return f"```python\n{CODE}\n```\nRename {old} to {new} (variant {i}). Reply with the whole file and nothing else."


def generate(url, model, prompt, n, **opts):
    r = requests.post(url + "/api/generate", json={"model": model, "prompt": prompt, "stream": True,
                                                   "options": {"temperature": 0, "num_predict": n, **opts}},
                      stream=True, timeout=600)
    assert r.status_code == 200, r.text
    out, last = [], None
    for line in r.iter_lines():
        if line:
            last = json.loads(line)
            out.append(last.get("response", ""))
    assert last and last["done"]
    return "".join(out), last


def test_qwen_rewrite_lossless_alone_and_16_streams(make_server):
    qwen = str(model_path(QWEN))
    s = make_server({"HYPERLAMA_NUM_PARALLEL": "16", "HYPERLAMA_KV_BUDGET": "256MiB"})
    off, f_off = generate(s.url, qwen, rewrite_prompt(0), 40, speculative=False)
    on, f_on = generate(s.url, qwen, rewrite_prompt(0), 40)  # on by default
    assert on == off
    assert f_off["draft_count"] == 0
    assert f_on["eval_count"] == f_off["eval_count"] == 40
    # a rewrite quotes its input: drafts are proposed and accepted
    assert 0 < f_on["draft_accepted_count"] <= f_on["draft_count"]
    accepted = s.metric("hyperlama_spec_decode_num_accepted_tokens_total")
    assert accepted == f_on["draft_accepted_count"]
    assert s.metric("vllm:spec_decode_num_accepted_tokens_total") == accepted
    assert s.metric("vllm:spec_decode_num_draft_tokens_total") == f_on["draft_count"]
    assert "drafted=%d accepted=%d" % (f_on["draft_count"], f_on["draft_accepted_count"]) in s.logtext()

    # 16 streams at once (one shared file, 16 different requests), with and without
    prompts = [rewrite_prompt(i) for i in range(16)]
    with ThreadPoolExecutor(16) as ex:
        ref = list(ex.map(lambda p: generate(s.url, qwen, p, 10, speculative=False)[0], prompts))
        got = list(ex.map(lambda p: generate(s.url, qwen, p, 10)[0], prompts))
    assert got == ref
    assert ref[0] == off[:len(ref[0])]  # the lone stream's start, batched with 15 others
    assert s.healthy()


def test_options_and_modelfile_parameters(make_server, smollm):
    s = make_server()
    prompt = "Repeat this list twice: apple, banana, cherry, date, elderberry, fig, grape, kiwi, lemon, mango."
    ref, f_ref = generate(s.url, smollm, prompt, 60, speculative=False)
    assert f_ref["draft_count"] == 0
    on, f_on = generate(s.url, smollm, prompt, 60, num_draft=3)
    assert on == ref
    assert f_on["draft_count"] >= 0
    none, f_none = generate(s.url, smollm, prompt, 60, num_draft=0)  # no drafts at all
    assert none == ref and f_none["draft_count"] == 0
    # wrong types are refused with the option named
    r = requests.post(s.url + "/api/generate", json={"model": smollm, "prompt": "hi", "options": {"speculative": "yes"}})
    assert r.status_code == 400 and "speculative" in r.text
    r = requests.post(s.url + "/api/generate", json={"model": smollm, "prompt": "hi", "options": {"num_draft": 99}})
    assert r.status_code == 400 and "num_draft" in r.text
    # a Modelfile that turns it off; the request turns it back on
    data = pathlib.Path(smollm).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert requests.post(f"{s.url}/api/blobs/{digest}", data=data, timeout=60).status_code == 201
    r = requests.post(s.url + "/api/create", json={"model": "nospec", "files": {"smollm2.gguf": digest},
                                                   "parameters": {"speculative": False, "num_draft": 4},
                                                   "stream": False}, timeout=120)
    assert r.status_code == 200, r.text
    show = requests.post(s.url + "/api/show", json={"model": "nospec"}, timeout=30).json()
    assert "speculative" in show["parameters"] and "num_draft" in show["parameters"]
    text, f = generate(s.url, "nospec", prompt, 60)
    assert text == ref and f["draft_count"] == 0
    text, f = generate(s.url, "nospec", prompt, 60, speculative=True)
    assert text == ref
    # /v1 takes the same switches as top-level fields (no "options" object in OpenAI's API)
    def drafted():
        m = requests.get(s.url + "/metrics", timeout=30).text
        return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("hyperlama_spec_decode_num_draft_tokens_total"))
    body = {"model": smollm, "prompt": prompt, "max_tokens": 60, "temperature": 0}
    d0 = drafted()
    r = requests.post(s.url + "/v1/completions", json={**body, "speculative": False}, timeout=120)
    assert r.status_code == 200 and drafted() == d0
    v1_ref = r.json()["choices"][0]["text"]
    r = requests.post(s.url + "/v1/completions", json={**body, "num_draft": 3}, timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == v1_ref and drafted() > d0
    r = requests.post(s.url + "/v1/completions", json={**body, "speculative": "no"}, timeout=30)
    assert r.status_code == 400 and "speculative" in r.text


def test_draft_model_option_modelfile_and_setting(make_server, stories):
    """A draft model (runner/draft.c) through the server, on the stories260K
    files (one tokenizer): the Q4_0 file drafts for the F32 one; the text
    equals speculation off. Named per request,
    by a Modelfile PARAMETER and by engine.draft_model; a draft whose
    vocabulary differs is refused with the reason (per request) or leaves
    prompt lookup in place (the server's default)."""
    shared = pathlib.Path(stories).parent
    q4 = str(shared / "stories260K-Q4_0.gguf")
    other = str(shared / "llama-2-tiny-random.gguf")
    s = make_server({"HYPERLAMA_DRAFT_MODEL": other})

    def gen(model, **opts):
        r = requests.post(s.url + "/api/generate", json={
            "model": model, "prompt": "Once upon a time", "raw": True, "stream": False,
            "options": {"temperature": 0, "num_predict": 80, **opts}}, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()

    ref = gen(stories, speculative=False)
    assert ref["draft_count"] == 0
    # the server's default draft cannot draft for stories: prompt lookup stays, same text
    assert gen(stories)["response"] == ref["response"]
    assert "cannot draft for" in s.logtext()
    on = gen(stories, draft_model=q4)
    assert on["response"] == ref["response"] and on["eval_count"] == ref["eval_count"]
    # adaptive control decides how much (a draft as big as its target is dear):
    # drafts happen and are verified; partial acceptance is test_draft.c's
    assert 0 < on["draft_count"] and on["draft_accepted_count"] <= on["draft_count"]
    assert "draft model %s" % q4 in s.logtext()
    # named by the request, an incompatible draft is the request's error
    r = requests.post(s.url + "/api/generate", json={"model": stories, "prompt": "Once", "raw": True, "stream": False,
                                                     "options": {"draft_model": other}}, timeout=60)
    assert r.status_code == 400 and "cannot draft for" in r.json()["error"] and "32000" in r.json()["error"]
    r = requests.post(s.url + "/api/generate", json={"model": stories, "prompt": "Once", "options": {"draft_model": 3}})
    assert r.status_code == 400 and "draft_model" in r.text
    # a Modelfile PARAMETER
    data = pathlib.Path(stories).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert requests.post(f"{s.url}/api/blobs/{digest}", data=data, timeout=60).status_code == 201
    r = requests.post(s.url + "/api/create", json={"model": "drafted", "files": {"stories.gguf": digest},
                                                   "parameters": {"draft_model": q4}, "stream": False}, timeout=120)
    assert r.status_code == 200, r.text
    show = requests.post(s.url + "/api/show", json={"model": "drafted"}, timeout=30).json()
    assert "draft_model" in show["parameters"] and q4 in show["parameters"]
    via_mf = gen("drafted")
    assert via_mf["response"] == ref["response"]
    assert 0 < via_mf["draft_count"] and via_mf["draft_accepted_count"] <= via_mf["draft_count"]
    assert s.logtext().count("draft model %s (" % q4) == 2  # loaded for each of the two targets
    assert s.healthy()
