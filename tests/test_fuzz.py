"""Runs each libFuzzer target for a bounded time over its seed corpus.
A target's corpus lives in fuzz/<module>/corpus_<target>/ (plus any seeds the
target's .seeds file names relative to the shared folder, or else to the
repository). The targets run as many at a time as there are cores (each
single-threaded, so each still gets a core for its whole time); each test
waits for its own target's result."""
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from hltest import BUILD, ROOT, SHARED

FUZZ_SECONDS = int(os.environ.get("HL_FUZZ_SECONDS", "20"))


def targets():
    base = BUILD / "fuzz" / "fuzz"
    return sorted(p for p in base.glob("fuzz_*") if p.is_file()) if base.exists() else []


def run_target(target):
    """Fuzzes target over a fresh copy of its seeds: (returncode, stderr),
    or an error text when its source is missing."""
    srcs = list((ROOT / "fuzz").rglob(target.name + ".c"))
    if not srcs:
        return None, f"no source for {target.name}"
    src_dir = srcs[0].parent
    with tempfile.TemporaryDirectory() as corpus:
        seed_dir = src_dir / ("corpus_" + target.name[len("fuzz_"):])
        if seed_dir.exists():
            for f in seed_dir.iterdir():
                shutil.copy(f, corpus)
        seeds = src_dir / (target.name + ".seeds")
        if seeds.exists():
            for line in seeds.read_text().split():
                p = SHARED / line
                if not p.exists():  # a fixture of the repository (tests/data/...)
                    p = ROOT / line
                if p.exists():
                    shutil.copy(p, corpus)
        r = subprocess.run([str(target), corpus, f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=4096",
                            "-max_len=1048576", "-timeout=20"], cwd=ROOT, capture_output=True, text=True)
        return r.returncode, r.stderr


@pytest.fixture(scope="module")
def fuzz_runs(request):
    """Every selected target started at once on a pool of os.cpu_count()
    workers (a -k that selects one target runs that one only)."""
    chosen = [it.callspec.params["target"] for it in request.session.items
              if it.originalname == "test_fuzz_target" and hasattr(it, "callspec")]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as ex:
        yield {t.name: ex.submit(run_target, t) for t in chosen}


@pytest.mark.parametrize("target", targets(), ids=lambda p: p.name)
def test_fuzz_target(target, fuzz_runs):
    rc, err = fuzz_runs[target.name].result()
    assert rc is not None, err
    print(err[-8000:])
    assert rc == 0, f"{target.name} found a crash:\n{err[-8000:]}"
