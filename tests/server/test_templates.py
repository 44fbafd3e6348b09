"""Modelfile layers on the generation routes: TEMPLATE (a Go template, with
Ollama's semantics) replaces the GGUF's chat template in /api/generate,
/api/chat and /v1/chat/completions; the request's "template" overrides it;
SYSTEM is the default system prompt; MESSAGEs open every chat; PARAMETERs are
the defaults under the request's options. Every expected prompt is written
out here by hand from the template's meaning and sent as a raw prompt to the
same server, so a test fails when the templated prompt differs by one token.
Also vLLM's ignore_eos on the OpenAI routes."""
import hashlib

import ollama
import openai
import pytest
import requests

LEGACY = "{{ if .System }}[S]{{ .System }}[/S] {{ end }}Q: {{ .Prompt }} A: {{ .Response }}"
MESSAGES = "{{ range .Messages }}<{{ .Role }}>{{ .Content }}\n{{ end }}<assistant>"
GREEDY = {"temperature": 0, "num_predict": 8}


@pytest.fixture(scope="module")
def models(server, stories):
    c = ollama.Client(host=server.url)
    data = open(stories, "rb").read()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert requests.post(f"{server.url}/api/blobs/{digest}", data=data).status_code == 201
    files = {"stories260K.gguf": digest}
    c.create(model="legacy", files=files, template=LEGACY, system="Be kind.", parameters=GREEDY)
    c.create(model="msgs", files=files, template=MESSAGES, system="Be kind.", parameters=GREEDY,
             messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}])
    c.create(model="plain", files=files)
    return c


def raw(c, text, **opts):
    """The reference: the expected prompt text, sent untemplated."""
    return c.generate(model="plain", prompt=text, raw=True, options={**GREEDY, **opts})


def prompt_ids(r):
    return r.context[:r.prompt_eval_count]


def test_generate_uses_modelfile_template_and_system(models):
    c = models
    r = c.generate(model="legacy", prompt="Lily went")
    ref = raw(c, "[S]Be kind.[/S] Q: Lily went A: ")
    assert prompt_ids(r) == prompt_ids(ref)
    assert r.response == ref.response and r.eval_count == 8  # PARAMETER num_predict 8 applies
    # the request's system replaces the Modelfile's SYSTEM
    r = c.generate(model="legacy", prompt="Lily went", system="Be brave.")
    assert prompt_ids(r) == prompt_ids(raw(c, "[S]Be brave.[/S] Q: Lily went A: "))
    # raw skips the template
    r = c.generate(model="legacy", prompt="Lily went", raw=True)
    assert prompt_ids(r) == prompt_ids(raw(c, "Lily went"))


def test_generate_request_template_overrides(models):
    c = models
    r = c.generate(model="legacy", prompt="Lily went", template="{{ .System }}|{{ .Prompt }}!")
    assert prompt_ids(r) == prompt_ids(raw(c, "Be kind.|Lily went!"))
    # a model without a Modelfile TEMPLATE takes one from the request too
    r = c.generate(model="plain", prompt="Tom", template="Once {{ .Prompt }} said", options=GREEDY)
    assert prompt_ids(r) == prompt_ids(raw(c, "Once Tom said"))
    with pytest.raises(ollama.ResponseError) as e:
        c.generate(model="legacy", prompt="x", template="{{ .Prompt")
    assert e.value.status_code == 400 and "template" in str(e.value)


def test_options_over_modelfile_parameters(models):
    c = models
    assert c.generate(model="legacy", prompt="Lily", options={"num_predict": 3}).eval_count == 3
    assert c.generate(model="legacy", prompt="Lily").eval_count == 8


def expected_chat(msgs):
    return "".join(f"<{m['role']}>{m['content']}\n" for m in msgs) + "<assistant>"


def test_chat_messages_template_system_and_messages(models, server):
    c = models
    turns = [{"role": "user", "content": "Tell me"}, {"role": "assistant", "content": "Once"},
             {"role": "user", "content": "More"}]
    r = c.chat(model="msgs", messages=turns)
    full = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there"}] + turns
    ref = raw(c, expected_chat(full))
    assert r.prompt_eval_count == ref.prompt_eval_count and r.message.content == ref.response
    # a conversation that opens with its own system message gets no Modelfile SYSTEM;
    # the Modelfile's MESSAGEs still come first (Ollama: append(m.Messages, req.Messages...))
    own = [{"role": "system", "content": "Short."}] + turns
    r = c.chat(model="msgs", messages=own)
    ref = raw(c, expected_chat(full[1:3] + own))
    assert r.prompt_eval_count == ref.prompt_eval_count and r.message.content == ref.response
    # the OpenAI route renders the same prompt; the Modelfile's temperature 0 beats OpenAI's default of 1
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    o = oc.chat.completions.create(model="msgs", messages=turns, max_tokens=8)
    ref = raw(c, expected_chat(full))
    assert o.usage.prompt_tokens == ref.prompt_eval_count
    assert o.choices[0].message.content == ref.response


def test_chat_legacy_template(models):
    c = models
    r = c.chat(model="legacy", messages=[{"role": "user", "content": "Lily went"}])
    ref = raw(c, "[S]Be kind.[/S] Q: Lily went A: ")
    assert r.prompt_eval_count == ref.prompt_eval_count and r.message.content == ref.response


def test_ignore_eos(server, stories):
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    # the request pushes </s> (id 2 in stories260K's SentencePiece vocabulary) to the top:
    # without ignore_eos it ends at once, with it the end token is banned and all 150 come
    kw = dict(model=stories, prompt="The end", max_tokens=150, temperature=0, logit_bias={"2": 50})
    free = oc.completions.create(**kw)
    assert free.choices[0].finish_reason == "stop" and free.usage.completion_tokens < 3
    r = oc.completions.create(**kw, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 150 and r.choices[0].finish_reason == "length"
    chunks = list(oc.completions.create(**kw, stream=True, stream_options={"include_usage": True},
                                        extra_body={"ignore_eos": True}))
    assert chunks[-1].usage.completion_tokens == 150
    with pytest.raises(openai.BadRequestError):
        oc.completions.create(model=stories, prompt="x", extra_body={"ignore_eos": 3})
