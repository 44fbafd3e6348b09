/* The granite architecture (IBM Granite 3.x dense): llama's block (Q/K
 * permuted by the converter, NORM rope, SwiGLU, GQA, tied output in the small
 * sizes) with four multipliers from the file, read by the generic loader:
 * embedding_scale (embeddings), attention.scale (replaces 1/sqrt(head_dim)),
 * residual_scale (each branch before it joins the residual stream: the ADD
 * op's scale) and logit_scale (the logits are divided by it: an ACT SCALE
 * after the logits matmul). The tensors are llama's (arch_llama.c's tables). */
#include "model/model_impl.h"

const hl_arch hl_arch_granite = {
    .name = "granite",
    .rope_style = HL_ROPE_NORM,
    .act = HL_ACT_SILU,
    .global = hl_llama_global,
    .n_global = HL_LLAMA_N_GLOBAL,
    .layer = hl_llama_layer,
    .n_layer_tensors = HL_LLAMA_N_LAYER,
};
