"""`hyperlama run FILE.gguf` with speculative decoding (prompt lookup, on by
default, or a draft model): the greedy text is the same with and without it,
and --verbose prints the drafted and accepted counts after Ollama's timing
block."""
import re
import subprocess

from hltest import HYPERLAMA, SHARED, model_path

PROMPT = "Repeat this list twice: apple, banana, cherry, date, elderberry, fig, grape, kiwi, lemon, mango."


def run(*args):
    r = subprocess.run([str(HYPERLAMA), "run", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def test_run_verbose_reports_drafts_and_text_is_unchanged():
    model = model_path("smollm2-135m-instruct-q4_1.gguf")
    flags = ("--temperature", "0", "--num-predict", "60", "--verbose")
    on = run(model, PROMPT, *flags)
    off = run(model, PROMPT, *flags, "--speculative", "false")
    assert on.stdout == off.stdout
    m = re.search(r"^draft count:\s+(\d+) token\(s\)$", on.stderr, re.M)
    assert m, on.stderr
    a = re.search(r"^draft accepted:\s+(\d+) token\(s\) \((\d+\.\d)%\)$", on.stderr, re.M)
    assert a and int(a.group(1)) <= int(m.group(1)), on.stderr
    assert re.search(r"^draft count:\s+0 token\(s\)$", off.stderr, re.M), off.stderr
    # num_draft 0 is off too; a bad value is refused with the flag named
    none = run(model, PROMPT, *flags, "--num-draft", "0")
    assert none.stdout == off.stdout and re.search(r"^draft count:\s+0 ", none.stderr, re.M)
    bad = subprocess.run([str(HYPERLAMA), "run", str(model), "hi", "--speculative", "maybe"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "--speculative" in bad.stderr


def test_run_with_a_draft_model():
    """--draft-model: the stories260K Q4_0 file drafts for the F32 one (one
    tokenizer); the text is the one without speculation, drafts are accepted;
    a draft with another vocabulary is refused with the reason."""
    model, q4 = SHARED / "models/stories260K.gguf", SHARED / "models/stories260K-Q4_0.gguf"
    flags = ("--raw", "--temperature", "0", "--num-predict", "60", "--verbose")
    off = run(model, "Once upon a time", *flags, "--speculative", "false")
    on = run(model, "Once upon a time", *flags, "--draft-model", q4)
    assert on.stdout == off.stdout
    a = re.search(r"^draft accepted:\s+(\d+) token\(s\)", on.stderr, re.M)
    assert a and int(a.group(1)) > 0, on.stderr
    bad = subprocess.run([str(HYPERLAMA), "run", str(model), "Once", "--raw", "--draft-model",
                          str(SHARED / "models/llama-2-tiny-random.gguf")], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "cannot draft for" in bad.stderr, bad.stderr
