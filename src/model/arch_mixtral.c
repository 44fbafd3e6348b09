/* Mixtral: a llama file (general.architecture "llama", its keys and
 * attention: NORM rope on converter-permuted Q/K, GQA, no biases) whose
 * llama.expert_count is > 0 (load.c picks this description then). The FFN
 * routes each token to its top expert_used_count experts, softmax over
 * those k logits (the same weights as softmax over all then renormalized),
 * SwiGLU experts of feed_forward_length, no shared expert. */
#include "model/arch_moe.h"

#define L(f) offsetof(hl_layer_weights, f)

/* after llama's attention rows */
static const hl_arch_tensor mixtral_more[] = {
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    HL_MOE_EXPERT_TENSORS,
};

const hl_arch hl_arch_mixtral = {
    .name = "llama",
    .rope_style = HL_ROPE_NORM,
    .act = HL_ACT_SILU,
    .swa_period = 1,
    .moe = 1,
    .moe_gating = HL_MOE_TOPK_SOFTMAX,
    .global = hl_llama_global,
    .n_global = HL_LLAMA_N_GLOBAL,
    .layer = hl_llama_layer,
    .n_layer_tensors = HL_LLAMA_N_ATTN,
    .layer_more = mixtral_more,
    .n_layer_more = sizeof mixtral_more / sizeof mixtral_more[0],
};
