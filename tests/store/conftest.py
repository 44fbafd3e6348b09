"""Fixtures for the store tests: a fresh store folder per test and the local
registry server (tests/store/registry_server.py) on 127.0.0.1. The verbs talk
to a server: each test gets its own address (HYPERLAMA_HOST on a free port)
and HOME, so the server the first verb starts in the background uses this
test's store, never meets a user's server on 11434, and is stopped at the end
(through the pid file the CLI writes next to its log)."""
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from storepaths import HYPERLAMA, SHARED  # noqa: E402
from hltest import free_port, stop_autostarted  # noqa: E402,F401 (test_run_store uses them from here)
import registry_server  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    with registry_server.Server(SHARED) as s:
        yield s


@pytest.fixture
def env(tmp_path, registry):
    e = dict(os.environ)
    e["HYPERLAMA_MODELS"] = str(tmp_path / "models")
    e["HYPERLAMA_REGISTRY"] = registry.url
    e["OLLAMA_MODELS"] = str(tmp_path / "ollama")
    e["HYPERLAMA_HOST"] = f"127.0.0.1:{free_port()}"
    e["HOME"] = str(tmp_path / "home")
    e["HYPERLAMA_KV_BUDGET"] = "64MiB"
    e["HYPERLAMA_NUM_THREADS"] = "2"
    e.pop("HYPERLAMA_API_KEY", None)
    e.pop("HYPERLAMA_CONFIG", None)
    e.pop("NO_COLOR", None)
    (tmp_path / "home").mkdir(exist_ok=True)
    yield e
    stop_autostarted(e["HOME"])


@pytest.fixture
def hl(env):
    if not HYPERLAMA.exists():
        pytest.fail(f"{HYPERLAMA} not built: run make")

    def run(*args, check=True, **kw):
        r = subprocess.run([str(HYPERLAMA), *map(str, args)], env=env, capture_output=True, text=True, timeout=120, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"hyperlama {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    run.env = env
    run.root = pathlib.Path(env["HYPERLAMA_MODELS"])
    return run
