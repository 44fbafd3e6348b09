#!/usr/bin/env python3
"""Writes tests/data/tokenizer/llamacpp_ids.json: llama.cpp's own token ids
(its llama-tokenize, built by bench/build_peer.sh) for the corpus of
tests/tokenizer/test_hf_agreement.py on the vocabularies where llama.cpp
departs from Hugging Face on purpose (WordPiece normalization, a BPE file
without tokenizer.ggml.pre, control-looking user-defined tokens), with and
without parse_special. The fixture is committed, so CI needs no llama.cpp.

    scripts/reference/gen_llamacpp_tok.py [PEER_BIN_DIR]
"""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from tokenizer.test_hf_agreement import CORPUS  # noqa: E402
from hltest import SHARED  # noqa: E402

VOCABS = ["ggml-vocab-bert-bge.gguf", "ggml-vocab-gpt-neox.gguf", "ggml-vocab-phi-3.gguf"]
EXTRA = ["Hi</s> there", "<s>Hello</s> there <|endoftext|>", "한국어 텍스트 हिन्दी क़िला", "cafe\u0301 e\u0301"]


def main():
    peer = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(
        subprocess.run([str(ROOT / "bench" / "build_peer.sh")], check=True, capture_output=True, text=True).stdout.strip())
    exe = peer / "llama-tokenize"
    out = {"llama_cpp": subprocess.run([str(exe), "--version"], capture_output=True, text=True).stderr.strip().splitlines()[:1],
           "vocabs": {}}
    texts = [t for t in CORPUS + EXTRA if t]
    for name in VOCABS:
        rows = []
        for t in texts:
            for special in (1, 0):
                cmd = [str(exe), "-m", str(SHARED / "models" / "tokenizer" / name), "--stdin", "--ids", "--log-disable",
                       "--no-bos", "--no-escape"] + ([] if special else ["--no-parse-special"])
                r = subprocess.run(cmd, input=t.encode(), capture_output=True, check=True)
                ids = json.loads(r.stdout.decode().strip().splitlines()[-1])
                rows.append({"text": t, "parse_special": special, "ids": ids})
        out["vocabs"][name] = rows
    dst = ROOT / "tests" / "data" / "tokenizer" / "llamacpp_ids.json"
    lines = ['{"llama_cpp": %s, "vocabs": {' % json.dumps(out["llama_cpp"])]
    for i, (name, rows) in enumerate(out["vocabs"].items()):
        lines.append(('' if i == 0 else ',') + json.dumps(name) + ': [')
        lines.append(",\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
        lines.append(']')
    lines.append('}}')
    dst.write_text("\n".join(lines) + "\n")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
