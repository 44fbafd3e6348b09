/* The qwen2moe architecture (Qwen1.5-MoE, Qwen2-57B-A14B): qwen2's attention
 * (QKV biases, NEOX rope) with a routed-experts FFN: softmax over all
 * experts, the top expert_used_count with their probabilities as they are
 * (not renormalized: norm_topk_prob false), plus a shared expert of
 * expert_shared_feed_forward_length whose output is scaled by
 * sigmoid(x . ffn_gate_inp_shexp). */
#include "model/arch_moe.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

/* after qwen2's attention rows */
static const hl_arch_tensor qwen2moe_more[] = {
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
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_qwen2_layer,
    .n_layer_tensors = HL_QWEN2_N_ATTN,
    .layer_more = qwen2moe_more,
    .n_layer_more = sizeof qwen2moe_more / sizeof qwen2moe_more[0],
};
