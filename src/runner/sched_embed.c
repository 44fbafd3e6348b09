/* Embed requests in the scheduler step: which rows of an embedding's
 * whole-input chunk the forward pass writes (every token for mean pooling,
 * the first for CLS, the last for last-token pooling), and the pooling of
 * those rows into the request's one EMBED event once the pass is done. The
 * rows are the forward pass's final hidden states (model.h: an embedding
 * model's output rows), which do not depend on the rest of the batch; the
 * pooling sums them in a fixed order in double, so an input gives the same
 * bits alone or in any batch. Normalization is the caller's (the Ollama and
 * OpenAI routes differ). Runs on the engine thread. */
#include "runner/engine_impl.h"

#include <math.h>
#include <stdlib.h>

void hl_embed_normalize(float *v, int32_t n) {
    double ss = 0;
    for (int32_t i = 0; i < n; i++) ss += (double)v[i] * v[i];
    if (!(ss > 0)) return;
    double inv = 1.0 / sqrt(ss);
    for (int32_t i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
}

static hl_pooling pooling_of(const hl_engine *e) { return hl_model_hparams(e->lm->model)->pooling; }

int sched_embed_wants(const hl_engine *e, const seq *s, int32_t i) {
    switch (pooling_of(e)) {
    case HL_POOLING_CLS: return i == 0;
    case HL_POOLING_LAST: return i == s->n_tokens - 1;
    case HL_POOLING_MEAN:
    case HL_POOLING_NONE: break;
    }
    return 1;
}

void sched_embed_emit(hl_engine *e, seq *s, int32_t row0) {
    const int32_t n = e->n_out;
    const float *rows = e->logits + (size_t)row0 * (size_t)n;
    float *v = malloc((size_t)n * sizeof *v);
    double *acc = calloc((size_t)n, sizeof *acc);
    if (!v || !acc) {
        free(v);
        free(acc);
        ev_push_error(s->h, "out of memory pooling an embedding");
        return;
    }
    hl_pooling pool = pooling_of(e);
    int32_t n_rows = pool == HL_POOLING_CLS || pool == HL_POOLING_LAST ? 1 : s->n_tokens;
    for (int32_t r = 0; r < n_rows; r++)
        for (int32_t j = 0; j < n; j++) acc[j] += rows[(size_t)r * (size_t)n + (size_t)j];
    for (int32_t j = 0; j < n; j++) v[j] = (float)(acc[j] / n_rows);
    ev_push_embed(e, s, v, n);
    free(v);
    free(acc);
}
