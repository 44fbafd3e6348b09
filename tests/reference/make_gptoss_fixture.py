"""Builds the gpt-oss fixture of tests/data/arch/ (run once, by hand):

    /work/refvenv/bin/python tests/reference/make_gptoss_fixture.py

A tiny random-weight GptOssForCausalLM from transformers (offline): 4 layers
alternating sliding-window (window 6, so it matters within the 9-13 token
sequences) and full attention, attention sinks with a visible spread, q/k/v/o
biases, YaRN (factor 4 over an original context of 64, not truncated, as
gpt-oss), 4 experts with biases, top-2 routing with a router bias and the
softmax over the two selected logits, the clamped SwiGLU (alpha 1.702, limit
7: the format has no key for them). Written as GGUF with the `gguf` package's
writer under the names and keys gguf.constants gives MODEL_ARCH.GPT_OSS:

- HF post_attention_layernorm (the pre-FFN norm) is blk.N.post_attention_norm;
- rope is NEOX style (halves): Q and K rows are not permuted;
- gate_up_proj [E, n_embd, 2 n_ff] interleaves gate (even columns) and up
  (odd); each becomes ffn_gate_exps / ffn_up_exps, numpy [E, n_ff, n_embd]
  (GGUF ne = [n_embd, n_ff, E]); down_proj [E, n_ff, n_embd] becomes
  ffn_down_exps [E, n_embd, n_ff]; biases [E, n_ff] / [E, n_embd];
- the router is ffn_gate_inp.weight [E, n_embd] and .bias [E].

Two files: gptoss-F32.gguf, and gptoss-MXFP4.gguf with the expert matrices
quantized to MXFP4 by gguf.quants (everything else F32), each with its
reference in gptoss.npz (transformers on exactly that file's weights: for
MXFP4 the dequantized experts), the same arrays as make_arch_fixtures.py
writes (K/V rounded to f16 after rope, the plain logits as a delta, greedy
continuation). Before writing, an independent numpy forward pass over the
GGUF (read back with gguf.GGUFReader, dequantized by gguf.quants) must
agree with transformers: that checks the layout above, not our engine.
"""
from __future__ import annotations

import json
import sys

import gguf
import numpy as np
import torch
import transformers as T

import make_arch_fixtures as M

CFG = dict(vocab_size=M.VOCAB, hidden_size=64, intermediate_size=32, num_hidden_layers=4, num_local_experts=4,
           num_experts_per_tok=2, head_dim=16, num_attention_heads=4, num_key_value_heads=2, sliding_window=6,
           max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0,
           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "beta_fast": 32.0,
                            "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 64})
ARCH = "gpt-oss"


def build(seed):
    cfg = T.GptOssConfig(**CFG)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = T.GptOssForCausalLM(cfg).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("sinks"):
                p.copy_(torch.linspace(-1.5, 2.5, p.numel())[torch.randperm(p.numel(), generator=g)])
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.ndim == 3:  # experts: [E, in, out]; a spread that reaches the clamp at 7 now and then
                p.copy_(torch.randn(p.shape, generator=g) * (3.0 / p.shape[1] ** 0.5))
            elif p.ndim == 2:
                fan_in = 4 if "embed_tokens" in name else p.shape[1]
                p.copy_(torch.randn(p.shape, generator=g) * (1.2 / fan_in ** 0.5))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    # YaRN's attention factor moved from cos/sin to the scores (whole heads
    # rotate: bit-identical logits), so K is cached without it, as ours is
    rot = model.model.rotary_emb
    for layer in model.model.layers:
        layer.self_attn.scaling *= rot.attention_scaling ** 2
    rot.attention_scaling = 1.0
    return cfg, model


def tensors(cfg, model):
    """(GGUF name, numpy array in GGUF row order, is_expert_matrix)."""
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = [("token_embd.weight", sd["model.embed_tokens.weight"], 0),
           ("output_norm.weight", sd["model.norm.weight"], 0),
           ("output.weight", sd["lm_head.weight"], 0)]
    for l in range(cfg.num_hidden_layers):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        a = p + "self_attn."
        out += [(b + "attn_norm.weight", sd[p + "input_layernorm.weight"], 0),
                (b + "post_attention_norm.weight", sd[p + "post_attention_layernorm.weight"], 0),
                (b + "attn_sinks.weight", sd[a + "sinks"], 0)]
        for hf, gg in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output")):
            out += [(b + gg + ".weight", sd[a + hf + ".weight"], 0), (b + gg + ".bias", sd[a + hf + ".bias"], 0)]
        e = p + "mlp."
        gu, gub = sd[e + "experts.gate_up_proj"], sd[e + "experts.gate_up_proj_bias"]
        out += [(b + "ffn_gate_inp.weight", sd[e + "router.weight"], 0),
                (b + "ffn_gate_inp.bias", sd[e + "router.bias"], 0),
                (b + "ffn_gate_exps.weight", np.ascontiguousarray(gu[:, :, 0::2].transpose(0, 2, 1)), 1),
                (b + "ffn_up_exps.weight", np.ascontiguousarray(gu[:, :, 1::2].transpose(0, 2, 1)), 1),
                (b + "ffn_down_exps.weight", np.ascontiguousarray(sd[e + "experts.down_proj"].transpose(0, 2, 1)), 1),
                (b + "ffn_gate_exps.bias", np.ascontiguousarray(gub[:, 0::2]), 0),
                (b + "ffn_up_exps.bias", np.ascontiguousarray(gub[:, 1::2]), 0),
                (b + "ffn_down_exps.bias", sd[e + "experts.down_proj_bias"], 0)]
    return out


def mxfp4_round(model):
    """The expert matrices replaced by their MXFP4 round trip (gguf.quants),
    so transformers runs on exactly what the MXFP4 file holds."""
    Q = gguf.GGMLQuantizationType.MXFP4
    with torch.no_grad():
        for layer in model.model.layers:
            ex = layer.mlp.experts
            for pname, perm in (("gate_up_proj", (0, 2, 1)), ("down_proj", (0, 2, 1))):
                p = getattr(ex, pname)
                rows = p.detach().numpy().transpose(*perm)  # [E, out, in]: blocks of 32 along `in`
                back = gguf.quants.dequantize(gguf.quants.quantize(np.ascontiguousarray(rows), Q), Q)
                p.copy_(torch.from_numpy(np.ascontiguousarray(back.reshape(rows.shape).transpose(*perm))))


def write(path, cfg, model, mxfp4):
    K = gguf.Keys
    w = gguf.GGUFWriter(str(path), ARCH)
    w.add_name("tiny-random-gpt-oss")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE if mxfp4 else gguf.LlamaFileType.ALL_F32)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_expert_feed_forward_length(cfg.intermediate_size)
    w.add_expert_count(cfg.num_local_experts)
    w.add_expert_used_count(cfg.num_experts_per_tok)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = cfg.rope_parameters
    w.add_rope_freq_base(rp["rope_theta"])
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_string(K.Rope.SCALING_TYPE.format(arch=ARCH), "yarn")
    w.add_float32(K.Rope.SCALING_FACTOR.format(arch=ARCH), rp["factor"])
    w.add_uint32(K.Rope.SCALING_ORIG_CTX_LEN.format(arch=ARCH), rp["original_max_position_embeddings"])
    w.add_sliding_window(cfg.sliding_window)
    w.add_vocab_size(M.VOCAB)
    tokens, scores, types = M.tokenizer_fields()
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    Q = gguf.GGMLQuantizationType.MXFP4
    for name, arr, expert in tensors(cfg, model):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if mxfp4 and expert:
            w.add_tensor(name, gguf.quants.quantize(arr, Q), raw_dtype=Q)
        else:
            w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- the independent check: numpy over the GGUF as written ----

def read_gguf(path):
    r = gguf.GGUFReader(str(path))
    t = {}
    for x in r.tensors:
        shape = [int(v) for v in reversed(x.shape.tolist())]  # numpy order
        t[x.name] = gguf.quants.dequantize(x.data, x.tensor_type).reshape(shape).astype(np.float64)
    return t


def numpy_forward(path, ids):
    t = read_gguf(path)
    c = CFG
    E, H, KV, D = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    rp = c["rope_parameters"]
    half = D // 2
    base, fac, orig = rp["rope_theta"], rp["factor"], rp["original_max_position_embeddings"]
    cdim = lambda r: D * np.log(orig / (r * 2 * np.pi)) / (2 * np.log(base))
    lo, hi = max(cdim(rp["beta_fast"]), 0), min(cdim(rp["beta_slow"]), D - 1)  # not truncated
    ramp = np.clip((np.arange(half) - lo) / (hi - lo), 0, 1)
    ext = base ** (-np.arange(half) * 2.0 / D)
    inv = ext / fac * ramp + ext * (1 - ramp)
    mscale = 0.1 * np.log(fac) + 1
    n = len(ids)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + c["rms_norm_eps"]) * w

    def rope(x):  # [n, heads, D], halves
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], -1)

    x = t["token_embd.weight"][ids]
    for l in range(c["num_hidden_layers"]):
        b = f"blk.{l}."
        h = rms(x, t[b + "attn_norm.weight"])
        q = (h @ t[b + "attn_q.weight"].T + t[b + "attn_q.bias"]).reshape(n, H, D)
        k = (h @ t[b + "attn_k.weight"].T + t[b + "attn_k.bias"]).reshape(n, KV, D)
        v = (h @ t[b + "attn_v.weight"].T + t[b + "attn_v.bias"]).reshape(n, KV, D)
        q, k = rope(q), rope(k)
        window = c["sliding_window"] if l % 2 == 0 else 0
        att = np.zeros((n, H, D))
        for i in range(n):
            lo_p = i - window + 1 if window and i >= window else 0
            for hh in range(H):
                s = (k[lo_p:i + 1, hh // (H // KV)] @ q[i, hh]) * mscale * mscale / np.sqrt(D)
                sink = t[b + "attn_sinks.weight"][hh]
                m = max(s.max(), sink)
                p = np.exp(s - m)
                att[i, hh] = p @ v[lo_p:i + 1, hh // (H // KV)] / (p.sum() + np.exp(sink - m))
        x = x + att.reshape(n, H * D) @ t[b + "attn_output.weight"].T + t[b + "attn_output.bias"]
        h = rms(x, t[b + "post_attention_norm.weight"])
        logits = h @ t[b + "ffn_gate_inp.weight"].T + t[b + "ffn_gate_inp.bias"]
        ffn = np.zeros_like(x)
        for i in range(n):
            top = np.argsort(-logits[i], kind="stable")[:c["num_experts_per_tok"]]
            wts = np.exp(logits[i, top] - logits[i, top].max())
            wts /= wts.sum()
            for e, we in zip(top, wts):
                g = t[b + "ffn_gate_exps.weight"][e] @ h[i] + t[b + "ffn_gate_exps.bias"][e]
                u = t[b + "ffn_up_exps.weight"][e] @ h[i] + t[b + "ffn_up_exps.bias"][e]
                g, u = np.minimum(g, 7.0), np.clip(u, -7.0, 7.0)
                a = (u + 1) * g / (1 + np.exp(-1.702 * g))
                ffn[i] += we * (t[b + "ffn_down_exps.weight"][e] @ a + t[b + "ffn_down_exps.bias"][e])
        x = x + ffn
    return rms(x, t["output_norm.weight"]) @ t["output.weight"].T


def main():
    for seed in range(1, 50):
        cfg, model = build(seed)
        ref32, greedy32, m32 = M.reference(model)
        cfgq, modelq = build(seed)
        mxfp4_round(modelq)
        refq, greedyq, mq = M.reference(modelq)
        distinct = min(len(set(greedy32)), len(set(greedyq)))
        if min(m32, mq) >= M.MIN_MARGIN and distinct >= M.N_GREEDY // 2:
            break
        print(f"gptoss: seed {seed} margin {min(m32, mq):.3g}: reseeding", file=sys.stderr)
    else:
        raise SystemExit("gptoss: no seed gave clear margins")
    M.OUT.mkdir(parents=True, exist_ok=True)
    arrays = {"seqs": json.dumps(M.SEQS), "seed": seed, "margin": min(m32, mq)}
    for tag, c, mdl, ref, greedy in (("f32", cfg, model, ref32, greedy32), ("mxfp4", cfgq, modelq, refq, greedyq)):
        path = M.OUT / f"gptoss-{tag.upper()}.gguf"
        write(path, c, mdl, mxfp4=tag == "mxfp4")
        for i, s in enumerate(M.SEQS):  # the layout check
            err = np.abs(numpy_forward(path, s) - ref[i]).max()
            if err > 1e-3:
                raise SystemExit(f"gptoss {tag}: numpy over the GGUF differs from transformers by {err:.3g} (seq {i})")
        with M.kv_f16(mdl):
            kv = M.logits_of(mdl)
        arrays[f"greedy_{tag}"] = np.array(greedy, np.int32)
        for i in range(len(M.SEQS)):
            arrays[f"logits_{tag}_{i}"] = kv[i].astype(np.float32)
            arrays[f"raw_delta_{tag}_{i}"] = (ref[i] - kv[i]).astype(np.float16)
        print(f"gptoss {tag}: {path.name} written, numpy check passed, greedy {greedy}")
    np.savez_compressed(M.OUT / "gptoss.npz", **arrays)
    print(f"gptoss: seed {seed}, min margin {min(m32, mq):.3f}")


if __name__ == "__main__":
    main()
