"""`FROM ./dir` with a real SentencePiece-BPE tokenizer.json: the files
Hugging Face transformers writes for two real vocabularies (Llama's 32000
pieces in the Metaspace style, Phi-3's 32064 in the Prepend + Replace
normalizer style; tests/data/tokenizer/*.tokenizer.json.xz, made by
tests/reference/make_spm_real_tokenizers.py). The converted GGUF is checked
against two independent references on many strings: Hugging Face
`tokenizers` running the same tokenizer.json, and llama.cpp's own test
vectors for the original vocabularies (../shared/models/tokenizer/
ggml-vocab-*.gguf.inp/.out); and against our tokenizer on those original
GGUF files, token for token.
"""
import json
import lzma

import pytest

from hltest import ROOT, SHARED
from store.test_convert_hf import create_dir, model_file
from store.test_convert_spm import TEXTS, llama_dir, with_vocab
from tokenizer.test_hf_agreement import CORPUS, ours

DATA = ROOT / "tests" / "data" / "tokenizer"
VOCABS = SHARED / "models" / "tokenizer"


def llamacpp_vectors(gguf_path):
    texts = (gguf_path.parent / (gguf_path.name + ".inp")).read_text().split("\n__ggml_vocab_test__\n")
    outs = (gguf_path.parent / (gguf_path.name + ".out")).read_text().split("\n")
    n = min(len(texts), len(outs))
    return texts[:n], [[int(x) for x in o.split()] for o in outs[:n]]


@pytest.mark.parametrize("name", ["llama-spm", "phi-3"])
def test_real_spm_tokenizer_json(hl, tmp_path, name):
    from tokenizers import Tokenizer

    doc = json.loads(lzma.decompress((DATA / f"{name}.tokenizer.json.xz").read_bytes()))
    tj = doc["tokenizer.json"]
    hf = Tokenizer.from_str(json.dumps(tj))
    n_vocab = 1 + max([*tj["model"]["vocab"].values(), *(a["id"] for a in tj["added_tokens"])])
    assert n_vocab == {"llama-spm": 32000, "phi-3": 32064}[name]
    d = llama_dir(tmp_path, f"real-{name}", {"tokenizer.json": json.dumps(tj),
                                             "tokenizer_config.json": json.dumps(doc["tokenizer_config.json"])})
    with_vocab(d, n_vocab)
    create_dir(hl, tmp_path, f"real-{name}", d)
    path = model_file(hl, f"real-{name}")
    original = VOCABS / f"ggml-vocab-{name}.gguf"
    vec_texts, vec_ids = llamacpp_vectors(original)
    assert len(vec_texts) > 30
    texts = CORPUS + TEXTS + vec_texts

    # 1. Hugging Face tokenizers on the same tokenizer.json. Metaspace (the
    # llama file) leaves out its prefix when a text already begins with a
    # space, which GGUF's "llama" model never does (test_convert_spm.py): the
    # one known difference, stated exactly.
    metaspace = (tj.get("pre_tokenizer") or {}).get("type") == "Metaspace"
    lead = lambda t: metaspace and t.startswith(" ")  # noqa: E731
    want = [hf.encode(" " + t if lead(t) else t, add_special_tokens=False).ids for t in texts]
    got = ours(path, texts, HL_TOK_DUMP_PARSE_SPECIAL="1")
    bad = [f"{t!r}\n  hf:   {w}\n  ours: {g}" for t, w, g in zip(texts, want, got) if w != g]
    assert not bad, f"{len(bad)} of {len(texts)} differ from HF tokenizers:\n" + "\n".join(bad[:6])

    # 2. llama.cpp's vectors for the original vocabulary
    got = ours(path, vec_texts)
    bad = [f"{t!r}\n  llama.cpp: {w}\n  ours: {g}" for t, w, g in zip(vec_texts, vec_ids, got) if w != g]
    assert not bad, f"{len(bad)} of {len(vec_texts)} differ from llama.cpp:\n" + "\n".join(bad[:6])

    # 3. the imported file tokenizes as the original GGUF does
    assert ours(path, texts) == ours(original, texts)
    assert ours(path, texts[:5], HL_TOK_DUMP_ADD_SPECIAL="1") == [hf.encode(" " + t if lead(t) else t).ids
                                                                    for t in texts[:5]]
