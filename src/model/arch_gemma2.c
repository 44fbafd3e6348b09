/* The gemma2 architecture (Gemma 2): gemma3's block without the per-head
 * query/key norms: embeddings scaled by sqrt(n_embd), RMSNorm before and
 * after both the attention and the feed-forward branches, GELU (tanh) gated
 * feed-forward, NEOX rope, tied output. Layers alternate: even layers attend
 * within attention.sliding_window positions, odd layers globally, all with
 * the same rope. Attention scores and the final logits are softcapped
 * (attn_logit_softcapping, final_logit_softcapping: cap * tanh(x / cap)),
 * read by the generic loader. The converter stores the norm weights with
 * Gemma's "+1" applied, so they are plain RMSNorm weights here. */
#include "model/model_impl.h"

#include <math.h>

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor gemma2_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
};

static const hl_arch_tensor gemma2_layer[] = {
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
};

/* Queries are scaled by query_pre_attn_scalar^-0.5, which GGUF does not
 * carry: head_dim for Gemma 2 2B and 9B, n_embd / n_head for 27B (46
 * layers). */
static int gemma2_hook(hl_model *m, hl_err *err) {
    (void)err;
    hl_hparams *hp = &m->hp;
    if (hp->n_layer == 46) hp->attn_scale = 1.0f / sqrtf((float)hp->n_embd / (float)hp->n_head);
    return 0;
}

const hl_arch hl_arch_gemma2 = {
    .name = "gemma2",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_GELU,
    .embd_scale_sqrt = 1,
    .swa_period = 2,
    .global = gemma2_global,
    .n_global = sizeof gemma2_global / sizeof gemma2_global[0],
    .layer = gemma2_layer,
    .n_layer_tensors = sizeof gemma2_layer / sizeof gemma2_layer[0],
    .hook = gemma2_hook,
};
