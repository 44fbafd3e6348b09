/* Sampling: turning one row of logits into the next token, per sequence, and
 * stop strings: deciding which generated text is safe to stream.
 *
 * A sampler (hl_sampler_*) owns one sequence's sampling state: its parameters,
 * a private PRNG (xoshiro256**, seeded explicitly; never rand()), the recent
 * token history for penalties, and every working buffer, all sized at
 * hl_sampler_new so hl_sampler_sample allocates nothing. The chain, in order
 * (llama.cpp's default order, which Ollama's llama.cpp runner uses):
 *
 *   1. penalties over the last repeat_last_n accepted tokens (prompt included):
 *        repeat:    logit > 0 ? logit / repeat_penalty : logit * repeat_penalty
 *                   (once per distinct token in the window)
 *        presence/frequency (OpenAI): logit -= count * frequency + (count > 0) * presence
 *   2. logit bias (OpenAI): logit += bias; a bias <= -100 bans the token outright
 *   -- log-probabilities are taken here: log-softmax over the whole vocabulary of
 *      the penalized + biased logits, before temperature and truncation (what
 *      vLLM returns by default); banned tokens have logprob -inf.
 *   3. temperature <= 0: greedy (argmax, ties go to the lowest token id); stop.
 *   4. top-k    (k <= 0 or k >= vocab: off)  keep the k largest logits
 *   5. typical  (typical_p >= 1: off)        locally typical sampling
 *   6. top-p    (top_p >= 1: off)            smallest prefix with mass >= top_p
 *   7. min-p    (min_p <= 0: off)            keep p >= min_p * p_max
 *   8. temperature: logit / temperature, softmax over the kept set, draw.
 *
 * Steps 5-7 measure probabilities with the softmax of the kept set at
 * temperature 1 (renormalized after each step), as llama.cpp does; top-p keeps
 * up to and including the token where the running mass reaches top_p (>=),
 * typical-p where it exceeds typical_p (>), as llama.cpp. Every step keeps at
 * least one token. Ties in ordering are broken by lower token id so the result
 * never depends on memory layout. NaN logits count as banned; if every token is
 * banned the raw argmax is returned (logprob -inf) rather than failing.
 *
 * Penalty history: all three penalties count the same window of accepted
 * tokens (llama.cpp semantics). For OpenAI's "count over the generated text",
 * accept only generated tokens with repeat_last_n = -1 and repeat_penalty 1.
 *
 * Cost: O(vocab) per token, never a full sort (bounded heap for top-k, a
 * mass-weighted quickselect narrowed by a histogram for top-p/typical, and a
 * provable cut that skips the negligible tail before top-p). Exponentials use
 * a polynomial accurate to ~2e-7 relative (AVX2+FMA when the CPU has it;
 * HL_SIMD=scalar forces the portable code), so logprobs agree with a double
 * log-softmax to ~1e-5. bench/sample/bench_sample.c measures it.
 *
 * A logits processor (hl_logits_proc) constrains what one sequence may
 * generate (grammars, JSON schemas): hl_sampler_sample_masked lets it mask
 * the vocabulary before step 1, and the runner tells it each accepted token.
 *
 * A stop matcher (hl_stop_*) watches the detokenized text of one sequence and
 * holds back any tail that could be the start of a stop string (or is an
 * incomplete UTF-8 character), so streamed text never shows any part of a stop
 * string and never splits a character. */
#ifndef HL_SAMPLE_H
#define HL_SAMPLE_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

/* ---- parameters ----------------------------------------------------------- */

#define HL_SAMPLER_MAX_TOP_LOGPROBS 20     /* OpenAI's limit for top_logprobs */
#define HL_SAMPLER_MAX_REPEAT_LAST_N (1 << 20)
#define HL_SAMPLER_MAX_LOGIT_BIAS 4096

typedef struct hl_logit_bias {
    int32_t token;
    float bias; /* added to the logit; <= -100 bans the token */
} hl_logit_bias;

typedef struct hl_sampling_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float typical_p;         /* >= 1: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* window for all penalties; 0: off, -1: whole history */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;           /* used when has_seed */
    int has_seed;            /* 0: a seed is drawn from the clock (see hl_sampler_seed) */
    const hl_logit_bias *logit_bias; /* borrowed during hl_sampler_new only (copied) */
    int32_t n_logit_bias;
    int32_t n_top_logprobs;  /* 0..HL_SAMPLER_MAX_TOP_LOGPROBS alternatives to report */
} hl_sampling_params;

/* Ollama's defaults: temperature 0.8, top_k 40, top_p 0.9, min_p 0, typical_p 1,
 * repeat_penalty 1.1, repeat_last_n 64, presence/frequency 0, random seed. */
hl_sampling_params hl_sampling_default_params(void);

/* ---- log-probabilities ------------------------------------------------------ */

typedef struct hl_token_logprob {
    int32_t token;
    float logprob; /* natural log; -INFINITY for banned tokens */
} hl_token_logprob;

typedef struct hl_token_logprobs {
    hl_token_logprob chosen;     /* the sampled token */
    int32_t n_top;               /* <= n_top_logprobs (fewer if fewer tokens are allowed) */
    hl_token_logprob top[HL_SAMPLER_MAX_TOP_LOGPROBS]; /* most likely first */
} hl_token_logprobs;

/* ---- logits processors ---------------------------------------------------------- */

/* An object with a small table of functions: an implementation embeds
 * hl_logits_proc as its first member and points vt at a static table.
 *
 *   mask(self, logits, n_vocab)  before each sample: set the logits of the
 *                                tokens not allowed next to -INFINITY (it sees
 *                                the sampler's working copy of the row, never
 *                                the model's output; other changes are allowed
 *                                but make logprobs describe the changed row)
 *   accept(self, token)          a token entered the sequence: advance
 *   clone(self)                  an independent copy in the same state (a
 *                                fork, n > 1), or NULL when out of memory
 *   free(self)                   releases it
 *   prepare(self)                optional (may be NULL): do now the work the
 *                                next mask needs (it sees the same state), so
 *                                that mask is cheap; the runner calls it from
 *                                another thread while a device runs the
 *                                forward pass
 *
 * The runner (runner/engine.h) calls accept with each generated token that
 * enters the sequence, in order: never with a drafted token that verification
 * rejected, never with an end-of-generation token that ends the sequence, and
 * not with the prompt. mask always sees the state after every earlier accept.
 * Calls on one processor never overlap but may come from different threads
 * (the engine samples sequences in parallel), so an implementation keeps its
 * state in the object (or in data shared read-only). */
typedef struct hl_logits_proc hl_logits_proc;
typedef struct hl_logits_proc_vt {
    void (*mask)(hl_logits_proc *self, float *logits, int32_t n_vocab);
    void (*accept)(hl_logits_proc *self, int32_t token);
    hl_logits_proc *(*clone)(const hl_logits_proc *self);
    void (*free)(hl_logits_proc *self);
    void (*prepare)(hl_logits_proc *self);
} hl_logits_proc_vt;
struct hl_logits_proc {
    const hl_logits_proc_vt *vt;
};

/* ---- the sampler -------------------------------------------------------------- */

typedef struct hl_sampler hl_sampler;

/* Validates p (ranges, logit-bias token ids < n_vocab, limits above) and
 * allocates every buffer. The caller frees with hl_sampler_free. */
int hl_sampler_new(hl_sampler **out, const hl_sampling_params *p, int32_t n_vocab, hl_err *err);
void hl_sampler_free(hl_sampler *s);

/* Adds a token to the penalty history. Feed the prompt tokens too (llama.cpp
 * and Ollama count them for repeat_last_n), then each sampled token. Ids outside
 * [0, n_vocab) are ignored. */
void hl_sampler_accept(hl_sampler *s, int32_t token);

/* Samples one token from logits[n_vocab] (not modified; borrowed for the call).
 * lp (optional) receives the log-probabilities described above. Does not accept
 * the token: call hl_sampler_accept with it. Allocates nothing. */
int32_t hl_sampler_sample(hl_sampler *s, const float *logits, hl_token_logprobs *lp);

/* hl_sampler_sample under a logits processor (proc may be NULL: the same as
 * hl_sampler_sample). proc->mask runs first, on the sampler's working copy of
 * the row, then the chain above, so a masked token is banned exactly like a
 * logit bias <= -100: logprobs (taken after penalties and bias, as above) are
 * those of the masked distribution, the one the token is drawn from, with
 * -inf for masked tokens. If mask and bias ban every token, the raw argmax of
 * the unmasked row is returned with logprob -inf (as for bias alone). Does not
 * call proc->accept. Allocates nothing. */
int32_t hl_sampler_sample_masked(hl_sampler *s, const float *logits, hl_logits_proc *proc, hl_token_logprobs *lp);

/* Forgets the history and restarts the PRNG from the seed, so the same calls
 * replay the same tokens. */
void hl_sampler_reset(hl_sampler *s);

/* Forks a sequence (n > 1): the clone has the same parameters and history, and
 * a PRNG seeded from (seed, fork_index) so forks with distinct indices diverge
 * from each other and from the parent, while the same (seed, index) always
 * gives the same stream. The parent is unchanged. Caller frees the clone. */
int hl_sampler_clone(const hl_sampler *s, uint64_t fork_index, hl_sampler **out, hl_err *err);

/* The seed in use (the drawn one when none was given), for reproducibility. */
uint64_t hl_sampler_seed(const hl_sampler *s);
int32_t hl_sampler_n_vocab(const hl_sampler *s);

/* ---- stop strings --------------------------------------------------------------- */

#define HL_STOP_MAX_STRINGS 64
#define HL_STOP_MAX_LEN 1024 /* bytes per stop string */

typedef struct hl_stop_matcher hl_stop_matcher;

/* stops[i] has length lens[i] (lens NULL: NUL-terminated). The strings are
 * copied. Empty strings are ignored; more than HL_STOP_MAX_STRINGS strings or
 * one longer than HL_STOP_MAX_LEN bytes is HL_ERANGE. n_stops 0 is fine (the
 * matcher then only keeps UTF-8 characters whole). */
int hl_stop_new(hl_stop_matcher **out, const char *const *stops, const size_t *lens, int32_t n_stops,
                hl_err *err);
void hl_stop_free(hl_stop_matcher *m);

/* Feeds one piece of generated text. On return *emit / *n_emit hold the bytes
 * that are safe to show now (borrowed: valid until the next call on m).
 * Returns 0 to go on, 1 when a stop string matched (emit then holds the rest of
 * the text before it; the stop string and anything after it are dropped, and
 * later pushes emit nothing and return 1), or HL_ENOMEM.
 * A match is reported where it first completes (earliest end; at equal ends the
 * longer string), so the outcome never depends on how text is split into pieces. */
int hl_stop_push(hl_stop_matcher *m, const char *piece, size_t n, const char **emit, size_t *n_emit);

/* End of generation without a stop: releases everything held back (an
 * incomplete UTF-8 tail included). Returns 1 if a stop had matched, else 0. */
int hl_stop_flush(hl_stop_matcher *m, const char **emit, size_t *n_emit);

/* Which stop string matched (index into the list given to hl_stop_new), or -1. */
int32_t hl_stop_matched(const hl_stop_matcher *m);

/* Back to the initial state, for reuse with a new sequence. */
void hl_stop_reset(hl_stop_matcher *m);

#endif
