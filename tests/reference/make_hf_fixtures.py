"""Writes the tiny Hugging Face checkpoints under tests/data/hf/ that
tests/store/test_convert_hf.py imports with `hyperlama create` (FROM ./dir),
plus transformers' own logits and greedy continuations for a few token
sequences (reference.json in each directory). CI has no torch: the output is
committed; rerun this only to change the fixtures:

    /work/refvenv/bin/python tests/reference/make_hf_fixtures.py

Offline: configs are built here (no hub), weights are random (fixed seed),
and the byte-level BPE tokenizer is trained with the `tokenizers` package on
this repository's docs, with the pre-tokenizer regex of the family (Llama 3's
for llama, Qwen2's for qwen2), so the converter's pre-tokenizer detection is
exercised on the real HF spellings.

  llama/  LlamaForCausalLM, F32, two shards + model.safetensors.index.json,
          separate lm_head, GQA (4 heads, 2 KV heads), Llama 3 rope scaling
  qwen2/  Qwen2ForCausalLM, F16 single file, tied embeddings, QKV biases
  qwen3/  Qwen3ForCausalLM, BF16 single file, Q/K norms, head_dim 32 != hidden / heads
  gemma3/ Gemma3ForCausalLM (text), F16, 6 layers (5 local with an 8-token window,
          so the prompts cross it, then 1 global), tied embeddings, (1 + w) norms
"""
from __future__ import annotations

import json
import pathlib

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "hf"

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
            r"\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

PROMPTS = ["Hello world, this is a test.", "The model file 123456 has 7 layers!\n\nDone."]


def corpus():
    for p in sorted((ROOT / "docs").glob("*.md")):
        yield p.read_text(encoding="utf-8")


def train_tokenizer(regex: str, specials: list[str], vocab_size: int, ignore_merges: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


def write_model(name, cfg_cls, model_cls, cfg_kw, regex, specials, tok_cfg, dtype, shards, bos_template=False):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.safetensors"):
        old.unlink()
    tok = train_tokenizer(regex, specials, 384, ignore_merges=regex == LLAMA3_RE)  # as Llama 3's
    if bos_template:  # as Llama 3's and Gemma's tokenizer.json say "add BOS": a post-processor
        b = tok_cfg["bos_token"]
        tok.post_processor = processors.TemplateProcessing(single=f"{b} $A", pair=f"{b} $A {b} $B",
                                                           special_tokens=[(b, tok.token_to_id(b))])
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1))
    cfg_kw = dict(cfg_kw, vocab_size=tok.get_vocab_size(),
                  bos_token_id=tok.token_to_id(tok_cfg["bos_token"]) if tok_cfg.get("bos_token") else None,
                  eos_token_id=tok.token_to_id(tok_cfg["eos_token"]))
    torch.manual_seed(1234)
    cfg = cfg_cls(**cfg_kw)
    model = model_cls(cfg).eval()
    with torch.no_grad():  # random init is tiny (std 0.02): spread logits so greedy is not a near-tie
        for n_, p in model.named_parameters():
            if "norm" in n_:
                p.uniform_(0.6, 1.4)
            else:
                p.normal_(0, 0.25 if p.dim() == 2 else 0.1)
    cfg.dtype = dtype
    cfg.architectures = [model_cls.__name__]
    cfg.to_json_file(str(d / "config.json"))
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    names = sorted(sd)
    if shards == 1:
        save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    else:
        wm = {}
        per = (len(names) + shards - 1) // shards
        for i in range(shards):
            fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: sd[k] for k in names[i * per:(i + 1) * per]}
            save_file(part, str(d / fn), metadata={"format": "pt"})
            wm.update({k: fn for k in part})
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())}, "weight_map": wm},
            indent=1))
    # reference: float32 forward on exactly the stored (rounded) weights
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model = model.float()
    ref = {"dtype": str(dtype).split(".")[-1], "cases": []}
    for text in PROMPTS:
        ids = tok.encode(text).ids  # with the post-processor's BOS where there is one

        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
            gen = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                 pad_token_id=cfg.eos_token_id, eos_token_id=None)[0, len(ids):].tolist()
        ref["cases"].append({"text": text, "ids": ids, "greedy": gen,
                             "logits": [[round(float(x), 5) for x in row] for row in logits]})
    (d / "reference.json").write_text(json.dumps(ref))
    print(name, "vocab", tok.get_vocab_size(), "tensors", len(sd))


def main():
    from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                              Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5)
    write_model("llama", LlamaConfig, LlamaForCausalLM,
                dict(common, tie_word_embeddings=False,  # Llama 3.1-style rope scaling, small enough to matter here
                     rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 64}),
                LLAMA3_RE, ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"],
                {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": CHAT},
                torch.float32, 2, bos_template=True)
    write_model("qwen2", Qwen2Config, Qwen2ForCausalLM,
                dict(common, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False),
                QWEN2_RE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                 "add_bos_token": False, "chat_template": CHAT}, torch.float16, 1)
    write_model("qwen3", Qwen3Config, Qwen3ForCausalLM,
                dict(common, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=False),
                QWEN2_RE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                 "add_bos_token": False, "chat_template": CHAT}, torch.bfloat16, 1)
    write_model("gemma3", Gemma3TextConfig, Gemma3ForCausalLM,
                dict(common, intermediate_size=64, num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16,
                     sliding_window=8, rms_norm_eps=1e-6, tie_word_embeddings=True, pad_token_id=0),
                QWEN2_RE, ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
                {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "add_bos_token": True,
                 "chat_template": CHAT}, torch.float16, 1, bos_template=True)


if __name__ == "__main__":
    main()
