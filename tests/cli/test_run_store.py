"""`hyperlama run` on store models: Modelfile TEMPLATE (Go template), SYSTEM,
MESSAGE and PARAMETER layers, flags over parameters, pull-on-run, near-miss
names, the memory check, and the interactive chat's slash commands driven in
a real pseudo-terminal.

References are independent of the code under test: a store model's answer
must equal the answer to the prompt the template would produce, sent raw
(text written out here by hand), and a Go-template ChatML model must answer
exactly like the GGUF's own Jinja template (rendered by the chat module)."""
import os
import pathlib
import sys

import pytest

import importlib.util
import subprocess

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_cli import HYPERLAMA, SHARED, Pty  # noqa: E402


def _load(name, path):
    # by path, so tests/store's conftest never shadows tests/conftest
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


registry_server = _load("hl_registry_server", pathlib.Path(__file__).resolve().parents[1] / "store" / "registry_server.py")
store_conftest = _load("hl_store_conftest", pathlib.Path(__file__).resolve().parents[1] / "store" / "conftest.py")
registry_server_free_port = store_conftest.free_port

STORIES = SHARED / "models" / "stories260K.gguf"
SMOL = pathlib.Path(os.environ.get("HL_MODELS_DIR", pathlib.Path.home() / ".cache/hyperlama/models")) / "smollm2-135m-instruct-q4_1.gguf"
GREEDY = ["--temperature", "0", "--repeat-penalty", "1"]


@pytest.fixture
def env(tmp_path):
    # store names run through a server: the first verb starts one in the
    # background on this test's own port and HOME; it is stopped at the end
    e = dict(os.environ)
    e["HYPERLAMA_MODELS"] = str(tmp_path / "models")
    e["HOME"] = str(tmp_path / "home")
    e["HYPERLAMA_REGISTRY"] = "http://127.0.0.1:9"  # nothing listens: pulls fail fast
    e["HYPERLAMA_HOST"] = f"127.0.0.1:{registry_server_free_port()}"
    e["HYPERLAMA_KV_BUDGET"] = "64MiB"
    e["HYPERLAMA_NUM_THREADS"] = "2"
    for k in ("HYPERLAMA_API_KEY", "HYPERLAMA_CONFIG"):
        e.pop(k, None)
    (tmp_path / "home").mkdir()
    yield e
    store_conftest.stop_autostarted(e["HOME"])


def hl(env, *args, check=True, **kw):
    r = subprocess.run([str(HYPERLAMA), *map(str, args)], env=env, capture_output=True, text=True, timeout=120, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"hyperlama {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def create(env, tmp_path, name, text):
    mf = tmp_path / f"{name}.Modelfile"
    mf.write_text(text)
    hl(env, "create", name, "-f", mf)


TINY = f'''FROM {STORIES}
TEMPLATE """{{{{ if .System }}}}{{{{ .System }}}} {{{{ end }}}}{{{{ .Prompt }}}}"""
SYSTEM Once upon a time
PARAMETER temperature 0
PARAMETER repeat_penalty 1
PARAMETER num_predict 12
'''


def test_store_model_template_system_and_parameters(env, tmp_path):
    create(env, tmp_path, "tiny", TINY)
    got = hl(env, "run", "tiny", "there was").stdout
    want = hl(env, "run", STORIES, "--raw", "Once upon a time there was", *GREEDY, "--num-predict", "12").stdout
    assert got.strip() == want.strip() and len(want.split()) >= 5
    # flags win over PARAMETERs
    short = hl(env, "run", "tiny", "there was", "--num-predict", "3").stdout
    want3 = hl(env, "run", STORIES, "--raw", "Once upon a time there was", *GREEDY, "--num-predict", "3").stdout
    assert short.strip() == want3.strip() and len(short) < len(got)
    # --system replaces the model's SYSTEM
    alt = hl(env, "run", "tiny", "lived a cat", "--system", "One day").stdout
    assert alt.strip() == hl(env, "run", STORIES, "--raw", "One day lived a cat", *GREEDY, "--num-predict", "12").stdout.strip()


def test_stop_parameter_and_messages(env, tmp_path):
    base = hl(env, "run", STORIES, "--raw", "Once upon a time", *GREEDY, "--num-predict", "12").stdout
    word = base.split()[2]  # stop at the third generated word
    create(env, tmp_path, "stopper", TINY.replace("SYSTEM Once upon a time\n", "") + f'PARAMETER stop "{word}"\n')
    out = hl(env, "run", "stopper", "Once upon a time").stdout
    assert word not in out and base.startswith(out.strip()[:5])
    # MESSAGE layers come before the chat (legacy template: one render per turn)
    create(env, tmp_path, "msgs", f'''FROM {STORIES}
TEMPLATE "{{{{ .Prompt }}}} {{{{ .Response }}}} "
MESSAGE user Once upon
MESSAGE assistant a time
PARAMETER temperature 0
PARAMETER repeat_penalty 1
PARAMETER num_predict 8
''')
    got = hl(env, "run", "msgs", "there").stdout
    want = hl(env, "run", STORIES, "--raw", "Once upon a time there ", *GREEDY, "--num-predict", "8").stdout
    assert got.strip() == want.strip()


def test_go_chatml_matches_gguf_jinja(env, tmp_path):
    if not SMOL.exists():
        pytest.skip("SmolLM2 not downloaded")
    create(env, tmp_path, "smolgo", f'''FROM {SMOL}
TEMPLATE """{{{{- range .Messages }}}}<|im_start|>{{{{ .Role }}}}
{{{{ .Content }}}}<|im_end|>
{{{{ end }}}}<|im_start|>assistant
"""
SYSTEM You are a helpful AI assistant named SmolLM, trained by Hugging Face
''')
    args = [*GREEDY, "--num-predict", "16"]
    got = hl(env, "run", "smolgo", "What is the capital of France?", *args).stdout
    want = hl(env, "run", SMOL, "What is the capital of France?", *args).stdout
    assert got == want and len(got.strip()) > 0


def test_unknown_model_pulls_then_suggests(env, tmp_path):
    create(env, tmp_path, "tiny", TINY)
    r = hl(env, "run", "tinny", "hi", check=False)
    assert r.returncode != 0
    assert "pulling manifest" in r.stderr and "tiny" in r.stderr.split("pulling manifest", 1)[1]


def test_run_pulls_from_registry(env, tmp_path):
    with registry_server.Server(SHARED) as reg:
        env["HYPERLAMA_REGISTRY"] = reg.url
        r = hl(env, "run", "stories", "Once upon a time", "--num-predict", "4")
        assert "pulling manifest" in r.stderr and "success" in r.stderr
        assert r.stdout.strip()
        assert "stories" in hl(env, "list").stdout


def test_memory_check_explains(env, tmp_path):
    create(env, tmp_path, "tiny", TINY)
    e = dict(env, HYPERLAMA_MEMORY_LIMIT="1000")
    r = subprocess.run([str(HYPERLAMA), "run", "tiny", "hi", "--num-ctx", "256"], env=e, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    msg = r.stderr
    assert "more system memory" in msg and "KV cache for a 256-token context" in msg
    assert "smaller quantization" in msg and "smaller model" in msg and "smaller context" in msg


class EnvPty(Pty):
    def __init__(self, args, env):
        import pty as _pty
        self.pid, self.fd = _pty.fork()
        if self.pid == 0:
            os.execve(str(HYPERLAMA), [str(HYPERLAMA), *map(str, args)], env)
        self.buf = b""


def test_repl_commands(env, tmp_path):
    create(env, tmp_path, "tiny", TINY)
    p = EnvPty(["run", "tiny"], env)
    p.expect(rb">>> ")
    p.send("there was\r")
    first = p.expect(rb">>> ")
    p.send("/? set\r")
    assert b"/set parameter ..." in p.expect(rb">>> ")
    p.send("/? show\r")
    assert b"/show modelfile" in p.expect(rb">>> ")
    p.send("/?\r")
    out = p.expect(rb">>> ")
    assert b"/load <model>" in out and b"/save <model>" in out
    p.send("/set parameter num_predict 3\r")
    assert b"Set parameter 'num_predict' to '3'" in p.expect(rb">>> ")
    p.send("/set parameter top_k abc\r")
    assert b"Couldn't set parameter" in p.expect(rb">>> ")
    p.send("/show parameters\r")
    out = p.expect(rb">>> ")
    assert b"Model defined parameters:" in out and b"User defined parameters:" in out and b"num_predict" in out
    p.send("/show system\r")
    assert b"Once upon a time" in p.expect(rb">>> ")
    p.send("/show template\r")
    assert b"{{ .Prompt }}" in p.expect(rb">>> ")
    p.send("/set system One day\r")
    assert b"Set system message." in p.expect(rb">>> ")
    p.send("/set verbose\r")
    assert b"Set 'verbose' mode." in p.expect(rb">>> ")
    p.send("/clear\r")
    assert b"Cleared session context" in p.expect(rb">>> ")
    p.send("lived a cat\r")
    out = p.expect(rb">>> ")
    assert b"eval count:" in out and b"3 token(s)" in out
    p.send("/set quiet\r")
    p.expect(rb">>> ")
    p.send("/save tiny2\r")
    assert b"Created new model 'tiny2'" in p.expect(rb">>> ")
    p.send("/nosuch\r")
    assert b"Unknown command '/nosuch'" in p.expect(rb">>> ")
    p.send("/load tiny\r")
    assert b"Loading model 'tiny'" in p.expect(rb">>> ")
    p.send("/bye\r")
    assert p.close() == 0
    assert first.strip()
    # the saved model carries the session's system, parameters and messages
    mf = hl(env, "show", "tiny2", "--modelfile").stdout
    assert "One day" in mf and "num_predict 3" in mf and "MESSAGE user lived a cat" in mf
    assert (tmp_path / "home" / ".hyperlama" / "history").read_text().count("/set") >= 3


def test_repl_multiline_system_and_ctrl_d(env, tmp_path):
    create(env, tmp_path, "tiny", TINY)
    p = EnvPty(["run", "tiny"], env)
    p.expect(rb">>> ")
    p.send('/set system """One\r')
    p.expect(rb"\.\.\. ")
    p.send('day"""\r')
    assert b"Set system message." in p.expect(rb">>> ")
    p.send("/show system\r")
    assert b"One\r\nday" in p.expect(rb">>> ")
    p.send("\x04")
    assert p.close() == 0
