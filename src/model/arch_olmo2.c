/* The olmo2 architecture (OLMo 2): no norm before the attention or the
 * feed-forward branch; instead RMSNorm after each (post_attention_norm,
 * post_ffw_norm) before it joins the residual stream. Queries and keys are
 * RMS-normalized over the whole projection (attn_q_norm is n_head * head_dim
 * wide, not per head) before rope. SwiGLU feed-forward, NEOX rope (the
 * converter does not permute Q/K), untied output. */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

const hl_arch_tensor hl_olmo2_layer[HL_OLMO2_N_LAYER] = {
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_q_norm.weight", L(q_norm), HL_DIM_Q, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_k_norm.weight", L(k_norm), HL_DIM_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.post_attention_norm.weight", L(post_attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_gate.weight", L(ffn_gate), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.weight", L(ffn_up), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.post_ffw_norm.weight", L(post_ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
};

const hl_arch hl_arch_olmo2 = {
    .name = "olmo2",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_olmo2_layer,
    .n_layer_tensors = HL_OLMO2_N_LAYER,
};
