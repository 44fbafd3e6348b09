/* The bert architecture (all-MiniLM, bge, mxbai-embed-large): an encoder.
 * Token + absolute position + token-type embeddings, LayerNorm (with bias)
 * after them; blocks are post-norm (x = LN(x + attn(x)), x = LN(x + ffn(x)))
 * with biases on every projection, bidirectional attention and an exact
 * (erf) GELU feed-forward that is not gated. No output norm, no logits: the
 * model's output is the final hidden state of each token, pooled by the
 * runner as <arch>.pooling_type says. Tensor names follow gguf-py's
 * MODEL_TENSORS[BERT]. */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor bert_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"token_types.weight", G(token_types), HL_DIM_EMBD, HL_DIM_ANY, HL_TK_VEC, HL_TF_OPTIONAL},
    {"position_embd.weight", G(position_embd), HL_DIM_EMBD, HL_DIM_CTX, HL_TK_EMBD, 0},
    {"token_embd_norm.weight", G(token_embd_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"token_embd_norm.bias", G(token_embd_norm_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
};

static const hl_arch_tensor bert_layer[] = {
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_q.bias", L(bq), HL_DIM_Q, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.bias", L(bk), HL_DIM_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.bias", L(bv), HL_DIM_V, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.attn_output.bias", L(bo), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output_norm.weight", L(attn_out_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_output_norm.bias", L(attn_out_norm_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_up.weight", L(ffn_up), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.bias", L(ffn_up_b), HL_DIM_FF, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_down.bias", L(ffn_down_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.layer_output_norm.weight", L(layer_out_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.layer_output_norm.bias", L(layer_out_norm_b), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
};

const hl_arch hl_arch_bert = {
    .name = "bert",
    .rope_style = HL_ROPE_NEOX, /* unused: no_rope */
    .act = HL_ACT_GELU_ERF,
    .encoder = 1,
    .no_rope = 1,
    .global = bert_global,
    .n_global = sizeof bert_global / sizeof bert_global[0],
    .layer = bert_layer,
    .n_layer_tensors = sizeof bert_layer / sizeof bert_layer[0],
    .hook = hl_encoder_hook,
};
