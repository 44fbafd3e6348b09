/* The qwen2moe architecture (Qwen1.5-MoE, Qwen2-57B-A14B): qwen2's attention
 * (QKV biases, NEOX rope) with a routed-experts FFN: softmax over all
 * experts, the top expert_used_count with their probabilities as they are
 * (not renormalized: norm_topk_prob false), plus a shared expert of
 * expert_shared_feed_forward_length whose output is scaled by
 * sigmoid(x . ffn_gate_inp_shexp). */
#include "model/arch_moe.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor qwen2moe_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
};

static const hl_arch_tensor qwen2moe_layer[] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_q.bias", L(bq), HL_DIM_Q, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_k.bias", L(bk), HL_DIM_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_v.bias", L(bv), HL_DIM_V, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    HL_MOE_EXPERT_TENSORS,
    HL_MOE_SHARED_TENSORS,
};

const hl_arch hl_arch_qwen2moe = {
    .name = "qwen2moe",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .moe = 1,
    .moe_gating = HL_MOE_SOFTMAX_TOPK,
    .moe_norm_topk = 0,
    .global = qwen2moe_global,
    .n_global = sizeof qwen2moe_global / sizeof qwen2moe_global[0],
    .layer = qwen2moe_layer,
    .n_layer_tensors = sizeof qwen2moe_layer / sizeof qwen2moe_layer[0],
};
