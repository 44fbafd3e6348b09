"""Where the build, the shared test data and the downloaded models are: the
constants every Python test imports (`from hltest import ...`). Kept out of
conftest.py because pytest loads several conftest modules under the same name."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("HL_SHARED_DIR", ROOT.parent / "shared"))
MODELS = pathlib.Path(os.environ.get("HL_MODELS_DIR", pathlib.Path.home() / ".cache/hyperlama/models"))
BUILD = ROOT / "build"
HYPERLAMA = BUILD / "release" / "hyperlama"


def model_path(name):
    """Path of a downloaded test model; fails (not skips) when it is missing in
    CI, since scripts/setup.sh --test fetches it."""
    p = MODELS / name
    if not p.exists():
        if os.environ.get("CI"):
            pytest.fail(f"model {p} missing: scripts/setup.sh --test should have fetched it")
        pytest.skip(f"model {p} not fetched (scripts/fetch_models.py)")
    return p
