"""Chat prompts from Ollama's own templates against Ollama's own expected
outputs. Templates and expected prompts come from Ollama's repository
(github.com/ollama/ollama, template/*.gotmpl and template/testdata/<name>/<case>,
MIT licensed), fetched as data into tests/data/gotmpl/ollama/; the
conversations are the ones Ollama's TestTemplate renders. phi-3 is a legacy
(.System/.Prompt/.Response) template, so it checks the per-turn loop and the
cut after {{ .Response }}; the others check the .Messages path."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OURS = ROOT / "build" / "release" / "tools" / "dump_gotmpl_render"
DATA = ROOT / "tests" / "data" / "gotmpl" / "ollama"
EXPECTED = json.loads((DATA / "expected.json").read_text())

U1 = {"role": "user", "content": "Hello, how are you?"}
A1 = {"role": "assistant", "content": "I'm doing great. How can I help you today?"}
U2 = {"role": "user", "content": "I'd like to show off how chat templating works!"}
S = {"role": "system", "content": "You are a helpful assistant."}
CONVS = {"user": [U1], "user-assistant-user": [U1, A1, U2], "system-user-assistant-user": [S, U1, A1, U2]}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_ollama_expected_prompt(tmp_path, key):
    if not OURS.exists():
        pytest.fail(f"{OURS} not built: run make tests")
    name, case = key.split("/")
    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps({"messages": CONVS[case]}))
    r = subprocess.run([str(OURS)], capture_output=True, text=True,
                       env=dict(os.environ, GOTMPL_TEMPLATE=str(DATA / f"{name}.gotmpl"), GOTMPL_CHAT=str(conv)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED[key]
