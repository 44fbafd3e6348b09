"""Generates the committed reference fixtures for the big test models:
tests/data/reference/<model>.npz, read by tests/reference/test_logits.py.

For every prompt (text + token ids from hf_tokenizer.py, i.e. Hugging Face
`tokenizers` built from the GGUF's own vocabulary), at every position, in both
reference modes (forward.py: "float" and "emulated"):
  top_ids      [n_pos, 32] int32  ids of the 32 largest float-mode logits (sorted)
  top_float    [n_pos, 32] f32    float-mode logits at top_ids
  top_emu      [n_pos, 32] f32    emulated-mode logits at top_ids
  argmax_float, argmax_emu [n_pos] int32
  gap_emu      [n_pos] f32        emulated top-1 minus top-2 logit (near ties)
  lse_float, lse_emu [n_pos] f64  logsumexp over the whole vocabulary
  greedy_float, greedy_emu        greedy continuation ids (prompt then argmax)
  greedy_emu_gap                  top-1 minus top-2 logit at each emulated greedy step
Full logits rows are not stored (151936 floats per position for Qwen).

Run once, after a change to the prompts or the reference (it takes tens of
minutes for Qwen on a 2-core machine, weights need ~8 GB of RAM as f32; Gemma 3
about 4 minutes and ~4 GB):
    .venv/bin/python scripts/reference/gen_fixtures.py [smollm2] [qwen2.5-coder] [gemma3]
Keys of the .npz are "<prompt name>/<field>", plus "meta" (JSON).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import forward as F  # noqa: E402
import hf_tokenizer as H  # noqa: E402

MODELS = pathlib.Path(os.environ.get("HL_MODELS_DIR", pathlib.Path.home() / ".cache/hyperlama/models"))
OUT = ROOT / "tests" / "data" / "reference"
TOPK = 32

# name -> (file, prompts). A prompt is (name, kind, content, n_greedy): kind
# "chat" renders [system?, user] with the model's own template; "text" is raw.
SPECS = {
    "smollm2": ("smollm2-135m-instruct-q4_1.gguf", [
        ("chat_sky", "chat", ("You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                              "Why is the sky blue?"), 64),
        ("chat_haiku", "chat", (None, "Write a short poem about the sea."), 64),
        ("text_capital", "text", "The capital of France is Paris. The capital of Germany is", 64),
        ("text_digits", "text", "In 2024, 12345 apples cost $3.50 each; that's a lot!\nNext:", 32),
    ]),
    "qwen2.5-coder": ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", [
        ("chat_sky", "chat", ("You are a helpful assistant.", "Why is the sky blue?"), 64),
        ("chat_prime", "chat", ("You are a helpful assistant.",
                                "Write a Python function that checks whether a number is prime."), 64),
        ("text_code", "text", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", 32),
        ("text_multi", "text", "Ünïcödé test: 你好，世界! 12345 + 678 = ", 32),
    ]),
    # the draft model of the speculation benchmarks: same family, fewer layers
    "qwen2.5-coder-0.5b": ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", [
        ("chat_sky", "chat", ("You are a helpful assistant.", "Why is the sky blue?"), 64),
        ("text_code", "text", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", 32),
        ("text_multi", "text", "Ünïcödé test: 你好，世界! 12345 + 678 = ", 32),
    ]),
    # The GGUF has no chat template: its turns are written out as Gemma 3's
    # published format. Its 262144-entry vocabulary makes each logits row 1 MiB
    # and the tied output matrix 640 MiB as f32 (kept once, shared by both modes).
    "gemma3": ("gemma-3-270m-q4_k_m.gguf", [
        ("chat_sky", "text", "<start_of_turn>user\nWhy is the sky blue?<end_of_turn>\n<start_of_turn>model\n", 64),
        ("chat_poem", "text", "<start_of_turn>user\nWrite a short poem about the sea.<end_of_turn>\n"
                              "<start_of_turn>model\n", 64),
        ("text_capital", "text", "The capital of France is Paris. The capital of Germany is", 64),
        ("text_multi", "text", "Ünïcödé test: 你好，世界! 12345 + 678 = ", 32),
    ]),
}


def prompt_text(reader, kind, content):
    """The prompt's text, starting with the BOS token's text where the file
    asks for a BOS (Gemma; the special-token match turns it into the id)."""
    if kind == "text":
        return H.prompt_prefix(reader) + content
    system, user = content
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return H.prompt_prefix(reader) + H.render_chat(reader, msgs)


def stop_ids(reader):
    f = reader.fields.get("tokenizer.ggml.eos_token_id")
    return (int(f.contents()),) if f is not None else ()


def gen_model(key: str) -> None:
    fname, prompts = SPECS[key]
    path = MODELS / fname
    print(f"[{key}] loading {path}", flush=True)
    model = F.Model(path)
    tok, reader = H.from_gguf(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {"model": fname, "topk": TOPK, "prompts": []}
    for name, kind, content, n_greedy in prompts:
        t0 = time.time()
        text = prompt_text(reader, kind, content)
        ids = H.encode(tok, text)
        lf = model.logits(ids, F.FLOAT)
        le = model.logits(ids, F.EMULATED)
        top = np.argsort(-lf, axis=-1, kind="stable")[:, :TOPK].astype(np.int32)
        srt = np.sort(le, axis=-1)
        d = {
            "ids": np.asarray(ids, np.int32),
            "top_ids": top,
            "top_float": np.take_along_axis(lf, top, axis=-1).astype(np.float32),
            "top_emu": np.take_along_axis(le, top, axis=-1).astype(np.float32),
            "argmax_float": lf.argmax(-1).astype(np.int32),
            "argmax_emu": le.argmax(-1).astype(np.int32),
            "gap_emu": (srt[:, -1] - srt[:, -2]).astype(np.float32),
            "lse_float": F.logsumexp(lf),
            "lse_emu": F.logsumexp(le),
        }
        # Greedy: the emulated run decodes token by token; the float run uses
        # it as a draft (forward.greedy_with_draft gives the same ids, faster).
        stop = ()  # no early stop: the engine's --greedy N may run past EOS
        gaps: list[float] = []
        ge = model.greedy(ids, n_greedy, F.EMULATED, stop=stop, gaps=gaps)
        d["greedy_emu_gap"] = np.asarray(gaps, np.float32)
        gf = F.greedy_with_draft(model, ids, n_greedy, F.FLOAT, ge, stop=stop)
        d["greedy_emu"] = np.asarray(ge, np.int32)
        d["greedy_float"] = np.asarray(gf, np.int32)
        for k, v in d.items():
            arrays[f"{name}/{k}"] = v
        diff = np.abs(lf - le)
        # Noise floor of the emulated mode: the same computation with f64
        # matmul accumulation differs only in rounding (and so in which
        # activations land on the other side of an 8-bit rounding boundary),
        # which is all an exact engine may differ by too.
        l64 = model.logits(ids, dataclasses.replace(F.EMULATED, f64_matmul=True))
        noise = np.abs(np.take_along_axis(l64, top, axis=-1) - d["top_emu"]).max(-1)
        del l64
        info = {
            "name": name, "kind": kind, "text": text, "n_greedy": n_greedy,
            "eos": list(stop_ids(reader)),
            "stats": {
                "max_abs_float_vs_emu_top32": float(np.abs(d["top_float"] - d["top_emu"]).max()),
                "max_abs_float_vs_emu_all": float(diff.max()),
                "max_abs_float_vs_emu_all_by_pos": [round(float(x), 4) for x in diff.max(-1)],
                "top1_agree_float_vs_emu": float((d["argmax_float"] == d["argmax_emu"]).mean()),
                "greedy_common_prefix": int(next((i for i, (a, b) in enumerate(zip(ge, gf)) if a != b),
                                                 min(len(ge), len(gf)))),
                "emu_noise_floor_top32_by_pos": [round(float(x), 5) for x in noise],
                "emu_noise_floor_top32_max": float(noise.max()),
                "emu_noise_floor_top32_median": float(np.median(noise)),
                "logit_range": [float(lf.min()), float(lf.max())],
            },
            "greedy_emu_text": tok.decode(ge),
            "greedy_float_text": tok.decode(gf),
        }
        meta["prompts"].append(info)
        print(f"[{key}] {name}: {len(ids)} tokens, {time.time() - t0:.0f}s, "
              f"{json.dumps(info['stats'])}\n  emu: {info['greedy_emu_text']!r}", flush=True)
    arrays["meta"] = np.asarray(json.dumps(meta, ensure_ascii=False))
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{key}.npz", **arrays)
    print(f"[{key}] wrote {OUT / (key + '.npz')}", flush=True)


if __name__ == "__main__":
    keys = sys.argv[1:] or list(SPECS)
    for k in keys:
        if k not in SPECS:
            sys.exit(f"unknown model {k!r}; choose from {', '.join(SPECS)}")
    for k in keys:
        gen_model(k)
