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
  gemma2/ Gemma2ForCausalLM, F16, 4 layers alternating local (8-token window) and
          global, attention and final logit softcapping, (1 + w) norms
  phi3/   Phi3ForCausalLM, F16, fused qkv_proj / gate_up_proj, LongRoPE (short and
          long factors, original context 64 of 256: attention factor != 1), an
          8-token sliding window on every layer
  granite/ GraniteForCausalLM, BF16, the four multipliers (embedding, attention,
          residual, logits), tied embeddings
  olmo2/  Olmo2ForCausalLM, F16, post-norms only, Q/K norms over the whole projection
  qwen2moe/ Qwen2MoeForCausalLM, BF16, 4 experts top-2 (not renormalized), a shared
          expert with its sigmoid gate, QKV biases
  qwen3moe/ Qwen3MoeForCausalLM, F16, 4 experts top-2 renormalized, per-head Q/K norms
  mixtral/ MixtralForCausalLM, BF16, 4 experts top-2 (block_sparse_moe.experts.N.w1/w2/w3)
  olmoe/  OlmoeForCausalLM, F16, 4 experts top-2, Q/K norms over the projection
  gptoss/ GptOssForCausalLM, BF16, 4 experts top-2 in its own fused layout (gate and
          up interleaved, biases), attention sinks, q/k/v/o biases, even layers
          sliding (8-token window), untruncated YaRN (factor 4, original context 64)

The mixtures of experts are saved in the layout of the checkpoints on the hub
(one matrix per expert: mlp.experts.N.gate_proj.weight ..., Mixtral's
block_sparse_moe.experts.N.w1.weight ...), which transformers 5 merges into
its fused experts.gate_up_proj / experts.down_proj when it loads them; the
converter stacks them into GGUF's 3-D expert tensors. A fixture's seed is the
first of 1234, 1235, ... whose logits have a top-2 margin of at least 0.05 at
every greedy step, so the greedy comparison is not decided by rounding (the
test compares the argmax at the other positions where the margin allows)
and, for the mixtures of experts, whose router logits keep the k-th and
(k+1)-th expert 0.05 apart at every position and layer.

    /work/refvenv/bin/python tests/reference/make_hf_fixtures.py [NAME ...]
"""
from __future__ import annotations

import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "hf"

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
            r"\s*[\r\n]+|\s+(?!\S)|\s+")
# o200k, as gpt-oss's tokenizer.json splits (tiktoken's pattern)
O200K_RE = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
            r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
            r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

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


def hub_layout(sd, mixtral):
    """transformers 5's fused experts (experts.gate_up_proj [E, 2 ff, embd],
    gate rows first; experts.down_proj [E, embd, ff]) written back as the hub
    checkpoints hold them: one matrix per expert (Mixtral: block_sparse_moe,
    w1 gate, w3 up, w2 down)."""
    out = {}
    for k, v in sd.items():
        if k.endswith("mlp.experts.gate_up_proj"):
            pre, ff = k[:-len("experts.gate_up_proj")], v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{pre}experts.{e}.gate_proj.weight"] = v[e, :ff].contiguous()
                out[f"{pre}experts.{e}.up_proj.weight"] = v[e, ff:].contiguous()
        elif k.endswith("mlp.experts.down_proj"):
            pre = k[:-len("experts.down_proj")]
            for e in range(v.shape[0]):
                out[f"{pre}experts.{e}.down_proj.weight"] = v[e].contiguous()
        else:
            out[k] = v
    if mixtral:
        ren = {".mlp.": ".block_sparse_moe.", "gate_proj.weight": "w1.weight", "up_proj.weight": "w3.weight",
               "down_proj.weight": "w2.weight"}
        moved = {}
        for k, v in out.items():
            if ".mlp." in k:
                for a, b in ren.items():
                    k = k.replace(a, b)
            moved[k] = v
        out = moved
    return out


def min_margin(model, tok, texts, n_new=8):
    """Smallest top-1 minus top-2 logit over the greedy steps of each text
    (teacher-forced: the same logits generate saw), and for a mixture of
    experts the smallest gap between the k-th and (k+1)-th router logit at
    any position of any layer: a near-tie there picks another expert on a
    rounding, which no tolerance covers."""
    gaps = []
    k = getattr(model.config, "num_experts_per_tok", 0)

    def hook(mod, inp, out):
        x = inp[0].reshape(-1, inp[0].shape[-1])
        lg = x @ mod.weight.T + (mod.bias if getattr(mod, "bias", None) is not None else 0)
        srt = torch.sort(lg, -1, descending=True).values
        gaps.append(float((srt[:, k - 1] - srt[:, k]).min()))
    hooks = [mod.register_forward_hook(hook) for n, mod in model.named_modules()
             if k and (n.endswith("mlp.gate") or n.endswith("mlp.router"))]
    worst = float("inf")
    for text in texts:
        ids = tok.encode(text).ids
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=n_new, do_sample=False,
                                 pad_token_id=model.config.eos_token_id, eos_token_id=None)[0].tolist()
            gaps.clear()
            lg = model(torch.tensor([gen])).logits[0].float()
        top = torch.topk(lg, 2, dim=-1).values
        worst = min(worst, float((top[len(ids) - 1:-1, 0] - top[len(ids) - 1:-1, 1]).min()), *gaps)
    for h in hooks:
        h.remove()
    return worst


def write_model(name, cfg_cls, model_cls, cfg_kw, regex, specials, tok_cfg, dtype, shards, bos_template=False,
                margin=0.0, digits=5, eager=False):
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
    for seed in range(1234, 1334):
        torch.manual_seed(seed)
        cfg = cfg_cls(**cfg_kw)
        if eager:  # softcapping is applied by the eager attention
            cfg._attn_implementation = "eager"
        model = model_cls(cfg).eval()
        with torch.no_grad():  # random init is tiny (std 0.02): spread logits so greedy is not a near-tie
            for n_, p in model.named_parameters():
                if "norm" in n_:
                    p.uniform_(0.6, 1.4)
                elif n_.endswith(("mlp.gate.weight", "mlp.router.weight")):  # routers: clear choices (gaps)
                    p.normal_(0, 1.0)
                else:
                    p.normal_(0, 0.25 if p.dim() >= 2 else 0.1)
        if not margin:
            break
        sd = {k: v.detach().to(dtype).float() for k, v in model.state_dict().items()}
        model.load_state_dict(sd)
        m = min_margin(model, tok, PROMPTS)
        if m >= margin:
            break
        print(f"{name}: seed {seed} has a top-2 margin of {m:.3g}: reseeding", file=sys.stderr)
    else:
        raise SystemExit(f"{name}: no seed gave top-2 margins >= {margin}")
    cfg.dtype = dtype
    cfg.architectures = [model_cls.__name__]
    cfg.to_json_file(str(d / "config.json"))
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    # gpt-oss's hub layout is transformers' own (fused, interleaved experts)
    hub = sd if model_cls.__name__ == "GptOssForCausalLM" else hub_layout(sd, mixtral=model_cls.__name__ == "MixtralForCausalLM")
    # the same as what save_pretrained writes (transformers' own reverse of its loading conversion)
    from transformers.core_model_loading import revert_weight_conversion
    rev = revert_weight_conversion(model, dict(sd))
    assert sorted(rev) == sorted(hub), (sorted(set(rev) ^ set(hub)))[:8]
    assert all(torch.equal(rev[k].to(dtype), hub[k]) for k in hub)
    names = sorted(hub)
    if shards == 1:
        save_file(hub, str(d / "model.safetensors"), metadata={"format": "pt"})
    else:
        wm = {}
        per = (len(names) + shards - 1) // shards
        for i in range(shards):
            fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: hub[k] for k in names[i * per:(i + 1) * per]}
            save_file(part, str(d / fn), metadata={"format": "pt"})
            wm.update({k: fn for k in part})
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in hub.values())}, "weight_map": wm},
            indent=1))
    # reference: float32 forward on exactly the stored (rounded) weights
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model = model.float()
    ref = {"dtype": str(dtype).split(".")[-1], "seed": seed, "cases": []}
    for text in PROMPTS:
        ids = tok.encode(text).ids  # with the post-processor's BOS where there is one

        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
            gen = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                 pad_token_id=cfg.eos_token_id, eos_token_id=None)[0, len(ids):].tolist()
        ref["cases"].append({"text": text, "ids": ids, "greedy": gen,
                             "logits": [[round(float(x), digits) for x in row] for row in logits]})
    (d / "reference.json").write_text(json.dumps(ref))
    print(name, "seed", seed, "vocab", tok.get_vocab_size(), "tensors", len(hub))


def main():
    import transformers as T
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5)
    # the newer fixtures are smaller (hidden 32): every fixture is committed
    small = dict(common, hidden_size=32, intermediate_size=64)
    qwen_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    qwen_tok = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
                "chat_template": CHAT}
    llama_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
    llama_tok = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": CHAT}
    gemma_specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    gemma_tok = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "add_bos_token": True,
                 "chat_template": CHAT}
    new = dict(margin=0.05, digits=4)
    fixtures = {
        "llama": lambda: write_model(
            "llama", T.LlamaConfig, T.LlamaForCausalLM,
            dict(common, tie_word_embeddings=False,  # Llama 3.1-style rope scaling, small enough to matter here
                 rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 64}),
            LLAMA3_RE, llama_specials, llama_tok, torch.float32, 2, bos_template=True),
        "qwen2": lambda: write_model(
            "qwen2", T.Qwen2Config, T.Qwen2ForCausalLM,
            dict(common, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False),
            QWEN2_RE, qwen_specials, qwen_tok, torch.float16, 1),
        "qwen3": lambda: write_model(
            "qwen3", T.Qwen3Config, T.Qwen3ForCausalLM,
            dict(common, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=False),
            QWEN2_RE, qwen_specials, qwen_tok, torch.bfloat16, 1),
        "gemma3": lambda: write_model(
            "gemma3", T.Gemma3TextConfig, T.Gemma3ForCausalLM,
            dict(common, intermediate_size=64, num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16,
                 sliding_window=8, rms_norm_eps=1e-6, tie_word_embeddings=True, pad_token_id=0),
            QWEN2_RE, gemma_specials, gemma_tok, torch.float16, 1, bos_template=True),
        "gemma2": lambda: write_model(
            "gemma2", T.Gemma2Config, T.Gemma2ForCausalLM,
            dict(small, num_hidden_layers=4, head_dim=8, query_pre_attn_scalar=8, sliding_window=8,
                 attn_logit_softcapping=2.0, final_logit_softcapping=6.0, hidden_activation="gelu_pytorch_tanh",
                 rms_norm_eps=1e-6, tie_word_embeddings=True, pad_token_id=0),
            QWEN2_RE, gemma_specials, gemma_tok, torch.float16, 1, bos_template=True, eager=True, **new),
        "phi3": lambda: write_model(
            "phi3", T.Phi3Config, T.Phi3ForCausalLM,
            dict(small, original_max_position_embeddings=64, sliding_window=8, tie_word_embeddings=False,
                 pad_token_id=None,
                 rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                  "short_factor": [1.0, 1.3, 2.1, 3.7], "long_factor": [1.5, 2.5, 4.0, 9.0]}),
            QWEN2_RE, qwen_specials, dict(qwen_tok, tokenizer_class="GPT2Tokenizer"), torch.float16, 1, **new),  # as Phi-4's
        "granite": lambda: write_model(
            "granite", T.GraniteConfig, T.GraniteForCausalLM,
            dict(small, tie_word_embeddings=True, embedding_multiplier=2.0, attention_multiplier=0.25,
                 residual_multiplier=0.6, logits_scaling=0.8,
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
            LLAMA3_RE, llama_specials, llama_tok, torch.bfloat16, 1, **new),
        "olmo2": lambda: write_model(
            "olmo2", T.Olmo2Config, T.Olmo2ForCausalLM,
            dict(small, rms_norm_eps=1e-6, tie_word_embeddings=False, pad_token_id=None,
                 rope_parameters={"rope_type": "default", "rope_theta": 500000.0}),
            LLAMA3_RE, llama_specials, llama_tok, torch.float16, 1, **new),
        "qwen2moe": lambda: write_model(
            "qwen2moe", T.Qwen2MoeConfig, T.Qwen2MoeForCausalLM,
            dict(small, rms_norm_eps=1e-6, tie_word_embeddings=True, num_experts=4, num_experts_per_tok=2,
                 moe_intermediate_size=32, shared_expert_intermediate_size=48, norm_topk_prob=False,
                 use_sliding_window=False, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
            QWEN2_RE, qwen_specials, qwen_tok, torch.bfloat16, 1, **new),
        "qwen3moe": lambda: write_model(
            "qwen3moe", T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM,
            dict(small, head_dim=16, rms_norm_eps=1e-6, tie_word_embeddings=False, num_experts=4,
                 num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True, use_sliding_window=False,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
            QWEN2_RE, qwen_specials, qwen_tok, torch.float16, 1, **new),
        "mixtral": lambda: write_model(
            "mixtral", T.MixtralConfig, T.MixtralForCausalLM,
            dict(small, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=None,
                 tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
            LLAMA3_RE, llama_specials, llama_tok, torch.bfloat16, 1, bos_template=True, **new),
        "olmoe": lambda: write_model(
            "olmoe", T.OlmoeConfig, T.OlmoeForCausalLM,
            dict(small, intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                 tie_word_embeddings=False, pad_token_id=None,
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
            LLAMA3_RE, llama_specials, llama_tok, torch.float16, 1, **new),
        "gptoss": lambda: write_model(
            "gptoss", T.GptOssConfig, T.GptOssForCausalLM,
            dict(small, intermediate_size=32, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                 sliding_window=8, tie_word_embeddings=False, pad_token_id=None,
                 rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 4.0, "beta_fast": 32.0,
                                  "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 64}),
            O200K_RE, qwen_specials, qwen_tok, torch.bfloat16, 1, eager=True, **new),
    }
    names = sys.argv[1:] or list(fixtures)
    for n in names:
        if n not in fixtures:
            raise SystemExit(f"unknown fixture {n} (have {', '.join(fixtures)})")
        fixtures[n]()


if __name__ == "__main__":
    main()
