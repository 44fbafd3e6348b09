/* The gpt-oss architecture (gpt-oss-20b, gpt-oss-120b): a pre-norm block with
 * NEOX rope under YaRN (its correction range not rounded to whole dims),
 * biases on q/k/v/o, a learned sink logit per head in every attention
 * softmax, layers alternating sliding-window (even) and full attention, and
 * a routed-experts FFN in every layer: a router with a bias, the top
 * expert_used_count logits then softmax over those, experts with biases on
 * gate, up and down, and the clamped SwiGLU (gate clamped above at 7, up to
 * [-7, 7], (up + 1) * gate * sigmoid(1.702 gate)): GGUF has no keys for
 * alpha and limit, so they are the architecture's. The pre-FFN norm is
 * named post_attention_norm in GGUF (transformers' post_attention_layernorm). */
#include "model/arch_moe.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

/* after qwen2's attention rows */
static const hl_arch_tensor gptoss_more[] = {
    {"blk.%d.attn_output.bias", L(bo), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_sinks.weight", L(attn_sinks), HL_DIM_HEADS, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.post_attention_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    HL_MOE_EXPERT_TENSORS,
    {"blk.%d.ffn_gate_inp.bias", L(ffn_gate_inp_b), HL_DIM_EXPERT, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_gate_exps.bias", L(ffn_gate_exps_b), HL_DIM_FF_EXP, HL_DIM_EXPERT, HL_TK_VEC, 0},
    {"blk.%d.ffn_up_exps.bias", L(ffn_up_exps_b), HL_DIM_FF_EXP, HL_DIM_EXPERT, HL_TK_VEC, 0},
    {"blk.%d.ffn_down_exps.bias", L(ffn_down_exps_b), HL_DIM_EMBD, HL_DIM_EXPERT, HL_TK_VEC, 0},
};

const hl_arch hl_arch_gptoss = {
    .name = "gpt-oss",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SWIGLU_CLAMP,
    .act_alpha = 1.702f,
    .act_limit = 7.0f,
    .swa_period = 2,
    .yarn_no_truncate = 1,
    .moe = 1,
    .moe_gating = HL_MOE_TOPK_SOFTMAX,
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_qwen2_layer,
    .n_layer_tensors = HL_QWEN2_N_ATTN,
    .layer_more = gptoss_more,
    .n_layer_more = sizeof gptoss_more / sizeof gptoss_more[0],
};
