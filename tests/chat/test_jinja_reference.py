"""Every stored chat template (tests/data/templates/*.jinja, plus the
templates inside the downloaded test models) rendered for many conversations,
with add_generation_prompt true and false, by Python jinja2 in transformers'
environment and by our interpreter: the text must be byte-identical, and when
jinja2 refuses (raise_exception, a type error) ours must refuse too."""
import copy
import os

import pytest

from hltest import MODELS, model_path
from jinja_env import TEMPLATES, render_ours, render_ref

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers.",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "number", "default": 1.5}}, "required": ["a", "b"]}}},
]

TOOL_CALL = {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [{"role": "system", "content": "  Be kind.  "},
                   {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke.\nA short one."},
                   {"role": "assistant", "content": " Why did the chicken... "},
                   {"role": "user", "content": "Ha. Another?"}],
    "no_system_multi": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}],
    "unicode": [{"role": "user", "content": "Grüße, 世界! 🎉 \"quotes\" and \\backslash\\ \t tab"}],
    "content_parts": [{"role": "system", "content": [{"type": "text", "text": "System in parts."}]},
                      {"role": "user", "content": [{"type": "text", "text": "Part one. "},
                                                   {"type": "text", "text": "Part two."}]}],
    "tool_call": [{"role": "system", "content": "You can call tools."},
                  {"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
                  {"role": "tool", "name": "get_weather", "tool_call_id": "call_1",
                   "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
                  {"role": "assistant", "content": "It is 21°C and clear in Paris."},
                  {"role": "user", "content": "Thanks"}],
    "tool_call_no_system": [{"role": "user", "content": "Weather in Paris?"},
                            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
                            {"role": "tool", "content": "warm", "tool_call_id": "call_2"}],
    "assistant_last": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}],
    "empty_content": [{"role": "user", "content": ""}],
    "tool_call_str_args": [{"role": "system", "content": "Tools allowed."},
                           {"role": "user", "content": "Add 2 and 3, and get the weather in Oslo."},
                           {"role": "assistant", "content": None, "tool_calls": [
                               {"id": "abcDEF123", "type": "function",
                                "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}},
                               {"id": "xyz987654", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                           {"role": "tool", "tool_call_id": "abcDEF123", "content": "5"},
                           {"role": "tool", "tool_call_id": "xyz987654", "content": "rain"},
                           {"role": "assistant", "content": "5, and rain in Oslo."},
                           {"role": "user", "content": "ok"}],
    "thinking": [{"role": "user", "content": "Why?"},
                 {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nBecause."},
                 {"role": "user", "content": "Sure?"}],
    # thinking as a message field (Ollama's "thinking", which gpt-oss's template reads)
    "thinking_field": [{"role": "system", "content": "Answer briefly."},
                       {"role": "user", "content": "Why is the sky blue?"},
                       {"role": "assistant", "thinking": "Rayleigh scattering; keep it short.",
                        "content": "Rayleigh scattering."},
                       {"role": "user", "content": "And sunsets?"}],
    "thinking_field_last": [{"role": "user", "content": "2+2?"},
                            {"role": "assistant", "thinking": "Simple sum.", "content": "4"}],
    "developer": [{"role": "developer", "content": "Reply in French."}, {"role": "user", "content": "Hello"}],
    "reasoning_low": [{"role": "user", "content": "Sum 1 to 100?"}],
    "reasoning_high": [{"role": "system", "content": "Show your work."}, {"role": "user", "content": "Sum 1 to 100?"}],
    "builtin_tools": [{"role": "user", "content": "Search the news."}],
    # a call with its reasoning, its result, and no answer yet (the analysis is kept, as gpt-oss's template keeps it)
    "tool_call_thinking": [{"role": "user", "content": "Weather in Paris?"},
                           {"role": "assistant", "content": "", "thinking": "I should call get_weather.",
                            "tool_calls": [TOOL_CALL]},
                           {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21}"}],
}

# extra context variables some conversations are rendered with
CONV_EXTRA = {"thinking": {"enable_thinking": False}, "single_user": {"enable_thinking": True},
              "reasoning_low": {"reasoning_effort": "low"}, "reasoning_high": {"reasoning_effort": "high"},
              "builtin_tools": {"builtin_tools": ["browser", "python"], "model_identity": "You are a test model."},
              "no_system_multi": {"documents": [{"title": "Doc A", "text": "Alpha \"quoted\""},
                                                {"title": "Doc B", "text": "Beta"}], "enable_citations": True}}

# transformers' apply_chat_template always passes tools and documents (None when absent)
EXTRA = {"bos_token": "<s>", "eos_token": "</s>", "tools": None, "documents": None}


def gguf_chat_template(path):
    """tokenizer.chat_template of a GGUF file, reading only the metadata (the
    gguf package's reader maps every tensor, which is slow on a busy machine)."""
    import mmap
    import struct
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert m[:4] == b"GGUF"
        n_kv = struct.unpack_from("<Q", m, 16)[0]
        pos = 24

        def string(pos):
            n = struct.unpack_from("<Q", m, pos)[0]
            return m[pos + 8:pos + 8 + n], pos + 8 + n

        def skip(t, pos):
            if t in sizes:
                return pos + sizes[t]
            if t == 8:
                return string(pos)[1]
            assert t == 9, t
            et, n = struct.unpack_from("<IQ", m, pos)
            pos += 12
            if et in sizes:
                return pos + n * sizes[et]
            for _ in range(n):
                pos = skip(et, pos)
            return pos

        for _ in range(n_kv):
            key, pos = string(pos)
            t = struct.unpack_from("<I", m, pos)[0]
            pos += 4
            if key == b"tokenizer.chat_template" and t == 8:
                return string(pos)[0].decode("utf-8")
            pos = skip(t, pos)
    return None


MODEL_FILES = ("smollm2-135m-instruct-q4_1.gguf", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "gemma-3-270m-q4_k_m.gguf")


def model_templates():
    """The chat templates stored in the downloaded test models (an absent
    model is left out here and fails test_model_downloaded)."""
    out = {}
    for f in MODEL_FILES:
        p = os.path.join(MODELS, f)
        if os.path.exists(p):
            t = gguf_chat_template(p)
            if t is not None:
                out["gguf:" + f] = t
    return out


def all_templates():
    t = {p.stem: p.read_text(encoding="utf-8") for p in sorted(TEMPLATES.glob("*.jinja"))}
    t.update(model_templates())
    return t


TEMPLATE_SRC = all_templates()
CASES = [(t, c, agp, tools) for t in TEMPLATE_SRC for c in CONVERSATIONS for agp in (False, True)
         for tools in (False, True) if tools is False or c.startswith("tool") or c == "system_user"]


@pytest.mark.parametrize("name", MODEL_FILES)
def test_model_downloaded(name):
    model_path(name)  # a missing model fails here instead of quietly dropping its template's cases


@pytest.mark.parametrize("template,conv,agp,tools", CASES,
                         ids=[f"{t}-{c}-{'gen' if a else 'nogen'}{'-tools' if x else ''}" for t, c, a, x in CASES])
def test_template_matches_jinja2(template, conv, agp, tools):
    src = TEMPLATE_SRC[template]
    ctx = dict(EXTRA, messages=copy.deepcopy(CONVERSATIONS[conv]), add_generation_prompt=agp, **CONV_EXTRA.get(conv, {}))
    if tools:
        ctx["tools"] = copy.deepcopy(TOOLS)
    ok_ref, ref = render_ref(src, copy.deepcopy(ctx))
    ok, ours = render_ours(src, ctx)
    if not ok_ref:
        assert not ok, f"jinja2 failed ({ref}) but we rendered:\n{ours}"
        return
    assert ok, f"we failed: {ours}"
    assert ours == ref
