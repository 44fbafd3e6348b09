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
"""
from __future__ import annotations

import gguf
import jinja2
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

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


def from_gguf(path) -> tuple[Tokenizer, gguf.GGUFReader]:
    r = gguf.GGUFReader(str(path))
    model = r.fields["tokenizer.ggml.model"].contents()
    if model != "gpt2":
        raise ValueError(f"reference tokenizer handles byte-level BPE ('gpt2'), not {model!r}")
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
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
