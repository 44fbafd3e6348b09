"""The OpenAI API through the official openai Python SDK: chat and completions,
streamed and not, include_usage, n=2, stop, seed reproducibility, logprobs,
and errors in OpenAI's shape."""
import os
import openai
import requests
import pytest


def nonempty(text, words=3):
    """A compared output must be real text: two empty strings are equal too."""
    assert isinstance(text, str) and len(text.split()) >= words, f"expected at least {words} words, got {text!r}"
    return text


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_completion_greedy_matches_llamacpp(client, stories):
    # llama.cpp's greedy continuation of "Once upon a time" (shared reference file)
    r = client.completions.create(model=stories, prompt="Once upon a time", max_tokens=10, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text == ", there was a little girl named Lily"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 10 and r.usage.prompt_tokens == 5


def test_completion_default_max_tokens_is_16(client, stories):
    r = client.completions.create(model=stories, prompt="Once upon a time", temperature=0)
    assert r.usage.completion_tokens == 16


def test_completion_stream_equals_non_stream(client, stories):
    r = client.completions.create(model=stories, prompt="Lily went", max_tokens=24, temperature=0)
    full = nonempty(r.choices[0].text)
    assert r.usage.completion_tokens >= 8
    parts = [c.choices[0].text for c in client.completions.create(
        model=stories, prompt="Lily went", max_tokens=24, temperature=0, stream=True) if c.choices]
    assert len([p for p in parts if p]) >= 8  # streamed piece by piece, not in one chunk
    assert "".join(parts) == full


def test_completion_stop(client, stories):
    r = client.completions.create(model=stories, prompt="Once upon a time", max_tokens=30, temperature=0, stop=["Lily"])
    assert r.choices[0].text == ", there was a little girl named "
    assert r.choices[0].finish_reason == "stop"


def test_seed_reproducible(client, stories):
    kw = dict(model=stories, prompt="The dog", max_tokens=24, temperature=1.0, seed=1234)
    a = nonempty(client.completions.create(**kw).choices[0].text)
    b = client.completions.create(**kw).choices[0].text
    assert a == b
    others = {nonempty(client.completions.create(**{**kw, "seed": s}).choices[0].text) for s in range(5)}
    assert len(others) > 1


def test_n2_choices(client, stories):
    r = client.completions.create(model=stories, prompt="Once upon a time", max_tokens=12, temperature=1.0, n=2, seed=7)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.usage.completion_tokens == 24
    for c in r.choices:
        nonempty(c.text)
    s = client.completions.create(model=stories, prompt="Once upon a time", max_tokens=12, temperature=1.0, n=2,
                                  seed=7, stream=True)
    texts = ["", ""]
    for c in s:
        for ch in c.choices:
            texts[ch.index] += ch.text
    assert texts == [r.choices[0].text, r.choices[1].text]


def test_completion_logprobs(client, stories):
    r = client.completions.create(model=stories, prompt="Once upon a time", max_tokens=5, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 5 and len(lp.token_logprobs) == 5 and len(lp.top_logprobs) == 5
    assert "".join(lp.tokens) == r.choices[0].text
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert l <= 0 and len(top) == 3
        assert max(top.values()) == pytest.approx(l, abs=1e-5)  # greedy picks the most likely


def test_first_token_keeps_its_leading_space(client, stories):
    # SentencePiece drops the space of the text's first word only: the first
    # generated token after "time," is " there" (llama.cpp's greedy text for
    # "Once upon a time" reads ", there was ..."), whole and streamed, and
    # echo is the prompt followed by exactly that text
    kw = dict(model=stories, prompt="Once upon a time,", max_tokens=8, temperature=0)
    r = client.completions.create(**kw, logprobs=1)
    text = r.choices[0].text
    assert text.startswith(" there was a little girl"), text
    assert "".join(r.choices[0].logprobs.tokens) == text
    parts = [c.choices[0].text for c in client.completions.create(**kw, stream=True) if c.choices]
    assert "".join(parts) == text
    e = client.completions.create(**kw, echo=True)
    assert e.choices[0].text == "Once upon a time," + text


def test_chat(client, smollm):
    r = client.chat.completions.create(model=smollm, messages=[
        # this system message leaves a clear first-token margin (1.7 logits): "You are terse."
        # had a 0.014 tie that any change of rounding flips
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}],
        max_tokens=20, temperature=0)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_include_usage(client, smollm):
    msgs = [{"role": "user", "content": "Count from 1 to 5."}]
    full = client.chat.completions.create(model=smollm, messages=msgs, max_tokens=16, temperature=0)
    chunks = list(client.chat.completions.create(model=smollm, messages=msgs, max_tokens=16, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    nonempty(full.choices[0].message.content)
    assert full.usage.completion_tokens >= 3
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_chat_developer_role_and_logprobs(client, smollm):
    r = client.chat.completions.create(model=smollm, messages=[
        {"role": "developer", "content": "Answer with one word."},
        {"role": "user", "content": "Hi"}], max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert all(len(c.top_logprobs) == 2 and c.logprob <= 0 for c in content)
    raw = requests.post(client.base_url.__str__().rstrip("/") + "/chat/completions", json={
        "model": smollm, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0,
        "logprobs": True}).json()
    assert raw["choices"][0]["logprobs"]["refusal"] is None and "refusal" in raw["choices"][0]["logprobs"]


def test_errors(client, server, stories):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=stories, messages=[{"role": "user", "content": "x"}],
                                       tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert e.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=stories, prompt="x", temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=stories, prompt="Once upon a time " * 600, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"
    assert e.value.body["param"] == "prompt"  # the field that is too long (messages on chat)
    r = requests.post(server.url + "/v1/no-such-route", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] is None  # not a missing model
    assert server.healthy()


def test_completion_token_id_prompt(client, stories):
    # llama.cpp's ids for [BOS] + "Once upon a time" (shared reference), used as given
    ids = [1, 403, 407, 261, 378]
    for prompt in (ids, [ids]):
        r = client.completions.create(model=stories, prompt=prompt, max_tokens=10, temperature=0)
        assert r.choices[0].text == ", there was a little girl named Lily"
        assert r.usage.prompt_tokens == 5
    e = client.completions.create(model=stories, prompt=ids, max_tokens=10, temperature=0, echo=True)
    assert e.choices[0].text == "Once upon a time, there was a little girl named Lily"
    for bad in ([1, "x"], [1, -5], []):
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model=stories, prompt=bad, max_tokens=2)
    with pytest.raises(openai.BadRequestError):  # an id outside the vocabulary
        client.completions.create(model=stories, prompt=[1, 10 ** 6], max_tokens=2)


def test_completion_prompt_batch(client, stories):
    # several prompts in one request: choice i of prompt j is index j * n + i, each
    # the same as that prompt alone; usage is summed (OpenAI's shape)
    prompts = ["Once upon a time", "The dog", [1, 403, 407, 261, 378]]
    alone = [client.completions.create(model=stories, prompt=p, max_tokens=8, temperature=0) for p in prompts]
    r = client.completions.create(model=stories, prompt=prompts, max_tokens=8, temperature=0, n=2)
    assert [c.index for c in r.choices] == list(range(6))
    for j, a in enumerate(alone):
        assert r.choices[2 * j].text == r.choices[2 * j + 1].text == nonempty(a.choices[0].text, 2)
    assert r.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone)
    assert r.usage.completion_tokens == 2 * sum(a.usage.completion_tokens for a in alone)
    texts = [""] * 6
    for ch in client.completions.create(model=stories, prompt=prompts, max_tokens=8, temperature=0, n=2, stream=True):
        for c in ch.choices:
            texts[c.index] += c.text
    assert texts == [c.text for c in r.choices]
    # scoring a batch (lm-eval-harness's log-likelihood requests)
    s = client.completions.create(model=stories, prompt=prompts[:2], max_tokens=0, echo=True, logprobs=1)
    for c, a in zip(s.choices, alone):
        assert len(c.logprobs.tokens) == a.usage.prompt_tokens and c.logprobs.token_logprobs[0] is None
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=stories, prompt=["ok", 5], max_tokens=2)
    assert "prompt[1]" in e.value.body["message"]


def test_chat_without_template_is_plain_prompt(client, stories):
    # stories260K has no chat template: a chat is answered as Ollama's default
    # template does, the (last) message as the prompt, so it continues the same
    # way as the completion of that text (llama.cpp's reference continuation)
    r = client.chat.completions.create(model=stories, messages=[{"role": "user", "content": "Once upon a time"}],
                                       max_tokens=10, temperature=0)
    assert r.choices[0].message.content == ", there was a little girl named Lily"


def test_lenient_fields_and_ollama_options(client, server, make_server, stories):
    kw = dict(model=stories, prompt="The dog", max_tokens=16)
    greedy = nonempty(client.completions.create(**kw, temperature=0).choices[0].text)
    # Ollama's sampling options are taken on /v1 (top_k 1 at temperature 1 is greedy),
    # by name or in an "options" object, as Ollama and vLLM accept them
    for extra in ({"top_k": 1}, {"options": {"top_k": 1}}):
        assert client.completions.create(**kw, temperature=1.0, seed=3, extra_body=extra).choices[0].text == greedy
    sampled = {client.completions.create(**kw, temperature=1.0, seed=s).choices[0].text for s in range(4)}
    assert len(sampled) > 1  # without top_k the same seeds do vary
    with pytest.raises(openai.BadRequestError) as e:  # num_ctx caps the context, as Ollama's option does
        client.completions.create(**{**kw, "prompt": "Once upon a time " * 40}, extra_body={"num_ctx": 64})
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(**kw, extra_body={"top_k": "many"})
    # unknown fields are ignored ...
    r = client.completions.create(**kw, temperature=0, extra_body={"no_such_field": 1, "another": [1]})
    assert r.choices[0].text == greedy
    # ... unless the server is strict
    strict = make_server(env={"HYPERLAMA_STRICT_REQUESTS": "true"})
    sc = openai.OpenAI(base_url=strict.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as e:
        sc.completions.create(**kw, extra_body={"no_such_field": 1})
    assert e.value.body["param"] == "no_such_field" and "no_such_field" in e.value.body["message"]
    assert sc.completions.create(**kw, temperature=0, extra_body={"top_k": 1}).choices[0].text == greedy


def test_models(client, server, stories):
    client.completions.create(model=stories, prompt="x", max_tokens=1)
    ids = [m.id for m in client.models.list().data]
    # a model given by path is listed under its canonical (symlink-free) path
    assert os.path.realpath(stories) in [os.path.realpath(i) for i in ids]
    assert client.models.retrieve(stories).id == stories
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
