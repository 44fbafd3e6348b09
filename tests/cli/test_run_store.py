"""`hyperlama run` on store models: Modelfile TEMPLATE (Go template), SYSTEM,
MESSAGE and PARAMETER layers, flags over parameters, pull-on-run, near-miss
names, the memory check, and the interactive chat's slash commands driven in
a real pseudo-terminal.

References are independent of the code under test: a store model's answer
must equal the answer to the prompt the template would produce, sent raw
(text written out here by hand), and a Go-template ChatML model must answer
exactly like the GGUF's own Jinja template (rendered by the chat module)."""
import os
import re
import pathlib
import sys

import pytest

import importlib.util
import subprocess

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_cli import HYPERLAMA, SHARED, Pty  # noqa: E402
from hltest import model_path  # noqa: E402


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
    model_path(SMOL.name)  # fails the test when it is not downloaded
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


def _human(text):
    """'80.0 KiB' -> (80.0, 1024): the value and its unit's size."""
    num, unit = text.split()
    return float(num), {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]


def _expected_fit(path, num_ctx, kv_q8=False):
    """The estimate computed here from the GGUF file with gguf-py (independent of
    our reader): tensor bytes + K and V for the context (f16, or Q8_0 blocks of
    32 values in 34 bytes) + 64 MiB."""
    from gguf import GGUFReader
    r = GGUFReader(str(path))

    def field(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0].name == "STRING" else int(v[0])

    arch = field("general.architecture")
    weights = sum(int(t.n_bytes) for t in r.tensors)
    n_head = field(f"{arch}.attention.head_count")
    n_kv = field(f"{arch}.attention.head_count_kv", n_head)
    kdim = field(f"{arch}.attention.key_length", field(f"{arch}.embedding_length") // n_head)
    vdim = field(f"{arch}.attention.value_length", kdim)
    ctx = min(num_ctx or 4096, field(f"{arch}.context_length"))
    row = (lambda d: d // 32 * 34) if kv_q8 else (lambda d: 2 * d)
    kv = field(f"{arch}.block_count") * ctx * n_kv * (row(kdim) + row(vdim))
    return weights, kv, ctx, weights + kv + (64 << 20)


def _mem_available():
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024


FIT_RE = (r"^    (fits in memory|does not fit) +needs (\S+ \S+) \((\S+ \S+) of weights \+ (\S+ \S+) of KV cache "
          r"for a (\d+)-token context \+ (\S+ \S+) of buffers\), (?:only )?(\S+ \S+) available")


def _check_close(printed, want):
    v, unit = _human(printed)
    # one decimal of the printed unit: rounding error at most half a tenth
    assert abs(v - want / unit) <= 0.051, (printed, want)


@pytest.mark.parametrize("num_ctx", [None, 64])
def test_show_hardware_fit(env, tmp_path, num_ctx):
    import re
    model = SHARED / "models" / "stories260K-Q8_0.gguf"
    text = f"FROM {model}\n" + (f"PARAMETER num_ctx {num_ctx}\n" if num_ctx else "")
    create(env, tmp_path, "fit", text)
    out = hl(env, "show", "fit").stdout
    m = re.search(FIT_RE, out, re.M)
    assert m, out
    weights, kv, ctx, need = _expected_fit(model, num_ctx)
    assert int(m.group(5)) == ctx
    _check_close(m.group(3), weights)
    _check_close(m.group(4), kv)
    _check_close(m.group(6), 64 << 20)
    _check_close(m.group(2), need)
    avail = _mem_available()
    v, unit = _human(m.group(7))
    assert abs(v * unit - avail) < max(0.05 * avail, 256 << 20)  # memory moves a little meanwhile
    assert m.group(1) == ("fits in memory" if need <= avail else "does not fit")


def test_show_hardware_fit_q8_0_kv(env, tmp_path):
    """A server running kv_cache_type = q8_0 reports it in /api/show, and show's
    estimate counts Q8_0 rows (34 bytes per 32 values) instead of f16."""
    import re
    model_path(SMOL.name)  # fails the test when it is not downloaded
    e = dict(env, HYPERLAMA_KV_CACHE_TYPE="q8_0")  # the server this test starts inherits it
    create(e, tmp_path, "smolq", f"FROM {SMOL}\nPARAMETER num_ctx 2048\n")
    out = hl(e, "show", "smolq").stdout
    m = re.search(FIT_RE, out, re.M)
    assert m, out
    weights, kv, ctx, need = _expected_fit(SMOL, 2048, kv_q8=True)
    _, kv16, _, _ = _expected_fit(SMOL, 2048)
    assert int(m.group(5)) == 2048 and kv < 0.6 * kv16
    _check_close(m.group(4), kv)
    _check_close(m.group(2), need)


def test_show_hardware_fit_does_not_fit(env, tmp_path):
    create(env, tmp_path, "tiny", TINY)
    e = dict(env, HYPERLAMA_MEMORY_LIMIT=str(1 << 20))  # the CLI reads the limit; the server does not matter
    r = subprocess.run([str(HYPERLAMA), "show", "tiny"], env=e, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if "does not fit" in l]
    assert line and "only 1.0 MiB available" in line[0] and "smaller quantization" in line[0], r.stdout
    # run refuses with the same numbers show prints
    r2 = subprocess.run([str(HYPERLAMA), "run", "tiny", "hi"], env=e, capture_output=True, text=True, timeout=60)
    assert r2.returncode == 1
    need = re.search(r"needs (\S+ \S+ \(.*?\))", line[0]).group(1)
    assert f"more system memory ({need})" in r2.stderr, (need, r2.stderr)


def _modelfile_commands(text):
    """(INSTRUCTION, rest) pairs of a Modelfile, read here independently of the
    store's parser (one-line values only, which is all this test writes)."""
    out = []
    for line in text.replace("\r\n", "\n").splitlines():
        if line.strip() and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if len(rest) >= 6 and rest.startswith('"""') and rest.endswith('"""'):
                rest = rest[3:-3]
            out.append((word.upper(), rest))
    return out


def test_repl_show_reflects_set(env, tmp_path):
    """/show info, modelfile, parameters and system follow /set parameter and
    /set system, as Ollama's do; the session's Modelfile is a valid one."""
    create(env, tmp_path, "tiny", TINY)
    p = EnvPty(["run", "tiny"], env)
    p.expect(rb">>> ")
    for cmd in ("/set parameter num_predict 5", "/set parameter stop foo bar", "/set parameter num_ctx 64",
                "/set system One day"):
        p.send(cmd + "\r")
        p.expect(rb">>> ")
    p.send("/show info\r")
    info = p.expect(rb">>> ").decode().replace("\r\n", "\n")
    p.send("/show modelfile\r")
    mf = p.expect(rb">>> ").decode().replace("\r\n", "\n")
    p.send("/show system\r")
    system = p.expect(rb">>> ").decode()
    p.send("/show parameters\r")
    params = p.expect(rb">>> ").decode()
    p.send("/bye\r")
    assert p.close() == 0
    # info: the session's values, not the model's
    sect = info.split("  Parameters\n", 1)[1].split("\n\n", 1)[0]
    rows = [l.split(None, 1) for l in sect.splitlines()]
    assert ["num_predict", "5"] in rows and ["num_predict", "12"] not in rows, info
    assert ["stop", '"foo"'] in rows and ["stop", '"bar"'] in rows and ["temperature", "0"] in rows, info
    assert "  System\n    One day\n" in info and "Once upon a time" not in info
    assert "for a 64-token context" in info  # the fit line uses the session's num_ctx
    # modelfile: SYSTEM and PARAMETERs replaced, the rest kept
    cmds = _modelfile_commands(mf.split("/show modelfile", 1)[-1])
    assert ("SYSTEM", "One day") in cmds and not any(c == "SYSTEM" and r != "One day" for c, r in cmds)
    assert ("PARAMETER", "num_predict 5") in cmds and ("PARAMETER", "num_predict 12") not in cmds
    assert ("PARAMETER", "temperature 0") in cmds and ("PARAMETER", "stop foo") in cmds
    assert sum(c == "FROM" for c, _ in cmds) == 1 and any(c == "TEMPLATE" for c, _ in cmds)
    assert "One day" in system and "Once upon a time" not in system
    assert "User defined parameters:" in params and "num_ctx" in params
    # the printed Modelfile is one a user can create from: its parameters come back
    body = mf.split("/show modelfile", 1)[-1].split(">>> ")[0]
    body = "\n".join(l for l in body.replace("\r\n", "\n").splitlines() if not l.startswith("/show"))
    (tmp_path / "again.Modelfile").write_text(body)
    hl(env, "create", "again", "-f", tmp_path / "again.Modelfile")
    shown = hl(env, "show", "again", "--parameters").stdout.split("\n")
    got = sorted(tuple(l.split(None, 1)) for l in shown if l.strip())
    assert got == sorted([("num_ctx", "64"), ("num_predict", "5"), ("repeat_penalty", "1"), ("stop", '"foo"'),
                          ("stop", '"bar"'), ("temperature", "0")]), got
    assert hl(env, "show", "again", "--system").stdout.strip() == "One day"


def test_repl_show_reflects_set_gguf_path(env, tmp_path):
    """The in-process chat of a GGUF file shows the session's changes too."""
    p = EnvPty(["run", STORIES], env)
    p.expect(rb">>> ")
    for cmd in ("/set parameter num_predict 5", "/set system Hi there"):
        p.send(cmd + "\r")
        p.expect(rb">>> ")
    p.send("/show info\r")
    info = p.expect(rb">>> ").decode().replace("\r\n", "\n")
    p.send("/show modelfile\r")
    cmds = _modelfile_commands(p.expect(rb">>> ").decode().split("/show modelfile", 1)[-1])
    p.send("/bye\r")
    assert p.close() == 0
    assert "  Parameters\n" in info and ["num_predict", "5"] in [l.split(None, 1) for l in info.splitlines()]
    assert "  System\n    Hi there\n" in info
    assert ("FROM", str(STORIES)) in cmds and ("PARAMETER", "num_predict 5") in cmds and ("SYSTEM", "Hi there") in cmds
