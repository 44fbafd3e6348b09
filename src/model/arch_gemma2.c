/* The gemma2 architecture (Gemma 2): gemma3's block without the per-head
 * query/key norms: embeddings scaled by sqrt(n_embd), RMSNorm before and
 * after both the attention and the feed-forward branches, GELU (tanh) gated
 * feed-forward, NEOX rope, tied output. Layers alternate: even layers attend
 * within attention.sliding_window positions, odd layers globally, all with
 * the same rope. Attention scores and the final logits are softcapped
 * (attn_logit_softcapping, final_logit_softcapping: cap * tanh(x / cap)),
 * read by the generic loader. The converter stores the norm weights with
 * Gemma's "+1" applied, so they are plain RMSNorm weights here. Its tensors
 * and query scale are gemma3's (arch_gemma3.c). */
#include "model/model_impl.h"

static int gemma2_hook(hl_model *m, hl_err *err) {
    (void)err;
    hl_gemma_query_scale(m, 46);
    return 0;
}

const hl_arch hl_arch_gemma2 = {
    .name = "gemma2",
    .rope_style = HL_ROPE_NEOX,
    .act = HL_ACT_GELU,
    .embd_scale_sqrt = 1,
    .swa_period = 2,
    .global = hl_decoder_global,
    .n_global = HL_DECODER_N_GLOBAL,
    .layer = hl_gemma_layer,
    .n_layer_tensors = HL_GEMMA_N_LAYER - 2, /* without the q/k norms */
    .hook = gemma2_hook,
};
