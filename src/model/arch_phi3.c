/* The phi3 architecture (Phi-3, Phi-3.5, Phi-4 mini): llama's pre-norm
 * SwiGLU block with the projections fused in the file: attn_qkv holds the Q,
 * K and V rows in that order and ffn_up the gate rows then the up rows. They
 * are bound as row views of the one tensor (no copy), so the plan and the
 * backends see ordinary wq/wk/wv and gate/up matmuls. NEOX rope. LongRoPE
 * ("su" / "longrope" scaling): rope_factors_short.weight divides each rope
 * frequency, exactly as rope_freqs.weight does for Llama 3, and
 * rope.scaling.attn_factor (absent: computed from context_length and
 * rope.scaling.original_context_length) scales the rotated queries and keys, i.e. the
 * attention scores by its square when whole heads rotate (folded into the
 * attention scale); with partial rotary heads (Phi-4-mini) the rope op
 * scales the rotated dims itself (its mscale). rope_factors_long.weight is
 * used instead of the short factors by a model serving more positions than
 * rope.scaling.original_context_length: the choice is made once, by the
 * context a forward context is made for (the configured num_ctx; load.c
 * compiles a second plan rotating by the long factors, hl_model_plan_for
 * picks it), as llama.cpp chooses by n_ctx. transformers switches per
 * sequence, once its length exceeds the original context, so the two agree
 * for sequences beyond it with a long context and within it with a short
 * one. attention.sliding_window, when present, applies to every layer. */
#include "model/model_impl.h"

#include <math.h>

#define G(f) offsetof(hl_weights, f)
#define L(f) offsetof(hl_layer_weights, f)

static const hl_arch_tensor phi3_global[] = {
    {"token_embd.weight", G(token_embd), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_EMBD, 0},
    {"output_norm.weight", G(output_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"output.weight", G(output), HL_DIM_EMBD, HL_DIM_VOCAB, HL_TK_MATMUL, HL_TF_OPTIONAL},
    {"rope_factors_short.weight", G(rope_freqs), HL_DIM_ROT_HALF, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
    {"rope_factors_long.weight", G(rope_factors_long), HL_DIM_ROT_HALF, HL_DIM_NONE, HL_TK_VEC, HL_TF_OPTIONAL},
};

static const hl_arch_tensor phi3_layer[] = {
    {"blk.%d.attn_norm.weight", L(attn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.attn_qkv.weight", 0, HL_DIM_EMBD, HL_DIM_NONE, HL_TK_MATMUL, 0,
     {{L(wq), HL_DIM_Q}, {L(wk), HL_DIM_K}, {L(wv), HL_DIM_V}}},
    {"blk.%d.attn_output.weight", L(wo), HL_DIM_O, HL_DIM_EMBD, HL_TK_MATMUL, 0},
    {"blk.%d.ffn_norm.weight", L(ffn_norm), HL_DIM_EMBD, HL_DIM_NONE, HL_TK_VEC, 0},
    {"blk.%d.ffn_up.weight", 0, HL_DIM_EMBD, HL_DIM_NONE, HL_TK_MATMUL, 0,
     {{L(ffn_gate), HL_DIM_FF}, {L(ffn_up), HL_DIM_FF}}},
    {"blk.%d.ffn_down.weight", L(ffn_down), HL_DIM_FF, HL_DIM_EMBD, HL_TK_MATMUL, 0},
};

/* LongRoPE's attention factor when the file does not state it: the paper's
 * sqrt(1 + ln(s) / ln(original context)), s = context / original context
 * (what transformers computes from the same two numbers). */
static float default_attn_factor(const hl_model *m) {
    const hl_hparams *hp = &m->hp;
    double v;
    if (!hp->has_rope_freqs || gguf_get_float(m->file, "phi3.rope.scaling.attn_factor", &v) != HL_ENOENT) return hp->rope_attn_factor;
    int64_t orig;
    if (gguf_get_int(m->file, "phi3.rope.scaling.original_context_length", &orig) || orig <= 1 ||
        hp->n_ctx_train <= orig)
        return hp->rope_attn_factor;
    return (float)sqrt(1.0 + log((double)hp->n_ctx_train / (double)orig) / log((double)orig));
}

static int phi3_hook(hl_model *m, hl_err *err) {
    hl_hparams *hp = &m->hp;
    const float f = hp->rope_attn_factor = default_attn_factor(m);
    (void)err;
    if (f != 1.0f) {
        /* whole heads rotate: the same as scaling the scores (the fused CPU
         * step and every backend have that); else the rope op scales the
         * rotated dims only */
        if (hp->n_rot == hp->head_dim_k) hp->attn_scale *= f * f;
        else hp->rope_mscale = f;
    }
    return 0;
}

const hl_arch hl_arch_phi3 = {
    .name = "phi3",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_SILU,
    .swa_period = 1,
    .global = phi3_global,
    .n_global = sizeof phi3_global / sizeof phi3_global[0],
    .layer = phi3_layer,
    .n_layer_tensors = sizeof phi3_layer / sizeof phi3_layer[0],
    .hook = phi3_hook,
};
