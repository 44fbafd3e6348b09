"""One generation path: `hyperlama run FILE.gguf` (in-process) and the server
(/api/generate, /api/chat on the same file) render the prompt with the same
function and generate through the same engine, so for the same request and
seed they print the same text. Sampling here is not greedy (temperature 0.8),
so the comparison covers the seeded sampler chain, the stop handling and the
streaming detokenizer, not only the argmax; a different seed must change the
text, or the seed would not be reaching the sampler."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_cli import HYPERLAMA, SHARED, Pty  # noqa: E402
from hltest import model_path  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "hl_server_conftest", pathlib.Path(__file__).resolve().parents[1] / "server" / "conftest.py")
server_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(server_conftest)

STORIES = SHARED / "models" / "stories260K.gguf"
SAMPLING = {"temperature": 0.8, "seed": 42, "num_predict": 40}
FLAGS = ["--temperature", "0.8", "--seed", "42", "--num-predict", "40", "--threads", "2"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = server_conftest.Server(tmp_path_factory.mktemp("genpath"))
    yield s
    s.stop()


def run_file(model, prompt, *flags):
    r = subprocess.run([str(HYPERLAMA), "run", str(model), prompt, *flags], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def generate(server, model, prompt, options, **extra):
    r = requests.post(server.url + "/api/generate", json={"model": str(model), "prompt": prompt, "stream": False,
                                                           "options": options, **extra}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["response"]


def smollm():
    return model_path("smollm2-135m-instruct-q4_1.gguf")


def test_chat_template_model_same_text(hyperlama, server):
    """SmolLM2 through its own Jinja chat template: the answer `run` prints
    (followed by the newline it adds) is the server's response."""
    model = smollm()
    prompt = "Write a short poem about the sea."
    got = run_file(model, prompt, *FLAGS)
    want = generate(server, model, prompt, SAMPLING)
    assert want.strip(), "the server generated nothing"
    assert got == want + "\n"
    other = generate(server, model, prompt, dict(SAMPLING, seed=43))
    assert other != want


def test_model_without_template_same_text(hyperlama, server):
    """stories260K has no chat template: both paths send the prompt plainly
    (into a pipe `run` adds no newline)."""
    got = run_file(STORIES, "Once upon a time", *FLAGS)
    want = generate(server, STORIES, "Once upon a time", SAMPLING)
    assert len(want.split()) >= 5
    assert got == want
    assert run_file(STORIES, "Once upon a time", *FLAGS[:3], "43", *FLAGS[4:]) != want


def test_system_message_same_text(hyperlama, server):
    """A system message goes into the prompt the same way on both paths: the
    chat template's system turn (SmolLM2), or the plain "system, blank line,
    prompt" form for a model without a template (stories260K)."""
    model = smollm()
    got = run_file(model, "Name a colour.", "--system", "You answer in French.", *FLAGS)
    want = generate(server, model, "Name a colour.", SAMPLING, system="You answer in French.")
    assert want.strip() and got == want + "\n"
    got = run_file(STORIES, "there was a cat", "--system", "Once upon a time", *FLAGS)
    want = generate(server, STORIES, "there was a cat", SAMPLING, system="Once upon a time")
    assert want.strip() and got == want
    assert want != generate(server, STORIES, "there was a cat", SAMPLING)


def test_stop_string_same_text(hyperlama, server):
    """A stop string ends both at the same place, and neither prints it."""
    full = generate(server, STORIES, "Once upon a time", SAMPLING)
    word = full.split()[3]
    want = generate(server, STORIES, "Once upon a time", dict(SAMPLING, stop=[word]))
    assert word not in want and full.startswith(want)
    assert run_file(STORIES, "Once upon a time", *FLAGS, "--stop", word) == want


def answer_in_pty(p, text):
    """Sends one chat turn; returns the answer as printed (without the blank
    line and the next prompt)."""
    p.send(text + "\r")
    out = p.expect(rb">>> ").replace(b"\r\n", b"\n").decode()
    echo, rest = out.split("\n", 1)
    assert echo.endswith(text), out
    assert rest.endswith("\n\n>>> "), out
    return rest[:-len("\n\n>>> ")]


def test_interactive_turns_equal_server_chat(hyperlama, server):
    """Two turns of the interactive chat (the second reusing the first's KV
    blocks through the engine's prefix cache) answer exactly what /api/chat
    answers for the same history and seed."""
    model = smollm()
    p = Pty(["run", model, *FLAGS])
    p.expect(rb">>> ")
    first = answer_in_pty(p, "Hello! Who are you?")
    second = answer_in_pty(p, "Tell me one fact about cats.")
    p.send("/bye\r")
    assert p.close() == 0
    history = [{"role": "user", "content": "Hello! Who are you?"}]

    def chat(messages):
        r = requests.post(server.url + "/api/chat", json={"model": str(model), "messages": messages,
                                                           "stream": False, "options": SAMPLING}, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["message"]["content"]

    assert chat(history) == first and first.strip()
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "Tell me one fact about cats."}]
    assert chat(history) == second and second.strip()


def test_interactive_next_turn_reuses_the_history(hyperlama):
    """The next turn resends the whole history; the engine's prefix cache
    serves what the previous turn computed, so only the new part is
    evaluated (run has no history logic of its own)."""
    import re
    p = Pty(["run", smollm(), "--verbose", *FLAGS])
    p.expect(rb">>> ")
    counts = []
    for text in ("Hello! Who are you?", "Thanks."):
        p.send(text + "\r")
        out = p.expect(rb">>> ").decode(errors="replace")
        counts.append(int(re.search(r"prompt eval count:\s+(\d+) token", out).group(1)))
    p.send("/bye\r")
    assert p.close() == 0
    # turn 1: SmolLM2's default system prompt and the question (~40 tokens);
    # turn 2 holds all of that plus the answer, yet evaluates only the rest
    assert counts[0] > 20 and counts[1] < counts[0], counts


# every value bounded (maxLength, a range, an enum), so the tiny model's answer ends
FORMAT_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 10},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "pet": {"enum": ["cat", "dog"]}}, "required": ["name", "age", "pet"]}


def test_format_same_text(hyperlama, server, tmp_path):
    """`run FILE --format json|SCHEMA|@FILE` builds the grammar the API's "format" field
    builds (one function, hl_grammar_from_format), so it prints what /api/generate with that
    format answers; the text parses as JSON and validates against the schema (jsonschema).
    Through the server (a store name) --format travels as that field."""
    jsonschema = pytest.importorskip("jsonschema")
    opts = dict(SAMPLING, num_predict=300)
    flags = [*FLAGS[:4], "--num-predict", "300", "--threads", "2"]
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(FORMAT_SCHEMA))
    outs = []
    for fmt, flag in (("json", "json"), (FORMAT_SCHEMA, json.dumps(FORMAT_SCHEMA)), (FORMAT_SCHEMA, f"@{path}")):
        got = run_file(STORIES, "Once upon a time", *flags, "--format", flag)
        want = generate(server, STORIES, "Once upon a time", opts, format=fmt)
        assert got == want, flag
        value = json.loads(got)
        if fmt is FORMAT_SCHEMA:
            jsonschema.validate(value, FORMAT_SCHEMA)
            assert isinstance(value, dict)
        outs.append(got)
    assert outs[0] != outs[1]  # the schema, not only "JSON", reached the sampler
    # a store name: `run` talks to the server, which gets "format" in its request
    r = requests.post(server.url + "/api/create", json={"model": "fmt", "modelfile": f"FROM {STORIES}", "stream": False},
                      timeout=120)
    assert r.status_code == 200, r.text
    env = dict(os.environ, HYPERLAMA_HOST=f"127.0.0.1:{server.port}", HYPERLAMA_MODELS=str(server.tmp / "models"))
    r = subprocess.run([str(HYPERLAMA), "run", "fmt", "Once upon a time", *flags, "--format", f"@{path}"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(outs[2])
    # a bad format is a usage error before anything loads
    r = subprocess.run([str(HYPERLAMA), "run", str(STORIES), "x", "--format", '{"type":'], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--format" in r.stderr


def test_set_format_in_the_chat(hyperlama):
    """/set format (json, or a schema as --format takes it) and /set noformat, as Ollama's
    chat has them: the next answers are constrained, then free again."""
    jsonschema = pytest.importorskip("jsonschema")
    p = Pty(["run", str(STORIES), *FLAGS[:4], "--num-predict", "300", "--threads", "2"])
    p.expect(rb">>> ")
    p.send("/set format " + json.dumps(FORMAT_SCHEMA) + "\r")
    assert b"Set format to the JSON Schema." in p.expect(rb">>> ")
    jsonschema.validate(json.loads(answer_in_pty(p, "Once upon a time")), FORMAT_SCHEMA)
    p.send("/set format {nope\r")
    assert b"--format must be json or a JSON Schema" in p.expect(rb">>> ")
    p.send("/set noformat\r")
    assert b"Disabled format." in p.expect(rb">>> ")
    free = answer_in_pty(p, "Once upon a time")
    assert free.strip() and not free.lstrip().startswith("{")
    p.send("/bye\r")
    assert p.close() == 0
