/* The qwen3moe architecture (Qwen3-30B-A3B, Qwen3-235B-A22B): qwen3's
 * attention (per-head q/k RMSNorm, NEOX rope, no biases) with a routed-
 * experts FFN in every layer: softmax over all experts, the top
 * expert_used_count, their weights renormalized to sum 1 (norm_topk_prob),
 * SwiGLU experts of expert_feed_forward_length, no shared expert. */
#include "model/arch_moe.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor qwen3moe_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
};

static const hl_arch_tensor qwen3moe_layer[] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_q_norm.weight", L(q_norm), HL_DIM_HEAD_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_k_norm.weight", L(k_norm), HL_DIM_HEAD_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    HL_MOE_EXPERT_TENSORS,
};

const hl_arch hl_arch_qwen3moe = {
    .name = "qwen3moe",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .moe = 1,
    .moe_gating = HL_MOE_SOFTMAX_TOPK,
    .moe_norm_topk = 1,
    .global = qwen3moe_global,
    .n_global = sizeof qwen3moe_global / sizeof qwen3moe_global[0],
    .layer = qwen3moe_layer,
    .n_layer_tensors = sizeof qwen3moe_layer / sizeof qwen3moe_layer[0],
};
