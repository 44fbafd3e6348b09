/* What the encoder architectures (arch_bert.c, arch_nomic_bert.c) share
 * after their tensors are bound: views that let the generic plan use them
 * without copying. A fused attn_qkv becomes three row views (q rows, then k,
 * then v: the layout gguf-py's converters write), so each is an ordinary
 * matmul weight, and row 0 of the token-type table becomes the vector the
 * EMBED op adds to every token (inputs are one segment). */
#include "model/model_impl.h"

#include <stdio.h>
#include <string.h>

static hl_wt row_view(const hl_wt *t, int64_t row0, int64_t n_rows, const char *what) {
    hl_wt v = *t;
    v.data = (const char *)t->data + (size_t)row0 * t->row_bytes;
    v.ne1 = n_rows;
    snprintf(v.name, sizeof v.name, "%.48s[%s]", t->name, what);
    return v;
}

/* A vector's [i0, i0 + n) (F32; the loader checked the type). */
static hl_wt vec_view(const hl_wt *t, int64_t i0, int64_t n, const char *what) {
    hl_wt v = *t;
    v.data = (const float *)t->data + i0;
    v.ne0 = n;
    v.ne1 = 1;
    v.row_bytes = (size_t)n * sizeof(float);
    snprintf(v.name, sizeof v.name, "%.48s[%s]", t->name, what);
    return v;
}

int hl_encoder_hook(hl_model *m, hl_err *err) {
    (void)err;
    const hl_hparams *hp = &m->hp;
    const int64_t QD = (int64_t)hp->n_head * hp->head_dim_k, KD = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t VD = (int64_t)hp->n_head_kv * hp->head_dim_v;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        hl_layer_weights *L = &m->w.layers[l];
        if (L->wqkv.data) {
            L->wq = row_view(&L->wqkv, 0, QD, "q");
            L->wk = row_view(&L->wqkv, QD, KD, "k");
            L->wv = row_view(&L->wqkv, QD + KD, VD, "v");
        }
        if (L->bqkv.data) {
            L->bq = vec_view(&L->bqkv, 0, QD, "q");
            L->bk = vec_view(&L->bqkv, QD, KD, "k");
            L->bv = vec_view(&L->bqkv, QD + KD, VD, "v");
        }
    }
    if (m->w.token_types.data) m->w.token_type0 = vec_view(&m->w.token_types, 0, hp->n_embd, "0");
    return 0;
}
