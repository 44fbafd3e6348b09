"""Prompt scoring on /v1/completions: echo with logprobs returns every prompt
token's log-probability (OpenAI's legacy API; lm-eval-harness's
log-likelihood tasks read it), with text_offset, and max_tokens 0 scores
without generating. The scores are checked against the independent numpy
forward pass (scripts/reference/forward.py) on stories260K."""
import sys

import numpy as np
import openai
import pytest

from hltest import ROOT, SHARED

sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import forward as F  # noqa: E402

# llama.cpp's ids for [BOS] "Once upon a time" and its greedy continuation
# ", there was a little girl named" (shared reference file)
IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def test_prompt_logprobs_match_the_reference(client, stories):
    ref = log_softmax(F.Model(SHARED / "models" / "stories260K.gguf").logits(IDS, F.FLOAT))
    r = client.completions.create(model=stories, prompt=IDS, max_tokens=0, echo=True, logprobs=3, temperature=0)
    c = r.choices[0]
    assert r.usage.completion_tokens == 0 and c.finish_reason == "length"
    assert c.text == "Once upon a time, there was a little girl named"
    lp = c.logprobs
    assert len(lp.tokens) == len(IDS) and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    want = [ref[i - 1, IDS[i]] for i in range(1, len(IDS))]
    # the engine quantizes activations to 8 bits (as llama.cpp does): logits agree to ~1e-2
    np.testing.assert_allclose(lp.token_logprobs[1:], want, atol=1e-2)
    for i in range(1, len(IDS)):
        top = lp.top_logprobs[i]
        assert len(top) == 3
        best = np.sort(ref[i - 1])[::-1][:3]
        np.testing.assert_allclose(sorted(top.values(), reverse=True), best, atol=1e-2)
    # each token's text starts at its offset in the echoed text (BOS has none)
    text, off = c.text, lp.text_offset
    assert off[0] == 0 and off[1] == 0 and off == sorted(off)
    for i in range(2, len(IDS)):
        piece = lp.tokens[i]
        assert text[off[i]:].startswith(piece), (i, piece, text[off[i]:])


def test_echo_scores_then_generates(client, stories):
    prompt = "Once upon a time"
    r = client.completions.create(model=stories, prompt=prompt, max_tokens=4, echo=True, logprobs=1, temperature=0)
    c = r.choices[0]
    n_prompt = r.usage.prompt_tokens
    lp = c.logprobs
    assert len(lp.tokens) == n_prompt + 4 and lp.token_logprobs[0] is None
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert c.text.startswith(prompt) and c.text == prompt + "".join(lp.tokens[n_prompt:])
    # lm-eval-harness finds the continuation by its offset: the first generated token starts at len(prompt)
    assert lp.text_offset[n_prompt] == len(prompt)
    # the generated part scores as a plain request scores it
    plain = client.completions.create(model=stories, prompt=prompt, max_tokens=4, logprobs=1, temperature=0).choices[0]
    assert plain.text == c.text[len(prompt):]
    np.testing.assert_allclose(plain.logprobs.token_logprobs, lp.token_logprobs[n_prompt:], atol=1e-4)
    assert plain.logprobs.text_offset == [o - len(prompt) for o in lp.text_offset[n_prompt:]]


def test_max_tokens_zero_without_echo(client, stories):
    r = client.completions.create(model=stories, prompt="Once upon a time", max_tokens=0)
    assert r.choices[0].text == "" and r.usage.completion_tokens == 0
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=stories, messages=[{"role": "user", "content": "x"}], max_tokens=0)
