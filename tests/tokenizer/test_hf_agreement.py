"""Our tokenizer against Hugging Face `tokenizers` on a varied corpus.

The HF tokenizers are built from each GGUF's own vocabulary, merges and
token types (read with the `gguf` package), with the pre-tokenizer each model
publishes in its tokenizer.json (written here in HF's own form, with plain
`\\s`, so our PCRE2 translation is checked too). Our ids come from the C
tool build/release/tools/dump_tok (texts separated by NUL, one JSON array per
line), with parse_special on, which is how HF treats added tokens."""
import json
import os
import subprocess
import tempfile
import unicodedata

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402

from hltest import BUILD, ROOT, SHARED, model_path  # noqa: E402

DUMP = BUILD / "release" / "tools" / "dump_tok"

CORPUS = [
    "Hello world", " Hello world", "Hello, world! How's it going? I'm fine, you'll see; they'd've",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "int main(void) {\r\n\tprintf(\"%d\\n\", 42);\r\n\treturn 0;\r\n}\r\n",
    "for (size_t i = 0; i < n; ++i) { x[i] = y[i] * 2.5f; } // comment",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "日本語のテキストと中文文本，还有한국어 텍스트.",
    "Emoji: 🦙🚀😶‍🌫️✅👍🏽 and flags 🇫🇷🇯🇵",
    "   leading spaces", "trailing spaces   ", "tabs\tand\t\ttabs", "multi\n\n\nnewlines\n",
    "mixed \r\n line \r endings \n\r", "  \t \n \u00a0 \u3000 odd whitespace \u2009 here",
    "1 12 123 1234 12345 123456 1234567 3.14159 -42 1e10 0xFF 1,000,000",
    "Accents: café naïve résumé Führer São Paulo Ångström ñandú",
    "Русский текст, ελληνικά, עברית, العربية, हिन्दी",
    "can't won't shouldn't Y'ALL I'M WE'VE 'RE 'll",
    "a" * 60 + " " + "ab" * 30, "!!!???...,,,;;;:::---___===+++",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "", " ", "\n", "x",
]


def read_vocab(path):
    r = gguf.GGUFReader(str(path))

    def field(name):
        f = r.fields.get(name)
        if f is None:
            return None
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i][0].item() for i in f.data]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[-1]).decode("utf-8")
        return f.parts[-1][0].item()

    return {k: field("tokenizer.ggml." + k) for k in ("model", "pre", "tokens", "token_type", "merges", "scores")}


def add_specials(tok, v, types=(3, 4)):
    """Control tokens are HF special tokens (skipped when decoding);
    user-defined ones are plain added tokens (always matched, decoded as text)."""
    pairs = [(t, ty) for t, ty in zip(v["tokens"], v["token_type"]) if ty in types and t]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in pairs if ty == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in pairs if ty == 4])


def hf_bpe(v, split_regex=None, digits=False):
    vocab = {t: i for i, t in enumerate(v["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=False))
    pre = []
    if digits:
        pre.append(pre_tokenizers.Digits(individual_digits=True))
    if split_regex:
        pre.append(pre_tokenizers.Split(Regex(split_regex), behavior="isolated"))
        pre.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    else:
        pre.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre)
    tok.decoder = decoders.ByteLevel()
    add_specials(tok, v)
    return tok


def hf_spm(v):
    """Llama's HF tokenizer: BPE with merges derived from the scores (a pair
    merges when its concatenation is a token; better score first) and byte
    fallback; the text gets a U+2581 prefix and spaces become U+2581."""
    toks, scores = v["tokens"], v["scores"]
    vocab = {t: i for i, t in enumerate(toks)}
    merges = []
    for t, i in vocab.items():
        if v["token_type"][i] != 1:
            continue
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                merges.append((scores[i], vocab[a], vocab[b], a, b))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    tok = Tokenizer(models.BPE(vocab, [(m[3], m[4]) for m in merges], unk_token=toks[0], byte_fallback=True,
                               fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    add_specials(tok, v)
    return tok


def hf_wordpiece(v):
    vocab = {}
    for i, (t, ty) in enumerate(zip(v["tokens"], v["token_type"])):
        key = t if ty != 1 else (t[1:] if t.startswith("\u2581") else "##" + t)
        vocab.setdefault(key, i)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    add_specials(tok, v, types=(3,))
    return tok


QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
            r"\s+(?!\S)|\s+")


def ours(path, texts, **env_extra):
    if not DUMP.exists():
        pytest.fail(f"{DUMP} not built: run make tests")
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(b"\0".join(t.encode("utf-8") for t in texts))
        inp = f.name
    try:
        env = dict(os.environ, HL_TOK_DUMP_MODEL=str(path), HL_TOK_DUMP_INPUT=inp, **env_extra)
        r = subprocess.run([str(DUMP)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(inp)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("[") or l.startswith('"')]
    # an empty last text produces no record when the file ends with it
    assert len(lines) >= len(texts) - 1, r.stdout
    return lines + [[]] * (len(texts) - len(lines))


def compare(path, hf, extra=(), decode=True, skip=lambda t: False):
    texts = [t for t in CORPUS + list(extra) if not skip(t)]
    got = ours(path, texts)
    bad = []
    for t, g in zip(texts, got):
        want = hf.encode(t, add_special_tokens=False).ids
        if g != want:
            bad.append(f"{t!r}\n   hf:   {want}\n   ours: {g}")
    assert not bad, f"{len(bad)} of {len(texts)} texts differ:\n" + "\n".join(bad[:8])
    if decode:
        dec = ours(path, texts, HL_TOK_DUMP_DECODE="1")
        for t, d in zip(texts, dec):
            ids = hf.encode(t, add_special_tokens=False).ids
            want = hf.decode(ids, skip_special_tokens=True)
            assert (d if isinstance(d, str) else "") == want, f"decode of {t!r}: {d!r} vs {want!r}"


def test_gpt2():
    p = SHARED / "models/tokenizer/ggml-vocab-gpt-2.gguf"
    compare(p, hf_bpe(read_vocab(p)), extra=["a<|endoftext|>b <|endoftext|>"])


def test_qwen25():
    p = model_path("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    v = read_vocab(p)
    compare(p, hf_bpe(v, QWEN2_RE),
            extra=["<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
                   "<tool_call>{\"name\": \"f\"}</tool_call>", "<|fim_prefix|>def f():<|fim_suffix|><|fim_middle|>"])


def test_smollm2():
    p = model_path("smollm2-135m-instruct-q4_1.gguf")
    compare(p, hf_bpe(read_vocab(p), digits=True),
            extra=["<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"])


def test_llama_spm():
    p = SHARED / "models/tokenizer/ggml-vocab-llama-spm.gguf"
    compare(p, hf_spm(read_vocab(p)), extra=["<s>Hello</s> there", "Hi</s>"])


def wordpiece_departs(text):
    """Where llama.cpp's WordPiece normalization, which we follow
    (test_llamacpp_agreement.py), departs from BERT's: a character whose NFD
    decomposition goes on with more than marks (a Hangul syllable), or a
    spacing / enclosing mark (Devanagari's vowel signs), which llama.cpp drops
    and BERT keeps."""
    for c in text:
        d = unicodedata.normalize("NFD", c)
        if unicodedata.category(c) in ("Mc", "Me") or any(unicodedata.category(x)[0] != "M" for x in d[1:]):
            return True
    return False


def test_bert_bge():
    p = SHARED / "models/tokenizer/ggml-vocab-bert-bge.gguf"
    # decoding WordPiece is lossy (lowercase, no accents, spacing): ids only
    compare(p, hf_wordpiece(read_vocab(p)), extra=["[CLS] hello [SEP] world [MASK]", "x" * 101 + " y" * 3,
                                                   "café naïve e\u0301"],
            decode=False, skip=wordpiece_departs)
    assert sum(map(wordpiece_departs, CORPUS)) == 2  # the Korean and the Hindi texts, checked against llama.cpp
