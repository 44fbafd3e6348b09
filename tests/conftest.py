"""Session-wide fixtures and environment defaults for the Python tests. The
shared constants live in hltest.py."""
import os

import pytest

from hltest import HYPERLAMA, MODELS, SHARED

os.environ.setdefault("HL_SHARED_DIR", str(SHARED))
os.environ.setdefault("HL_MODELS_DIR", str(MODELS))


@pytest.fixture(scope="session")
def hyperlama():
    if not HYPERLAMA.exists():
        pytest.fail(f"{HYPERLAMA} not built: run make")
    return HYPERLAMA
