"""The hyperlama command line, driven as a user drives it, checked against
llama.cpp's reference outputs in ../shared/models/stories260K-llamacpp-reference.txt
(token ids and greedy text) and against behaviour the flags promise."""
import json
import os
import pty
import re
import select
import subprocess
import time

import pytest

from hltest import HYPERLAMA, SHARED, model_path

REF = SHARED / "models" / "stories260K-llamacpp-reference.txt"


def reference():
    """{file: {"tokens": {text: ids}, "greedy_ids": [...], "greedy_text": str}}"""
    out, cur = {}, None
    for line in REF.read_text().splitlines():
        if line.startswith("## "):
            cur = out.setdefault(line[3:].split()[0], {"tokens": {}})
        elif cur is None or line.startswith("#") or not line.strip():
            continue
        elif line.startswith("greedy ids: "):
            cur["greedy_ids"] = json.loads(line[len("greedy ids: "):])
        elif line.startswith("greedy text: "):
            cur["greedy_text"] = json.loads(line[len("greedy text: "):])
        else:
            m = re.match(r'^(".*") -> (\[.*\])$', line)
            if m:
                cur["tokens"][json.loads(m.group(1))] = json.loads(m.group(2))
    return out


REFS = reference()
GREEDY_EXACT = ["stories260K.gguf", "stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q5_0.gguf"]


def hl(*args, input=None, timeout=120, check=True):
    r = subprocess.run([str(HYPERLAMA), *map(str, args)], input=input, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"hyperlama {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}")
    return r


@pytest.mark.parametrize("name", GREEDY_EXACT)
def test_run_raw_greedy_matches_llamacpp(hyperlama, name):
    """Pure greedy (no repeat penalty, as the reference ran) reproduces llama.cpp's text."""
    r = hl("run", SHARED / "models" / name, "Once upon a time", "--raw", "--temperature", "0",
           "--repeat-penalty", "1", "--num-predict", "40", "--threads", "2")
    assert r.stdout == REFS[name]["greedy_text"]


@pytest.mark.parametrize("name", sorted(REFS))
def test_tokenize_matches_llamacpp(hyperlama, name):
    for text, ids in REFS[name]["tokens"].items():
        r = hl("tokenize", SHARED / "models" / name, text)
        assert json.loads(r.stdout) == ids, text


def test_tokenize_add_special_adds_bos(hyperlama):
    r = hl("tokenize", SHARED / "models/stories260K.gguf", "Once upon a time", "--add-special")
    assert json.loads(r.stdout) == [1] + REFS["stories260K.gguf"]["tokens"]["Once upon a time"]


def test_stop_string_is_not_printed(hyperlama):
    r = hl("run", SHARED / "models/stories260K.gguf", "Once upon a time", "--raw", "--temperature", "0",
           "--repeat-penalty", "1", "--num-predict", "40", "--stop", "Lily")
    full = REFS["stories260K.gguf"]["greedy_text"]
    assert r.stdout == full[:full.index("Lily")]


def test_seed_reproducible_and_sensitive(hyperlama):
    args = ["run", SHARED / "models/stories260K.gguf", "Once upon a time", "--raw", "--temperature", "1.0",
            "--num-predict", "60"]
    a = hl(*args, "--seed", "7").stdout
    b = hl(*args, "--seed", "7").stdout
    c = hl(*args, "--seed", "8").stdout
    assert a == b
    assert a != c


def test_num_predict_limits_tokens(hyperlama):
    r = hl("run", SHARED / "models/stories260K.gguf", "Once upon a time", "--raw", "--temperature", "0",
           "--num-predict", "5", "--verbose")
    assert re.search(r"^eval count:\s+5 token\(s\)$", r.stderr, re.M), r.stderr


def test_verbose_prints_ollama_timing_block(hyperlama):
    r = hl("run", SHARED / "models/stories260K.gguf", "Once upon a time", "--raw", "--num-predict", "8", "--verbose")
    for label in ("total duration:", "load duration:", "prompt eval count:", "prompt eval duration:",
                  "prompt eval rate:", "eval count:", "eval duration:", "eval rate:"):
        assert label in r.stderr
    assert re.search(r"^prompt eval count:\s+5 token\(s\)$", r.stderr, re.M)  # BOS + 4 tokens


def test_piped_stdin_becomes_the_prompt(hyperlama):
    r = hl("run", SHARED / "models/stories260K.gguf", "--raw", "--temperature", "0", "--repeat-penalty", "1",
           "--num-predict", "40", input="Once upon a time")
    assert r.stdout == REFS["stories260K.gguf"]["greedy_text"]


def test_chat_template_answer(hyperlama):
    """SmolLM2 with its own chat template answers in words and stops by itself."""
    model = model_path("smollm2-135m-instruct-q4_1.gguf")
    r = hl("run", model, "What is the capital of France?", "--temperature", "0", "--num-predict", "64",
           "--verbose")
    assert "Paris" in r.stdout
    assert "<|im_end|>" not in r.stdout and "<|im_start|>" not in r.stdout


def test_bench_json(hyperlama):
    import numpy as np
    r = hl("bench", SHARED / "models/stories260K.gguf", "-p", "64", "-n", "16", "-r", "5", "--threads", "2", "--json",
           "--backend", "cpu", "--streams", "2,3")
    doc = json.loads(r.stdout)
    tests = {x["test"]: x for x in doc["results"]}
    assert set(tests) == {"pp64", "tg16", "s2", "s3"}  # sN: aggregate decode of N concurrent streams
    assert doc["peak_rss_mib"] > 0 and doc["weight_bytes"] > 0 and doc["threads"] == 2
    assert doc["backend"] == "cpu" and doc["device"] == ""
    for x in tests.values():
        s = x["samples"]
        assert len(s) == 5 and min(s) > 0
        # the spread is the samples' own: numpy's default interpolation
        for key, q in (("p10", 0.1), ("median", 0.5), ("p90", 0.9)):
            assert x[key] == pytest.approx(float(np.quantile(s, q)), rel=1e-6), key
        assert x["mean"] == pytest.approx(float(np.mean(s)), rel=1e-6)
        assert x["stddev"] == pytest.approx(float(np.std(s, ddof=1)), rel=1e-5)


def test_bench_on_vulkan(hyperlama):
    """bench --backend vulkan:N (lavapipe here) and --num-gpu: the JSON names the backend, the split and the device."""
    import os
    dev = os.environ.get("HYPERLAMA_VULKAN_DEVICE", "0")
    r = hl("bench", SHARED / "models/stories260K.gguf", "-p", "16", "-n", "4", "-r", "1", "--json", "--streams", "2",
           "--backend", f"vulkan:{dev}", "--num-gpu", "3")
    doc = json.loads(r.stdout)
    assert [x["test"] for x in doc["results"]] == ["pp16", "tg4", "s2"] and all(x["mean"] > 0 for x in doc["results"])
    assert doc["backend"] == "vulkan (3 of 5 layers, the rest on cpu)" and "Vulkan 1." in doc["device"], doc


def test_bench_table_and_limits(hyperlama):
    r = hl("bench", SHARED / "models/stories260K.gguf", "-p", "32", "-n", "1", "-r", "3")
    head, rows = r.stdout.splitlines()[0], r.stdout.splitlines()[2:4]
    assert "median" in head and "p10 / p90" in head
    assert [x.split("|")[5].strip() for x in rows] == ["pp32", "tg1"]
    for row in rows:
        p10, p90 = map(float, row.split("|")[8].split("/"))
        assert 0 < p10 <= float(row.split("|")[7]) <= p90
    # a test needs its tokens plus one position inside the model's context (2048)
    r = hl("bench", SHARED / "models/stories260K.gguf", "-p", "2048", "-n", "0", check=False)
    assert r.returncode == 1 and "context is 2048 tokens" in r.stderr and "-p" in r.stderr


def test_inspect_lists_metadata_and_tensors(hyperlama):
    r = hl("inspect", SHARED / "models/stories260K-Q4_0.gguf")
    assert "general.architecture" in r.stdout and "llama" in r.stdout
    assert "blk.0.attn_q.weight" in r.stdout and "Q4_0" in r.stdout


@pytest.mark.parametrize("bad", ["invalid/stories260k-gguf-v1.gguf", "invalid/stories260k-v2-q8_0-misaligned-rows.gguf"])
def test_invalid_files_are_refused_clearly(hyperlama, bad):
    for verb in ("inspect", "run"):
        args = [verb, SHARED / "models" / bad] + (["hi", "--raw"] if verb == "run" else [])
        r = hl(*args, check=False)
        assert r.returncode == 1
        assert r.stderr.startswith("Error: ") and len(r.stderr) > 20
        assert "version 1" in r.stderr or "172" in r.stderr


def test_unknown_flag_and_missing_model(hyperlama):
    r = hl("run", SHARED / "models/stories260K.gguf", "hi", "--bogus", check=False)
    assert r.returncode == 2 and "unknown flag" in r.stderr
    r = hl("run", "/nonexistent/model.gguf", "hi", check=False)
    assert r.returncode == 1 and "Error:" in r.stderr


def test_logits_dump_shape(hyperlama, tmp_path):
    out = tmp_path / "l.bin"
    hl("logits", SHARED / "models/stories260K.gguf", "--tokens", "1,403,407,261,378", "--all", "--out", out)
    import numpy as np
    data = out.read_bytes()
    rows, vocab = np.frombuffer(data[:8], dtype=np.int32)
    assert (rows, vocab) == (5, 512)
    logits = np.frombuffer(data[8:], dtype=np.float32).reshape(rows, vocab)
    # the argmax after the prompt is llama.cpp's first greedy token
    assert int(logits[-1].argmax()) == REFS["stories260K.gguf"]["greedy_ids"][0]
    r = hl("logits", SHARED / "models/stories260K.gguf", "--tokens", "1,403,407,261,378", "--greedy", "40")
    assert json.loads(r.stdout) == REFS["stories260K.gguf"]["greedy_ids"]


class Pty:
    """Drives the interactive chat in a real pseudo-terminal."""

    def __init__(self, args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(str(HYPERLAMA), [str(HYPERLAMA), *map(str, args)])
        self.buf = b""

    def expect(self, pattern, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.buf)
            if m:
                out = self.buf[:m.end()]
                self.buf = self.buf[m.end():]
                return out
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.buf += chunk
        raise AssertionError(f"timed out waiting for {pattern!r}; got {self.buf[-2000:]!r}")

    def send(self, s):
        # Type like a person: libedit flushes pending input when it switches the
        # terminal to raw mode after printing the prompt, so keys sent in that
        # instant would be lost.
        time.sleep(0.3)
        os.write(self.fd, s.encode())

    def close(self, timeout=30):
        """Exit code of the program; fails (after killing it) if it does not exit."""
        try:
            deadline = time.time() + timeout
            while time.time() < deadline:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    return os.waitstatus_to_exitcode(status)
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if r:
                    try:
                        os.read(self.fd, 4096)  # keep the terminal drained
                    except OSError:
                        time.sleep(0.1)
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            raise AssertionError("the program did not exit")
        finally:
            os.close(self.fd)


def test_interactive_chat_in_a_terminal(hyperlama):
    p = Pty(["run", SHARED / "models/stories260K.gguf", "--temperature", "0", "--repeat-penalty", "1",
             "--num-predict", "12"])
    p.expect(rb">>> ")
    p.send("Once upon a time\r")
    out = p.expect(rb">>> ")
    assert b"there was a little girl" in out
    p.send('"""One day\r')
    p.expect(rb"\.\.\. ")
    p.send('Lily"""\r')
    p.expect(rb">>> ")
    p.send("/?\r")
    assert b"/bye" in p.expect(rb">>> ")
    p.send("/bye\r")
    assert p.close() == 0


def test_interactive_ctrl_d_leaves(hyperlama):
    p = Pty(["run", SHARED / "models/stories260K.gguf", "--num-predict", "4"])
    p.expect(rb">>> ")
    p.send("\x04")
    assert p.close() == 0


def test_interactive_set_keeps_raw_mode_without_template(hyperlama):
    """/set commands rebuild the options; a model without a chat template must
    stay in raw mode afterwards (regression)."""
    p = Pty(["run", SHARED / "models/stories260K.gguf", "--temperature", "0", "--repeat-penalty", "1",
             "--num-predict", "12"])
    p.expect(rb">>> ")
    p.send("/set verbose\r")
    p.expect(rb">>> ")
    p.send("Once upon a time\r")
    out = p.expect(rb">>> ")
    assert b"there was a little girl" in out and b"eval rate:" in out
    p.send("/bye\r")
    assert p.close() == 0


def test_kv_cache_type_flag(hyperlama):
    """--kv-cache-type q8_0 runs a model whose heads are whole Q8_0 blocks, is
    refused with a reason for one whose heads are not (stories260K: 8 dims),
    and rejects an unknown type; $HYPERLAMA_KV_CACHE_TYPE sets the default."""
    smol = model_path("smollm2-135m-instruct-q4_1.gguf")
    if smol.exists():
        r = hl("run", smol, "The capital of France is", "--raw", "--temperature", "0", "--num-predict", "8",
               "--kv-cache-type", "q8_0", "--threads", "2")
        assert r.stdout.strip()
    r = hl("run", SHARED / "models/stories260K.gguf", "Once", "--kv-cache-type", "q8_0", "--num-predict", "4",
           check=False)
    assert r.returncode != 0 and "multiples of 32" in r.stderr, r.stderr
    r = hl("run", SHARED / "models/stories260K.gguf", "Once", "--kv-cache-type", "q4", check=False)
    assert r.returncode != 0 and "--kv-cache-type must be f16 or q8_0" in r.stderr
    env = dict(os.environ, HYPERLAMA_KV_CACHE_TYPE="q8_0")
    r = subprocess.run([str(HYPERLAMA), "run", str(SHARED / "models/stories260K.gguf"), "Once", "--num-predict", "4"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "multiples of 32" in r.stderr, r.stderr
