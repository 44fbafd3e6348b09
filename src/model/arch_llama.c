/* The llama architecture (Llama 2/3, TinyLlama, Mistral, SmolLM2, the
 * llama2.c stories models): pre-norm RMSNorm blocks, SwiGLU feed-forward,
 * grouped-query attention, no biases. The GGUF converter permutes the Q and K
 * rows so that rotary pairs are adjacent, hence NORM rope. output.weight is
 * optional (SmolLM2 ties it to the embeddings); rope_freqs.weight carries
 * Llama 3's per-frequency scaling when present (rope.scaling.type llama3:
 * the file holds the factors the converter computed from factor and the
 * low/high frequency factors). attention.sliding_window, when present
 * (Mistral), makes every layer attend to that many positions only;
 * attention.key_length may differ from n_embd / n_head (Mistral-Nemo). */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor llama_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
    {"rope_freqs.weight", G(rope_freqs), HL_DIM_ROT_HALF, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
};

static const hl_arch_tensor llama_layer[] = {
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

const hl_arch hl_arch_llama = {
    .name = "llama",
    .rope_style = HL_ROPE_NORM,
    .act = HL_ACT_SILU,
    .swa_period = 1, /* attention.sliding_window, when present (Mistral 7B v0.1), applies to every layer */
    .global = llama_global,
    .n_global = sizeof llama_global / sizeof llama_global[0],
    .layer = llama_layer,
    .n_layer_tensors = sizeof llama_layer / sizeof llama_layer[0],
};
