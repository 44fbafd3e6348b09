/* Prompt lookup (n-gram drafts): proposes, as the tokens to follow a
 * sequence, what followed the latest earlier occurrence of its last n
 * tokens, trying n from n_max down to n_min (the longest match first). Free
 * to compute and strong wherever the output quotes its input: edits and
 * rewrites of a given file, answers quoting a passage, JSON rewriting.
 *
 * An ngram_index belongs to one sequence. For each n it maps every n-gram
 * seen so far that has a continuation, tokens[e-n .. e) with e < length,
 * to its latest end e (an open-addressing table keyed by the n-gram's hash,
 * hits checked against the tokens themselves, so it answers exactly what a
 * rescan would). It is updated incrementally: each call indexes only the
 * tokens that arrived since the last one, provided the caller passes the
 * same sequence grown at its end (it rebuilds itself when the sequence got
 * shorter or its last indexed token changed). A proposal is a pure function
 * of the tokens, so under the engine's verification the output is exactly
 * the undrafted one (engine.h).
 *
 * ngram_drafter_new packages per-choice indexes as an hl_drafter for a
 * request (each choice of n > 1 gets its own index, keyed by the choice
 * index the engine passes to propose). */
#ifndef HL_RUNNER_NGRAM_H
#define HL_RUNNER_NGRAM_H

#include "base/err.h"
#include "runner/engine.h"

#include <stdint.h>

#define NGRAM_MAX_N 8
#define NGRAM_DEFAULT_MIN 1
#define NGRAM_DEFAULT_MAX 4

typedef struct ngram_index ngram_index;

/* n_min..n_max: the match lengths tried (1 <= n_min <= n_max <= NGRAM_MAX_N). */
int ngram_index_new(ngram_index **out, int32_t n_min, int32_t n_max, hl_err *err);
void ngram_index_free(ngram_index *ix);
/* Indexes tokens[0..n) (only what is new since the last call). HL_ENOMEM
 * leaves the index empty (it rebuilds on the next call). */
int ngram_index_update(ngram_index *ix, const int32_t *tokens, int32_t n);
/* Updates, then writes up to max_draft (>= 0) tokens to follow tokens[0..n)
 * into draft; returns how many (0: no match). */
int32_t ngram_index_propose(ngram_index *ix, const int32_t *tokens, int32_t n, int32_t *draft, int32_t max_draft);

/* A drafter over one ngram_index per choice (created on first use).
 * max_draft: the request's limit (<= 0: the engine's). The engine owns
 * out->ctx once submit succeeds (drafter.free); before that, or when submit
 * fails, free it with out->free(out->ctx). */
int ngram_drafter_new(hl_drafter *out, int32_t n_min, int32_t n_max, int32_t max_draft, hl_err *err);

#endif
