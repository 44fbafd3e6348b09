/* The qwen2 architecture (Qwen2, Qwen2.5, Qwen2.5-Coder): llama's block with
 * biases on the Q, K and V projections and NEOX (half-split) rope, since its
 * converter does not permute Q/K. Small models tie output.weight to the
 * embeddings, so output.weight is optional. */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor qwen2_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
};

static const hl_arch_tensor qwen2_layer[] = {
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
    .global = qwen2_global,
    .n_global = sizeof qwen2_global / sizeof qwen2_global[0],
    .layer = qwen2_layer,
    .n_layer_tensors = sizeof qwen2_layer / sizeof qwen2_layer[0],
};
