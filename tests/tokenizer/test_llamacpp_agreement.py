"""Our tokenizer against llama.cpp itself where llama.cpp departs from
Hugging Face on purpose, so that a GGUF tokenizes here as in llama.cpp:
WordPiece normalization (each code point reduced to the first of its NFD
decomposition: Hangul syllables to their leading consonant, Devanagari's
marks kept), a BPE file without tokenizer.ggml.pre (llama.cpp's default
pre-tokenizer, not GPT-2's), and user-defined tokens that look like end
tokens (phi-3's "</s>"), which llama.cpp treats as control tokens and so never
matches in text without parse_special. The reference ids are llama.cpp's own
(llama-tokenize), committed in tests/data/tokenizer/llamacpp_ids.json by
scripts/reference/gen_llamacpp_tok.py."""
import json

import pytest

from hltest import ROOT, SHARED
from tokenizer.test_hf_agreement import hf_wordpiece, ours, read_vocab

FIXTURE = json.loads((ROOT / "tests" / "data" / "tokenizer" / "llamacpp_ids.json").read_text())


@pytest.mark.parametrize("vocab", sorted(FIXTURE["vocabs"]))
@pytest.mark.parametrize("special", [1, 0])
def test_ids_equal_llamacpp(vocab, special):
    rows = [r for r in FIXTURE["vocabs"][vocab] if r["parse_special"] == special]
    assert len(rows) >= 25
    got = ours(SHARED / "models" / "tokenizer" / vocab, [r["text"] for r in rows],
               HL_TOK_DUMP_PARSE_SPECIAL=str(special))
    bad = [f"{r['text']!r}\n   llama.cpp: {r['ids']}\n   ours:      {g}" for r, g in zip(rows, got) if g != r["ids"]]
    assert not bad, f"{len(bad)} of {len(rows)} differ:\n" + "\n".join(bad[:6])


def test_fixture_covers_the_departures():
    """The fixture holds cases where llama.cpp and Hugging Face disagree, so
    the comparison above cannot pass on HF-style behaviour."""
    p = SHARED / "models" / "tokenizer" / "ggml-vocab-bert-bge.gguf"
    hf = hf_wordpiece(read_vocab(p))
    bert = {r["text"]: r["ids"] for r in FIXTURE["vocabs"]["ggml-vocab-bert-bge.gguf"] if r["parse_special"]}
    assert bert["한국어 텍스트 हिन्दी क़िला"] != hf.encode("한국어 텍스트 हिन्दी क़िला", add_special_tokens=False).ids
    phi = {(r["text"], r["parse_special"]): r["ids"] for r in FIXTURE["vocabs"]["ggml-vocab-phi-3.gguf"]}
    assert 2 in phi[("Hi</s> there", 1)] and 2 not in phi[("Hi</s> there", 0)]
