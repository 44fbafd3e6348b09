"""Where the build, the shared test data and the downloaded models are: the
constants every Python test imports (`from hltest import ...`). Kept out of
conftest.py because pytest loads several conftest modules under the same name."""
import importlib.util
import os
import pathlib

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
