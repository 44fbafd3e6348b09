/* The granite architecture (IBM Granite 3.x dense): llama's block (Q/K
 * permuted by the converter, NORM rope, SwiGLU, GQA, tied output in the small
 * sizes) with four multipliers from the file, read by the generic loader:
 * embedding_scale (embeddings), attention.scale (replaces 1/sqrt(head_dim)),
 * residual_scale (each branch before it joins the residual stream: the ADD
 * op's scale) and logit_scale (the logits are divided by it: an ACT SCALE
 * after the logits matmul). */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor granite_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
    {"rope_freqs.weight", G(rope_freqs), HL_DIM_ROT_HALF, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
};

static const hl_arch_tensor granite_layer[] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_gate.weight", L(ffn_gate), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.weight", L(ffn_up), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
};

const hl_arch hl_arch_granite = {
    .name = "granite",
    .rope_style = HL_ROPE_NORM,
    .act = HL_ACT_SILU,
    .global = granite_global,
    .n_global = sizeof granite_global / sizeof granite_global[0],
    .layer = granite_layer,
    .n_layer_tensors = sizeof granite_layer / sizeof granite_layer[0],
};
