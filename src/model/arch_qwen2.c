/* The qwen2 architecture (Qwen2, Qwen2.5, Qwen2.5-Coder): llama's block with
 * biases on the Q, K and V projections and NEOX (half-split) rope, since its
 * converter does not permute Q/K. Small models tie output.weight to the
 * embeddings, so output.weight is optional. */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

/* attention rows first: shared with the mixtures of experts (model_impl.h) */
const hl_arch_tensor hl_qwen2_layer[HL_QWEN2_N_LAYER] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_q.bias", L(bq), HL_DIM_Q, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_k.bias", L(bk), HL_DIM_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_v.bias", L(bv), HL_DIM_V, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_gate.weight", L(ffn_gate), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.weight", L(ffn_up), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
};

const hl_arch hl_arch_qwen2 = {
    .name = "qwen2",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_qwen2_layer,
    .n_layer_tensors = HL_QWEN2_N_LAYER,
};
