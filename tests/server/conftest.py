"""Fixtures for the server tests: start `hyperlama serve` on a free port with a
temporary model store and config file, wait for /health, stop it at the end."""
import os
import pathlib
import subprocess
import time

import pytest
import requests

from hltest import HYPERLAMA, MODELS, ROOT, SHARED, free_port, model_path  # noqa: F401 (re-exported to the tests)

STORIES = SHARED / "models" / "stories260K.gguf"


class Server:
    def __init__(self, tmp, env_extra=None, args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = pathlib.Path(tmp)
        env = dict(os.environ)
        env.update({
            "HYPERLAMA_CONFIG": str(self.tmp / "config.toml"),
            "HYPERLAMA_MODELS": str(self.tmp / "models"),
            "HYPERLAMA_KV_BUDGET": "128MiB",
            "HYPERLAMA_NUM_THREADS": "2",
        })
        env.pop("HYPERLAMA_HOST", None)
        env.pop("HYPERLAMA_API_KEY", None)
        env.update(env_extra or {})
        self.log = open(self.tmp / "server.log", "wb")
        if not HYPERLAMA.exists():
            pytest.fail(f"{HYPERLAMA} not built: run make")
        self.proc = subprocess.Popen([str(HYPERLAMA), "serve", "--port", str(self.port), *args],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code in (200, 503):
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                break
        self.stop()
        pytest.fail("server did not start:\n" + self.logtext())

    def logtext(self):
        if not self.log.closed:
            self.log.flush()
        return (self.tmp / "server.log").read_text(errors="replace")

    def healthy(self):
        return requests.get(self.url + "/health", timeout=5).status_code == 200

    def metric(self, name, model=None):
        text = requests.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            key, val = line.rsplit(" ", 1)
            if key != name and not key.startswith(name + "{"):
                continue
            if model and f'model="{model}"' not in key:
                continue
            total += float(val)
        return total

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.send_signal(sig or subprocess.signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("srv"))
    yield s
    s.stop()


@pytest.fixture
def make_server(tmp_path):
    made = []

    def make(env=None, args=()):
        d = tmp_path / f"s{len(made)}"
        d.mkdir()
        s = Server(d, env, args)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def smollm():
    return str(model_path("smollm2-135m-instruct-q4_1.gguf"))


@pytest.fixture(scope="session")
def stories():
    return str(STORIES)
