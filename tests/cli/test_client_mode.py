"""The command line as a client of the server (Ollama's model): list, show,
ps, stop, cp, rm, create and run NAME go through the HTTP API of the server at
HYPERLAMA_HOST; with none there, the first verb starts `hyperlama serve` in
the background. Every test runs on its own free port and temporary store, and
stops every server it caused.

References are independent of the CLI's code: the server's JSON (/api/tags,
/api/ps) read with requests, the store's manifest files hashed here, the GGUF
metadata read with the gguf package, and the in-process path of `run` (a
GGUF file by path) for generated text."""
import hashlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_cli import HYPERLAMA, SHARED, Pty  # noqa: E402
from hltest import free_port, model_path  # noqa: E402

STORIES = SHARED / "models" / "stories260K.gguf"
GREEDY = ["--temperature", "0", "--repeat-penalty", "1"]


def human_bytes(b):
    """Ollama's format.HumanBytes, written from its documented behaviour."""
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if b >= scale:
            v = b / scale
            if v >= 10 or v == int(v):
                return f"{int(v)} {unit}"
            return f"{v:.1f} {unit}"
    return f"{b} B"


def base_env(tmp_path, port):
    e = dict(os.environ)
    e.update({
        "HYPERLAMA_MODELS": str(tmp_path / "models"),
        "HOME": str(tmp_path / "home"),
        "HYPERLAMA_HOST": f"127.0.0.1:{port}",
        "HYPERLAMA_KV_BUDGET": "64MiB",
        "HYPERLAMA_NUM_THREADS": "2",
        "HYPERLAMA_REGISTRY": "http://127.0.0.1:9",  # nothing listens: pulls fail fast
    })
    for k in ("HYPERLAMA_API_KEY", "HYPERLAMA_CONFIG"):
        e.pop(k, None)
    (tmp_path / "home").mkdir(exist_ok=True)
    return e


def pid_alive(pid):
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return not stat.rsplit(") ", 1)[1].startswith("Z")


def stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + 15
    while time.time() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


class Served:
    """`hyperlama serve` started by the test, and the CLI pointed at it."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = base_env(tmp_path, self.port)
        self.root = pathlib.Path(self.env["HYPERLAMA_MODELS"])
        self.logpath = tmp_path / "server.log"
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen([str(HYPERLAMA), "serve"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                requests.get(self.url + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                break
        self.stop()
        pytest.fail("server did not start:\n" + self.logpath.read_text())

    def __call__(self, *args, check=True, env=None, **kw):
        r = subprocess.run([str(HYPERLAMA), *map(str, args)], env=env or self.env, capture_output=True, text=True,
                           timeout=120, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"hyperlama {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def logtext(self):
        self.log.flush()
        return self.logpath.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def srv(tmp_path):
    s = Served(tmp_path)
    yield s
    s.stop()
    # a verb must never have started a second server next to this one
    pidf = tmp_path / "home" / ".hyperlama" / "logs" / "server.pid"
    if pidf.exists():
        stop_pid(int(pidf.read_text().split()[0]))
        pytest.fail("a verb started its own server although one was answering")


def create_story(srv, tmp_path, name="story", extra=""):
    mf = tmp_path / f"{name}.Modelfile"
    mf.write_text(f"FROM {STORIES}\n{extra}")
    srv("create", name, "-f", mf)


def manifest_bytes(root, name):
    return (root / "manifests" / "registry.ollama.ai" / "library" / name / "latest").read_bytes()


def split_row(line):
    return re.split(r"\s{4,}", line.rstrip())


def test_list_show_through_server(srv, tmp_path):
    gguf = pytest.importorskip("gguf")
    create_story(srv, tmp_path, extra="PARAMETER temperature 0.5\nPARAMETER stop \"User:\"\nSYSTEM Be brief.\n")
    out = srv("list").stdout.splitlines()
    assert re.match(r"^NAME {4,}ID {4,}SIZE {4,}MODIFIED$", out[0])
    row = split_row(out[1])
    raw = manifest_bytes(srv.root, "story")
    m = json.loads(raw)
    assert row[0] == "story:latest"
    assert row[1] == hashlib.sha256(raw).hexdigest()[:12]
    assert row[2] == human_bytes(m["config"]["size"] + sum(l["size"] for l in m["layers"]))
    assert re.fullmatch(r"(Less than a second|\d+ seconds?) ago", row[3])
    # the columns line up: every cell starts where its header starts
    for h in ("ID", "SIZE", "MODIFIED"):
        col = out[0].index(h)
        assert out[1][col - 4:col] == "    " and out[1][col] != " "
    # the server served it: the CLI's table is the server's /api/tags
    tags = requests.get(srv.url + "/api/tags", timeout=5).json()["models"]
    assert [t["name"] for t in tags] == ["story:latest"]
    assert "GET /api/tags" in srv.logtext()

    r = gguf.GGUFReader(str(STORIES))
    ctx = int(r.fields["llama.context_length"].parts[-1][0])
    embd = int(r.fields["llama.embedding_length"].parts[-1][0])
    show = srv("show", "story").stdout
    assert re.search(rf"^  Model\n    architecture {{8,}}llama\n    parameters {{10,}}\S+K\n"
                     rf"    context length {{6,}}{ctx}\n    embedding length {{4,}}{embd}\n    quantization {{8,}}F32\n",
                     show, re.M), show
    assert re.search(r"^  Parameters\n    temperature    0.5\n    stop           \"User:\"\n", show, re.M), show
    assert "  System\n    Be brief.\n" in show
    assert srv("show", "story", "--system").stdout == "Be brief.\n"
    assert re.search(r"^temperature\s+0.5$", srv("show", "story", "--parameters").stdout, re.M)
    assert "FROM " + str(srv.root / "blobs") in srv("show", "story", "--modelfile").stdout
    assert "POST /api/show" in srv.logtext()


def test_errors_carry_the_servers_message(srv, tmp_path):
    create_story(srv, tmp_path)
    r = srv("show", "stroy", check=False)
    assert r.returncode == 1 and "not found" in r.stderr and "story:latest" in r.stderr
    r = srv("rm", "nothing-here", check=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "not found" in r.stderr
    r = srv("cp", "story", "../evil", check=False)
    assert r.returncode == 1 and "invalid model name" in r.stderr


def test_cp_rm_through_server(srv, tmp_path):
    create_story(srv, tmp_path)
    assert srv("cp", "story", "me/copy:v1").stdout == "copied 'story' to 'me/copy:v1'\n"
    names = {t["name"] for t in requests.get(srv.url + "/api/tags", timeout=5).json()["models"]}
    assert names == {"story:latest", "me/copy:v1"}
    assert srv("rm", "story").stdout == "deleted 'story'\n"
    names = {t["name"] for t in requests.get(srv.url + "/api/tags", timeout=5).json()["models"]}
    assert names == {"me/copy:v1"}
    log = srv.logtext()
    assert "POST /api/copy" in log and "DELETE /api/delete" in log


def test_run_ps_stop(srv, tmp_path):
    create_story(srv, tmp_path)
    args = ["Once upon a time", *GREEDY, "--num-predict", "24"]
    got = srv("run", "story", *args)
    want = srv("run", STORIES, "--raw", *args)
    assert got.stdout.strip() == want.stdout.strip() and len(want.stdout.split()) >= 5
    assert re.search(r"POST /api/(chat|generate) 200", srv.logtext())

    out = srv("ps").stdout.splitlines()
    assert re.match(r"^NAME {4,}ID {4,}SIZE {4,}PROCESSOR {4,}CONTEXT {4,}UNTIL$", out[0])
    assert len(out) == 2
    row = split_row(out[1])
    ps = requests.get(srv.url + "/api/ps", timeout=5).json()["models"][0]
    raw = manifest_bytes(srv.root, "story")
    assert row[0] == "story:latest"
    assert row[1] == hashlib.sha256(raw).hexdigest()[:12]
    assert row[2] == human_bytes(ps["size"])
    assert row[3] == "100% CPU"
    assert row[4] == str(ps["context_length"]) and int(row[4]) > 0
    assert re.fullmatch(r"(4|5) minutes from now", row[5]), row[5]

    assert srv("stop", "story").returncode == 0
    assert requests.get(srv.url + "/api/ps", timeout=5).json()["models"] == []
    assert srv("ps").stdout.strip() == "NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL"
    r = srv("stop", "story", check=False)
    assert r.returncode == 1 and 'couldn\'t find model "story" to stop' in r.stderr


def test_run_with_template_and_options(srv, tmp_path):
    create_story(srv, tmp_path, "tmpl", 'TEMPLATE """{{ .System }} {{ .Prompt }}"""\nSYSTEM Once upon\n'
                 "PARAMETER num_predict 30\n")
    got = srv("run", "tmpl", "a time", *GREEDY, "--num-predict", "12").stdout
    want = srv("run", STORIES, "--raw", "Once upon a time", *GREEDY, "--num-predict", "12").stdout
    assert got.strip() == want.strip()


def test_host_forms_and_help(srv, tmp_path):
    env = dict(srv.env, HYPERLAMA_HOST=f"http://127.0.0.1:{srv.port}")
    assert srv("list", env=env).stdout.startswith("NAME")
    r = srv("list", env=dict(srv.env, HYPERLAMA_HOST="127.0.0.1:99999"), check=False)
    assert r.returncode == 1 and "HYPERLAMA_HOST" in r.stderr and "invalid port" in r.stderr
    # a server elsewhere is not started here
    r = srv("list", env=dict(srv.env, HYPERLAMA_HOST="nonexistent.invalid:5"), check=False)
    assert r.returncode == 1 and "could not connect to the server at http://nonexistent.invalid:5" in r.stderr
    for verb in ["run", "list", "ls", "show", "ps", "stop", "rm", "cp", "create", "pull", "push", "serve"]:
        r = srv(verb, "--help")
        assert "Usage:" in r.stdout, verb
    r = srv("frobnicate", check=False)
    assert r.returncode != 0 and r.stderr == 'Error: unknown command "frobnicate" for "hyperlama"\n'
    for verb in ["list", "ps", "show"]:
        r = srv(verb, "--bogus", check=False)
        assert r.returncode != 0 and "Error: unknown flag: --bogus" in r.stderr, verb


def test_autostart(tmp_path):
    port = free_port()
    env = base_env(tmp_path, port)
    home = pathlib.Path(env["HOME"])
    pidf = home / ".hyperlama" / "logs" / "server.pid"
    try:
        r = subprocess.run([str(HYPERLAMA), "list"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "NAME    ID    SIZE    MODIFIED\n"
        log = home / ".hyperlama" / "logs" / "server.log"
        assert log.exists() and "Listening on" in log.read_text()
        pid = int(pidf.read_text().split()[0])
        assert pid_alive(pid)
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmd[1] == b"serve"
        assert os.getsid(pid) == pid  # its own session: a Ctrl+C in the terminal does not reach it
        environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"HYPERLAMA_MODELS={env['HYPERLAMA_MODELS']}".encode() in environ
        assert requests.get(f"http://127.0.0.1:{port}/api/version", timeout=5).ok
        # the next verb finds it and starts no other
        mf = tmp_path / "Modelfile"
        mf.write_text(f"FROM {STORIES}\n")
        subprocess.run([str(HYPERLAMA), "create", "story", "-f", mf], env=env, check=True, capture_output=True, timeout=60)
        assert int(pidf.read_text().split()[0]) == pid
        out = subprocess.run([str(HYPERLAMA), "ls"], env=env, capture_output=True, text=True, timeout=60).stdout
        assert "story:latest" in out
    finally:
        if pidf.exists():
            stop_pid(int(pidf.read_text().split()[0]))
    assert not pid_alive(pid)


class EnvPty(Pty):
    def __init__(self, args, env):
        import pty as _pty
        self.pid, self.fd = _pty.fork()
        if self.pid == 0:
            os.execve(str(HYPERLAMA), [str(HYPERLAMA), *map(str, args)], env)
        self.buf = b""


def test_repl_through_server(srv, tmp_path):
    create_story(srv, tmp_path, "tmpl", 'TEMPLATE """{{ .System }} {{ .Prompt }}"""\nSYSTEM Once upon\n')
    p = EnvPty(["run", "tmpl", *GREEDY, "--num-predict", "10"], srv.env)
    p.expect(rb">>> ")
    p.send("a time\r")
    first = p.expect(rb">>> ")
    p.send("/set parameter num_predict 3\r")
    assert b"Set parameter 'num_predict' to '3'" in p.expect(rb">>> ")
    p.send("/set verbose\r")
    p.expect(rb">>> ")
    p.send("there was\r")
    out = p.expect(rb">>> ")
    assert b"eval count:           3 token(s)" in out
    p.send("/show info\r")
    assert b"architecture        llama" in p.expect(rb">>> ")
    p.send("/show parameters\r")
    assert b"User defined parameters:" in p.expect(rb">>> ")
    p.send("/save saved\r")
    assert b"Created new model 'saved'" in p.expect(rb">>> ")
    p.send("/bye\r")
    assert p.close() == 0
    want = srv("run", STORIES, "--raw", "Once upon a time", *GREEDY, "--num-predict", "10").stdout.strip()
    assert want.encode() in first.replace(b"\r\n", b"\n")
    log = srv.logtext()
    assert log.count("POST /api/chat 200") >= 2
    mf = srv("show", "saved", "--modelfile").stdout
    assert "num_predict 3" in mf and "MESSAGE user a time" in mf


def metric(srv, name):
    total = 0.0
    for line in requests.get(srv.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_ctrl_c_cancels_on_the_server(srv, tmp_path):
    smol = model_path("smollm2-135m-instruct-q4_1.gguf")  # fails the test when it is not downloaded
    mf = tmp_path / "smol.Modelfile"
    mf.write_text(f"FROM {smol}\n")
    srv("create", "smol", "-f", mf)
    p = EnvPty(["run", "smol", "--num-predict", "4000", "--num-ctx", "4096", "--temperature", "0.8"], srv.env)
    p.expect(rb">>> ")
    p.send("Write a very long story about a dragon.\r")
    p.expect(rb"dragon\.\r\n")  # the echo of the line
    p.expect(rb"\w+ \w+ \w+", timeout=60)  # the answer is streaming
    p.send("\x03")
    t0 = time.time()
    p.expect(rb">>> ", timeout=10)
    assert time.time() - t0 < 5
    # the server saw the client go (499: client closed) and stopped generating
    deadline = time.time() + 5
    while time.time() < deadline and "POST /api/chat 499" not in srv.logtext():
        time.sleep(0.1)
    assert "POST /api/chat 499" in srv.logtext()
    a = requests.get(srv.url + "/api/ps", timeout=5).json()
    n1 = metric(srv, "hyperlama_generation_tokens_total")
    time.sleep(1.0)
    n2 = metric(srv, "hyperlama_generation_tokens_total")
    assert n1 == n2, (n1, n2)
    assert a["models"] and a["models"][0]["name"] == "smol:latest"
    p.send("/bye\r")
    assert p.close() == 0


def outward_ip():
    """This machine's address on its network (not loopback), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def test_create_on_a_remote_server_uploads_the_blob(tmp_path):
    """A server on another address cannot read our paths: create uploads the
    GGUF to /api/blobs and sends the other instructions as fields."""
    ip = outward_ip()
    if not ip:
        pytest.skip("no non-loopback address")
    port = free_port()
    env = base_env(tmp_path, port)
    env["HYPERLAMA_API_KEY"] = "test-key-" + os.urandom(8).hex()  # never an open server on the network
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([str(HYPERLAMA), "serve", "--host", f"0.0.0.0:{port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = dict(env, HYPERLAMA_HOST=f"{ip}:{port}")
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                requests.get(f"http://{ip}:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        d = tmp_path / "elsewhere"
        d.mkdir()
        (d / "m.gguf").write_bytes(STORIES.read_bytes())
        (d / "Modelfile").write_text('FROM ./m.gguf\nSYSTEM Be brief.\nPARAMETER temperature 0.25\nPARAMETER stop "User:"\n'
                                     "MESSAGE user hi\nMESSAGE assistant hello\nLICENSE MIT\n")
        r = subprocess.run([str(HYPERLAMA), "create", "far", "-f", d / "Modelfile"], env=client, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "uploading" in r.stderr and "success" in r.stderr
        text = (tmp_path / "server.log").read_text()
        assert "POST /api/blobs/sha256:" + hashlib.sha256(STORIES.read_bytes()).hexdigest() in text
        m = json.loads(manifest_bytes(pathlib.Path(env["HYPERLAMA_MODELS"]), "far"))
        kinds = sorted(l["mediaType"].rsplit(".", 1)[1] for l in m["layers"])
        assert kinds == sorted(["model", "system", "params", "messages", "license"])
        show = subprocess.run([str(HYPERLAMA), "show", "far", "--parameters"], env=client, capture_output=True, text=True,
                              timeout=60).stdout
        assert re.search(r"^temperature\s+0.25$", show, re.M) and re.search(r'^stop\s+"User:"$', show, re.M)
        # without the key the server refuses, and the CLI says why
        r = subprocess.run([str(HYPERLAMA), "list"], env=dict(client, HYPERLAMA_API_KEY=""), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and "API key" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
