/* Draft-model speculation (draft.h): the vocabulary check, the draft
 * model's KV sequences (one per drafting choice, kept in agreement with the
 * target's tokens), and the batched proposal: one forward pass of the draft
 * model per drafted position for every asking sequence. Engine thread only,
 * except creation and freeing. */
#include "runner/draft.h"
#include "base/clock.h"
#include "base/log.h"
#include "runner/kvcache.h"

#include <stdlib.h>
#include <string.h>

/* One choice's sequence in the draft model: positions [0, n) of its KV hold
 * tok[0..n); the first n_base of them are known to equal the target's
 * sequence (positions past it are the draft's own guesses, kept while they
 * agree). */
typedef struct dseq {
    int32_t *tok, cap;
    int32_t n, n_base;
    int32_t *blocks, n_blocks, cap_blocks;
    uint64_t used;             /* the call that last asked (LRU) */
    int retired;               /* its request is over: kept for a later one to adopt */
    struct dseq *prev, *next;  /* the model's list, least recently used first */
    /* this call */
    hl_draft_query *q;
    int32_t feed, k, row;      /* tokens fed in pass 0, drafts wanted, logits row */
    int drafting;
} dseq;

struct hl_draft_model {
    const hl_loaded *lm, *target; /* borrowed */
    hl_forward_ctx *fctx;
    hl_kv_cache *kv;
    hl_kvc kvc;
    int32_t n_vocab, target_vocab, block_size, max_seqs, step_tokens;
    int32_t n_ctx;             /* the draft's trained context: it drafts no further (0: any) */
    double cost;
    float *logits;             /* [max_seqs][n_vocab] */
    hl_batch_token *btok;      /* [step_tokens] */
    hl_batch_seq *bseq;        /* [max_seqs] */
    dseq **act;                /* [max_seqs] this call's sequences */
    dseq *lru_head, *lru_tail;
    uint64_t clock;
    uint64_t n_fed, n_drafted;  /* target tokens fed (catch-ups), tokens drafted */
};

typedef struct ddrafter {
    hl_draft_model *dm;
    dseq **seqs;               /* [n_seqs] by choice, NULL until asked */
    int32_t n_seqs;
} ddrafter;

static void dseq_drop(hl_draft_model *dm, dseq *s);

hl_draft_params hl_draft_default_params(void) {
    return (hl_draft_params){.kv_bytes = (size_t)256 << 20, .kv_type = HL_TYPE_F16, .max_seqs = 32, .step_tokens = 512,
                             .num_gpu = -1};
}

/* ---- vocabulary ---- */

static const char *text_or(const tok_vocab *v, int32_t id) {
    const char *t = tok_text(v, id);
    return t ? t : "(none)";
}

int hl_draft_check_vocab(const tok_vocab *t, const tok_vocab *d, hl_err *err) {
    int32_t nt = tok_n_vocab(t), nd = tok_n_vocab(d);
    if (tok_get_kind(t) != tok_get_kind(d))
        return hl_err_set(err, HL_EINVAL, "the draft model's tokenizer is of another kind than the target's");
    if (nt - nd > HL_DRAFT_VOCAB_SLACK || nd - nt > HL_DRAFT_VOCAB_SLACK)
        return hl_err_set(err, HL_EINVAL, "the draft model has %d tokens and the target %d (more than %d apart)", nd, nt,
                          HL_DRAFT_VOCAB_SLACK);
    if (tok_add_bos(t) != tok_add_bos(d) || tok_bos(t) != tok_bos(d))
        return hl_err_set(err, HL_EINVAL, "the draft model's BOS (%d, %s) differs from the target's (%d, %s)", tok_bos(d),
                          tok_add_bos(d) ? "added" : "not added", tok_bos(t), tok_add_bos(t) ? "added" : "not added");
    if (tok_eos(t) != tok_eos(d))
        return hl_err_set(err, HL_EINVAL, "the draft model's EOS token is %d, the target's %d", tok_eos(d), tok_eos(t));
    int32_t n = nt < nd ? nt : nd;
    for (int32_t id = HL_DRAFT_VOCAB_CHECK_FROM; id < n; id++) {
        const char *a = tok_text(t, id), *b = tok_text(d, id);
        if (!a || !b || strcmp(a, b))
            return hl_err_set(err, HL_EINVAL, "token %d is \"%.40s\" in the draft model but \"%.40s\" in the target", id,
                              text_or(d, id), text_or(t, id));
    }
    return 0;
}

/* ---- the model ---- */

int hl_draft_model_new(hl_draft_model **out, const hl_loaded *draft, const hl_loaded *target, const hl_draft_params *pp,
                       hl_err *err) {
    *out = NULL;
    hl_draft_params p = *pp;
    if (!p.backend) return hl_err_set(err, HL_EINVAL, "a draft model needs the target engine's backend");
    if (!p.kv_bytes) p.kv_bytes = (size_t)256 << 20;
    if (p.kv_type != HL_TYPE_Q8_0) p.kv_type = HL_TYPE_F16;
    if (p.max_seqs <= 0) p.max_seqs = 32;
    if (p.step_tokens <= 0) p.step_tokens = 512;
    if (p.step_tokens < p.max_seqs) p.step_tokens = p.max_seqs;
    hl_err verr = {0};
    if (hl_draft_check_vocab(target->tok, draft->tok, &verr))
        return hl_err_set(err, HL_EINVAL, "draft model %s cannot draft for %s: %s", draft->path ? draft->path : "?",
                          target->path ? target->path : "?", verr.msg);
    hl_draft_model *dm = calloc(1, sizeof *dm);
    if (!dm) return hl_err_set(err, HL_ENOMEM, "out of memory");
    dm->lm = draft;
    dm->target = target;
    dm->n_vocab = hl_model_hparams(draft->model)->n_vocab;
    dm->target_vocab = hl_model_hparams(target->model)->n_vocab;
    dm->n_ctx = hl_model_hparams(draft->model)->n_ctx_train;
    dm->max_seqs = p.max_seqs;
    dm->step_tokens = p.step_tokens;
    size_t wt = hl_model_weight_bytes(target->model), wd = hl_model_weight_bytes(draft->model);
    dm->cost = wt ? (double)wd / (double)wt : 1.0;
    hl_kv_params kp = hl_model_kv_params(draft->model, 1, 0);
    kp.type = p.kv_type;
    int rc = hl_kv_check_params(&kp, err);
    int32_t n_blocks = 0;
    if (!rc) {
        dm->block_size = kp.block_size;
        n_blocks = (int32_t)(p.kv_bytes / hl_kv_block_bytes(&kp));
        if (n_blocks < 2) rc = hl_err_set(err, HL_EINVAL, "draft KV budget too small: one block needs %zu bytes",
                                          hl_kv_block_bytes(&kp));
    }
    /* placed as the target's engine is (engine.c): num_gpu of its layers on backend */
    hl_forward_placement pl = {.be = p.backend, .first = p.offload_rest, .n_on_be = p.num_gpu, .n_ctx = dm->n_ctx};
    if (!rc) rc = hl_forward_ctx_new_placed(&dm->fctx, draft->model, &pl, p.step_tokens, err);
    if (!rc) rc = hl_forward_kv_new(dm->fctx, n_blocks, dm->block_size, kp.type, &dm->kv, err);
    if (!rc) rc = hl_kvc_init(&dm->kvc, n_blocks, dm->block_size, err);
    if (!rc) {
        dm->logits = malloc((size_t)dm->max_seqs * (size_t)dm->n_vocab * sizeof *dm->logits);
        dm->btok = malloc((size_t)dm->step_tokens * sizeof *dm->btok);
        dm->bseq = malloc((size_t)dm->max_seqs * sizeof *dm->bseq);
        dm->act = malloc((size_t)dm->max_seqs * sizeof *dm->act);
        if (!dm->logits || !dm->btok || !dm->bseq || !dm->act)
            rc = hl_err_set(err, HL_ENOMEM, "out of memory for the draft model's buffers");
    }
    if (rc) {
        hl_draft_model_free(dm);
        return rc;
    }
    hl_debug("draft: %s for %s, %d KV blocks of %d, a drafted token costs %.2f target steps", draft->path,
             target->path, n_blocks, dm->block_size, dm->cost);
    *out = dm;
    return 0;
}

void hl_draft_model_free(hl_draft_model *dm) {
    if (!dm) return;
    /* only retired sequences are left (every drafter was freed before) */
    while (dm->lru_head) dseq_drop(dm, dm->lru_head);
    if (dm->fctx) hl_forward_kv_free(dm->fctx, dm->kv);
    hl_forward_ctx_free(dm->fctx);
    hl_kvc_free(&dm->kvc);
    free(dm->logits);
    free(dm->btok);
    free(dm->bseq);
    free(dm->act);
    free(dm);
}

const hl_loaded *hl_draft_model_loaded(const hl_draft_model *dm) { return dm->lm; }
const char *hl_draft_model_backend_name(const hl_draft_model *dm) { return hl_forward_backend_name(dm->fctx); }

double hl_draft_model_cost(const hl_draft_model *dm) { return dm->cost; }
void hl_draft_model_counts(const hl_draft_model *dm, uint64_t *fed, uint64_t *drafted) {
    if (fed) *fed = dm->n_fed;
    if (drafted) *drafted = dm->n_drafted;
}

/* ---- draft sequences ---- */

static void lru_unlink(hl_draft_model *dm, dseq *s) {
    if (s->prev) s->prev->next = s->next;
    else if (dm->lru_head == s) dm->lru_head = s->next;
    if (s->next) s->next->prev = s->prev;
    else if (dm->lru_tail == s) dm->lru_tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_touch(hl_draft_model *dm, dseq *s) {
    lru_unlink(dm, s);
    s->prev = dm->lru_tail;
    if (dm->lru_tail) dm->lru_tail->next = s;
    else dm->lru_head = s;
    dm->lru_tail = s;
    s->used = dm->clock;
}

/* Positions >= n of s are dead. */
static void dseq_truncate(hl_draft_model *dm, dseq *s, int32_t n) {
    if (n >= s->n) return;
    hl_forward_kv_truncate(dm->fctx, dm->kv, s->blocks, s->n_blocks, n);
    int32_t keep = (n + dm->block_size - 1) / dm->block_size;
    while (s->n_blocks > keep) hl_kvc_release(&dm->kvc, s->blocks[--s->n_blocks]);
    s->n = n;
    if (s->n_base > n) s->n_base = n;
}

/* Keeps the longest prefix of s agreeing with tokens[0..n). */
static void dseq_sync(hl_draft_model *dm, dseq *s, const int32_t *tokens, int32_t n) {
    int32_t p = s->n_base, lim = s->n < n ? s->n : n;
    while (p < lim && s->tok[p] == tokens[p]) p++;
    if (p < lim) dseq_truncate(dm, s, p);
    s->n_base = p;
}

static void dseq_free(dseq *s) {
    if (!s) return;
    free(s->tok);
    free(s->blocks);
    free(s);
}

/* Gives s's blocks back; a retired sequence goes altogether. */
static void dseq_drop(hl_draft_model *dm, dseq *s) {
    for (int32_t i = 0; i < s->n_blocks; i++) hl_kvc_release(&dm->kvc, s->blocks[i]);
    s->n_blocks = s->n = s->n_base = 0;
    lru_unlink(dm, s);
    if (s->retired) dseq_free(s);
}

/* A new sequence (no KV yet) adopts the retired one sharing the longest
 * prefix with tokens (at least a block of it): a chat's next turn resends
 * its history, a benchmark its prompt, and the draft need not recompute it.
 * The retired sequence's blocks were never shared, so they simply change
 * hands. */
static void adopt(hl_draft_model *dm, dseq *s, const int32_t *tokens, int32_t n) {
    dseq *best = NULL;
    int32_t best_len = dm->block_size - 1;
    for (dseq *r = dm->lru_head; r; r = r->next) {
        if (!r->retired) continue;
        int32_t lim = r->n < n - 1 ? r->n : n - 1, p = 0;
        while (p < lim && r->tok[p] == tokens[p]) p++;
        if (p > best_len) {
            best = r;
            best_len = p;
        }
    }
    if (!best) return;
    lru_unlink(dm, best);
    free(s->tok);
    free(s->blocks);
    s->tok = best->tok;
    s->cap = best->cap;
    s->blocks = best->blocks;
    s->n_blocks = best->n_blocks;
    s->cap_blocks = best->cap_blocks;
    s->n = best->n;
    s->n_base = best_len;
    free(best);
    dseq_truncate(dm, s, best_len);
}

/* Grows s to hold `end` positions (blocks and the token record), dropping
 * the KV of sequences not asking in this call when the pool is full.
 * Returns the positions covered. */
static int32_t dseq_grow(hl_draft_model *dm, dseq *s, int32_t end) {
    if (end > s->cap) {
        int32_t cap = s->cap ? s->cap : 256;
        while (cap < end) cap *= 2;
        int32_t *t = realloc(s->tok, (size_t)cap * sizeof *t);
        if (!t) return s->cap < s->n ? s->cap : s->n;
        s->tok = t;
        s->cap = cap;
    }
    int32_t need = (end + dm->block_size - 1) / dm->block_size;
    if (need > s->cap_blocks) {
        int32_t cap = s->cap_blocks ? s->cap_blocks : 16;
        while (cap < need) cap *= 2;
        int32_t *b = realloc(s->blocks, (size_t)cap * sizeof *b);
        if (!b) return s->n_blocks * dm->block_size < end ? s->n_blocks * dm->block_size : end;
        s->blocks = b;
        s->cap_blocks = cap;
    }
    while (s->n_blocks < need) {
        int32_t b = hl_kvc_alloc(&dm->kvc);
        if (b < 0) {
            dseq *v = dm->lru_head;
            while (v && v->used == dm->clock) v = v->next;
            if (!v) break;
            dseq_drop(dm, v);
            continue;
        }
        s->blocks[s->n_blocks++] = b;
    }
    int32_t covered = s->n_blocks * dm->block_size;
    return covered < end ? covered : end;
}

static dseq *seq_of(ddrafter *d, int32_t choice) {
    if (choice < 0) return NULL;
    if (choice >= d->n_seqs) {
        dseq **s = realloc(d->seqs, (size_t)(choice + 1) * sizeof *s);
        if (!s) return NULL;
        for (int32_t i = d->n_seqs; i <= choice; i++) s[i] = NULL;
        d->seqs = s;
        d->n_seqs = choice + 1;
    }
    if (!d->seqs[choice]) d->seqs[choice] = calloc(1, sizeof(dseq));
    return d->seqs[choice];
}

/* ---- the batched proposal ---- */

static int32_t argmax(const float *row, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* Sets up s for this call's ask q; 0 when it cannot draft now. */
static int prepare(hl_draft_model *dm, dseq *s, hl_draft_query *q, int32_t *budget) {
    if (dm->n_ctx > 0 && q->n_tokens + q->max_draft > dm->n_ctx) return 0;
    if (s->n == 0 && s->n_blocks == 0) adopt(dm, s, q->tokens, q->n_tokens);
    dseq_sync(dm, s, q->tokens, q->n_tokens);
    /* the draft needs logits after the pending token: it is (re)fed */
    if (s->n > q->n_tokens - 1) dseq_truncate(dm, s, q->n_tokens - 1);
    int32_t lag = q->n_tokens - s->n, feed = lag < *budget ? lag : *budget;
    if (feed <= 0) return 0;
    for (int32_t i = s->n; i < s->n + feed; i++)
        if (q->tokens[i] < 0 || q->tokens[i] >= dm->n_vocab) return 0; /* the draft has no such token */
    lru_touch(dm, s); /* and not evictable while its room is made */
    int32_t want = feed == lag ? q->n_tokens + q->max_draft - 1 : s->n + feed;
    int32_t covered = dseq_grow(dm, s, want);
    if (covered < s->n + feed) return 0;
    memcpy(s->tok + s->n, q->tokens + s->n, (size_t)feed * sizeof *s->tok);
    s->q = q;
    s->feed = feed;
    s->drafting = feed == lag;
    s->k = s->drafting ? covered - q->n_tokens + 1 : 0;
    if (s->k > q->max_draft) s->k = q->max_draft;
    *budget -= feed;
    return 1;
}

/* One draft forward pass over the batch built in dm->btok; 0 on success. */
static int pass(hl_draft_model *dm, int32_t n_tok, int32_t n_seq) {
    hl_batch b = {.tokens = dm->btok, .n_tokens = n_tok, .seqs = dm->bseq, .n_seqs = n_seq};
    hl_err err = {0};
    int rc = hl_model_forward(dm->fctx, dm->kv, &b, dm->logits, &err);
    if (rc) hl_error("draft: forward pass failed: %s", err.msg);
    return rc;
}

/* Records draft r of s from its logits row; 0 when it stops drafting. */
static int take_draft(hl_draft_model *dm, dseq *s, int32_t r) {
    int32_t t = argmax(dm->logits + (size_t)s->row * (size_t)dm->n_vocab, dm->n_vocab);
    if (t >= dm->target_vocab) return s->drafting = 0;
    s->q->draft[r] = t;
    s->q->n_draft = r + 1;
    dm->n_drafted++;
    /* past an end of generation the target stops: nothing to draft */
    if (r + 1 >= s->k || tok_is_eog(dm->lm->tok, t)) return s->drafting = 0;
    return 1;
}

static void propose_batch(void *group, hl_draft_query *q, int32_t n) {
    hl_draft_model *dm = group;
    dm->clock++;
    int32_t n_act = 0, budget = dm->step_tokens;
    for (int32_t i = 0; i < n; i++) {
        q[i].n_draft = 0;
        if (n_act >= dm->max_seqs || budget <= 0 || q[i].max_draft <= 0) continue;
        dseq *s = seq_of(q[i].ctx, q[i].choice);
        if (s && prepare(dm, s, &q[i], &budget)) dm->act[n_act++] = s;
    }
    /* pass 0: catch-ups, logits after each pending token */
    int32_t n_tok = 0, rows = 0;
    for (int32_t i = 0; i < n_act; i++) {
        dseq *s = dm->act[i];
        for (int32_t j = 0; j < s->feed; j++)
            dm->btok[n_tok++] = (hl_batch_token){.token = s->tok[s->n + j], .pos = s->n + j, .seq = i,
                                                 .logits = s->drafting && j == s->feed - 1};
        dm->bseq[i] = (hl_batch_seq){.blocks = s->blocks, .n_blocks = s->n_blocks};
        s->row = s->drafting ? rows++ : -1;
    }
    if (!n_act || pass(dm, n_tok, n_act)) return;
    int32_t live = 0;
    for (int32_t i = 0; i < n_act; i++) {
        dseq *s = dm->act[i];
        s->n += s->feed;
        dm->n_fed += (uint64_t)s->feed;
        if (s->n_base < s->n) s->n_base = s->n; /* the target's own tokens */
        if (s->drafting) live += take_draft(dm, s, 0);
    }
    /* pass r: each sequence still drafting feeds draft r-1 and drafts r */
    for (int32_t r = 1; live > 0; r++) {
        n_tok = 0;
        for (int32_t i = 0; i < n_act; i++) {
            dseq *s = dm->act[i];
            if (!s->drafting) continue;
            s->tok[s->n] = s->q->draft[r - 1];
            dm->btok[n_tok] = (hl_batch_token){.token = s->tok[s->n], .pos = s->n, .seq = i, .logits = 1};
            s->row = n_tok++;
        }
        if (pass(dm, n_tok, n_act)) return;
        live = 0;
        for (int32_t i = 0; i < n_act; i++) {
            dseq *s = dm->act[i];
            if (!s->drafting) continue;
            s->n++;
            live += take_draft(dm, s, r);
        }
    }
}

/* ---- the drafter ---- */

static void verified(void *ctx, int32_t choice, const int32_t *tokens, int32_t n_tokens) {
    ddrafter *d = ctx;
    if (choice >= 0 && choice < d->n_seqs && d->seqs[choice]) dseq_sync(d->dm, d->seqs[choice], tokens, n_tokens);
}

static void drafter_free(void *ctx) {
    ddrafter *d = ctx;
    if (!d) return;
    for (int32_t i = 0; i < d->n_seqs; i++) {
        dseq *s = d->seqs[i];
        if (!s) continue;
        if (s->n > 0) {
            /* its KV stays for a later request to adopt, until evicted */
            dseq_truncate(d->dm, s, s->n_base);
            s->retired = 1;
            if (s->n > 0) continue;
        }
        if (s->n_blocks) dseq_drop(d->dm, s);
        dseq_free(s);
    }
    free(d->seqs);
    free(d);
}

int hl_draft_drafter_new(hl_draft_model *dm, hl_drafter *out, int32_t max_draft, hl_err *err) {
    *out = (hl_drafter){0};
    ddrafter *d = calloc(1, sizeof *d);
    if (!d) return hl_err_set(err, HL_ENOMEM, "out of memory");
    d->dm = dm;
    *out = (hl_drafter){.propose_batch = propose_batch, .group = dm, .verified = verified, .cost = dm->cost,
                        .free = drafter_free, .ctx = d, .max_draft = max_draft};
    return 0;
}

int32_t hl_draft_drafter_kv(const hl_drafter *dr, int32_t choice, const int32_t **tokens) {
    const ddrafter *d = dr->ctx;
    const dseq *s = choice >= 0 && choice < d->n_seqs ? d->seqs[choice] : NULL;
    if (tokens) *tokens = s ? s->tok : NULL;
    return s ? s->n : 0;
}
