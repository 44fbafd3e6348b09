/* One sequence on its own KV pool: prefix reuse across calls, chunked prompt
 * evaluation, the sampling loop with streaming detokenization and stops. */
#include "runner/session.h"
#include "base/clock.h"
#include "runner/kvcache.h"

#include <stdlib.h>
#include <string.h>

struct hl_session {
    const hl_loaded *lm; /* borrowed */
    int32_t num_ctx, n_batch, n_vocab, block_size;
    hl_pool *pool;
    hl_backend *be;
    hl_kv_cache *kv;
    hl_kvc kvc;
    hl_forward_ctx *fctx;
    int32_t *blocks;          /* block table, [max_blocks] */
    int32_t n_blocks, max_blocks;
    int32_t *tokens;          /* [num_ctx] tokens whose K/V are in the pool */
    int32_t n_past;
    hl_batch_token *btok;     /* [n_batch] */
    float *last_logits;       /* [n_vocab] */
};

hl_session_params hl_session_default_params(void) {
    return (hl_session_params){.n_threads = 0, .num_ctx = 4096, .n_batch = 512, .kv_type = HL_TYPE_F16};
}

int hl_session_new(hl_session **out, const hl_loaded *lm, const hl_session_params *p, hl_err *err) {
    *out = NULL;
    hl_session *s = calloc(1, sizeof *s);
    if (!s) return hl_err_set(err, HL_ENOMEM, "out of memory");
    const hl_hparams *hp = hl_model_hparams(lm->model);
    s->lm = lm;
    s->n_vocab = hp->n_vocab;
    s->num_ctx = p->num_ctx > 0 ? p->num_ctx : 4096;
    if (hp->n_ctx_train > 0 && s->num_ctx > hp->n_ctx_train) s->num_ctx = hp->n_ctx_train;
    s->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (s->n_batch > s->num_ctx) s->n_batch = s->num_ctx;
    s->pool = hl_pool_new(p->n_threads);
    if (!s->pool) {
        free(s);
        return hl_err_set(err, HL_ENOMEM, "cannot start the thread pool");
    }
    s->block_size = HL_KV_DEFAULT_BLOCK_SIZE;
    s->max_blocks = (s->num_ctx + s->block_size - 1) / s->block_size;
    int rc = hl_backend_open(&s->be, "cpu", s->pool, err);
    if (!rc) rc = hl_forward_ctx_new(&s->fctx, lm->model, s->be, s->n_batch, err);
    if (!rc) rc = hl_forward_kv_new(s->fctx, s->max_blocks, s->block_size, p->kv_type, &s->kv, err);
    if (!rc) rc = hl_kvc_init(&s->kvc, s->max_blocks, s->block_size, err);
    if (rc) {
        hl_session_free(s);
        return rc;
    }
    s->blocks = malloc((size_t)s->max_blocks * sizeof *s->blocks);
    s->tokens = malloc((size_t)s->num_ctx * sizeof *s->tokens);
    s->btok = malloc((size_t)s->n_batch * sizeof *s->btok);
    s->last_logits = malloc((size_t)s->n_vocab * sizeof *s->last_logits);
    if (!s->blocks || !s->tokens || !s->btok || !s->last_logits) {
        hl_session_free(s);
        return hl_err_set(err, HL_ENOMEM, "out of memory for a %d-token context", s->num_ctx);
    }
    *out = s;
    return HL_OK;
}

void hl_session_free(hl_session *s) {
    if (!s) return;
    if (s->fctx) hl_forward_kv_free(s->fctx, s->kv);
    hl_forward_ctx_free(s->fctx);
    hl_kvc_free(&s->kvc);
    hl_backend_free(s->be);
    hl_pool_free(s->pool);
    free(s->blocks);
    free(s->tokens);
    free(s->btok);
    free(s->last_logits);
    free(s);
}

int32_t hl_session_num_ctx(const hl_session *s) { return s->num_ctx; }
int32_t hl_session_n_threads(const hl_session *s) { return hl_pool_size(s->pool); }

const int32_t *hl_session_tokens(const hl_session *s, int32_t *n) {
    *n = s->n_past;
    return s->tokens;
}

/* Drops cached positions from n_keep on, releasing blocks no longer needed. */
static void truncate_to(hl_session *s, int32_t n_keep) {
    int32_t need = (n_keep + s->block_size - 1) / s->block_size;
    while (s->n_blocks > need) hl_kvc_release(&s->kvc, s->blocks[--s->n_blocks]);
    s->n_past = n_keep;
}

void hl_session_reset(hl_session *s) { truncate_to(s, 0); }

/* Evaluates n tokens at positions n_past.., in chunks; logits of every token
 * (all) or of the last one go to out (may be NULL). */
static int eval_tokens(hl_session *s, const int32_t *toks, size_t n, int all, float *out, hl_err *err) {
    if ((size_t)s->n_past + n > (size_t)s->num_ctx)
        return hl_err_set(err, HL_ERANGE, "%zu tokens do not fit in the context: %d of %d positions are used (raise num_ctx)",
                          n, s->n_past, s->num_ctx);
    size_t done = 0;
    while (done < n) {
        int32_t m = (int32_t)(n - done < (size_t)s->n_batch ? n - done : (size_t)s->n_batch);
        int32_t end = s->n_past + m;
        while (s->n_blocks * s->block_size < end) {
            int32_t b = hl_kvc_alloc(&s->kvc);
            if (b < 0) return hl_err_set(err, HL_ERANGE, "kv cache exhausted"); /* cannot happen: sized to num_ctx */
            s->blocks[s->n_blocks++] = b;
        }
        int last_chunk = done + (size_t)m == n;
        int every = all && out; /* rows for every token go straight to the caller */
        for (int32_t i = 0; i < m; i++) {
            s->btok[i] = (hl_batch_token){.token = toks[done + (size_t)i], .pos = s->n_past + i, .seq = 0,
                                          .logits = every || (last_chunk && i == m - 1)};
        }
        hl_batch_seq seq = {.blocks = s->blocks, .n_blocks = s->n_blocks};
        hl_batch batch = {.tokens = s->btok, .n_tokens = m, .seqs = &seq, .n_seqs = 1};
        float *dst = every ? out + done * (size_t)s->n_vocab : last_chunk ? (out ? out : s->last_logits) : NULL;
        int rc = hl_model_forward(s->fctx, s->kv, &batch, dst, err);
        if (rc) return rc;
        memcpy(s->tokens + s->n_past, toks + done, (size_t)m * sizeof *toks);
        s->n_past = end;
        done += (size_t)m;
    }
    if (out && n > 0 && all) memcpy(s->last_logits, out + (n - 1) * (size_t)s->n_vocab, (size_t)s->n_vocab * sizeof(float));
    else if (out && n > 0) memcpy(s->last_logits, out, (size_t)s->n_vocab * sizeof(float));
    return HL_OK;
}

int hl_session_eval(hl_session *s, const int32_t *tokens, size_t n, int all_logits, float *logits, hl_err *err) {
    return eval_tokens(s, tokens, n, all_logits, logits, err);
}

int hl_session_generate(hl_session *s, const int32_t *prompt, size_t n_prompt, const hl_gen_params *gp,
                        hl_gen_emit_fn emit, void *user, hl_gen_stats *stats, hl_err *err) {
    memset(stats, 0, sizeof *stats);
    stats->done_reason = "stop";
    if (n_prompt == 0) return hl_err_set(err, HL_EINVAL, "empty prompt");
    if (n_prompt >= (size_t)s->num_ctx)
        return hl_err_set(err, HL_ERANGE, "the prompt is %zu tokens but the context holds %d (raise num_ctx)",
                          n_prompt, s->num_ctx);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
            return hl_err_set(err, HL_EINVAL, "token id %d at prompt position %zu is outside the vocabulary (%d)",
                              prompt[i], i, s->n_vocab);

    /* reuse the cached prefix; re-evaluate at least the last prompt token */
    int32_t keep = 0;
    while (keep < s->n_past && (size_t)keep < n_prompt && s->tokens[keep] == prompt[keep]) keep++;
    if ((size_t)keep == n_prompt) keep--;
    truncate_to(s, keep);
    stats->prompt_cached = keep;

    hl_sampler *smp = NULL;
    hl_stop_matcher *stop = NULL;
    int rc = hl_sampler_new(&smp, &gp->sampling, s->n_vocab, err);
    if (!rc) rc = hl_stop_new(&stop, gp->stops, NULL, gp->n_stops, err);
    if (rc) goto done;
    for (size_t i = 0; i < n_prompt; i++) hl_sampler_accept(smp, prompt[i]);

    int64_t t0 = hl_now_ns();
    rc = eval_tokens(s, prompt + keep, n_prompt - (size_t)keep, 0, NULL, err);
    if (rc) goto done;
    int64_t t1 = hl_now_ns();
    stats->prompt_tokens = (int32_t)(n_prompt - (size_t)keep);
    stats->prompt_ns = t1 - t0;

    tok_stream ts;
    tok_stream_init(&ts, s->lm->tok, 0);
    size_t cap = tok_stream_bound(s->lm->tok) + 16;
    char *piece = malloc(cap);
    if (!piece) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto done;
    }
    int cancelled = 0, stopped = 0;
    for (;;) {
        if (gp->num_predict >= 0 && stats->gen_tokens >= gp->num_predict) {
            stats->done_reason = "length";
            break;
        }
        if (s->n_past >= s->num_ctx) {
            stats->done_reason = "length";
            break;
        }
        int32_t tok = hl_sampler_sample(smp, s->last_logits, NULL);
        if (tok_is_eog(s->lm->tok, tok)) break;
        hl_sampler_accept(smp, tok);
        stats->gen_tokens++;
        int n = tok_stream_push(&ts, tok, piece, cap);
        const char *emit_p = NULL;
        size_t emit_n = 0;
        if (n > 0) {
            int st = hl_stop_push(stop, piece, (size_t)n, &emit_p, &emit_n);
            if (emit_n && emit && emit(user, emit_p, emit_n)) cancelled = 1;
            if (st == 1) {
                stopped = 1;
                break;
            }
        }
        if (cancelled) break;
        rc = eval_tokens(s, &tok, 1, 0, NULL, err);
        if (rc) break;
    }
    if (!rc && !stopped && !cancelled) {
        int n = tok_stream_flush(&ts, piece, cap);
        const char *emit_p = NULL;
        size_t emit_n = 0;
        if (n > 0) hl_stop_push(stop, piece, (size_t)n, &emit_p, &emit_n);
        if (emit_n && emit) emit(user, emit_p, emit_n);
        hl_stop_flush(stop, &emit_p, &emit_n);
        if (emit_n && emit) emit(user, emit_p, emit_n);
    }
    if (cancelled) stats->done_reason = "cancel";
    free(piece);
    stats->gen_ns = hl_now_ns() - t1;
done:
    hl_stop_free(stop);
    hl_sampler_free(smp);
    return rc;
}
