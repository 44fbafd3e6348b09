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
 * Drafts (speculative decoding). A request may carry a drafter that proposes
 * up to k tokens to follow a running sequence; the step then computes the
 * sequence's last token and its k drafts together, with logits on each, and
 * verification keeps the drafts the model itself would have produced:
 * position by position, x_i is sampled from the model's logits there (after
 * x_0..x_{i-1} were accepted into the sampler and processor); if x_i equals
 * draft i the next position is checked, otherwise x_i is the correction (or,
 * after k accepted drafts, a bonus token) and verification stops. Every
 * position samples once, so for drafts that are a deterministic function of the
 * tokens (prompt lookup, a greedy draft model) the output is exactly what
 * the sequence would have generated without them, token for token under the
 * same seed; only the number of steps changes. Rejected positions are rolled
 * back (their KV is dead; blocks past the kept length return to the pool) and
 * never enter the prefix cache. A drafting sequence is still a decode: its
 * own token goes in before any prefill chunk and is never cut; its drafts
 * share the budget the decodes leave with the prefill chunks (which keep up
 * to half of it) and take only free KV blocks, so they are cut first when
 * either runs short. It can be preempted like any other sequence (its drafts
 * are dropped: only accepted tokens are recomputed).
 *
 * How many drafts a sequence asks for is adaptive (runner/spec.h): a cost
 * model of the step (a + b*rows, fitted online from the engine's own steps)
 * against the sequence's recent acceptance; so drafts lengthen while they
 * are accepted, stop for a sequence whose drafts keep failing (it re-probes
 * now and then) and fade when the batch is large enough that rows are dear.
 * Under sampling, drafting a deterministic token d and accepting iff the
 * sample x equals d is the standard rejection rule for a point-mass draft
 * distribution q = [d] (accept with probability p(d) = min(1, p(d)/q(d));
 * on rejection x is distributed as p restricted to tokens other than d,
 * normalized: exactly norm(max(0, p - q))), so the output distribution is
 * the model's own whatever the drafts.
 *
 * Embeddings. An embedding model's engine (an encoder, or a decoder whose
 * file names a pooling type) takes embed requests only: each is a prefill
 * entry of the same step, its whole input in one pass (so an encoder's
 * bidirectional attention sees all of it), with output rows for the tokens
 * its pooling reads; after the pass the rows are pooled (sched_embed.c) into
 * one EMBED event, the sequence finishes and its blocks go back to the pool
 * uncached. Many inputs share a step like any prefill chunks, and a vector
 * does not depend on its batch.
 *
 * Logits processors. A request may carry an hl_logits_proc (sample/sample.h):
 * it masks the vocabulary before every sample and sees every accepted token,
 * which is where grammars plug in. Forks clone it.
 *
 * After each forward pass the sequences of the step sample (and verify their
 * drafts) in parallel on the engine's thread pool; each has its own sampler,
 * processor, detokenizer and stop matcher. Results are batch-invariant: a
 * sequence's tokens do not depend on what else runs beside it (the forward
 * pass guarantees it per row, and each sequence samples with its own seeded
 * sampler). */
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
    hl_backend *offload_rest; /* partial offload: runs the layers num_gpu leaves off `backend` (the CPU); NULL: none */
    int32_t num_gpu;     /* with offload_rest: layers on `backend` (the last ones, and the output); < 0: all */
    hl_pool *pool;       /* the process's thread pool (borrowed): samplers run on it; required */
    int32_t n_blocks;    /* KV pool size in blocks; <= 0: from kv_bytes */
    size_t kv_bytes;     /* KV memory budget when n_blocks <= 0 (default 512 MiB) */
    int32_t block_size;  /* tokens per block; <= 0: 16 */
    int32_t max_seqs;    /* sequences running at once (default 32) */
    int32_t step_tokens; /* token budget of one step (default 512) */
    int32_t max_queue;   /* waiting requests before submit says busy (default 128) */
    int32_t max_ctx;     /* largest context a request may use (default: the model's, capped by the pool) */
    int32_t num_ctx;     /* the configured context (requests' default, <= max_ctx; <= 0: max_ctx): LongRoPE
                            models rotate by their long factors when it exceeds the original context */
    int prefix_cache;    /* reuse cached prompt blocks (default on) */
    hl_type kv_type;     /* KV cache element type: HL_TYPE_F16 (default) or HL_TYPE_Q8_0 */
    int32_t max_draft;   /* drafted tokens one sequence may verify per step; <= 0: HL_ENGINE_DEFAULT_DRAFT,
                            at most HL_ENGINE_MAX_DRAFT. A request's drafter may ask for fewer. */
    int spec_fixed;      /* 1: every drafting sequence asks for its whole limit each step (no
                            adaptive control: tests); 0 (default): adaptive, see below */
    double spec_row_cost;/* adaptive control's prior cost of a row relative to a step's fixed
                            cost; <= 0: SPEC_DEFAULT_ROW_COST (runner/spec.h) */
} hl_engine_params;
#define HL_ENGINE_DEFAULT_DRAFT 8
#define HL_ENGINE_MAX_DRAFT 32
hl_engine_params hl_engine_default_params(void);

/* Proposes tokens to follow a sequence, for verification in its next step.
 * propose(ctx, choice, tokens, n_tokens, draft, max_draft) gets the choice
 * index (0 .. n_choices-1: the choices of n > 1 share the drafter, each with
 * its own tokens, so a drafter keeping state per sequence keys it by choice)
 * and that choice's sequence so far (prompt + accepted generated tokens:
 * between two calls for one choice it only grows at its end) and writes up
 * to max_draft (>= 1) token ids into draft; it returns how many (0: no draft
 * this step; ids outside the vocabulary end the draft). max_draft is what
 * the engine's adaptive control (below) asks for this step, at most the
 * request's limit. It is called on the engine thread, at most once per step
 * for each running choice, so it must be quick and must not call back into
 * the engine. For the output to equal the undrafted one exactly, a draft
 * should depend only on `tokens` (see above). */
/* One sequence's ask in a batched proposal (hl_drafter.propose_batch): the
 * same inputs and output as one propose call. */
typedef struct hl_draft_query {
    void *ctx;              /* the asking request's drafter ctx */
    int32_t choice;
    const int32_t *tokens;  /* the choice's sequence so far, as for propose */
    int32_t n_tokens;
    int32_t *draft;         /* out: up to max_draft (>= 1) ids */
    int32_t max_draft;
    int32_t n_draft;        /* out: how many (0: no draft this step) */
} hl_draft_query;

/* A drafter proposes either one sequence at a time (propose) or, when it
 * drafts with a model of its own, for many at once (propose_batch): each
 * step the engine gathers the asks of every drafting sequence whose drafter
 * has the same propose_batch and group (the shared draft model,
 * runner/draft.h) and makes one call for all of them, so the draft model
 * runs one batched forward pass per drafted position. A drafter with state
 * that follows the sequence (a draft model's KV) is told, after each
 * verification, the sequence's tokens (verified: the accepted drafts and the
 * correction are in, rejected drafts are not) so it can roll back. */
typedef struct hl_drafter {
    int32_t (*propose)(void *ctx, int32_t choice, const int32_t *tokens, int32_t n_tokens, int32_t *draft,
                       int32_t max_draft);
    /* optional, used instead of propose when set: fills q[i].draft and
     * q[i].n_draft for each of the n asks (all with this group) */
    void (*propose_batch)(void *group, hl_draft_query *q, int32_t n);
    void *group;
    /* optional: after a verification, tokens[0..n_tokens) is the choice's
     * sequence (the same contract as propose's tokens) */
    void (*verified)(void *ctx, int32_t choice, const int32_t *tokens, int32_t n_tokens);
    /* the cost of drafting one token, in units of one step's fixed cost
     * (reading the model's weights once): 0 for prompt lookup, about the
     * weight ratio for a draft model; adaptive control weighs it */
    double cost;
    void (*free)(void *ctx); /* optional: called once when the request is over */
    void *ctx;
    int32_t max_draft;       /* this request's limit per step; <= 0 or above the engine's: the engine's */
} hl_drafter;

typedef struct hl_request {
    const int32_t *prompt;        /* copied at submit */
    size_t n_prompt;
    hl_sampling_params sampling;  /* logit_bias copied at submit */
    int32_t num_predict;          /* < 0: until the context is full; 0: only the prompt (scoring) */
    int32_t num_ctx;              /* cap on prompt + generated tokens; <= 0: the engine's max_ctx */
    const char *const *stops;     /* copied at submit */
    int32_t n_stops;
    int32_t n_choices;            /* forks sharing the prompt (OpenAI n); <= 0 means 1 */
    int logprobs;                 /* report log-probabilities with each token */
    int ignore_eos;               /* an end-of-generation token does not end it (benchmarks) */
    /* Score the prompt: before any TOKEN event, one PROMPT event per prompt
     * token after the first, in order, carrying the token and its natural-log
     * probability under the model given the tokens before it (the raw
     * distribution: no penalties, bias or processor), with
     * sampling.n_top_logprobs alternatives. The prompt is then computed
     * whole (the prefix cache is not consulted). With num_predict 0 nothing
     * is generated: DONE ("length") follows the scores. */
    int prompt_logprobs;
    /* Optional (NULL): constrains sampling (sample.h). When submit succeeds the
     * engine owns it (choice 0 uses it, other choices get clones) and frees
     * each when its choice ends, before that choice's DONE event; when submit
     * fails it is still the caller's. */
    hl_logits_proc *proc;
    /* Optional (propose NULL: none). Copied at submit; when submit succeeds
     * the engine owns ctx and calls drafter.free(ctx) (if set) once it is done
     * with the request: before the last DONE event, or when the handle of a
     * request that never ran is released. When submit fails ctx is still the
     * caller's. */
    hl_drafter drafter;
    /* Embed the prompt instead of generating (embedding models only:
     * hl_engine_embedding): its tokens are computed in one forward pass
     * (bidirectional for an encoder), pooled as the model says, and one EMBED
     * event carries the vector (not normalized), then DONE ("stop"). The
     * prompt must fit one step (hl_engine_max_embed_tokens). Nothing is kept
     * in the KV pool or the prefix cache afterwards. Sampling fields are
     * ignored. */
    int embed;
} hl_request;

typedef enum hl_event_type {
    HL_EVENT_TOKEN = 1,
    HL_EVENT_DONE = 2,
    HL_EVENT_ERROR = 3,
    HL_EVENT_PROMPT = 4,
    HL_EVENT_EMBED = 5, /* an embed request's vector: embedding[0 .. n_embedding) */
} hl_event_type;

typedef struct hl_choice_stats {
    const char *done_reason;  /* "stop", "length" or "cancel" (static strings) */
    int32_t prompt_tokens;    /* prompt tokens of the request */
    int32_t prompt_cached;    /* of which served by the prefix cache */
    int32_t gen_tokens;       /* generated tokens (an end token is not counted) */
    int64_t queue_ns;         /* submit → admitted */
    int64_t prompt_ns;        /* admitted → first token sampled */
    int64_t gen_ns;           /* first token → done */
    int32_t draft_tokens;     /* drafted tokens verified for this choice */
    int32_t draft_accepted;   /* of which accepted */
} hl_choice_stats;

typedef struct hl_event {
    hl_event_type type;
    int32_t index;            /* choice index, 0 .. n_choices-1 */
    int32_t token;            /* TOKEN: the sampled token; PROMPT: the prompt token scored */
    const char *text;         /* TOKEN: text now safe to show (may be empty); DONE: rest of the text */
    size_t n_text;            /* valid until the next hl_handle_next / wait on this handle */
    hl_token_logprobs lp;     /* TOKEN, when logprobs were asked; PROMPT */
    hl_choice_stats stats;    /* DONE */
    char error[256];          /* ERROR: the whole request failed */
    const float *embedding;   /* EMBED: valid like text */
    int32_t n_embedding;
} hl_event;

int hl_engine_new(hl_engine **out, const hl_loaded *lm, const hl_engine_params *p, hl_err *err);
/* Cancels what runs, joins the engine thread, frees. Handles still held by
 * clients stay valid (they receive a cancel) until released. */
void hl_engine_free(hl_engine *e);
const hl_loaded *hl_engine_loaded(const hl_engine *e);
/* The name of the backend that runs this engine's model ("cpu", "ref"). */
const char *hl_engine_backend_name(const hl_engine *e);
/* Layers the engine runs on a GPU and the weight bytes there (hl_forward_gpu_share). */
void hl_engine_gpu_share(const hl_engine *e, int32_t *gpu_layers, size_t *gpu_weight_bytes);
int32_t hl_engine_max_ctx(const hl_engine *e);
int32_t hl_engine_n_threads(const hl_engine *e); /* the forward pass's threads */
/* An embedding model's engine (hparams.embedding): it takes embed requests
 * only; others take no embed requests. */
int hl_engine_embedding(const hl_engine *e);
/* The longest input an embed request may have (one step's tokens, within the
 * context). */
int32_t hl_engine_max_embed_tokens(const hl_engine *e);
/* Scales v to unit L2 norm (a zero vector stays zero): the normalization of
 * /api/embed, /v1/embeddings and `run` (sched_embed.c). */
void hl_embed_normalize(float *v, int32_t n);

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
    uint64_t draft_tokens, draft_accepted; /* drafted tokens verified, and of them accepted */
    uint64_t masks_prepared;               /* logits-processor masks computed beside the forward pass */
} hl_engine_metrics;
void hl_engine_get_metrics(hl_engine *e, hl_engine_metrics *m);

#endif
