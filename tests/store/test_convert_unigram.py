"""A Unigram tokenizer.json (T5, XLM-RoBERTa, bge-m3) imports as GGUF's "t5"
tokenizer model (src/store/convert_tok.c, convert_spm.c) and our Viterbi
segmentation with the precompiled charsmap normalization
(src/tokenizer/ugm.c) gives Hugging Face `tokenizers`' ids:

- a Unigram model trained here by tokenizers' own UnigramTrainer on a text of
  our own, with a Metaspace pre-tokenizer and sentencepiece's whitespace rules
  (Strip + Replace(" {2,}", " ")), unknown characters fused into one <unk>;
- the same with a Precompiled normalizer whose charsmap (sentencepiece's
  double-array trie of replacements) is built here from the format's
  description; HF's own Precompiled reads the blob, and that it normalizes as
  intended is checked on HF's side first.
"""
import json
import struct

import pytest

from store.test_convert_hf import create_dir, model_file
from store.test_convert_spm import TRAIN, llama_dir
from tokenizer.test_hf_agreement import ours

MAP = {"Ａ": "A", "Ｂ": "B", "ﬁ": "fi", "\t": " ", "\n": " ", "e\u0301": "é", "①": "1", "™": "TM",
       "\u3000": " ", "\u00a0": " ", "Ǆ": "DŽ"}

TEXTS = ["Hello world", "the quick brown fox", "  leading and   runs  of spaces  ", "tabs\tand\nnew lines",
         "Numbers 1234567890 and 2026!", "Über café naïve résumé", "emoji 🙂🦙 and 日本語 unknown",
         "ЖЖЖ fused unknowns", "x", "", "   ", "ＡＢ ﬁne ① ™ cafe\u0301\u3000wide", "a\u00a0b", "Ǆ",
         "don't we'll it's", "testing tokenizers tested"]


def charsmap(mapping):
    """sentencepiece's precompiled charsmap: uint32 trie byte size, the
    double-array units (label bits 0-7, has-leaf bit 8, offset << 10; a leaf
    unit holds its value | 1 << 31 at its parent's base), NUL-terminated
    replacement strings that leaf values point into."""
    strs, vals = b"", {}
    for k, v in mapping.items():
        vals[k.encode()] = len(strs)
        strs += v.encode() + b"\0"
    trie = {}
    for k, val in vals.items():
        node = trie
        for b in k:
            node = node.setdefault(b, {})
        node[None] = val
    units = [0] * 256

    def place(node, p, label):
        base = len(units)
        units.extend([0] * 256)  # each node's children get a block of their own
        leaf = None in node
        units[p] = label | (leaf << 8) | ((p ^ base) << 10)
        if leaf:
            units[base] = node[None] | (1 << 31)
        for c, child in node.items():
            if c is not None:
                place(child, base ^ c, c)

    place(trie, 0, 0)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + strs


def build_hf(with_charsmap):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    t = Tokenizer(models.Unigram())
    norms = [normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    if with_charsmap:
        norms.insert(0, normalizers.Precompiled(charsmap(MAP)))
    t.normalizer = normalizers.Sequence(norms)
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    t.train_from_iterator([TRAIN], trainers.UnigramTrainer(vocab_size=200, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                           unk_token="<unk>", show_progress=False))
    assert t.get_vocab_size() <= 384
    return t


@pytest.mark.parametrize("with_charsmap", [False, True], ids=["plain", "charsmap"])
def test_unigram_matches_hf(hl, tmp_path, with_charsmap):
    import gguf

    tok = build_hf(with_charsmap)
    if with_charsmap:  # HF's own reader of the blob normalizes as the map says
        assert tok.normalizer.normalize_str("ＡＢ\tﬁ①™cafe\u0301") == "AB fi1TMcafé"
    name = f"ugm-{'cm' if with_charsmap else 'plain'}"
    cfg = json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    d = llama_dir(tmp_path, name, {"tokenizer.json": tok.to_str(), "tokenizer_config.json": cfg})
    create_dir(hl, tmp_path, name, d)
    path = model_file(hl, name)
    want = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    unk = tok.token_to_id("<unk>")
    assert any(w.count(unk) for w in want) and not any([unk, unk] == w[i:i + 2] for w in want for i in range(len(w)))
    got = ours(path, TEXTS + ["<s>x</s>"], HL_TOK_DUMP_PARSE_SPECIAL="1")
    want.append(tok.encode("<s>x</s>", add_special_tokens=False).ids)
    bad = [f"{t!r}\n  hf:   {w}\n  ours: {g}" for t, w, g in zip(TEXTS + ["<s>x</s>"], want, got) if w != g]
    assert not bad, f"{len(bad)} of {len(want)} differ:\n" + "\n".join(bad[:6])
    g = gguf.GGUFReader(str(path))
    kv = {f.name: f for f in g.fields.values()}
    assert bytes(kv["tokenizer.ggml.model"].parts[-1]).decode() == "t5"
    assert ("tokenizer.ggml.precompiled_charsmap" in kv) == with_charsmap
    types = [int(kv["tokenizer.ggml.token_type"].parts[i][0]) for i in kv["tokenizer.ggml.token_type"].data]
    assert types[unk] == 2 and types[tok.token_to_id("<s>")] == 3
    # decoding gives the normalized text back
    got = ours(path, ["Hello world", "the  quick"], HL_TOK_DUMP_DECODE="1")
    assert got and all(isinstance(x, (list, str)) for x in got)


def test_unigram_sentencepiece_model_matches_hf(hl, tmp_path):
    """The same Unigram model as a sentencepiece tokenizer.model (ModelProto
    written from its pieces, with the charsmap and remove_extra_whitespaces
    in its normalizer spec): imported as "t5", the ids are HF's."""
    from store.test_convert_spm import sentencepiece_model

    tok = build_hf(True)
    m = json.loads(tok.to_str())["model"]
    kinds = {"<s>": 3, "<pad>": 3, "</s>": 3, "<unk>": 2}
    pieces = [(p, float(sc), kinds.get(p, 1)) for p, sc in m["vocab"]]
    blob = sentencepiece_model(pieces, model_type=1, charsmap=charsmap(MAP), remove_extra_ws=True, ids=(m["unk_id"], 0, 2, 1))
    d = llama_dir(tmp_path, "ugm-model", {"tokenizer.model": blob})
    create_dir(hl, tmp_path, "ugm-model", d)
    want = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    assert ours(model_file(hl, "ugm-model"), TEXTS) == want
    import gguf
    kv = {f.name: f for f in gguf.GGUFReader(str(model_file(hl, "ugm-model"))).fields.values()}
    assert bytes(kv["tokenizer.ggml.model"].parts[-1]).decode() == "t5"
    assert int(kv["tokenizer.ggml.unknown_token_id"].parts[-1][0]) == m["unk_id"]


def test_unigram_bad_input(hl, tmp_path):
    t = json.loads(build_hf(False).to_str())
    t["pre_tokenizer"] = {"type": "Whitespace"}
    d = llama_dir(tmp_path, "ugm-bad", {"tokenizer.json": json.dumps(t)})
    r = create_dir(hl, tmp_path, "ugm-bad", d, check=False)
    assert r.returncode != 0 and "Unigram with an unknown pre-tokenizer" in r.stderr + r.stdout
    t = json.loads(build_hf(False).to_str())
    t["model"]["vocab"].append(["a▁b", -5.0])
    d = llama_dir(tmp_path, "ugm-bad2", {"tokenizer.json": json.dumps(t)})
    r = create_dir(hl, tmp_path, "ugm-bad2", d, check=False)
    assert r.returncode != 0 and "spans a word start" in r.stderr + r.stdout, r.stderr + r.stdout
