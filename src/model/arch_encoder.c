/* What the encoder architectures (arch_bert.c, arch_nomic_bert.c) share
 * after their tensors are bound: row 0 of the token-type table becomes the
 * vector the EMBED op adds to every token (inputs are one segment). (A fused
 * attn_qkv and its bias are bound as views by the loader: hl_arch_view.) */
#include "model/model_impl.h"

#include <stdio.h>
#include <string.h>

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
    if (m->w.token_types.data) m->w.token_type0 = vec_view(&m->w.token_types, 0, hp->n_embd, "0");
    return 0;
}
