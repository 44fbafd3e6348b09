"""Our Go-template interpreter against Go's own text/template (tests/gotmpl/
render.go, built with the system Go) on chat templates of the families
Ollama's library uses, over several conversations."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OURS = ROOT / "build" / "release" / "tools" / "dump_gotmpl_render"
TEMPLATES = sorted((ROOT / "tests" / "data" / "gotmpl").glob("*.tmpl"))

DATA = [
    {"System": "", "Prompt": "Hi", "Response": "", "Messages": [{"Role": "user", "Content": "Hi"}], "Tools": []},
    {"System": "Be brief & <safe>.", "Prompt": "What?", "Response": "Ok",
     "Messages": [{"Role": "user", "Content": "Hello"}, {"Role": "assistant", "Content": "Hi there"},
                  {"Role": "user", "Content": "Weather in \"Paris\"?"}],
     "Tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "required": ["city"]}}}]},
    {"System": "sys", "Messages": [{"Role": "user", "Content": "call it"},
                                   {"Role": "assistant", "Content": "", "ToolCalls": [{"Function": {"Name": "get_weather", "Arguments": {"city": "Paris", "n": 2.5}}}]},
                                   {"Role": "tool", "Content": "{\"temp\": 20}"}], "Tools": []},
]


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    go = shutil.which("go")
    if not go:
        pytest.skip("go not installed")
    out = tmp_path_factory.mktemp("go") / "render"
    env = dict(os.environ, GOCACHE=str(tmp_path_factory.mktemp("gocache")), GO111MODULE="off")
    subprocess.run([go, "build", "-o", str(out), str(ROOT / "tests" / "gotmpl" / "render.go")], check=True, env=env)
    return out


@pytest.mark.parametrize("tmpl", TEMPLATES, ids=lambda p: p.stem)
@pytest.mark.parametrize("case", range(len(DATA)))
def test_matches_go(go_render, tmp_path, tmpl, case):
    if not OURS.exists():
        pytest.fail(f"{OURS} not built: run make tests")
    d = tmp_path / "data.json"
    d.write_text(json.dumps(DATA[case]))
    want = subprocess.run([str(go_render), str(tmpl), str(d)], capture_output=True, text=True)
    got = subprocess.run([str(OURS)], capture_output=True, text=True,
                         env=dict(os.environ, GOTMPL_TEMPLATE=str(tmpl), GOTMPL_DATA=str(d)))
    assert want.returncode == 0, want.stderr
    assert got.returncode == 0, got.stderr
    assert got.stdout == want.stdout
