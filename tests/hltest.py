"""Where the build, the shared test data and the downloaded models are: the
constants every Python test imports (`from hltest import ...`), and the two
helpers every server-starting test shares (a free port; stopping the server a
CLI verb started in the background). Kept out of conftest.py because pytest
loads several conftest modules under the same name."""
import importlib.util
import os
import pathlib
import signal
import socket
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("HL_SHARED_DIR", ROOT.parent / "shared"))
MODELS = pathlib.Path(os.environ.get("HL_MODELS_DIR", pathlib.Path.home() / ".cache/hyperlama/models"))
BUILD = ROOT / "build"
HYPERLAMA = BUILD / "release" / "hyperlama"


def fetch_name(file):
    """The scripts/fetch_models.py name of a test model file, or None."""
    spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return next((k for k, v in mod.MODELS.items() if v[0] == file), None)


def model_path(name):
    """Path of a downloaded test model. A missing one fails the test (never
    skips it): scripts/setup.sh --test fetches every model the suite uses."""
    p = MODELS / name
    if not p.exists():
        pytest.fail(f"test model {name} missing ({p}): fetch it with scripts/fetch_models.py "
                    f"{fetch_name(name) or 'NAME'} (scripts/setup.sh --test fetches every test model)", pytrace=False)
    return p


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_autostarted(home):
    """Stops the server a CLI verb started in the background under this HOME
    (its pid file sits next to its log): SIGTERM, then SIGKILL after 15 s."""
    pidf = pathlib.Path(home) / ".hyperlama" / "logs" / "server.pid"
    if not pidf.exists():
        return
    pid = int(pidf.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + 15
    while time.time() < deadline and pathlib.Path(f"/proc/{pid}").exists():
        try:
            if pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                return  # exited, its parent (a finished CLI) not yet reaped
        except (FileNotFoundError, IndexError):
            return
        time.sleep(0.05)
    if pathlib.Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
