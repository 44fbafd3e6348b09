"""The numpy reference itself (scripts/reference/forward.py) against
transformers, before it judges the engine: tests/data/hf/gemma3 (a tiny random
Gemma3ForCausalLM, F16 SafeTensors) is imported with `hyperlama create` into a
temporary store, forward.py runs the GGUF, and its logits at every position
of both prompts must match transformers' own (reference.json, written by
tests/reference/make_hf_fixtures.py; CI has no torch).

The converter is ours, but it only renames tensors, adds Gemma's 1 to the norm
weights and writes keys (tests/store/test_convert_hf.py checks those against
the SafeTensors with gguf-py); the arithmetic compared here is transformers'
against forward.py's. The second prompt (29 tokens) crosses the fixture's
8-token sliding window, so the local/global layer pattern, the window's edge
and the two rope bases all matter (each one broken moves logits by 12-17).
Observed max |forward.py - transformers| 6.8e-5 on logits of magnitude ~20
(both compute in f32 from the same F16 weights); the bound is 1e-3.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from hltest import HYPERLAMA, ROOT, free_port, stop_autostarted

sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import forward as F  # noqa: E402

HF = ROOT / "tests" / "data" / "hf"
TOL = 1e-3


def import_hf(tmp_path, name, src):
    """GGUF path of the Hugging Face directory src, imported into a store of
    its own under tmp_path. The verbs talk to a server, which the first one
    starts in the background: on a free port, with this test's HOME and
    store, stopped before returning."""
    if not HYPERLAMA.exists():
        pytest.fail(f"{HYPERLAMA} not built: run make")
    env = {k: v for k, v in os.environ.items() if k not in ("HYPERLAMA_API_KEY", "HYPERLAMA_CONFIG")}
    env.update(HYPERLAMA_MODELS=str(tmp_path / "models"), OLLAMA_MODELS=str(tmp_path / "ollama"),
               HOME=str(tmp_path / "home"), HYPERLAMA_HOST=f"127.0.0.1:{free_port()}")
    (tmp_path / "home").mkdir(exist_ok=True)
    mf = tmp_path / "Modelfile"
    mf.write_text(f"FROM {src}\n")

    def run(*args):
        r = subprocess.run([str(HYPERLAMA), *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"hyperlama {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r.stdout
    try:
        run("create", name, "-f", str(mf))
        return re.search(r"^FROM (\S+)$", run("show", name, "--modelfile"), re.M).group(1)
    finally:
        stop_autostarted(env["HOME"])


def test_gemma3_reference_matches_transformers(tmp_path):
    ref = json.loads((HF / "gemma3" / "reference.json").read_text())
    model = F.Model(import_hf(tmp_path, "hf-gemma3", HF / "gemma3"))
    assert model.hp.arch == "gemma3" and model.hp.n_swa > 0
    for case in ref["cases"]:
        want = np.asarray(case["logits"], np.float64)
        got = model.logits(case["ids"], F.FLOAT)
        assert got.shape == want.shape
        err = np.abs(got - want).max()
        print(f"{case['text']!r}: {len(case['ids'])} positions, max |forward.py - transformers| {err:.3g}")
        assert err <= TOL, f"{case['text']!r}: max error {err:.4g} > {TOL} at position {int(np.abs(got - want).max(-1).argmax())}"
        assert model.greedy(case["ids"], len(case["greedy"]), F.FLOAT) == case["greedy"]
