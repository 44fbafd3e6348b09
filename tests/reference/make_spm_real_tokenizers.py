"""Writes tests/data/tokenizer/{llama-spm,phi-3}.tokenizer.json.xz: the
tokenizer.json (and tokenizer_config.json's special tokens) that Hugging Face
transformers' own GGUF loader builds from two real SentencePiece vocabularies,
ggml-vocab-llama-spm.gguf (Llama / Llama-2, 32000 pieces) and
ggml-vocab-phi-3.gguf (32064), in ../shared/models/tokenizer. transformers
writes the llama one in the Metaspace style (Mistral's files) and phi-3's in
the Prepend + Replace normalizer style (Llama-2's published files), so the two
cover both shapes of real SentencePiece-BPE tokenizer.json files with real
vocabularies and merges (tests/store/test_convert_spm_real.py).

Run once with a Python that has transformers (offline; no hub):
    /work/refvenv/bin/python tests/reference/make_spm_real_tokenizers.py
CI only reads the committed .xz files (it has no transformers)."""
import json
import lzma
import pathlib
import shutil
import tempfile

from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT.parent / "shared" / "models" / "tokenizer"
OUT = ROOT / "tests" / "data" / "tokenizer"

for name in ("llama-spm", "phi-3"):
    gg = f"ggml-vocab-{name}.gguf"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(SRC / gg, tmp)
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=gg)
        tok.save_pretrained(tmp + "/out")
        tj = json.loads(pathlib.Path(tmp, "out", "tokenizer.json").read_text())
        cfg = json.loads(pathlib.Path(tmp, "out", "tokenizer_config.json").read_text())
    keep = {k: cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if cfg.get(k) is not None}
    doc = {"source": f"transformers {__import__('transformers').__version__} from {gg}",
           "tokenizer.json": tj, "tokenizer_config.json": keep}
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    (OUT / f"{name}.tokenizer.json.xz").write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    print(name, len(tj["model"]["vocab"]), "pieces,", len(tj["model"]["merges"]), "merges")
