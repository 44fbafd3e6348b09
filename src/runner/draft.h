/* Draft-model speculation: a second, smaller loaded model with the target's
 * vocabulary proposes the target's next tokens (greedy: its argmax, a
 * deterministic function of the tokens, so the engine's verification keeps
 * the output exactly the target's, greedy or sampled; engine.h).
 *
 * An hl_draft_model pairs a draft model with one target engine: its own
 * forward context on the target's backend (placed by the same num_gpu as
 * the target: none, some or all of its layers on a GPU), its own KV pool and block
 * bookkeeping, a logits buffer. It drafts for every speculating sequence of
 * that engine at once: the engine gathers the asks of all sequences whose
 * drafter belongs to it (hl_drafter.propose_batch, group = the draft model)
 * and each call runs one batched forward pass per drafted position: the
 * first catches each sequence's draft KV up (the tokens the target accepted
 * since, and its pending token) and drafts token 0; pass r feeds draft r-1
 * of every sequence still drafting and drafts token r. A sequence whose
 * catch-up is longer than the pass's budget (a long prompt) catches up over
 * several steps and drafts nothing meanwhile.
 *
 * The draft KV follows the target's accept and rollback: after each
 * verification the drafter is told the sequence's tokens (hl_drafter
 * .verified) and truncates its KV to the longest prefix that agrees with
 * them, so after k drafted and j < k accepted it holds exactly the accepted
 * prefix (what the target's KV holds); after all k accepted it lacks only
 * the last draft, which the next catch-up feeds with the bonus token (the
 * k-th pass would compute nothing else). The same agreement check runs at
 * every ask, so whatever happened in between (preemption, drafts the engine
 * cut for want of blocks) a draft is always computed from the sequence's
 * real tokens. When its pool is full, the least recently drafted sequence's
 * draft KV is dropped (it is recomputed if that sequence drafts again).
 * When a request ends, its sequences' verified KV stays (retired) until
 * evicted: a later sequence whose tokens start with at least a block of a
 * retired one's adopts it and computes only the rest (a chat's next turn,
 * a repeated prompt), the draft's counterpart of the prefix cache.
 *
 * Vocabulary: the draft must tokenize as the target does. Checked by token
 * texts: the same tokenizer kind, BOS/EOS ids and add-BOS flag, vocabulary
 * sizes within HL_DRAFT_VOCAB_SLACK of each other, and identical texts for
 * every id from HL_DRAFT_VOCAB_CHECK_FROM up to the smaller size; anything
 * else is refused with a message naming the first difference.
 *
 * Threads: everything but hl_draft_model_new/free and the vocabulary check
 * runs on the target engine's thread (the engine calls the drafter there).
 * hl_draft_model_free only after the engine is freed (which frees every
 * request's drafter). */
#ifndef HL_RUNNER_DRAFT_H
#define HL_RUNNER_DRAFT_H

#include "runner/engine.h"

#define HL_DRAFT_VOCAB_SLACK 128
#define HL_DRAFT_VOCAB_CHECK_FROM 5

typedef struct hl_draft_model hl_draft_model;

typedef struct hl_draft_params {
    hl_backend *backend; /* runs the draft model (borrowed): the target engine's; required */
    hl_backend *offload_rest; /* the CPU, for the layers num_gpu leaves off `backend` (borrowed); NULL: none */
    int32_t num_gpu;     /* with offload_rest, as the target's option (Ollama's num_gpu): layers of the draft
                            on `backend`, the last ones and the output; 0: all on offload_rest; < 0 or at
                            least the draft's layers: all on `backend` */
    size_t kv_bytes;     /* draft KV budget; 0: 256 MiB */
    hl_type kv_type;     /* HL_TYPE_F16 (default, 0 means it) or HL_TYPE_Q8_0 */
    int32_t max_seqs;    /* sequences drafted at once (the engine's max_seqs); <= 0: 32 */
    int32_t step_tokens; /* tokens of one draft pass (catch-ups + drafts); <= 0: 512 */
} hl_draft_params;
hl_draft_params hl_draft_default_params(void);

/* 0 when draft can draft for target; else HL_EINVAL with the difference. */
int hl_draft_check_vocab(const tok_vocab *target, const tok_vocab *draft, hl_err *err);

/* Pairs the loaded draft model with the target (both borrowed, outliving the
 * result): checks the vocabularies, binds the draft to the backend, makes
 * its KV pool. */
int hl_draft_model_new(hl_draft_model **out, const hl_loaded *draft, const hl_loaded *target,
                       const hl_draft_params *p, hl_err *err);
void hl_draft_model_free(hl_draft_model *dm);
const hl_loaded *hl_draft_model_loaded(const hl_draft_model *dm);
/* weight bytes of the draft over the target's: a drafted token's cost in
 * target steps, for adaptive control (hl_drafter.cost) */
double hl_draft_model_cost(const hl_draft_model *dm);
/* Where the draft runs: "cpu", "vulkan", "vulkan (3 of 24 layers, the rest on cpu)". */
const char *hl_draft_model_backend_name(const hl_draft_model *dm);
/* Totals so far (engine thread): the target's tokens the draft computed
 * (catch-ups) and the tokens it drafted. */
void hl_draft_model_counts(const hl_draft_model *dm, uint64_t *fed, uint64_t *drafted);

/* A request's drafter over dm: per choice, a draft KV sequence (made on its
 * first ask). max_draft as for hl_drafter. Ownership as ngram_drafter_new's:
 * the engine owns out->ctx once submit succeeds. */
int hl_draft_drafter_new(hl_draft_model *dm, hl_drafter *out, int32_t max_draft, hl_err *err);

/* Tests: the positions of a choice's draft KV (0 when it has none) and, in
 * *tokens (may be NULL), the tokens they hold. Engine thread only. */
int32_t hl_draft_drafter_kv(const hl_drafter *d, int32_t choice, const int32_t **tokens);

#endif
