"""Paths for the store tests (the same rules as tests/conftest.py)."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("HL_SHARED_DIR", ROOT.parent / "shared"))
HYPERLAMA = ROOT / "build" / "release" / "hyperlama"
