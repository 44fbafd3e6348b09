"""Runs every C unit-test binary, in the release build and under ASan+UBSan.
Each binary prints one line per test and exits non-zero on any failure."""
import os
import subprocess

import pytest

from hltest import BUILD, ROOT


def binaries():
    out = []
    for mode in ("release", "asan"):
        base = BUILD / mode / "tests"
        if base.exists():
            out += sorted(p for p in base.rglob("test_*") if p.is_file() and os.access(p, os.X_OK))
    return out


@pytest.mark.parametrize("binary", binaries(), ids=lambda p: str(p.relative_to(BUILD)))
def test_unit_binary(binary):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([str(binary)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    print(r.stdout[-20000:])
    print(r.stderr[-20000:])
    assert r.returncode == 0, f"{binary.name} failed:\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}"
