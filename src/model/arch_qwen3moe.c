/* The qwen3moe architecture (Qwen3-30B-A3B, Qwen3-235B-A22B): qwen3's
 * attention (per-head q/k RMSNorm, NEOX rope, no biases) with a routed-
 * experts FFN in every layer: softmax over all experts, the top
 * expert_used_count, their weights renormalized to sum 1 (norm_topk_prob),
 * SwiGLU experts of expert_feed_forward_length, no shared expert. */
#include "model/arch_moe.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

/* after qwen3's attention rows */
static const hl_arch_tensor qwen3moe_more[] = {
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
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_qwen3_layer,
    .n_layer_tensors = HL_QWEN3_N_ATTN,
    .layer_more = qwen3moe_more,
    .n_layer_more = sizeof qwen3moe_more / sizeof qwen3moe_more[0],
};
