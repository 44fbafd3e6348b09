/* The nomic-bert architecture (nomic-embed-text): BERT's post-norm encoder
 * block with rotary positions (NEOX, <arch>.rope.freq_base) instead of a
 * position table, a fused attn_qkv projection (its q, k and v row ranges,
 * and its bias's, bound as views by the loader: hl_arch_view), a SwiGLU feed-forward (silu(ffn_gate) * ffn_up) and no
 * biases on the projections unless the file has them. Tensor names follow
 * gguf-py's MODEL_TENSORS[NOMIC_BERT]. */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor nomic_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"token_types.weight", G(token_types), HL_DIM_EMBD, HL_DIM_ANY, HL_TK_VEC, HL_TF_OPTIONAL},
    {"token_embd_norm.weight", G(token_embd_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"token_embd_norm.bias", G(token_embd_norm_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
};

static const hl_arch_tensor nomic_layer[] = {
    {"blk.%d.attn_qkv.weight", 0, HL_DIM_EMBD, HL_DIM_NONE, HL_TK_MATMUL, 0,
     {{L(wq), HL_DIM_Q}, {L(wk), HL_DIM_K}, {L(wv), HL_DIM_V}}},
    {"blk.%d.attn_qkv.bias", 0, HL_DIM_NONE, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL,
     {{L(bq), HL_DIM_Q}, {L(bk), HL_DIM_K}, {L(bv), HL_DIM_V}}},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.attn_output.bias", L(bo), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
    {"blk.%d.attn_output_norm.weight", L(attn_out_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output_norm.bias", L(attn_out_norm_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_gate.weight", L(ffn_gate), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.weight", L(ffn_up), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.bias", L(ffn_up_b), HL_DIM_FF, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_down.bias", L(ffn_down_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
    {"blk.%d.layer_output_norm.weight", L(layer_out_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.layer_output_norm.bias", L(layer_out_norm_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
};

const hl_arch hl_arch_nomic_bert = {
    .name = "nomic-bert",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .encoder = 1,
    .global = nomic_global,
    .n_global = sizeof nomic_global / sizeof nomic_global[0],
    .layer = nomic_layer,
    .n_layer_tensors = sizeof nomic_layer / sizeof nomic_layer[0],
    .hook = hl_encoder_hook,
};
