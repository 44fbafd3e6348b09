"""Tool calling and thinking through the real clients, on Qwen2.5-Coder-1.5B-Instruct
(its GGUF chat template has tools; Hermes-style <tool_call> output), greedy and bounded:

- a weather-style round trip with the `openai` SDK (the model calls get_weather, the
  tool's result goes back as a `tool` message, the model answers), streamed and not;
  the second turn's prompt is checked against Python jinja2 rendering the GGUF's own
  template for the same conversation (transformers' conventions: arguments as objects),
  sent raw to the same server: same prompt tokens, same greedy answer;
- two tools, the model picks the one the question needs;
- parallel calls: two cities in one question give two calls in one reply (required, forced by the
  grammar; and auto, streamed with one index per call), one call when parallel_tool_calls is false,
  the same through the `ollama` client, and both tool results answered in one final turn;
- the same with the `ollama` client (arguments as objects, tool_name on results);
- thinking end to end: a Qwen3/DeepSeek-R1-style TEMPLATE whose assistant turn opens
  <think>, over the same model, steered to close it: Ollama's `thinking` /
  `message.thinking` and OpenAI's `reasoning_content` hold the reasoning, the answer
  holds the rest;
- capabilities in /api/show, and the 400s (tools or think on a model whose template
  cannot, tool_choice naming an unknown function);
- tool_choice required and named, enforced by the grammar (arguments validated with
  jsonschema), streamed and not; and in every other family (llama3, mistral v0.3 and Nemo,
  qwen3-xml, deepseek V3.1 and R1, hermes, gpt-oss's harmony) on the tiny stories model carrying that family's real
  template (tests/data/templates), which under a grammar writes whatever it is allowed to.
The parser itself is tested on recorded outputs of every family in
tests/unit/chat/test_outparse.c."""
import json
import os
import subprocess
import sys

import ollama
import openai
import pytest
import requests

from hltest import HYPERLAMA, ROOT, model_path

sys.path.insert(0, str(ROOT / "tests" / "chat"))
from jinja_env import render_ref  # noqa: E402
from test_jinja_reference import gguf_chat_template  # noqa: E402

QWEN = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the current local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                   "required": ["city"]}}}
# a clear request; after the tool's result the 1.5B model answers in words (without the
# system message it tends to imitate the template's {{"name": ...}} example instead)
ASK = [{"role": "system", "content": "You are a weather assistant. Use the get_weather tool, then tell the user "
                                     "the temperature it returned."},
       {"role": "user", "content": "What is the weather in Paris?"}]
RESULT = '{"city": "Paris", "temperature_celsius": 21, "sky": "sunny"}'

THINK_TEMPLATE = '''{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "system" }}<|im_start|>system
{{ .Content }}<|im_end|>
{{ else if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}<|im_end|>
{{ end }}{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
<think>
{{ end }}{{ end }}'''
THINK_SYSTEM = ("Reply in exactly this format: one short sentence of reasoning, then the line </think>, "
                "then the answer. Example: 2 plus 3 makes 5.\n</think>\n5")
THINK_ASK = "What is 17 + 25?"


@pytest.fixture(scope="module")
def qwen():
    return str(model_path(QWEN))


@pytest.fixture(scope="module")
def oc(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x")


@pytest.fixture(scope="module")
def first_call(oc, qwen):
    """The model's first turn: a get_weather call (non-streamed)."""
    return oc.chat.completions.create(model=qwen, messages=ASK, tools=[WEATHER], temperature=0, max_tokens=60)


def check_weather_call(name, arguments):
    assert name == "get_weather"
    assert json.loads(arguments) if isinstance(arguments, str) else arguments
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    assert args["city"].lower() == "paris"


def test_openai_tool_call(first_call):
    ch = first_call.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    assert ch.message.content is None  # the call's text never leaks into content
    (call,) = ch.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    check_weather_call(call.function.name, call.function.arguments)


def test_openai_tool_call_streamed(oc, qwen, first_call):
    calls, content, finish = {}, "", None
    for chunk in oc.chat.completions.create(model=qwen, messages=ASK, tools=[WEATHER], temperature=0, max_tokens=60,
                                            stream=True):
        d = chunk.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                assert c["id"] is None  # id and name come once
                c["id"] = tc.id
            if tc.function and tc.function.name:
                assert c["name"] is None
                c["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                c["arguments"] += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and content == ""
    assert list(calls) == [0]
    check_weather_call(calls[0]["name"], calls[0]["arguments"])
    # streamed and not stream give the same call
    assert json.loads(calls[0]["arguments"]) == json.loads(first_call.choices[0].message.tool_calls[0].function.arguments)


def second_turn(first_call):
    call = first_call.choices[0].message.tool_calls[0]
    return ASK + [{"role": "assistant", "content": None,
                   "tool_calls": [{"id": call.id, "type": "function",
                                   "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
                  {"role": "tool", "tool_call_id": call.id, "content": RESULT}]


def test_openai_round_trip_matches_jinja2(server, oc, qwen, first_call):
    msgs = second_turn(first_call)
    r = oc.chat.completions.create(model=qwen, messages=msgs, tools=[WEATHER], temperature=0, max_tokens=30)
    answer = r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length") and not r.choices[0].message.tool_calls
    assert "21" in answer
    # the reference prompt: jinja2 over the GGUF's template, arguments as objects (as transformers passes them)
    ref_msgs = json.loads(json.dumps(msgs))
    ref_msgs[2]["tool_calls"][0]["function"]["arguments"] = json.loads(msgs[2]["tool_calls"][0]["function"]["arguments"])
    ok, text = render_ref(gguf_chat_template(qwen), {"messages": ref_msgs, "tools": [WEATHER], "documents": None,
                                                     "add_generation_prompt": True, "bos_token": "", "eos_token": ""})
    assert ok, text
    assert "<tool_response>\n" + RESULT in text
    raw = requests.post(server.url + "/api/generate", json={
        "model": qwen, "prompt": text, "raw": True, "stream": False,
        "options": {"temperature": 0, "num_predict": 30}}).json()
    assert raw["prompt_eval_count"] == r.usage.prompt_tokens
    assert raw["response"] == answer
    # streamed, the same answer
    streamed = "".join(c.choices[0].delta.content or "" for c in oc.chat.completions.create(
        model=qwen, messages=msgs, tools=[WEATHER], temperature=0, max_tokens=30, stream=True))
    assert streamed == answer


def test_openai_two_tools(oc, qwen):
    r = oc.chat.completions.create(model=qwen, messages=[{"role": "user", "content": "What time is it in Tokyo right now?"}],
                                   tools=[WEATHER, TIME], temperature=0, max_tokens=60)
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_time" and json.loads(call.function.arguments)["city"].lower() == "tokyo"


TWO_CITIES = "What is the weather in Paris and in Tokyo?"
PARALLEL_SYSTEM = ("You are a weather assistant. Call get_weather once for each city the user names, all calls in one "
                   "reply; then tell the user the temperatures the tool returned.")


def cities(calls):
    return [json.loads(c.function.arguments)["city"] for c in calls]


def test_openai_parallel_tool_calls(oc, qwen):
    jsonschema = pytest.importorskip("jsonschema")
    kw = dict(model=qwen, tools=[WEATHER], temperature=0, max_tokens=120)
    ask = [{"role": "user", "content": TWO_CITIES}]
    # required: the grammar allows several calls, each matching the parameters schema
    r = oc.chat.completions.create(messages=ask, tool_choice="required", **kw)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and not r.choices[0].message.content
    assert cities(calls) == ["Paris", "Tokyo"] and len({c.id for c in calls}) == 2
    for c in calls:
        jsonschema.validate(json.loads(c.function.arguments), WEATHER["function"]["parameters"])
    # parallel_tool_calls false: one call only
    r = oc.chat.completions.create(messages=ask, tool_choice="required", parallel_tool_calls=False, **kw)
    assert cities(r.choices[0].message.tool_calls) == ["Paris"]
    # auto, streamed: each call has its own index, its id and name once, its arguments in deltas
    ask = [{"role": "system", "content": PARALLEL_SYSTEM}] + ask
    whole = oc.chat.completions.create(messages=ask, **kw)
    assert cities(whole.choices[0].message.tool_calls) == ["Paris", "Tokyo"]
    parts = list(oc.chat.completions.create(messages=ask, stream=True, **kw))
    deltas = [tc for p in parts if p.choices for tc in (p.choices[0].delta.tool_calls or [])]
    for i, call in enumerate(whole.choices[0].message.tool_calls):
        mine = [d for d in deltas if d.index == i]
        assert [d.id for d in mine if d.id] and len([d for d in mine if d.id]) == 1
        assert "".join(d.function.name or "" for d in mine) == call.function.name
        assert "".join(d.function.arguments or "" for d in mine) == call.function.arguments
    assert {d.index for d in deltas} == {0, 1}
    # both results back in one turn: the answer uses both
    results = {"Paris": 21, "Tokyo": 9}
    msgs = ask + [whole.choices[0].message.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": c.id, "content": json.dumps({"city": city, "temperature_celsius": results[city]})}
        for c, city in zip(whole.choices[0].message.tool_calls, ("Paris", "Tokyo"))]
    answer = oc.chat.completions.create(messages=msgs, **kw).choices[0].message.content
    assert "21" in answer and "9" in answer, answer


def test_ollama_parallel_tool_calls(server, qwen):
    c = ollama.Client(host=server.url)
    r = c.chat(model=qwen, messages=[{"role": "system", "content": PARALLEL_SYSTEM}, {"role": "user", "content": TWO_CITIES}],
               tools=[WEATHER], options={"temperature": 0, "num_predict": 120})
    assert [(t.function.name, t.function.arguments) for t in r.message.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})]


def test_ollama_tool_round_trip(server, qwen):
    c = ollama.Client(host=server.url)
    opts = {"temperature": 0, "num_predict": 60}
    r = c.chat(model=qwen, messages=ASK, tools=[WEATHER], options=opts)
    (call,) = r.message.tool_calls
    check_weather_call(call.function.name, call.function.arguments)  # arguments is a dict here
    assert r.message.content == ""
    # streamed: the call arrives once, content stays empty
    parts = list(c.chat(model=qwen, messages=ASK, tools=[WEATHER], options=opts, stream=True))
    calls = [tc for p in parts for tc in (p.message.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["get_weather"] and "".join(p.message.content for p in parts) == ""
    assert calls[0].function.arguments == call.function.arguments
    msgs = ASK + [{"role": "assistant", "content": "", "tool_calls": [call]},
                  {"role": "tool", "tool_name": "get_weather", "content": RESULT}]
    a = c.chat(model=qwen, messages=msgs, tools=[WEATHER], options={"temperature": 0, "num_predict": 30})
    assert "21" in a.message.content and not a.message.tool_calls


# a Modelfile TEMPLATE in the shape of Ollama's library template for Qwen2.5 (tools in the
# system turn, calls in <tool_call> tags, results in <tool_response>): the call's prefix and
# suffix are derived from its .ToolCalls section, as Ollama does
TOOLS_TEMPLATE = """{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""


def test_ollama_modelfile_template_tools(server, qwen):
    mf = f'FROM {qwen}\nTEMPLATE """{TOOLS_TEMPLATE}"""\n'
    r = requests.post(server.url + "/api/create", json={"model": "qtools", "modelfile": mf, "stream": False}, timeout=300)
    assert r.status_code == 200, r.text
    assert "tools" in requests.post(server.url + "/api/show", json={"model": "qtools"}).json()["capabilities"]
    c = ollama.Client(host=server.url)
    r = c.chat(model="qtools", messages=ASK, tools=[WEATHER], options={"temperature": 0, "num_predict": 60})
    assert r.message.tool_calls, r.message.content
    (call,) = r.message.tool_calls
    check_weather_call(call.function.name, call.function.arguments)
    assert "tool_call" not in r.message.content and "get_weather" not in r.message.content


@pytest.fixture(scope="module")
def qthink(server, qwen):
    mf = f'FROM {qwen}\nTEMPLATE """{THINK_TEMPLATE}"""\nSYSTEM """{THINK_SYSTEM}"""\nPARAMETER temperature 0\n'
    r = requests.post(server.url + "/api/create", json={"model": "qthink", "modelfile": mf, "stream": False}, timeout=300)
    assert r.status_code == 200, r.text
    return "qthink"


@pytest.fixture(scope="module")
def think_ref(server, qthink):
    g = ollama.Client(host=server.url).generate(model=qthink, prompt=THINK_ASK, think=True, options={"num_predict": 80})
    assert "17" in g.thinking and "</think>" not in g.thinking + g.response and "<think>" not in g.response
    assert "42" in g.response
    return g


def test_thinking_openai(oc, qthink, think_ref):
    g = think_ref
    # (Ollama's chat, streamed, is what `hyperlama run` uses: test_cli_run_think)
    # OpenAI: reasoning_content in the message and in stream deltas (as vLLM and llama-server send it)
    r = oc.chat.completions.create(model=qthink, messages=[{"role": "user", "content": THINK_ASK}], max_tokens=80)
    m = r.choices[0].message
    assert (m.model_extra["reasoning_content"], m.content) == (g.thinking, g.response)
    rs = ct = ""
    for ch in oc.chat.completions.create(model=qthink, messages=[{"role": "user", "content": THINK_ASK}], max_tokens=80,
                                         stream=True):
        d = ch.choices[0].delta
        rs += (d.model_extra or {}).get("reasoning_content") or ""
        ct += d.content or ""
    assert (rs, ct) == (g.thinking, g.response)


def test_cli_run_think(server, qthink, think_ref):
    """`hyperlama run NAME --think` through this server: thinking under "Thinking...", then the
    answer, as Ollama's CLI prints it (dimmed only on a terminal)."""
    env = dict(os.environ, HYPERLAMA_HOST=f"127.0.0.1:{server.port}", HYPERLAMA_MODELS=str(server.tmp / "models"))
    cmd = [str(HYPERLAMA), "run", qthink, THINK_ASK, "--num-predict", "80"]
    r = subprocess.run(cmd + ["--think"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Thinking...\n{think_ref.thinking}\n...done thinking.\n\n{think_ref.response}\n"


def test_capabilities(server, qwen, smollm, qthink):
    def caps(name):
        r = requests.post(server.url + "/api/show", json={"model": name})
        assert r.status_code == 200, r.text
        return r.json()["capabilities"]
    assert caps(qwen) == ["completion", "tools", "insert"]  # Qwen2.5-Coder has FIM tokens (test_fim.py)
    assert caps(qthink) == ["completion", "insert", "thinking"]
    assert "tools" not in caps(smollm) and "thinking" not in caps(smollm)
    # /api/tags lists the same capabilities for every stored model (the ollama client's
    # ListResponse drops fields it does not know, so this reads the raw reply)
    tags = requests.get(server.url + "/api/tags").json()["models"]
    assert "qthink:latest" in [m["name"] for m in tags]
    for m in tags:
        assert m["capabilities"] == caps(m["name"]), m["name"]


HELLO = [{"role": "user", "content": "Say hello to me in French."}]  # nothing here asks for a tool


def test_tool_choice_forced_by_the_grammar(oc, qwen):
    """tool_choice named / required: the grammar makes the answer a call whose
    arguments match the function's parameter schema (checked with jsonschema),
    even for a request that would not call a tool (auto answers in words)."""
    jsonschema = pytest.importorskip("jsonschema")
    kw = dict(model=qwen, messages=HELLO, tools=[WEATHER, TIME], temperature=0, max_tokens=60)
    auto = oc.chat.completions.create(**kw)
    # left to itself the 1.5B model does not call get_time here (it answers, or invents a tool)
    assert not any(c.function.name == "get_time" for c in auto.choices[0].message.tool_calls or [])
    params = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
    named = {"type": "function", "function": {"name": "get_time"}}
    for choice, allowed in ((named, {"get_time"}), ("required", {"get_weather", "get_time"})):
        r = oc.chat.completions.create(**kw, tool_choice=choice, parallel_tool_calls=False)
        m = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls" and m.tool_calls and not m.content, m
        (call,) = m.tool_calls
        assert call.function.name in allowed
        jsonschema.validate(json.loads(call.function.arguments), params[call.function.name])
        # streamed: the same call in deltas
        parts = list(oc.chat.completions.create(**kw, tool_choice=choice, parallel_tool_calls=False, stream=True))
        deltas = [tc for p in parts if p.choices for tc in (p.choices[0].delta.tool_calls or [])]
        assert "".join(d.function.name or "" for d in deltas) == call.function.name
        assert "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
        assert [p.choices[0].finish_reason for p in parts if p.choices][-1] == "tool_calls"


def test_refusals(server, oc, qwen, smollm):
    c = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model=smollm, messages=ASK, tools=[WEATHER])
    assert e.value.status_code == 400 and "does not support tools" in str(e.value)
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model=qwen, messages=ASK, think=True)
    assert e.value.status_code == 400 and "does not support thinking" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        oc.chat.completions.create(model=qwen, messages=ASK, tools=[WEATHER],
                                   tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "nope" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:  # two constraints at once
        oc.chat.completions.create(model=qwen, messages=ASK, tools=[WEATHER], tool_choice="required",
                                   response_format={"type": "json_object"})
    assert "cannot be combined" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        oc.chat.completions.create(model=qwen, messages=ASK, tools=[{"type": "function", "function": {}}])
    # tool_choice none: the tools are not offered, the answer is plain content
    r = oc.chat.completions.create(model=qwen, messages=ASK, tools=[WEATHER], tool_choice="none", temperature=0,
                                   max_tokens=3)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")


# ---- tool_choice forced by the grammar in every family --------------------------------
# stories260K (512-token SentencePiece vocabulary with byte fallback: any text under a
# grammar) copied with each family's real chat template as tokenizer.chat_template; the
# server picks the family from the template, the grammar forces calls in its syntax, the
# family's parser reads them back, and jsonschema checks the arguments.
TEMPLATES = ROOT / "tests" / "data" / "templates"
FAMILY_TEMPLATES = {"llama3": "llama3.1.jinja", "mistral-v0.3": "mistral-v0.3.jinja", "mistral-nemo": "mistral-nemo.jinja",
                    "qwen3-xml": "qwen3-coder.jinja", "deepseek-v3.1": "deepseek-v3.1.jinja",
                    "deepseek-r1": "deepseek-r1-distill-qwen.jinja", "hermes": "qwen3.jinja",
                    "harmony": "gpt-oss.jinja"}
# bounded values (enums, integer ranges, booleans), so the tiny model's calls end in few tokens
FORECAST = {"type": "function", "function": {
    "name": "get_forecast", "description": "Weather forecast for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "metric": {"type": "boolean"}}, "required": ["city", "days"]}}}
ALARM = {"type": "function", "function": {
    "name": "set_alarm", "description": "Set an alarm",
    "parameters": {"type": "object", "properties": {
        "hour": {"type": "integer", "minimum": 0, "maximum": 23},
        "label": {"type": "string", "enum": ["wake", "nap"]}}, "required": ["hour"]}}}


@pytest.fixture(scope="module")
def family_models(stories, tmp_path_factory):
    d = tmp_path_factory.mktemp("families")
    out = {}
    for fam, tpl in FAMILY_TEMPLATES.items():
        p = d / f"stories-{fam}.gguf"
        subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", stories, str(p),
                        "--chat-template-file", str(TEMPLATES / tpl), "--force"], check=True, capture_output=True)
        out[fam] = str(p)
    return out


@pytest.mark.parametrize("family", list(FAMILY_TEMPLATES))
def test_tool_choice_forced_every_family(oc, family_models, family):
    jsonschema = pytest.importorskip("jsonschema")
    params = {t["function"]["name"]: t["function"]["parameters"] for t in (FORECAST, ALARM)}
    kw = dict(model=family_models[family], messages=[{"role": "user", "content": "Will it rain in Paris this week?"}],
              tools=[FORECAST, ALARM], max_tokens=400, seed=7,
              # </s> favoured: the grammar allows it only once a call is complete, so a parallel
              # answer ends after whole calls instead of running to max_tokens; whitespace
              # (\t \n \r, spaces) disfavoured, or the tiny model fills every optional gap of
              # the JSON with it (the syntax's own newlines stay: the grammar leaves no choice);
              # "<" and "]" favoured, which start Mistral's and DeepSeek's closers after a call
              # (rather than their separators, where end of generation cannot compete yet)
              logit_bias={"2": 40, "12": -40, "13": -40, "16": -40, "35": -40, "410": -40,
                          "63": 40, "504": 40, "96": 40, "509": 40})
    named = {"type": "function", "function": {"name": "set_alarm"}}
    for choice, parallel, temp in ((named, False, 0), ("required", True, 0), ("required", True, 1.0)):
        r = oc.chat.completions.create(**kw, tool_choice=choice, parallel_tool_calls=parallel, temperature=temp)
        m = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls", (family, choice, m)
        assert m.tool_calls and not m.content, (family, choice, m)
        for call in m.tool_calls:
            assert call.function.name in (["set_alarm"] if choice is named else params), (family, call)
            jsonschema.validate(json.loads(call.function.arguments), params[call.function.name])
        if not parallel:
            assert len(m.tool_calls) == 1
        if temp == 0:  # streamed: the same calls, in deltas
            parts = list(oc.chat.completions.create(**kw, tool_choice=choice, parallel_tool_calls=parallel, temperature=0,
                                                    stream=True))
            deltas = [tc for p in parts if p.choices for tc in (p.choices[0].delta.tool_calls or [])]
            assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == ""
            got = {}
            for d in deltas:
                c = got.setdefault(d.index, ["", ""])
                c[0] += d.function.name or ""
                c[1] += d.function.arguments or ""
            assert [tuple(got[k]) for k in sorted(got)] == [(c.function.name, c.function.arguments) for c in m.tool_calls]
