/* Sampling after the forward pass: every batch entry that wants logits (a
 * decode, with or without drafts, or a prompt's last chunk) samples its next
 * token, and a drafting sequence verifies its drafts.
 *
 * The sequences are independent: each owns its sampler, logits processor,
 * detokenizer, stop matcher, scratch and result slots (seq.out_*), and reads
 * only its own logits rows. So they run in parallel on the engine's pool,
 * thread ith taking sequences ith, ith + nth, ...; within one sequence
 * verification is sequential. Nothing here depends on which thread ran a
 * sequence, so results stay batch-invariant. The results are then applied
 * on the engine thread in batch order: token events, rollback of rejected
 * drafts, prefix-cache commits, finishing.
 *
 * Verification of the drafts d_0..d_{k-1} of a sequence whose step computed
 * positions n .. n+k (its pending token, then the drafts), logits row i
 * predicting position n+1+i: for i = 0, 1, ...: sample x_i from row i (the
 * processor's mask first; x_0..x_{i-1} already accepted into the sampler's
 * penalty history and the processor); accept x_i into the sequence; if i < k
 * and x_i == d_i go on (row i+1 was computed with the right token at n+1+i),
 * otherwise stop: x_i is the correction, or the bonus token after k accepted
 * drafts. An end-of-generation token, a stop string, num_predict or the
 * context limit end the sequence at that token (the rest is rolled back
 * too). Each position samples once, exactly as a plain decode of the same
 * prefix would, so for drafts that depend only on the tokens the output (and
 * under a seed, the PRNG stream) is the undrafted one. */
#include "runner/engine_impl.h"
#include "base/clock.h"

typedef struct verify_ctx {
    hl_engine *e;
    seq **seqs;
    int32_t n;
} verify_ctx;

/* Detokenizes tok into the sequence's text slots; 1 when a stop string matched. */
static int push_text(hl_engine *e, seq *s, int32_t tok) {
    const char *emit = NULL;
    size_t n_emit = 0;
    int stopped = 0;
    int n = tok_stream_push(&s->ts, tok, s->piece, e->piece_cap);
    if (n > 0) stopped = hl_stop_push(s->stop, s->piece, (size_t)n, &emit, &n_emit) == 1;
    if (!emit) n_emit = 0;
    hl_buf_append(&s->out_text, emit, n_emit);
    s->out_len[s->n_out] = n_emit;
    return stopped;
}

/* One sequence's sampling and verification (on a pool thread). */
static void verify_seq(hl_engine *e, seq *s) {
    const hl_handle *h = s->h;
    const float *row = e->logits + (size_t)s->row * (size_t)e->n_vocab;
    s->n_out = s->n_match = 0;
    s->out_reason = NULL;
    hl_buf_reset(&s->out_text);
    if (h->num_predict == 0) { /* scoring only: nothing is generated */
        s->out_reason = "length";
        return;
    }
    for (int32_t i = 0; i <= s->n_draft; i++) {
        hl_token_logprobs *lp = h->logprobs ? &s->out_lp[s->n_out] : NULL;
        int32_t tok = hl_sampler_sample_masked(s->smp, row + (size_t)i * (size_t)e->n_vocab, s->proc, lp);
        if (!h->ignore_eos && tok_is_eog(e->lm->tok, tok)) {
            s->out_reason = "stop"; /* not part of the sequence: neither accepted nor emitted */
            break;
        }
        hl_sampler_accept(s->smp, tok);
        if (s->proc) s->proc->vt->accept(s->proc, tok);
        s->tokens[s->n_tokens++] = tok;
        s->out_tok[s->n_out] = tok;
        int stopped = push_text(e, s, tok);
        s->n_out++;
        int hit = i < s->n_draft && tok == s->draft[i];
        s->n_match += hit;
        if (stopped) s->out_reason = "stop";
        else if (h->num_predict >= 0 && s->n_gen + s->n_out >= h->num_predict) s->out_reason = "length";
        else if (s->n_tokens >= s->max_ctx) s->out_reason = "length";
        if (s->out_reason || !hit) break;
    }
}

static void verify_slice(void *arg, int ith, int nth) {
    verify_ctx *c = arg;
    for (int32_t i = ith; i < c->n; i += nth) verify_seq(c->e, c->seqs[i]);
}

/* The results of one sequence, on the engine thread. */
static void apply(hl_engine *e, seq *s) {
    if (!s->t_first) s->t_first = hl_now_ns();
    size_t off = 0;
    for (int32_t i = 0; i < s->n_out; i++) {
        /* out of memory for the text: the tokens still go out, without it */
        const char *text = s->out_text.oom || !s->out_text.data ? "" : s->out_text.data + off;
        size_t n = s->out_text.oom || !s->out_text.data ? 0 : s->out_len[i];
        off += n;
        ev_push_token(e, s, s->out_tok[i], text, n, s->out_lp ? &s->out_lp[i] : NULL);
    }
    s->n_gen += s->n_out;
    atomic_fetch_add(&e->m_gen_tokens, (uint64_t)s->n_out);
    if (s->n_draft > 0) {
        /* keep the pending token's position (already counted) and the drafts
         * that matched; the rest of the step's positions are dead */
        atomic_fetch_add(&e->m_draft_accepted, (uint64_t)s->n_match);
        spec_seq_update(&s->spec, s->n_draft, s->n_match);
        s->n_drafted += s->n_draft;
        s->n_accepted += s->n_match;
        seq_kv_truncate(e, s, s->n_computed + s->n_match);
        commit_full_blocks(e, s);
        s->n_draft = 0;
    }
    /* a drafter with a model of its own rolls its KV back to what was kept */
    if (s->h->drafter.verified && !s->out_reason)
        s->h->drafter.verified(s->h->drafter.ctx, s->index, s->tokens, s->n_tokens);
    s->row = -1;
    if (s->out_reason) finish(e, s, s->out_reason);
}

void sched_sample(hl_engine *e, int32_t n_bseq) {
    /* e->snap is free once the batch is built: it lists the sequences to sample */
    int32_t n = 0;
    for (int32_t i = 0; i < n_bseq; i++) {
        if (e->bseq_logit_row[i] < 0) continue;
        seq *s = e->bseq_owner[i];
        /* forks clone the sampler and processor before the first sample */
        if (s->index == 0 && s->h->n_choices > 1 && !s->forked) fork_children(e, s);
        s->row = e->bseq_logit_row[i];
        e->snap[n++] = s;
    }
    verify_ctx c = {.e = e, .seqs = e->snap, .n = n};
    if (n > 1 && hl_pool_size(e->pool) > 1) hl_pool_run(e->pool, verify_slice, &c);
    else verify_slice(&c, 0, 1);
    for (int32_t i = 0; i < n; i++) apply(e, e->snap[i]);
}
