"""Runs each libFuzzer target for a bounded time over its seed corpus.
A target's corpus lives in fuzz/<module>/corpus_<target>/ (plus any seeds the
target's .seeds file names relative to the shared folder, or else to the
repository)."""
import os
import shutil
import subprocess
import tempfile

import pytest

from hltest import BUILD, ROOT, SHARED

FUZZ_SECONDS = int(os.environ.get("HL_FUZZ_SECONDS", "20"))


def targets():
    base = BUILD / "fuzz" / "fuzz"
    return sorted(p for p in base.glob("fuzz_*") if p.is_file()) if base.exists() else []


@pytest.mark.parametrize("target", targets(), ids=lambda p: p.name)
def test_fuzz_target(target):
    srcs = list((ROOT / "fuzz").rglob(target.name + ".c"))
    assert srcs, f"no source for {target.name}"
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
        print(r.stderr[-8000:])
        assert r.returncode == 0, f"{target.name} found a crash:\n{r.stderr[-8000:]}"
