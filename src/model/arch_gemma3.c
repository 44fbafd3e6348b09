/* The gemma3 architecture (Gemma 3 text models): embeddings scaled by
 * sqrt(n_embd); per-head RMSNorm of queries and keys; RMSNorm after the
 * attention and feed-forward branches as well as before them; GELU (tanh)
 * gated feed-forward; NEOX rope; tied output. Five of every six layers are
 * local (sliding window of attention.sliding_window positions, rope base
 * 10000); every sixth is global (rope.freq_base). The converter stores the
 * norm weights with Gemma's "+1" already applied, so they are plain RMSNorm
 * weights here. */
#include "model/model_impl.h"

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

/* Gemma's layer tensors, shared with gemma2 (model_impl.h): gemma2 binds the
 * list without its last two entries, the per-head q/k norms. */
const hl_arch_tensor hl_gemma_layer[HL_GEMMA_N_LAYER] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_q.weight", L(wq), HL_DIM_EMBD, HL_DIM_Q, HL_TK_MATMUL, 0},
    {"blk.%d.attn_k.weight", L(wk), HL_DIM_EMBD, HL_DIM_K, HL_TK_MATMUL, 0},
    {"blk.%d.attn_v.weight", L(wv), HL_DIM_EMBD, HL_DIM_V, HL_TK_MATMUL, 0},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.post_attention_norm.weight", L(post_attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_gate.weight", L(ffn_gate), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_up.weight", L(ffn_up), HL_DIM_EMBD, HL_DIM_FF, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.post_ffw_norm.weight", L(post_ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_q_norm.weight", L(q_norm), HL_DIM_HEAD_K, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_k_norm.weight", L(k_norm), HL_DIM_HEAD_K, HL_DIM_NONE, HL_TK_VEC, 0},
};

#include <math.h>

/* Gemma scales queries by query_pre_attn_scalar^-0.5, which GGUF does not
 * carry: head_dim for every size except 27B, where it is n_embd / n_head
 * (27B is told by its layer count: 46 in Gemma 2, 62 in Gemma 3). */
void hl_gemma_query_scale(hl_model *m, int32_t n_layer_27b) {
    hl_hparams *hp = &m->hp;
    if (hp->n_layer == n_layer_27b) hp->attn_scale = 1.0f / sqrtf((float)hp->n_embd / (float)hp->n_head);
}

static int gemma3_hook(hl_model *m, hl_err *err) {
    (void)err;
    hl_gemma_query_scale(m, 62);
    return 0;
}

const hl_arch hl_arch_gemma3 = {
    .name = "gemma3",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_GELU,
    .embd_scale_sqrt = 1,
    .swa_period = 6,
    .swa_rope_local = 1,
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_gemma_layer,
    .n_layer_tensors = HL_GEMMA_N_LAYER,
    .hook = gemma3_hook,
};
