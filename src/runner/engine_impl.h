/* Internals of the engine shared by engine.c (thread, submission, handles,
 * events) and sched.c (the scheduler step). Nothing outside runner/ sees this. */
#ifndef HL_RUNNER_ENGINE_IMPL_H
#define HL_RUNNER_ENGINE_IMPL_H

#include "base/buf.h"
#include "runner/engine.h"
#include "runner/kvcache.h"
#include "runner/side.h"
#include "runner/spec.h"

#include <pthread.h>
#include <stdatomic.h>

/* One queued event; its text lives in the handle's text buffer. */
typedef struct ev_rec {
    hl_event_type type;
    int32_t index, token;
    size_t text_off, text_len;
    hl_token_logprobs lp;
    hl_choice_stats stats;
    char error[256];
} ev_rec;

struct hl_handle {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int refs;          /* engine + client */
    atomic_int cancel;
    void (*notify)(void *);
    void *notify_ctx;
    /* guarded by mu */
    ev_rec *evs;
    size_t n_evs, cap_evs, rd;
    hl_buf text;              /* producer side */
    hl_buf out_text;          /* text of the event last handed to the client */
    int32_t choices_left;     /* choices not yet DONE */
    int failed;
    /* request, owned (engine side only after submit) */
    int32_t *prompt;
    size_t n_prompt;
    hl_sampling_params sampling;
    hl_logit_bias *bias;
    char **stops;
    int32_t n_stops;
    int32_t num_predict, num_ctx, n_choices;
    int logprobs;
    int ignore_eos;
    int prompt_logprobs;       /* score the prompt (PROMPT events) */
    int embed;                 /* embed the prompt (sched_embed.c) */
    hl_logits_proc *proc;      /* until admission hands it to choice 0 */
    hl_drafter drafter;        /* ctx owned: freed by the request's last finish (or handle_free) */
    int32_t max_draft;         /* effective per-step limit (0: no drafter) */
    int64_t t_submit;
    struct hl_handle *next_in; /* inbox link */
};

typedef enum seq_state { SEQ_WAITING, SEQ_RUNNING, SEQ_DONE } seq_state;

typedef struct seq {
    hl_handle *h;
    int32_t index;            /* choice */
    seq_state state;
    int32_t *tokens;          /* prompt + generated, [cap] */
    int32_t n_tokens, cap, n_prompt;
    int32_t n_computed;       /* tokens whose K/V is in the pool */
    int32_t *blocks;          /* block table, [cap_blocks] */
    int32_t n_blocks, cap_blocks;
    int32_t n_committed;      /* full blocks registered in the prefix cache */
    uint64_t last_key;        /* key of block n_committed-1 (root key when none) */
    int32_t max_ctx;          /* prompt + generated cap */
    int32_t n_gen;
    int32_t prompt_cached;
    int forked;               /* children created (choice 0 of n > 1) */
    int32_t lp_next;          /* prompt scoring: the next prompt position to score (0 when not scoring) */
    int32_t score_row;        /* this step's first logits row of a scored prefill chunk, -1: none */
    int32_t embed_row;        /* embed: this step's first output row, -1: not in this step */
    hl_sampler *smp;
    hl_logits_proc *proc;     /* owned, may be NULL */
    hl_stop_matcher *stop;
    tok_stream ts;
    char *piece;              /* [piece_cap] detokenization scratch of this sequence */
    /* this step's drafts: tokens at positions n_computed+1 .. n_computed+n_draft */
    int32_t *draft;           /* [h->max_draft] */
    int32_t n_draft;
    spec_seq spec;            /* recent acceptance (adaptive draft length) */
    int32_t n_drafted, n_accepted; /* totals of this choice (its stats) */
    int32_t n_asks;           /* asks to a batched drafter so far */
    /* this step's sampling results, written by one pool thread (sched_verify.c)
     * and applied on the engine thread */
    int32_t row;              /* first logits row (1 + n_draft rows), -1: none */
    int32_t n_out;            /* tokens sampled and accepted into the sequence */
    int32_t n_match;          /* of which equal to the drafts at their position (KV valid) */
    int32_t *out_tok;         /* [1 + h->max_draft] */
    hl_token_logprobs *out_lp;/* [1 + h->max_draft] when logprobs were asked */
    size_t *out_len;          /* [1 + h->max_draft] bytes of out_text per token */
    hl_buf out_text;          /* text safe to show, token after token */
    const char *out_reason;   /* NULL: goes on; else the sequence ends ("stop", "length") */
    int64_t t_admit, t_first;
    uint64_t order;           /* admission order: the newest is preempted first */
    struct seq *next;         /* list link (waiting or running) */
} seq;

struct hl_engine {
    const hl_loaded *lm;      /* borrowed */
    hl_engine_params p;
    int32_t n_vocab, block_size;
    int32_t n_out;            /* floats per output row: n_vocab, or n_embd for an embedding model */
    int embedding;            /* the model is an embedding model (embed requests only) */
    hl_pool *pool;            /* borrowed: the process's */
    hl_kv_cache *kv;
    hl_kvc kvc;
    hl_forward_ctx *fctx;
    float *logits;            /* [cap_rows][n_vocab] */
    int32_t cap_rows;         /* max_seqs, grown once to rows_drafting() when drafts appear */
    hl_batch_token *btok;     /* [step_tokens] */
    hl_batch_seq *bseq;       /* [max_seqs] */
    seq **bseq_owner;         /* [max_seqs] the seq of each batch entry */
    int32_t *bseq_logit_row;  /* [max_seqs] first logits row of the entry, -1 = none */
    seq **snap;               /* [max_seqs] running sequences at the start of a step */
    /* this step's asks to batched drafters (hl_drafter.propose_batch) */
    hl_draft_query *dq, *dq_tmp; /* [max_seqs] the asks; one group's, gathered for its call */
    seq **dq_seq;             /* [max_seqs] the asking sequence of each ask (NULL once answered) */
    int32_t *dq_idx;          /* [max_seqs] where each gathered ask came from */
    char *piece;              /* detokenization scratch of the engine thread */
    size_t piece_cap;
    pthread_t thread;
    pthread_mutex_t mu;       /* guards inbox, stopping, n_queued */
    pthread_cond_t cv;
    hl_handle *inbox_head, *inbox_tail;
    int stopping;
    int32_t n_queued;         /* inbox + waiting, for the busy check */
    /* engine-thread state */
    seq *waiting;             /* FIFO */
    seq *running;
    int32_t n_running;
    uint64_t next_order;
    spec_cost cost;           /* the step-cost model of adaptive speculation */
    hl_side *side;            /* the forward pass runs on a device: logits processors prepare
                                 their masks on this thread meanwhile (NULL on the host) */
    /* metrics, written by the engine thread */
    _Atomic int32_t m_running, m_blocks_used;
    _Atomic uint64_t m_prompt_tokens, m_gen_tokens, m_steps, m_preemptions, m_prefix_queries, m_prefix_hits;
    _Atomic uint64_t m_draft_tokens, m_draft_accepted, m_masks_prepared;
    /* test hook: called on the engine thread at the end of every step whose
     * forward pass succeeded, after that step's events (set before the first
     * submit; tests inspect the state) */
    void (*step_hook)(hl_engine *e, void *ctx);
    void *step_hook_ctx;
};

/* A request has a drafter (one sequence at a time, or batched). */
static inline int drafter_set(const hl_drafter *d) { return d->propose || d->propose_batch; }

/* engine.c: event queue (producer side) */
void ev_push_token(hl_engine *e, seq *s, int32_t token, const char *text, size_t n, const hl_token_logprobs *lp);
void ev_push_done(hl_engine *e, seq *s, const char *reason, const char *text, size_t n);
void ev_push_prompt(hl_engine *e, seq *s, const hl_token_logprobs *lp);
void ev_push_error(hl_handle *h, const char *msg);
void handle_unref(hl_handle *h);

/* sched.c */
void sched_admit(hl_engine *e, hl_handle *h);   /* new request → waiting seq(s) */
int sched_step(hl_engine *e);                   /* one step; 0 when there was nothing to do */
void sched_cancel_all(hl_engine *e);
void seq_free(seq *s);
void finish(hl_engine *e, seq *s, const char *reason);
void commit_full_blocks(hl_engine *e, seq *s);
/* Rollback: positions >= n_keep of s's KV are dead (rejected drafts). Blocks
 * lying wholly past n_keep go back to the pool. */
void seq_kv_truncate(hl_engine *e, seq *s, int32_t n_keep);
void fork_children(hl_engine *e, seq *s);

/* sched_verify.c: after the forward pass, sample and verify every batch entry
 * that wants logits (in parallel on the pool), then apply the results on the
 * engine thread (events, rollback, stops, finishing). */
void sched_sample(hl_engine *e, int32_t n_bseq);

/* sched_embed.c: embed requests. Which tokens of s's whole-prompt chunk
 * want an output row (the pooling's); pooling the rows row0 .. of a computed
 * chunk into the EMBED event. */
int sched_embed_wants(const hl_engine *e, const seq *s, int32_t i);
void sched_embed_emit(hl_engine *e, seq *s, int32_t row0);
void ev_push_embed(hl_engine *e, seq *s, const float *v, int32_t n);

/* sched_score.c: prompt scoring. The positions pos0 .. pos0+n-1 of s were
 * computed this step with logits in rows row0 ..; scores each prompt token
 * that follows one of them (and was not scored before: a recomputation after
 * preemption scores nothing twice) as PROMPT events. */
void sched_score_prompt(hl_engine *e, seq *s, int32_t row0, int32_t pos0, int32_t n);

#endif
