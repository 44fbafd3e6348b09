"""Independent token ids for the reference prompts: a Hugging Face `tokenizers`
byte-level BPE built from a GGUF file's own vocabulary and merges, with the
pre-tokenizer its `tokenizer.ggml.pre` names, and chat prompts rendered from
the GGUF's own chat template with jinja2. None of this touches our C
tokenizer or chat code, so fixtures made with it can catch their bugs too.

Supported pre-tokenizers (the ones our big test models use):
  qwen2  : the Qwen2 split regex (single digits, contractions, letters with an
           optional leading non-letter, ...), then byte-level mapping.
  smollm : digits split one by one, then the GPT-2 regex and byte-level mapping
           (what SmolLM's tokenizer.json declares).
  gpt2   : the GPT-2 regex and byte-level mapping.
Tokens of type CONTROL (3) or USER_DEFINED (4) are added as special tokens, so
"<|im_start|>" in text becomes one id.

SentencePiece BPE files (tokenizer.ggml.model "llama", e.g. Gemma 3): a
`tokenizers` BPE over the GGUF's pieces with byte fallback, spaces replaced by
U+2581 (no space prefix: only files with add_space_prefix false are accepted),
and merges derived from the scores: SentencePiece BPE joins, among adjacent
pairs whose concatenation is a piece, the one whose piece scores highest, so
every split (left, right) of a normal piece into two pieces is a merge ranked
by the piece's score. prompt_prefix() gives the BOS text the file asks for.
"""
from __future__ import annotations

import gguf
import jinja2
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _pre_tokenizer(pre: str):
    if pre == "qwen2":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    if pre == "smollm":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    if pre in ("gpt2", "default"):
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raise ValueError(f"no reference pre-tokenizer for {pre!r}")


def _spm_bpe(r: gguf.GGUFReader, tokens, types) -> Tokenizer:
    f = r.fields.get("tokenizer.ggml.add_space_prefix")
    if f is None or f.contents():
        raise ValueError("reference SentencePiece tokenizer handles add_space_prefix false only")
    scores = r.fields["tokenizer.ggml.scores"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    normal = {t for t, ty in zip(tokens, types) if ty == 1}
    cand = []
    for i, t in enumerate(tokens):
        if types[i] != 1 or len(t) < 2:
            continue
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in normal and b in normal:
                cand.append((-scores[i], i, k, a, b))
    cand.sort()
    merges = [(a, b) for _, _, _, a, b in cand]
    unk = next((t for t, ty in zip(tokens, types) if ty == 2), None)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tok


def prompt_prefix(reader: gguf.GGUFReader) -> str:
    """The BOS token's text when the file says to add one (add_bos_token),
    else "": prepended to a prompt's text it becomes the BOS id."""
    f = reader.fields.get("tokenizer.ggml.add_bos_token")
    if f is None or not f.contents():
        return ""
    bos = int(reader.fields["tokenizer.ggml.bos_token_id"].contents())
    return reader.fields["tokenizer.ggml.tokens"].contents()[bos]


def from_gguf(path) -> tuple[Tokenizer, gguf.GGUFReader]:
    r = gguf.GGUFReader(str(path))
    model = r.fields["tokenizer.ggml.model"].contents()
    if model not in ("gpt2", "llama"):
        raise ValueError(f"reference tokenizer handles byte-level BPE ('gpt2') and SentencePiece BPE "
                         f"('llama'), not {model!r}")
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    if model == "llama":
        tok = _spm_bpe(r, tokens, types)
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, ty in zip(tokens, types) if ty in (3, 4)])
        return tok, r
    merges = [tuple(m.split(" ", 1)) for m in r.fields["tokenizer.ggml.merges"].contents()]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = _pre_tokenizer(r.fields["tokenizer.ggml.pre"].contents())
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False)
               for t, ty in zip(tokens, types) if ty in (3, 4)]
    tok.add_special_tokens(special)
    return tok, r


def encode(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def render_chat(reader: gguf.GGUFReader, messages) -> str:
    """The prompt the model's own template makes of messages, ending with the
    assistant header (add_generation_prompt)."""
    src = reader.fields["tokenizer.chat_template"].contents()
    env = jinja2.Environment(trim_blocks=False, lstrip_blocks=False)
    env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(ValueError(msg))
    return env.from_string(src).render(messages=messages, add_generation_prompt=True,
                                       bos_token="", eos_token="")
