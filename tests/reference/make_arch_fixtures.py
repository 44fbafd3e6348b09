"""Builds the architecture fixtures of tests/data/arch/ (run once, by hand;
CI only reads what it wrote):

    /work/refvenv/bin/python tests/reference/make_arch_fixtures.py [NAME ...]

For each architecture below: a tiny random-weight model built by
`transformers` from a config (offline, nothing from the hub), written as
GGUF with the `gguf` package's writer under the tensor names and metadata
keys the GGUF format uses for that architecture (gguf.constants), with F32
weights (the test derives the F16 file by rounding its matrices), and beside
it (NAME.npz) the
reference: transformers' logits at every position of a few token sequences
(also with K and V rounded to f16, as the engine's KV cache holds them)
and a greedy continuation (clear top-2 margins, at least four distinct
tokens: reseeded until so), computed in float32 from exactly the weights in
each file (for F16: the matrices rounded to F16). tests/reference/
test_arch_logits.py runs our engine on the files and compares.

The tokenizer of every fixture is the one of stories260K (512 SentencePiece
pieces, shipped in /work/shared/models): the tests feed token ids, so it only
has to load. Weights are drawn with a larger spread than the models' own
initializers so that logits are far from uniform (greedy continuations then
have clear margins; the script checks them and reseeds when they do not).

GGUF layout facts used here (the format's, not any converter's code):
- llama: Q and K rows are stored reordered so that each head's rotary pairs
  are adjacent (rope "NORM" style), i.e. row 2i of a head is HF row i and row
  2i+1 is HF row i + head_dim/2; Llama 3's rope scaling is stored as
  rope_freqs.weight, the divisor of each rope frequency; YaRN as
  rope.scaling.type yarn, factor and original_context_length (beta_fast /
  beta_slow at their defaults, 32 and 1, are not written).
- granite: llama's layout (Q/K permuted) plus embedding_scale,
  attention.scale, residual_scale and logit_scale.
- gemma2: RMSNorm weights are stored as the multiplier itself (1 + w).
- olmo2: no attn_norm / ffn_norm; attn_q_norm / attn_k_norm as wide as
  the projections; post_attention_norm / post_ffw_norm.
- phi3: attn_qkv is Q, K, V rows concatenated; ffn_up holds gate rows then
  up rows; LongRoPE's factors are rope_factors_short / rope_factors_long.
  LongRoPE fixtures also get a sequence 16 tokens longer than the original
  context (long_seq, long_logits_f32: transformers, which rotates it by the
  long factors) for the engine run with a context beyond the original.
- mixture of experts (qwen2moe, qwen3moe, olmoe, mixtral = llama with
  expert_count):
  ffn_gate_inp is the router [n_expert rows]; ffn_gate_exps / ffn_up_exps are
  3-D, numpy [n_expert, n_ff_exp, n_embd] (transformers' fused gate_up_proj:
  gate rows first), ffn_down_exps [n_expert, n_embd, n_ff_exp]; qwen2moe's
  shared expert is ffn_{gate,up,down}_shexp with ffn_gate_inp_shexp its
  sigmoid gate (a vector [n_embd]).
"""
from __future__ import annotations

import json
import pathlib
import sys

import gguf
import numpy as np
import torch
import transformers as T

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "tests" / "data" / "arch"
TOKENIZER_FROM = pathlib.Path("/work/shared/models/stories260K-F16.gguf")
VOCAB = 512
N_GREEDY = 8
MIN_MARGIN = 0.05  # top-1 minus top-2 logit at every greedy step, in both dtypes


def common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(kw)
    return base


# name -> (transformers config class, model class, config kwargs, GGUF arch)
FIXTURES = {
    "llama": (T.LlamaConfig, T.LlamaForCausalLM,
              common(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), "llama"),
    # Llama 3.x: llama3 rope scaling (factor, low/high frequency factors) and
    # tied embeddings (as Llama 3.2 1B/3B).
    "llama3": (T.LlamaConfig, T.LlamaForCausalLM,
               common(tie_word_embeddings=True,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 16}), "llama"),
    # Mistral: llama with a sliding window; head_dim set apart from
    # hidden / heads (Mistral-Nemo's detail).
    "mistral": (T.MistralConfig, T.MistralForCausalLM,
                common(sliding_window=4, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
                "llama"),
    # YaRN rope scaling on llama's block: the correction range falls inside
    # the head (head_dim 16, original context 64), so some frequencies are
    # kept, some divided by the factor and some blended; the attention
    # factor (0.1 ln 4 + 1) scales cos and sin
    "llama_yarn": (T.LlamaConfig, T.LlamaForCausalLM,
                   common(head_dim=16, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                        "original_max_position_embeddings": 64}), "llama"),
    "qwen3": (T.Qwen3Config, T.Qwen3ForCausalLM,
              common(head_dim=16, tie_word_embeddings=True, rms_norm_eps=1e-6,
                     rope_parameters={"rope_type": "default", "rope_theta": 1e6}), "qwen3"),
    "gemma2": (T.Gemma2Config, T.Gemma2ForCausalLM,
               common(head_dim=8, query_pre_attn_scalar=8, sliding_window=4, final_logit_softcapping=3.0,
                      attn_logit_softcapping=1.5, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), "gemma2"),
    "phi3": (T.Phi3Config, T.Phi3ForCausalLM,
             common(max_position_embeddings=256, original_max_position_embeddings=64,
                    rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                     "short_factor": [1.0, 1.3, 2.1, 3.7], "long_factor": [1.5, 2.5, 4.0, 9.0]}),
             "phi3"),
    # Phi-4-mini's shape of LongRoPE: only part of each head rotates, so the
    # attention factor scales the rotated dims, not the scores
    "phi4mini": (T.Phi3Config, T.Phi3ForCausalLM,
                 common(max_position_embeddings=512, original_max_position_embeddings=32, tie_word_embeddings=True,
                        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                         "short_factor": [1.0, 2.5], "long_factor": [3.0, 7.0]}),
                 "phi3"),
    "granite": (T.GraniteConfig, T.GraniteForCausalLM,
                common(tie_word_embeddings=True, embedding_multiplier=0.3, attention_multiplier=0.2,
                       residual_multiplier=0.5, logits_scaling=2.5,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), "granite"),
    # mixtures of experts: 8 experts, top-2, routers spread enough that every
    # expert is used somewhere in the sequences
    "qwen3moe": (T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM,
                 common(head_dim=16, tie_word_embeddings=True, rms_norm_eps=1e-6, num_experts=8,
                        num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 1e6}), "qwen3moe"),
    "qwen2moe": (T.Qwen2MoeConfig, T.Qwen2MoeForCausalLM,
                 common(tie_word_embeddings=True, rms_norm_eps=1e-6, num_experts=8, num_experts_per_tok=2,
                        moe_intermediate_size=32, shared_expert_intermediate_size=48, norm_topk_prob=False,
                        rope_parameters={"rope_type": "default", "rope_theta": 1e6}), "qwen2moe"),
    "mixtral": (T.MixtralConfig, T.MixtralForCausalLM,
                common(intermediate_size=32, num_local_experts=8, num_experts_per_tok=2,
                       rope_parameters={"rope_type": "default", "rope_theta": 1e6}), "llama"),
    "olmoe": (T.OlmoeConfig, T.OlmoeForCausalLM,
              common(num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), "olmoe"),
    "olmo2": (T.Olmo2Config, T.Olmo2ForCausalLM,
              common(rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 500000.0}), "olmo2"),
}

SEQS = [  # token sequences (lengths 9, 13, 6), BOS first
    [1, 45, 300, 7, 112, 411, 89, 23, 256],
    [1, 500, 3, 77, 78, 79, 200, 201, 333, 12, 99, 401, 5],
    [1, 250, 250, 250, 17, 480],
]


def long_sequence(orig):
    """BOS, then orig + 15 token ids drawn with a fixed seed: 16 positions past the original context."""
    rng = np.random.default_rng(11)
    return [1] + [int(x) for x in rng.integers(3, VOCAB, orig + 15)]


def build_model(name, seed):
    cfg_cls, model_cls, kw, _ = FIXTURES[name]
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.ndim == 3:  # fused experts [n_expert, rows, fan_in]
                p.copy_(torch.randn(p.shape, generator=g) * (1.2 / p.shape[2] ** 0.5))
            elif p.ndim == 2:
                fan_in = p.shape[1]
                if "embed_tokens" in pname:  # gemma scales embeddings by sqrt(hidden) itself
                    fan_in = 16 * p.shape[1] if name.startswith("gemma") else 4
                p.copy_(torch.randn(p.shape, generator=g) * (1.2 / fan_in ** 0.5))
            elif "norm" in pname:
                # gemma norms are x * (1 + w) with w around 0, the others x * w around 1
                centre = 0.0 if name.startswith("gemma") else 1.0
                p.copy_(centre + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    rp = cfg.rope_parameters
    if rp.get("rope_type") == "yarn" and rp.get("partial_rotary_factor", 1.0) == 1.0:
        # YaRN's attention factor multiplies cos and sin, so whole rotating
        # heads get its square on the scores; the engine applies it there,
        # caching K without it. Moved to the scores here too (the logits are
        # bit-identical), the f16 rounding of K emulated below is the cache's.
        rot = model.model.rotary_emb
        for layer in model.model.layers:
            layer.self_attn.scaling *= rot.attention_scaling ** 2
        rot.attention_scaling = 1.0
    return cfg, model


def round_f16(model):
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(p.half().float())


class kv_f16:
    """Within it, the model's attention sees K and V rounded to f16 after
    rope, as the engine's f16 KV cache stores them (everything else float32).
    The modeling module's eager_attention_forward is looked up at each call,
    so wrapping it is enough."""

    def __init__(self, model):
        self.mod = sys.modules[type(model).__module__]

    def __enter__(self):
        self.orig = orig = self.mod.eager_attention_forward

        def wrapped(module, query, key, value, *args, **kw):
            return orig(module, query, key.half().float(), value.half().float(), *args, **kw)

        self.mod.eager_attention_forward = wrapped

    def __exit__(self, *exc):
        self.mod.eager_attention_forward = self.orig


@torch.no_grad()
def logits_of(model):
    return [model(torch.tensor([s])).logits[0].float().numpy() for s in SEQS]


@torch.no_grad()
def reference(model):
    logits = []
    for s in SEQS:
        out = model(torch.tensor([s]))
        logits.append(out.logits[0].float().numpy())
    # greedy continuation of the first sequence, recomputed from scratch each
    # step (no cache: the plain definition)
    ids = list(SEQS[0])
    margins = []
    for _ in range(N_GREEDY):
        row = model(torch.tensor([ids])).logits[0, -1].float()
        top = torch.topk(row, 2).values
        margins.append(float(top[0] - top[1]))
        ids.append(int(row.argmax()))
    return logits, ids[len(SEQS[0]):], min(margins)


def tokenizer_fields():
    r = gguf.GGUFReader(str(TOKENIZER_FROM))
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8") for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    assert len(tokens) == VOCAB
    return tokens, scores, types


def permute_rows(w, n_head):
    """HF rotate-half order -> GGUF llama's adjacent-pair order, per head."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, 2, hd // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def gguf_tensors(name, cfg, model):
    """(GGUF name, numpy array in HF [rows, cols] order) for every tensor."""
    arch = FIXTURES[name][3]
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    gemma = arch.startswith("gemma")
    out = [("token_embd.weight", sd["model.embed_tokens.weight"])]
    norm = (lambda w: w + 1.0) if gemma else (lambda w: w)
    out.append(("output_norm.weight", norm(sd["model.norm.weight"])))
    if not cfg.tie_word_embeddings:
        out.append(("output.weight", sd["lm_head.weight"]))
    rot = model.model.rotary_emb
    if name == "llama3":
        base = 1.0 / (cfg.rope_parameters["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
        scaled = rot.inv_freq.double().numpy()
        out.append(("rope_freqs.weight", (base / scaled).astype(np.float32)))
    if arch == "phi3":
        rp = cfg.rope_parameters
        out.append(("rope_factors_long.weight", np.array(rp["long_factor"], np.float32)))
        out.append(("rope_factors_short.weight", np.array(rp["short_factor"], np.float32)))
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        b = f"blk.{l}."
        if arch != "olmo2":
            out.append((b + "attn_norm.weight", norm(sd[p + "input_layernorm.weight"])))
        if arch == "phi3":
            out.append((b + "attn_qkv.weight", sd[p + "self_attn.qkv_proj.weight"]))
        else:
            q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
            if arch in ("llama", "granite"):
                q, k = permute_rows(q, cfg.num_attention_heads), permute_rows(k, cfg.num_key_value_heads)
            out += [(b + "attn_q.weight", q), (b + "attn_k.weight", k),
                    (b + "attn_v.weight", sd[p + "self_attn.v_proj.weight"])]
            if p + "self_attn.q_proj.bias" in sd:
                out += [(b + f"attn_{x}.bias", sd[p + f"self_attn.{x}_proj.bias"]) for x in "qkv"]
        if arch in ("qwen3", "qwen3moe", "olmo2", "olmoe"):
            out += [(b + "attn_q_norm.weight", sd[p + "self_attn.q_norm.weight"]),
                    (b + "attn_k_norm.weight", sd[p + "self_attn.k_norm.weight"])]
        out.append((b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"]))
        if arch == "olmo2":
            out += [(b + "post_attention_norm.weight", sd[p + "post_attention_layernorm.weight"]),
                    (b + "post_ffw_norm.weight", sd[p + "post_feedforward_layernorm.weight"])]
        elif gemma:
            out += [(b + "post_attention_norm.weight", norm(sd[p + "post_attention_layernorm.weight"])),
                    (b + "ffn_norm.weight", norm(sd[p + "pre_feedforward_layernorm.weight"])),
                    (b + "post_ffw_norm.weight", norm(sd[p + "post_feedforward_layernorm.weight"]))]
        else:
            out.append((b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"]))
        if p + "mlp.gate.weight" in sd:  # mixture of experts
            gu, n_ff = sd[p + "mlp.experts.gate_up_proj"], sd[p + "mlp.experts.down_proj"].shape[2]
            out += [(b + "ffn_gate_inp.weight", sd[p + "mlp.gate.weight"]),
                    (b + "ffn_gate_exps.weight", gu[:, :n_ff, :]), (b + "ffn_up_exps.weight", gu[:, n_ff:, :]),
                    (b + "ffn_down_exps.weight", sd[p + "mlp.experts.down_proj"])]
            if p + "mlp.shared_expert_gate.weight" in sd:
                out += [(b + "ffn_gate_inp_shexp.weight", sd[p + "mlp.shared_expert_gate.weight"].reshape(-1)),
                        (b + "ffn_gate_shexp.weight", sd[p + "mlp.shared_expert.gate_proj.weight"]),
                        (b + "ffn_up_shexp.weight", sd[p + "mlp.shared_expert.up_proj.weight"]),
                        (b + "ffn_down_shexp.weight", sd[p + "mlp.shared_expert.down_proj.weight"])]
            continue
        if arch == "phi3":
            out.append((b + "ffn_up.weight", sd[p + "mlp.gate_up_proj.weight"]))
        else:
            out += [(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"]),
                    (b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])]
        out.append((b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"]))
    return out


def write_gguf(path, name, cfg, model, f16):
    arch = FIXTURES[name][3]
    K = gguf.Keys
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tiny-random-{name}")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_rope_dimension_count(int(head_dim * cfg.rope_parameters.get("partial_rotary_factor", 1.0)))
    w.add_vocab_size(VOCAB)
    n_exp = getattr(cfg, "num_experts", None) or getattr(cfg, "num_local_experts", None)
    if n_exp:
        w.add_expert_count(n_exp)
        w.add_expert_used_count(cfg.num_experts_per_tok)
        if getattr(cfg, "moe_intermediate_size", None):
            w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
        if getattr(cfg, "shared_expert_intermediate_size", None):
            w.add_expert_shared_feed_forward_length(cfg.shared_expert_intermediate_size)
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if getattr(cfg, "sliding_window", None) and name != "qwen3":
        w.add_sliding_window(cfg.sliding_window)
    rp = cfg.rope_parameters
    if name == "llama3":
        # the frequencies come as rope_freqs.weight; the type says why
        w.add_string(K.Rope.SCALING_TYPE.format(arch=arch), "llama3")
        w.add_float32(K.Rope.SCALING_FACTOR.format(arch=arch), rp["factor"])
        w.add_uint32(K.Rope.SCALING_ORIG_CTX_LEN.format(arch=arch), rp["original_max_position_embeddings"])
    if rp.get("rope_type") == "yarn":
        w.add_string(K.Rope.SCALING_TYPE.format(arch=arch), "yarn")
        w.add_float32(K.Rope.SCALING_FACTOR.format(arch=arch), rp["factor"])
        w.add_uint32(K.Rope.SCALING_ORIG_CTX_LEN.format(arch=arch), rp["original_max_position_embeddings"])
    if arch == "granite":
        w.add_float32(K.LLM.EMBEDDING_SCALE.format(arch=arch), cfg.embedding_multiplier)
        w.add_float32(K.Attention.SCALE.format(arch=arch), cfg.attention_multiplier)
        w.add_float32(K.LLM.RESIDUAL_SCALE.format(arch=arch), cfg.residual_multiplier)
        w.add_float32(K.LLM.LOGIT_SCALE.format(arch=arch), cfg.logits_scaling)
    if arch == "gemma2":
        w.add_float32(K.LLM.ATTN_LOGIT_SOFTCAPPING.format(arch=arch), cfg.attn_logit_softcapping)
        w.add_float32(K.LLM.FINAL_LOGIT_SOFTCAPPING.format(arch=arch), cfg.final_logit_softcapping)
    if arch == "phi3":
        orig = rp["original_max_position_embeddings"]
        factor = cfg.max_position_embeddings / orig
        attn_factor = float(np.sqrt(1 + np.log(factor) / np.log(orig))) if factor > 1 else 1.0
        w.add_uint32(K.Rope.SCALING_ORIG_CTX_LEN.format(arch=arch), orig)
        w.add_float32(K.Rope.SCALING_ATTN_FACTOR.format(arch=arch), attn_factor)
    tokens, scores, types = tokenizer_fields()
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for tname, arr in gguf_tensors(name, cfg, model):
        arr = np.ascontiguousarray(arr)
        if f16 and arr.ndim >= 2:
            arr = arr.astype(np.float16)
        else:
            arr = arr.astype(np.float32)
        w.add_tensor(tname, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make(name):
    for seed in range(1, 50):
        cfg, model = build_model(name, seed)
        ref32, greedy32, m32 = reference(model)
        cfg16, model16 = build_model(name, seed)
        round_f16(model16)
        ref16, greedy16, m16 = reference(model16)
        if min(m32, m16) >= MIN_MARGIN and greedy32 == greedy16 and len(set(greedy32)) >= N_GREEDY // 2:
            break
        print(f"{name}: seed {seed} margin {min(m32, m16):.3g}, greedy {greedy32}: reseeding", file=sys.stderr)
    else:
        raise SystemExit(f"{name}: no seed gave clear margins")
    OUT.mkdir(parents=True, exist_ok=True)
    write_gguf(OUT / f"{name}-F32.gguf", name, cfg, model, f16=False)
    # the F16 file is made from the F32 one at test time (test_arch_logits.py)
    with kv_f16(model):
        kv32 = logits_of(model)
    with kv_f16(model16):
        kv16 = logits_of(model16)
    arrays = {"seqs": json.dumps(SEQS), "greedy_f32": np.array(greedy32, np.int32),
              "greedy_f16": np.array(greedy16, np.int32), "seed": seed, "margin": min(m32, m16)}
    # logits_f32_*: transformers with K/V rounded to f16 (the engine's KV
    # cache), compared tightly. Stored as differences from it, small enough
    # for f16 storage to keep them to ~1e-5: delta_f16_* (the same with the
    # F16-rounded weights) and raw_delta_f32_* (plain transformers, F32
    # weights: the looser comparison).
    for i in range(len(SEQS)):
        arrays[f"logits_f32_{i}"] = kv32[i].astype(np.float32)
        arrays[f"delta_f16_{i}"] = (kv16[i] - kv32[i]).astype(np.float16)
        arrays[f"raw_delta_f32_{i}"] = (ref32[i] - kv32[i]).astype(np.float16)
    rp = cfg.rope_parameters
    if rp.get("rope_type") == "longrope":
        # a sequence longer than the original context, where transformers
        # rotates every position by the long factors (the engine does when
        # its context exceeds the original one): F32 weights, K/V rounded
        orig = rp.get("original_max_position_embeddings") or cfg.original_max_position_embeddings
        long_seq = long_sequence(orig)
        with kv_f16(model), torch.no_grad():
            arrays["long_logits_f32"] = model(torch.tensor([long_seq])).logits[0].float().numpy()
        arrays["long_seq"] = json.dumps(long_seq)
        arrays["orig_ctx"] = orig
        arrays["n_ctx_train"] = cfg.max_position_embeddings
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    print(f"{name}: seed {seed}, min margin {min(m32, m16):.3f}, greedy {greedy32}, "
          f"|logits| max {max(np.abs(a).max() for a in ref32):.2f}")


def main():
    names = sys.argv[1:] or list(FIXTURES)
    for n in names:
        if n not in FIXTURES:
            raise SystemExit(f"unknown fixture {n} (have {', '.join(FIXTURES)})")
        make(n)


if __name__ == "__main__":
    main()
