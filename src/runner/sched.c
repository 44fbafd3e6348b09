/* The scheduler step: admission (with prefix-cache lookup), batch building
 * (decodes with their drafts first, then prefill chunks under the token
 * budget), block allocation with preemption of the newest sequence, the
 * forward pass; then sched_verify.c samples. Also the sequences' lifecycle:
 * blocks, rollback, forks, finishing. Runs on the engine thread only. */
#include "runner/engine_impl.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

/* ---- sequences ---- */

void seq_free(seq *s) {
    if (!s) return;
    hl_sampler_free(s->smp);
    if (s->proc) s->proc->vt->free(s->proc);
    hl_stop_free(s->stop);
    free(s->tokens);
    free(s->blocks);
    free(s->piece);
    free(s->draft);
    free(s->out_tok);
    free(s->out_lp);
    free(s->out_len);
    hl_buf_free(&s->out_text);
    free(s);
}

/* Everything a sequence's step needs is allocated here: its own sampling
 * scratch (detokenizer piece, draft and result slots) lets the sequences of
 * a step sample in parallel. */
static seq *seq_new(hl_engine *e, hl_handle *h, int32_t index, const int32_t *tokens, int32_t n_tokens,
                    int32_t n_prompt) {
    seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->h = h;
    s->index = index;
    s->max_ctx = h->num_ctx;
    s->cap = h->num_ctx;
    s->n_prompt = n_prompt;
    s->row = -1;
    s->cap_blocks = (s->cap + e->block_size - 1) / e->block_size;
    const size_t n_out = 1 + (size_t)h->max_draft;
    s->tokens = malloc((size_t)s->cap * sizeof *s->tokens);
    s->blocks = malloc((size_t)s->cap_blocks * sizeof *s->blocks);
    s->piece = malloc(e->piece_cap);
    s->draft = h->max_draft > 0 ? malloc((size_t)h->max_draft * sizeof *s->draft) : NULL;
    s->out_tok = malloc(n_out * sizeof *s->out_tok);
    s->out_len = malloc(n_out * sizeof *s->out_len);
    s->out_lp = h->logprobs ? malloc(n_out * sizeof *s->out_lp) : NULL;
    if (!s->tokens || !s->blocks || !s->piece || (h->max_draft > 0 && !s->draft) || !s->out_tok || !s->out_len ||
        (h->logprobs && !s->out_lp) || hl_stop_new(&s->stop, (const char *const *)h->stops, NULL, h->n_stops, NULL)) {
        seq_free(s);
        return NULL;
    }
    memcpy(s->tokens, tokens, (size_t)n_tokens * sizeof *tokens);
    s->n_tokens = n_tokens;
    s->last_key = HL_KVC_ROOT_KEY;
    s->score_row = -1;
    s->embed_row = -1;
    /* the prompt's text comes first: a leading space of the first generated
     * token is part of the text (SPM's rule is for the start of the text) */
    tok_stream_init(&s->ts, e->lm->tok, 0);
    tok_stream_prime(&s->ts, tokens, (size_t)n_tokens);
    return s;
}

static void list_remove(seq **head, seq *s) {
    for (seq **p = head; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            s->next = NULL;
            return;
        }
}

static void list_append(seq **head, seq *s) {
    seq **p = head;
    while (*p) p = &(*p)->next;
    s->next = NULL;
    *p = s;
}

static void list_push_front(seq **head, seq *s) {
    s->next = *head;
    *head = s;
}

static void queued_done(hl_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->n_queued--;
    pthread_mutex_unlock(&e->mu);
}

void sched_admit(hl_engine *e, hl_handle *h) {
    seq *s = seq_new(e, h, 0, h->prompt, (int32_t)h->n_prompt, (int32_t)h->n_prompt);
    if (s && hl_sampler_new(&s->smp, &h->sampling, e->n_vocab, NULL)) {
        seq_free(s);
        s = NULL;
    }
    if (!s) {
        queued_done(e);
        ev_push_error(h, "out of memory admitting the request");
        handle_unref(h);
        return;
    }
    for (int32_t i = 0; i < s->n_tokens; i++) hl_sampler_accept(s->smp, s->tokens[i]);
    s->lp_next = h->prompt_logprobs ? 1 : 0; /* position 0 has nothing before it to score it */
    s->proc = h->proc; /* the processor sees generated tokens only */
    h->proc = NULL;
    s->state = SEQ_WAITING;
    list_append(&e->waiting, s);
}

/* ---- blocks ---- */

/* Registers the sequence's newly full blocks in the prefix cache. Only
 * verified positions count: n_computed never covers a drafted token before
 * verification accepted it, so a rejected draft never enters the cache. */
void commit_full_blocks(hl_engine *e, seq *s) {
    /* an embedding's K/V (bidirectional: each depends on the whole input) is
     * dropped after its pass, never cached */
    if (!e->p.prefix_cache || s->h->embed) return;
    while ((s->n_committed + 1) * e->block_size <= s->n_computed) {
        s->last_key = hl_kvc_commit(&e->kvc, s->blocks[s->n_committed], s->last_key,
                                    s->tokens + (size_t)s->n_committed * (size_t)e->block_size);
        s->n_committed++;
    }
}

static void release_blocks(hl_engine *e, seq *s) {
    commit_full_blocks(e, s);
    /* keep the partly filled last block for the next turn of a chat */
    int32_t tail = s->n_computed - s->n_committed * e->block_size;
    if (e->p.prefix_cache && !s->h->embed && s->n_committed < s->n_blocks && tail > 0 && tail < e->block_size)
        hl_kvc_commit_partial(&e->kvc, s->blocks[s->n_committed], s->last_key,
                              s->tokens + (size_t)s->n_committed * (size_t)e->block_size, tail);
    for (int32_t i = 0; i < s->n_blocks; i++) hl_kvc_release(&e->kvc, s->blocks[i]);
    s->n_blocks = 0;
    s->n_computed = 0;
    s->n_committed = 0;
    s->last_key = HL_KVC_ROOT_KEY;
}

/* Rollback after verification: positions >= n_keep hold the KV of rejected
 * drafts; the sequence keeps [0, n_keep). The one place that knows:
 *  - the backend truncates the storage (kv_truncate clears the dead slots,
 *    so a rejected draft can never be read back; prefix-cache commits, full
 *    or partial, only ever cover positions < n_computed anyway);
 *  - blocks lying wholly past n_keep go back to the pool. They were taken
 *    for this step's drafts, so they are this sequence's alone and were never
 *    committed; so is the block holding n_keep (no block is ever written by
 *    two sequences). */
void seq_kv_truncate(hl_engine *e, seq *s, int32_t n_keep) {
    HL_ASSERT(n_keep >= s->n_committed * e->block_size && n_keep <= s->n_blocks * e->block_size);
    if (n_keep < s->n_blocks * e->block_size) hl_forward_kv_truncate(e->fctx, e->kv, s->blocks, s->n_blocks, n_keep);
    int32_t keep_blocks = (n_keep + e->block_size - 1) / e->block_size;
    while (s->n_blocks > keep_blocks) hl_kvc_release(&e->kvc, s->blocks[--s->n_blocks]);
    s->n_computed = n_keep;
}

/* A sequence scoring its prompt that still has positions to score: its
 * prefill needs logits on every position (sched_score.c). */
static int scoring(const seq *s) { return s->lp_next > 0 && s->lp_next < s->n_prompt; }

/* Grows the logits buffer to hold `rows` rows (once: the buffer stays).
 * Returns 0 when out of memory (the caller then scores nothing this step). */
static int ensure_rows(hl_engine *e, int32_t rows) {
    if (e->cap_rows >= rows) return 1;
    float *l = realloc(e->logits, (size_t)rows * (size_t)e->n_out * sizeof *l);
    if (!l) return 0;
    e->logits = l;
    e->cap_rows = rows;
    return 1;
}

/* Reuses cached blocks for the start of the sequence: whole blocks lying
 * entirely before the last token, then the matching start of a cached block
 * the sequence diverges in (or ends in), copied into a block of its own, so
 * at least the last token is evaluated. The positions reused hold exactly
 * what recomputing them would give (a token's K/V depend only on the tokens
 * before it), so a hit never changes a result. */
static void lookup_prefix(hl_engine *e, seq *s) {
    if (!e->p.prefix_cache || s->n_blocks > 0 || scoring(s) || s->h->embed) return;
    uint64_t q0 = e->kvc.stats.queries, h0 = e->kvc.stats.hits;
    int32_t full = (s->n_tokens - 1) / e->block_size;
    for (int32_t i = 0; i < full; i++) {
        const int32_t *t = s->tokens + (size_t)i * (size_t)e->block_size;
        int32_t b = hl_kvc_lookup(&e->kvc, s->last_key, t);
        if (b < 0) break;
        s->blocks[s->n_blocks++] = b;
        s->last_key = hl_kvc_key(s->last_key, t, e->block_size);
        s->n_committed++;
    }
    s->n_computed = s->n_blocks * e->block_size;
    int32_t matched = 0, rest = s->n_tokens - 1 - s->n_computed;
    int32_t src = hl_kvc_lookup_partial(&e->kvc, s->last_key, s->tokens + s->n_computed, rest, &matched);
    if (src >= 0) {
        int32_t dst = hl_kvc_alloc(&e->kvc); /* src is retained: never the block handed out */
        if (dst >= 0) {
            hl_forward_kv_copy_block(e->fctx, e->kv, dst, src);
            s->blocks[s->n_blocks++] = dst;
            s->n_computed += matched;
        }
        hl_kvc_release(&e->kvc, src);
    }
    atomic_fetch_add(&e->m_prefix_queries, e->kvc.stats.queries - q0);
    atomic_fetch_add(&e->m_prefix_hits, e->kvc.stats.hits - h0);
}

/* ---- finishing ---- */

/* Gauges for /metrics; published before DONE events so a client that has seen
 * its request finish also sees the engine's state after it. */
static void publish_gauges(hl_engine *e) {
    atomic_store(&e->m_running, e->n_running);
    atomic_store(&e->m_blocks_used, hl_kvc_n_used(&e->kvc));
}

/* A sequence of h still running or waiting (the one finishing is off the
 * lists); no more forks come once choice 0 has finished or forked. */
static int has_other_seq(const hl_engine *e, const hl_handle *h) {
    for (const seq *r = e->running; r; r = r->next)
        if (r->h == h) return 1;
    for (const seq *w = e->waiting; w; w = w->next)
        if (w->h == h) return 1;
    return 0;
}

void finish(hl_engine *e, seq *s, const char *reason) {
    /* release what the detokenizer and the stop matcher still hold */
    const char *emit = NULL;
    size_t n_emit = 0;
    hl_buf rest = {0};
    if (hl_stop_matched(s->stop) < 0) {
        int n = tok_stream_flush(&s->ts, e->piece, e->piece_cap);
        if (n > 0 && hl_stop_push(s->stop, e->piece, (size_t)n, &emit, &n_emit) >= 0) hl_buf_append(&rest, emit, n_emit);
        if (hl_stop_matched(s->stop) < 0) {
            hl_stop_flush(s->stop, &emit, &n_emit);
            hl_buf_append(&rest, emit, n_emit);
        }
    }
    release_blocks(e, s);
    if (s->state == SEQ_RUNNING) {
        list_remove(&e->running, s);
        e->n_running--;
    } else if (s->state == SEQ_WAITING) {
        list_remove(&e->waiting, s);
        if (s->index == 0 && !s->t_admit) queued_done(e);
    }
    s->state = SEQ_DONE;
    publish_gauges(e);
    hl_handle *h = s->h;
    /* what the request handed over goes back before its DONE events, so a
     * client that has seen them knows the engine is done with it: this
     * choice's processor, and with the request's last sequence, the drafter */
    if (s->proc) s->proc->vt->free(s->proc);
    s->proc = NULL;
    if (drafter_set(&h->drafter) && !has_other_seq(e, h)) {
        if (h->drafter.free) h->drafter.free(h->drafter.ctx);
        h->drafter = (hl_drafter){0};
    }
    ev_push_done(e, s, reason, rest.data ? rest.data : "", rest.len);
    hl_buf_free(&rest);
    /* choices never forked (cancelled or failed before the prompt was done) */
    if (s->index == 0 && h->n_choices > 1 && !s->forked) {
        for (int32_t i = 1; i < h->n_choices; i++) {
            seq ghost = *s;
            ghost.index = i;
            ghost.n_gen = 0;
            ev_push_done(e, &ghost, reason, "", 0);
        }
    }
    pthread_mutex_lock(&h->mu);
    int last = h->choices_left == 0;
    pthread_mutex_unlock(&h->mu);
    seq_free(s);
    if (last) handle_unref(h);
}

void sched_cancel_all(hl_engine *e) {
    while (e->running) finish(e, e->running, "cancel");
    while (e->waiting) finish(e, e->waiting, "cancel");
}

/* ---- forks (n > 1) ---- */

/* Children share the parent's full blocks and recompute the partial last
 * block (fewer than block_size tokens), so no block is ever written by two
 * sequences. They wait at the head of the queue. Called before the parent's
 * first sample: each child clones the parent's sampler (with its own PRNG
 * stream) and logits processor as they are after the prompt. */
void fork_children(hl_engine *e, seq *s) {
    hl_handle *h = s->h;
    s->forked = 1;
    int32_t full = s->n_computed / e->block_size;
    for (int32_t i = h->n_choices - 1; i >= 1; i--) {
        seq *c = seq_new(e, h, i, s->tokens, s->n_tokens, s->n_prompt);
        if (c && (hl_sampler_clone(s->smp, (uint64_t)i, &c->smp, NULL) ||
                  (s->proc && !(c->proc = s->proc->vt->clone(s->proc))))) {
            seq_free(c);
            c = NULL;
        }
        if (!c) {
            seq ghost = *s;
            ghost.index = i;
            ev_push_done(e, &ghost, "cancel", "", 0);
            continue;
        }
        for (int32_t b = 0; b < full; b++) {
            hl_kvc_retain(&e->kvc, s->blocks[b]);
            c->blocks[c->n_blocks++] = s->blocks[b];
        }
        c->n_computed = full * e->block_size;
        c->n_committed = s->n_committed < full ? s->n_committed : full;
        c->last_key = HL_KVC_ROOT_KEY;
        for (int32_t b = 0; b < c->n_committed; b++)
            c->last_key = hl_kvc_key(c->last_key, c->tokens + (size_t)b * (size_t)e->block_size, e->block_size);
        c->prompt_cached = s->prompt_cached;
        c->t_admit = s->t_admit;
        c->state = SEQ_WAITING;
        list_push_front(&e->waiting, c);
    }
}

/* ---- the step ---- */

/* Drafts are never in flight here (a victim is not in the step's batch; a
 * sequence preempting itself has not placed any), so only accepted tokens
 * are recomputed later. */
static void preempt(hl_engine *e, seq *v) {
    v->n_draft = 0;
    release_blocks(e, v);
    list_remove(&e->running, v);
    e->n_running--;
    v->state = SEQ_WAITING;
    list_push_front(&e->waiting, v);
    atomic_fetch_add(&e->m_preemptions, 1);
    hl_debug("engine: preempted a sequence of %d tokens (KV pool full)", v->n_tokens);
}

static int in_batch(hl_engine *e, int32_t n_bseq, const seq *s) {
    for (int32_t i = 0; i < n_bseq; i++)
        if (e->bseq_owner[i] == s) return 1;
    return 0;
}

/* Newest running sequence not already in this step's batch, other than s. */
static seq *pick_victim(hl_engine *e, int32_t n_bseq, const seq *s) {
    seq *v = NULL;
    for (seq *r = e->running; r; r = r->next)
        if (r != s && !in_batch(e, n_bseq, r) && (!v || r->order > v->order)) v = r;
    return v;
}

/* Waiting sequences may hold blocks (prefix-cache hits, a fork's shared
 * prompt). Running ones come first: give those back; they are cached, so a
 * waiting sequence finds them again through the prefix cache when admitted.
 * Returns the number of blocks released. */
static int32_t reclaim_waiting(hl_engine *e) {
    int32_t n = 0;
    for (seq *w = e->waiting; w; w = w->next) {
        n += w->n_blocks;
        release_blocks(e, w);
    }
    return n;
}

/* Grows s's block table to cover `end` positions. Returns the number of
 * positions covered (may be less than end when the pool is full). */
static int32_t grow_blocks(hl_engine *e, seq *s, int32_t end, int may_preempt, int32_t n_bseq) {
    while (s->n_blocks * e->block_size < end) {
        int32_t b = hl_kvc_alloc(&e->kvc);
        if (b < 0) {
            if (reclaim_waiting(e) > 0) continue;
            seq *v = may_preempt ? pick_victim(e, n_bseq, s) : NULL;
            if (!v) break;
            preempt(e, v);
            continue;
        }
        s->blocks[s->n_blocks++] = b;
    }
    int32_t covered = s->n_blocks * e->block_size;
    return covered < end ? covered : end;
}

static void admit_waiting(hl_engine *e) {
    while (e->waiting && e->n_running < e->p.max_seqs) {
        seq *s = e->waiting;
        if (s->n_blocks == 0) lookup_prefix(e, s);
        int32_t pending = s->n_tokens - s->n_computed;
        int32_t first = pending < e->p.step_tokens ? pending : e->p.step_tokens;
        int32_t need = (s->n_computed + first + e->block_size - 1) / e->block_size - s->n_blocks;
        /* do not admit into a pool that cannot take its first chunk while
         * others run; a refused sequence holds no blocks while it waits */
        if (need > e->kvc.n_free && e->n_running > 0) {
            release_blocks(e, s);
            break;
        }
        e->waiting = s->next;
        s->next = NULL;
        if (!s->t_admit) {
            s->t_admit = hl_now_ns();
            if (s->index == 0) {
                s->prompt_cached = s->n_computed;
                queued_done(e);
            }
        }
        s->state = SEQ_RUNNING;
        s->order = ++e->next_order;
        list_append(&e->running, s);
        e->n_running++;
    }
}

/* Logits rows a step can want once sequences draft: every token of the step
 * at most, and 1 + max_draft per sequence. */
static int32_t rows_drafting(const hl_engine *e) {
    int64_t most = (int64_t)e->p.max_seqs * (1 + e->p.max_draft);
    return most < e->p.step_tokens ? (int32_t)most : e->p.step_tokens;
}

/* Nonzero when this step may carry drafts: some running sequence has a
 * drafter, and the logits buffer holds every row such a step can want (grown
 * once, the first time; without the memory, steps run without drafts). */
static int drafts_possible(hl_engine *e, int32_t n_snap) {
    int any = 0;
    for (int32_t k = 0; k < n_snap && !any; k++) any = e->snap[k]->h->max_draft > 0;
    if (!any) return 0;
    int32_t rows = rows_drafting(e);
    if (e->cap_rows < rows) {
        float *l = realloc(e->logits, (size_t)rows * (size_t)e->n_out * sizeof *l);
        if (!l) return 0;
        e->logits = l;
        e->cap_rows = rows;
    }
    return 1;
}

/* Places the n drafts in s->draft (ids outside the vocabulary end them)
 * for verification: never more than the blocks it can take from the free
 * pool (no preemption, no reclaiming: drafts are speculation), leaving
 * `reserve` blocks for the decodes still to be placed. Returns how many. */
static int32_t place_drafts(hl_engine *e, seq *s, int32_t n, int32_t reserve) {
    for (int32_t i = 0; i < n; i++)
        if (s->draft[i] < 0 || s->draft[i] >= e->n_vocab) n = i;
    int32_t end = s->n_computed + 1 + n;
    while (s->n_blocks * e->block_size < end && e->kvc.n_free > reserve)
        s->blocks[s->n_blocks++] = hl_kvc_alloc(&e->kvc); /* n_free > 0: cannot fail */
    int32_t covered = s->n_blocks * e->block_size;
    s->n_draft = (covered < end ? covered : end) - s->n_computed - 1;
    return s->n_draft;
}

/* Decides how many tokens s asks its drafter for to follow its pending one
 * (up to `room`), as many as adaptive control (spec.h) finds worth it in the
 * step planned so far (`plan`, which this updates), never past what the
 * sequence may still generate (this step emits at most 1 + n_draft tokens).
 * A one-at-a-time drafter answers at once and its drafts are placed
 * (leaving `reserve` blocks); a batched drafter's ask is queued in e->dq
 * (*n_q) and answered with the others of its group (run_batched), and the
 * number asked is returned, so the step's budget counts it. Returns the
 * drafts placed or asked for (0: a plain decode). */
static int32_t plan_drafts(hl_engine *e, seq *s, int32_t room, int32_t reserve, spec_step *plan, int32_t *n_q) {
    hl_handle *h = s->h;
    s->n_draft = 0;
    if (h->max_draft <= 0 || !drafter_set(&h->drafter) || room <= 0) return 0;
    int32_t k = h->max_draft < room ? h->max_draft : room;
    int32_t left = s->max_ctx - s->n_tokens;
    if (h->num_predict >= 0 && h->num_predict - s->n_gen < left) left = h->num_predict - s->n_gen;
    if (k > left - 1) k = left - 1;
    if (k <= 0) return 0;
    s->spec.cost = h->drafter.cost > 0 ? spec_cost_draft(&e->cost, h->drafter.cost) : 0;
    if (!e->p.spec_fixed && (k = spec_choose(&e->cost, &s->spec, plan, k)) <= 0) return 0;
    if (h->drafter.propose_batch) {
        e->dq[*n_q] = (hl_draft_query){.ctx = h->drafter.ctx, .choice = s->index, .tokens = s->tokens,
                                       .n_tokens = s->n_tokens, .draft = s->draft, .max_draft = k};
        e->dq_seq[(*n_q)++] = s;
        spec_step_add(plan, &s->spec, k);
        return k;
    }
    int32_t n = h->drafter.propose(h->drafter.ctx, s->index, s->tokens, s->n_tokens, s->draft, k);
    n = place_drafts(e, s, n < 0 ? 0 : n > k ? k : n, reserve);
    spec_step_add(plan, &s->spec, n);
    return n;
}

/* Answers the queued asks: one propose_batch call per group (same function
 * and group), in the order of each group's first ask; then places each
 * sequence's drafts (every decode's own token is placed by now). */
static void run_batched(hl_engine *e, int32_t n_q) {
    for (int32_t i = 0; i < n_q; i++) {
        if (!e->dq_seq[i]) continue;
        const hl_drafter *d = &e->dq_seq[i]->h->drafter;
        int32_t m = 0, first = 0;
        for (int32_t j = i; j < n_q; j++) {
            const hl_drafter *dj = e->dq_seq[j] ? &e->dq_seq[j]->h->drafter : NULL;
            if (!dj || dj->propose_batch != d->propose_batch || dj->group != d->group) continue;
            first |= e->dq_seq[j]->n_asks++ == 0;
            e->dq_tmp[m] = e->dq[j];
            e->dq_tmp[m].n_draft = 0;
            e->dq_idx[m++] = j;
        }
        int64_t t0 = hl_now_ns();
        d->propose_batch(d->group, e->dq_tmp, m);
        int32_t drafted = 0;
        for (int32_t t = 0; t < m; t++) drafted += e->dq_tmp[t].n_draft > 0 ? e->dq_tmp[t].n_draft : 0;
        /* what drafting costs here, for adaptive control: catch-ups count,
         * except a sequence's first (its whole prompt, paid once) */
        if (d->cost > 0 && !first) spec_cost_observe_draft(&e->cost, drafted, (double)(hl_now_ns() - t0));
        for (int32_t t = 0; t < m; t++) {
            int32_t j = e->dq_idx[t], n = e->dq_tmp[t].n_draft;
            seq *s = e->dq_seq[j];
            e->dq_seq[j] = NULL;
            place_drafts(e, s, n < 0 ? 0 : n > e->dq[j].max_draft ? e->dq[j].max_draft : n, 0);
        }
    }
}

/* Beside a forward pass on a device (e->side): every batch entry that will
 * sample has its logits processor compute the mask of its current state now
 * (hl_logits_proc_vt.prepare), so the sampling after the pass finds it done.
 * Only the first row of a drafting sequence: the masks after its drafts
 * depend on which drafts are accepted. The engine thread touches no
 * processor until the job is waited for. */
typedef struct prep_job {
    hl_engine *e;
    int32_t n_bseq;
} prep_job;

static void prepare_masks(void *arg) {
    prep_job *j = arg;
    uint64_t n = 0;
    for (int32_t i = 0; i < j->n_bseq; i++) {
        seq *s = j->e->bseq_owner[i];
        if (j->e->bseq_logit_row[i] < 0 || !s->proc || !s->proc->vt->prepare) continue;
        s->proc->vt->prepare(s->proc);
        n++;
    }
    if (n) atomic_fetch_add(&j->e->m_masks_prepared, n);
}

int sched_step(hl_engine *e) {
    /* cancellations take effect within one step */
    for (seq *s = e->running, *next; s; s = next) {
        next = s->next;
        if (atomic_load(&s->h->cancel)) finish(e, s, "cancel");
    }
    for (seq *s = e->waiting, *next; s; s = next) {
        next = s->next;
        if (atomic_load(&s->h->cancel)) finish(e, s, "cancel");
    }
    admit_waiting(e);
    if (!e->running) return 0;

    /* a snapshot, since preemption moves sequences between lists */
    int32_t n_snap = 0;
    for (seq *s = e->running; s && n_snap < e->p.max_seqs; s = s->next) e->snap[n_snap++] = s;
    int drafting = drafts_possible(e, n_snap);
    /* A decode has exactly its last sampled token pending (a sequence
     * recomputing after preemption is a prefill until it is back there).
     * Every decode's own token fits the budget (step_tokens >= max_seqs).
     * Drafts are speculation: they share what is left with the prefill
     * chunks, which keep up to half of it, so new prompts still progress. */
    int32_t n_dec = 0, prefill = 0;
    for (int32_t k = 0; k < n_snap; k++) {
        int32_t pending = e->snap[k]->n_tokens - e->snap[k]->n_computed;
        if (pending == 1 && !e->snap[k]->h->embed) n_dec++;
        else if (prefill < e->p.step_tokens) prefill += pending;
    }
    int32_t spare = e->p.step_tokens - n_dec;
    int32_t draft_room = spare - (prefill < spare / 2 ? prefill : spare / 2);
    /* what the step holds before drafts, for adaptive control: every decode's
     * row and token, and the prefill rows (cost, no tokens) */
    spec_step plan = {.rows = n_dec + (prefill < spare ? prefill : spare), .tokens = n_dec};
    int32_t n_tok = 0, n_bseq = 0, n_rows = 0, budget = e->p.step_tokens, n_prefill = 0, n_q = 0;
    /* pass 0: decodes, each its own token (its block first) and drafts */
    for (int32_t k = 0; k < n_snap; k++) {
        seq *s = e->snap[k];
        if (s->state != SEQ_RUNNING || s->n_tokens - s->n_computed != 1 || s->h->embed) continue;
        n_dec--;
        if (grow_blocks(e, s, s->n_computed + 1, 1, n_bseq) <= s->n_computed) {
            preempt(e, s); /* nobody else left to preempt */
            continue;
        }
        draft_room -= drafting ? plan_drafts(e, s, draft_room, n_dec, &plan, &n_q) : 0;
        e->bseq_owner[n_bseq++] = s;
    }
    if (n_q) run_batched(e, n_q);
    /* the decodes in the batch: own token then drafts, logits on each */
    int32_t n_dec_bseq = n_bseq;
    n_bseq = 0;
    for (int32_t k = 0; k < n_dec_bseq; k++) {
        seq *s = e->bseq_owner[k];
        int32_t nd = s->n_draft;
        e->btok[n_tok] = (hl_batch_token){.token = s->tokens[s->n_computed], .pos = s->n_computed, .seq = n_bseq,
                                          .logits = 1};
        for (int32_t i = 0; i < nd; i++)
            e->btok[n_tok + 1 + i] = (hl_batch_token){.token = s->draft[i], .pos = s->n_computed + 1 + i,
                                                      .seq = n_bseq, .logits = 1};
        e->bseq[n_bseq] = (hl_batch_seq){.blocks = s->blocks, .n_blocks = s->n_blocks};
        e->bseq_owner[n_bseq] = s;
        e->bseq_logit_row[n_bseq] = n_rows;
        n_rows += 1 + nd;
        n_bseq++;
        n_tok += 1 + nd;
        budget -= 1 + nd;
        if (nd) atomic_fetch_add(&e->m_draft_tokens, (uint64_t)nd);
    }
    /* pass 1: prefill chunks (prompts, and recomputation after preemption) */
    for (int32_t k = 0; k < n_snap && budget > 0; k++) {
        seq *s = e->snap[k];
        if (s->state != SEQ_RUNNING || in_batch(e, n_bseq, s)) continue;
        int32_t pending = s->n_tokens - s->n_computed;
        if (pending <= 1 && !s->h->embed) continue; /* a decode that could not be placed */
        s->n_draft = 0;
        if (s->h->embed) {
            /* an embedding's input is computed whole, in one pass (an encoder
             * attends to all of it), beside whatever else the step holds */
            if (pending > budget) continue;
            if (grow_blocks(e, s, s->n_tokens, 0, n_bseq) < s->n_tokens) continue;
            s->embed_row = n_rows;
            for (int32_t i = 0; i < pending; i++) {
                int w = sched_embed_wants(e, s, i);
                e->btok[n_tok + i] = (hl_batch_token){.token = s->tokens[i], .pos = i, .seq = n_bseq, .logits = w};
                n_rows += w;
            }
            e->bseq[n_bseq] = (hl_batch_seq){.blocks = s->blocks, .n_blocks = s->n_blocks};
            e->bseq_owner[n_bseq] = s;
            e->bseq_logit_row[n_bseq] = -1; /* nothing to sample */
            n_bseq++;
            n_tok += pending;
            budget -= pending;
            atomic_fetch_add(&e->m_prompt_tokens, (uint64_t)pending);
            n_prefill += pending;
            continue;
        }
        int32_t chunk = pending < budget ? pending : budget;
        chunk = grow_blocks(e, s, s->n_computed + chunk, 0, n_bseq) - s->n_computed;
        if (chunk <= 0) continue;
        int wants = s->n_computed + chunk == s->n_tokens;
        /* scoring the prompt: logits on every position, the last row also
         * samples when the chunk ends the prompt */
        int score = scoring(s) && ensure_rows(e, n_rows + chunk + (e->p.max_seqs - n_bseq));
        for (int32_t i = 0; i < chunk; i++)
            e->btok[n_tok + i] = (hl_batch_token){.token = s->tokens[s->n_computed + i], .pos = s->n_computed + i,
                                                  .seq = n_bseq, .logits = score || (wants && i == chunk - 1)};
        e->bseq[n_bseq] = (hl_batch_seq){.blocks = s->blocks, .n_blocks = s->n_blocks};
        e->bseq_owner[n_bseq] = s;
        if (score) {
            s->score_row = n_rows;
            n_rows += chunk;
            e->bseq_logit_row[n_bseq] = wants ? n_rows - 1 : -1;
        } else {
            e->bseq_logit_row[n_bseq] = wants ? n_rows++ : -1;
        }
        n_bseq++;
        n_tok += chunk;
        budget -= chunk;
        atomic_fetch_add(&e->m_prompt_tokens, (uint64_t)chunk);
        n_prefill += chunk;
    }
    if (n_tok == 0) {
        /* every running prefill is stuck on a full pool: make room */
        seq *v = pick_victim(e, 0, NULL);
        if (v && e->n_running > 1) preempt(e, v);
        else if (v) {
            ev_push_error(v->h, "the KV pool is too small for this request");
            finish(e, v, "cancel");
        }
        return 1;
    }
    hl_batch batch = {.tokens = e->btok, .n_tokens = n_tok, .seqs = e->bseq, .n_seqs = n_bseq};
    hl_err err = {0};
    int64_t t0 = hl_now_ns();
    prep_job prep = {e, n_bseq};
    if (e->side) hl_side_start(e->side, prepare_masks, &prep);
    int rc = hl_model_forward(e->fctx, e->kv, &batch, e->logits, &err);
    if (e->side) hl_side_wait(e->side); /* before anything touches a processor again */
    /* decode steps (drafts included) teach the cost model what a row costs */
    if (!rc && !n_prefill) spec_cost_observe(&e->cost, n_tok, (double)(hl_now_ns() - t0));
    atomic_fetch_add(&e->m_steps, 1);
    if (rc) {
        hl_error("engine: forward pass failed: %s", err.msg);
        for (int32_t i = 0; i < n_bseq; i++) {
            seq *s = e->bseq_owner[i];
            s->n_draft = 0;
            ev_push_error(s->h, err.msg);
            finish(e, s, "cancel");
        }
        return 1;
    }
    /* advance every sequence over what is verified: a prefill chunk, a
     * decode's own token; drafts wait for verification (sched_sample) */
    int32_t pos = 0;
    for (int32_t i = 0; i < n_bseq; i++) {
        seq *s = e->bseq_owner[i];
        int32_t chunk = 0;
        while (pos + chunk < n_tok && e->btok[pos + chunk].seq == i) chunk++;
        pos += chunk;
        if (s->score_row >= 0) {
            sched_score_prompt(e, s, s->score_row, s->n_computed, chunk);
            s->score_row = -1;
        }
        s->n_computed += chunk - s->n_draft;
        commit_full_blocks(e, s);
        if (s->embed_row >= 0) {
            /* an embedding is done once emitted. Finishing frees it, which is
             * safe here: sampling reads only the owners of rows to sample
             * (bseq_logit_row >= 0), and an embedding has none */
            sched_embed_emit(e, s, s->embed_row);
            s->embed_row = -1;
            finish(e, s, "stop");
        }
    }
    sched_sample(e, n_bseq);
    publish_gauges(e);
    if (e->step_hook) e->step_hook(e, e->step_hook_ctx);
    return 1;
}
