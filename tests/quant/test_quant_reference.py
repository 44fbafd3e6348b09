"""Compares the quant module with gguf-py on fresh random data every run:
regenerates the fixtures (scripts/gen_quant_fixtures.py) with a new seed into a
temporary directory and runs the C test binary against them, in the release
build and, when present, the ASan+UBSan build. The committed fixtures only
cover one seed; this catches order-of-operation slips that one seed misses."""
import os
import secrets
import subprocess
import sys

import pytest

from hltest import BUILD, ROOT

BINARIES = [BUILD / mode / "tests/quant/test_quant" for mode in ("release", "asan")]


def _existing():
    found = [b for b in BINARIES if b.exists()]
    if not found:
        pytest.fail(f"{BINARIES[0]} not built: run make tests")
    return found


@pytest.mark.parametrize("run", range(2))
def test_against_fresh_gguf_py_fixtures(tmp_path, run):
    seed = secrets.randbits(32)
    gen = [sys.executable, str(ROOT / "scripts/gen_quant_fixtures.py"), "--seed", str(seed),
           "--blocks", "256", "--out", str(tmp_path)]
    subprocess.run(gen, check=True, cwd=ROOT, timeout=300)
    env = dict(os.environ, HL_QUANT_FIXTURES=str(tmp_path))
    for binary in _existing():
        r = subprocess.run([str(binary)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{binary} with seed {seed} failed:\n{r.stdout[-5000:]}\n{r.stderr[-3000:]}"
        assert "0 failed" in r.stdout


def test_committed_fixtures_are_current(tmp_path):
    """The committed fixtures are what the generator makes with its default
    seed (so nobody edits them by hand, and gguf-py changes show up)."""
    subprocess.run([sys.executable, str(ROOT / "scripts/gen_quant_fixtures.py"), "--out", str(tmp_path)],
                   check=True, cwd=ROOT, timeout=300)
    committed = ROOT / "tests/data/quant"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in committed.iterdir())
    for name in names:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


def test_iquant_tables_are_current():
    """src/quant/quant_iq_tables.c is what scripts/gen_iquant_tables.py prints
    from the installed gguf package's grids (nobody edits it by hand)."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts/gen_iquant_tables.py")], check=True, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout == (ROOT / "src/quant/quant_iq_tables.c").read_text()
