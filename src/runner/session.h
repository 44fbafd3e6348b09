/* A session: one sequence generating on its own KV pool — what `hyperlama
 * run`, `bench` and the debugging verbs use in-process. It keeps the tokens
 * already in its cache between calls, so a chat turn that resends the history
 * only evaluates what is new (the common prefix is reused).
 *
 * Generation: the prompt is evaluated in chunks of n_batch tokens (one
 * forward step each); then one token per step is sampled, detokenized through
 * a streaming decoder, passed through the stop matcher and handed to the emit
 * callback. Ends at an end-of-generation token, a stop string, num_predict
 * tokens, a full context, or when emit returns nonzero (cancel). */
#ifndef HL_RUNNER_SESSION_H
#define HL_RUNNER_SESSION_H

#include "runner/loaded.h"
#include "sample/sample.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hl_session hl_session;

typedef struct hl_session_params {
    int32_t n_threads; /* <= 0: one per core */
    int32_t num_ctx;   /* <= 0: 4096, capped at the model's training context */
    int32_t n_batch;   /* prompt tokens per forward step; <= 0: 512 */
    hl_type kv_type;   /* KV cache element type: HL_TYPE_F16 (default) or HL_TYPE_Q8_0 */
} hl_session_params;

typedef struct hl_gen_params {
    hl_sampling_params sampling;
    int32_t num_predict;      /* < 0: no limit but the context */
    const char *const *stops; /* borrowed for the call */
    int32_t n_stops;
} hl_gen_params;

typedef struct hl_gen_stats {
    int32_t prompt_tokens;    /* prompt tokens evaluated in this call */
    int32_t prompt_cached;    /* prompt tokens reused from the cache */
    int64_t prompt_ns;
    int32_t gen_tokens;       /* tokens generated (the end token not counted) */
    int64_t gen_ns;
    const char *done_reason;  /* "stop", "length" or "cancel" */
} hl_gen_stats;

/* Receives generated text; return nonzero to cancel generation. */
typedef int (*hl_gen_emit_fn)(void *user, const char *text, size_t n);

hl_session_params hl_session_default_params(void);
int hl_session_new(hl_session **out, const hl_loaded *lm, const hl_session_params *p, hl_err *err);
void hl_session_free(hl_session *s);
int32_t hl_session_num_ctx(const hl_session *s);
int32_t hl_session_n_threads(const hl_session *s);

int hl_session_generate(hl_session *s, const int32_t *prompt, size_t n_prompt, const hl_gen_params *gp,
                        hl_gen_emit_fn emit, void *user, hl_gen_stats *stats, hl_err *err);

/* Evaluates tokens after what the cache holds (or from scratch when reset).
 * logits (may be NULL) receives n_vocab floats per token when all_logits, else
 * for the last token only. Used by `hyperlama logits` and the benchmarks. */
int hl_session_eval(hl_session *s, const int32_t *tokens, size_t n, int all_logits, float *logits, hl_err *err);
/* Forgets the cached tokens (the next call starts at position 0). */
void hl_session_reset(hl_session *s);
/* Tokens currently in the cache. */
const int32_t *hl_session_tokens(const hl_session *s, int32_t *n);

#endif
