/* Teacher-forced evaluation: a list of tokens through the forward pass on a
 * private KV pool, giving the logits of every position or of the last one.
 * No sampling, no stop strings, no detokenization — this is not generation
 * (that is the engine's, engine.h) but the raw model output that `hyperlama
 * logits` writes for the reference comparisons with llama.cpp and numpy.
 * Tokens given in a later call continue the same sequence. */
#ifndef HL_RUNNER_EVAL_H
#define HL_RUNNER_EVAL_H

#include "runner/loaded.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hl_eval hl_eval;

typedef struct hl_eval_params {
    int32_t n_ctx;     /* positions the pool holds; <= 0: 4096, capped at the model's trained context */
    hl_backend *backend; /* runs the model (borrowed; model.h hl_backend_open); required */
    int32_t n_batch;   /* tokens per forward pass; <= 0: 512 */
    hl_type kv_type;   /* HL_TYPE_F16 or HL_TYPE_Q8_0 */
} hl_eval_params;
hl_eval_params hl_eval_default_params(void);

int hl_eval_new(hl_eval **out, const hl_loaded *lm, const hl_eval_params *p, hl_err *err);
void hl_eval_free(hl_eval *ev);

/* Evaluates tokens at the next positions. logits (may be NULL) receives
 * n_vocab floats per token when all_logits, else those of the last token.
 * HL_ERANGE when they do not fit in n_ctx, HL_EINVAL for an id outside the
 * vocabulary. */
int hl_eval_append(hl_eval *ev, const int32_t *tokens, size_t n, int all_logits, float *logits, hl_err *err);
/* Positions evaluated so far. */
int32_t hl_eval_n_past(const hl_eval *ev);

#endif
