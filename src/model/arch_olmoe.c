/* The olmoe architecture (OLMoE-1B-7B): llama's pre-norm block with NEOX
 * rope, an RMSNorm over the whole Q and K projections before rope (olmo2's
 * q/k norm: weights as wide as the projections), and a routed-experts FFN:
 * softmax over all experts, the top expert_used_count with their
 * probabilities as they are (norm_topk_prob false), no shared expert. */
#include "model/arch_moe.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

/* after olmo2's attention rows: olmoe's pre-norms, then the experts */
static const hl_arch_tensor olmoe_more[] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    HL_MOE_EXPERT_TENSORS,
};

const hl_arch hl_arch_olmoe = {
    .name = "olmoe",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .moe = 1,
    .moe_gating = HL_MOE_SOFTMAX_TOPK,
    .moe_norm_topk = 0,
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_olmo2_layer,
    .n_layer_tensors = HL_OLMO2_N_ATTN,
    .layer_more = olmoe_more,
    .n_layer_more = sizeof olmoe_more / sizeof olmoe_more[0],
};
