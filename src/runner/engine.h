/* The engine: one per loaded model, with its own engine thread running the
 * continuous-batching scheduler over a paged KV pool with prefix caching.
 * It is the program's one generation loop (sampling, stop strings, streaming
 * detokenization live in its scheduler only): the server makes one per
 * loaded model (server/models.c), the in-process verbs `run FILE.gguf` and
 * `bench` one each (cli/local.c).
 *
 * Threads that serve clients submit requests and read token events back
 * through a handle; they never block the engine, and the engine never waits
 * on them. Each scheduler step (sched.c) runs the decodes of every running
 * sequence first, then prefill chunks of the others under a per-step token
 * budget, in one forward pass; new requests join at the next step, finished
 * ones leave at once. When blocks run out, the newest sequence is preempted
 * (its blocks freed, its tokens recomputed later, nothing lost). A request's
 * full prompt blocks are looked up in the prefix cache first, so a prompt
 * sharing a prefix with an earlier one (a chat resending its history, a common
 * system prompt) skips that prefill. n > 1 choices fork the sequence after its
 * prompt, sharing the prompt's blocks.
 *
 * Results are batch-invariant: a sequence's tokens do not depend on what else
 * runs beside it (the forward pass guarantees it per row, and each sequence
 * samples with its own seeded sampler). */
#ifndef HL_RUNNER_ENGINE_H
#define HL_RUNNER_ENGINE_H

#include "runner/loaded.h"
#include "sample/sample.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hl_engine hl_engine;
typedef struct hl_handle hl_handle;

#define HL_EBUSY (-20) /* the queue is full: try again later (HTTP 503) */

typedef struct hl_engine_params {
    hl_backend *backend; /* runs the model (borrowed; hl_backend_open in model.h); required */
    hl_pool *pool;       /* the process's thread pool (borrowed): samplers run on it; required */
    int32_t n_blocks;    /* KV pool size in blocks; <= 0: from kv_bytes */
    size_t kv_bytes;     /* KV memory budget when n_blocks <= 0 (default 512 MiB) */
    int32_t block_size;  /* tokens per block; <= 0: 16 */
    int32_t max_seqs;    /* sequences running at once (default 32) */
    int32_t step_tokens; /* token budget of one step (default 512) */
    int32_t max_queue;   /* waiting requests before submit says busy (default 128) */
    int32_t max_ctx;     /* largest context a request may use (default: the model's, capped by the pool) */
    int prefix_cache;    /* reuse cached prompt blocks (default on) */
    hl_type kv_type;     /* KV cache element type: HL_TYPE_F16 (default) or HL_TYPE_Q8_0 */
} hl_engine_params;
hl_engine_params hl_engine_default_params(void);

typedef struct hl_request {
    const int32_t *prompt;        /* copied at submit */
    size_t n_prompt;
    hl_sampling_params sampling;  /* logit_bias copied at submit */
    int32_t num_predict;          /* < 0: until the context is full */
    int32_t num_ctx;              /* cap on prompt + generated tokens; <= 0: the engine's max_ctx */
    const char *const *stops;     /* copied at submit */
    int32_t n_stops;
    int32_t n_choices;            /* forks sharing the prompt (OpenAI n); <= 0 means 1 */
    int logprobs;                 /* report log-probabilities with each token */
    int ignore_eos;               /* an end-of-generation token does not end it (benchmarks) */
} hl_request;

typedef enum hl_event_type { HL_EVENT_TOKEN = 1, HL_EVENT_DONE = 2, HL_EVENT_ERROR = 3 } hl_event_type;

typedef struct hl_choice_stats {
    const char *done_reason;  /* "stop", "length" or "cancel" (static strings) */
    int32_t prompt_tokens;    /* prompt tokens of the request */
    int32_t prompt_cached;    /* of which served by the prefix cache */
    int32_t gen_tokens;       /* generated tokens (an end token is not counted) */
    int64_t queue_ns;         /* submit → admitted */
    int64_t prompt_ns;        /* admitted → first token sampled */
    int64_t gen_ns;           /* first token → done */
} hl_choice_stats;

typedef struct hl_event {
    hl_event_type type;
    int32_t index;            /* choice index, 0 .. n_choices-1 */
    int32_t token;            /* TOKEN: the sampled token */
    const char *text;         /* TOKEN: text now safe to show (may be empty); DONE: rest of the text */
    size_t n_text;            /* valid until the next hl_handle_next / wait on this handle */
    hl_token_logprobs lp;     /* TOKEN, when logprobs were asked */
    hl_choice_stats stats;    /* DONE */
    char error[256];          /* ERROR: the whole request failed */
} hl_event;

int hl_engine_new(hl_engine **out, const hl_loaded *lm, const hl_engine_params *p, hl_err *err);
/* Cancels what runs, joins the engine thread, frees. Handles still held by
 * clients stay valid (they receive a cancel) until released. */
void hl_engine_free(hl_engine *e);
const hl_loaded *hl_engine_loaded(const hl_engine *e);
/* The name of the backend that runs this engine's model ("cpu", "ref"). */
const char *hl_engine_backend_name(const hl_engine *e);
int32_t hl_engine_max_ctx(const hl_engine *e);
int32_t hl_engine_n_threads(const hl_engine *e); /* the forward pass's threads */

/* Queues a request. notify (may be NULL) is called from the engine thread, with
 * no lock held that the caller could need, each time events become available;
 * it must not block. Fails with HL_EBUSY when the queue is full, HL_ERANGE when
 * the prompt does not fit num_ctx, HL_EINVAL for bad parameters. */
int hl_engine_submit(hl_engine *e, const hl_request *r, void (*notify)(void *), void *notify_ctx, hl_handle **out,
                     hl_err *err);
/* Takes the next event if one is pending: returns 1 (ev filled), or 0. */
int hl_handle_next(hl_handle *h, hl_event *ev);
/* Waits up to timeout_ms (< 0: forever) for the next event: 1, or 0 on timeout. */
int hl_handle_wait(hl_handle *h, hl_event *ev, int timeout_ms);
/* Nonzero once every choice has sent DONE (or the request ERROR) and all events were taken. */
int hl_handle_finished(hl_handle *h);
/* Stops generation within one step; DONE events with "cancel" follow. */
void hl_handle_cancel(hl_handle *h);
/* The client is done with the handle (cancels it if still running). */
void hl_handle_release(hl_handle *h);

typedef struct hl_engine_metrics {
    int32_t queued, running;
    int32_t blocks_used, blocks_total;
    uint64_t prefix_queries, prefix_hits; /* in blocks */
    uint64_t prompt_tokens, gen_tokens, steps, preemptions;
} hl_engine_metrics;
void hl_engine_get_metrics(hl_engine *e, hl_engine_metrics *m);

#endif
