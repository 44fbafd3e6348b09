/* One sequence on its own KV pool, evaluated in chunks of n_batch tokens by
 * hl_model_forward; logits go straight into the caller's buffer. */
#include "runner/eval.h"
#include "runner/kvcache.h"

#include <stdlib.h>
#include <string.h>

struct hl_eval {
    const hl_loaded *lm;      /* borrowed */
    int32_t n_ctx, n_batch, n_vocab, block_size;
    hl_kv_cache *kv;
    hl_kvc kvc;
    hl_forward_ctx *fctx;
    int32_t *blocks;          /* block table, [max_blocks] */
    int32_t n_blocks, max_blocks;
    int32_t n_past;
    hl_batch_token *btok;     /* [n_batch] */
};

hl_eval_params hl_eval_default_params(void) {
    return (hl_eval_params){.n_ctx = 4096, .backend = NULL, .n_batch = 512, .kv_type = HL_TYPE_F16};
}

int hl_eval_new(hl_eval **out, const hl_loaded *lm, const hl_eval_params *p, hl_err *err) {
    *out = NULL;
    hl_eval *ev = calloc(1, sizeof *ev);
    if (!ev) return hl_err_set(err, HL_ENOMEM, "out of memory");
    const hl_hparams *hp = hl_model_hparams(lm->model);
    ev->lm = lm;
    ev->n_vocab = hp->n_vocab;
    ev->n_ctx = p->n_ctx > 0 ? p->n_ctx : 4096;
    if (hp->n_ctx_train > 0 && ev->n_ctx > hp->n_ctx_train) ev->n_ctx = hp->n_ctx_train;
    ev->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (ev->n_batch > ev->n_ctx) ev->n_batch = ev->n_ctx;
    hl_kv_params kp = hl_model_kv_params(lm->model, 1, 0);
    kp.type = p->kv_type;
    ev->block_size = kp.block_size;
    ev->max_blocks = (ev->n_ctx + ev->block_size - 1) / ev->block_size;
    kp.n_blocks = ev->max_blocks;
    int rc = hl_kv_check_params(&kp, err);
    if (!rc && !p->backend) rc = hl_err_set(err, HL_EINVAL, "evaluation needs a backend");
    hl_forward_placement pl = {.be = p->backend, .n_on_be = -1, .n_ctx = ev->n_ctx};
    if (!rc) rc = hl_forward_ctx_new_placed(&ev->fctx, lm->model, &pl, ev->n_batch, err);
    if (!rc) rc = hl_forward_kv_new(ev->fctx, ev->max_blocks, ev->block_size, kp.type, &ev->kv, err);
    if (!rc) rc = hl_kvc_init(&ev->kvc, ev->max_blocks, ev->block_size, err);
    if (!rc) {
        ev->blocks = malloc((size_t)ev->max_blocks * sizeof *ev->blocks);
        ev->btok = malloc((size_t)ev->n_batch * sizeof *ev->btok);
        if (!ev->blocks || !ev->btok) rc = hl_err_set(err, HL_ENOMEM, "out of memory for a %d-token context", ev->n_ctx);
    }
    if (rc) {
        hl_eval_free(ev);
        return rc;
    }
    *out = ev;
    return HL_OK;
}

void hl_eval_free(hl_eval *ev) {
    if (!ev) return;
    if (ev->fctx) hl_forward_kv_free(ev->fctx, ev->kv);
    hl_forward_ctx_free(ev->fctx);
    hl_kvc_free(&ev->kvc);
    free(ev->blocks);
    free(ev->btok);
    free(ev);
}

int32_t hl_eval_n_past(const hl_eval *ev) { return ev->n_past; }

int hl_eval_append(hl_eval *ev, const int32_t *toks, size_t n, int all, float *out, hl_err *err) {
    if ((size_t)ev->n_past + n > (size_t)ev->n_ctx)
        return hl_err_set(err, HL_ERANGE, "%zu tokens do not fit in the context: %d of %d positions are used (raise num_ctx)",
                          n, ev->n_past, ev->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= ev->n_vocab)
            return hl_err_set(err, HL_EINVAL, "token id %d at position %zu is outside the vocabulary (%d tokens)", toks[i],
                              i, ev->n_vocab);
    size_t done = 0;
    while (done < n) {
        int32_t m = (int32_t)(n - done < (size_t)ev->n_batch ? n - done : (size_t)ev->n_batch);
        int32_t end = ev->n_past + m;
        while (ev->n_blocks * ev->block_size < end) {
            int32_t b = hl_kvc_alloc(&ev->kvc);
            if (b < 0) return hl_err_set(err, HL_ERANGE, "KV pool exhausted"); /* cannot happen: sized to n_ctx */
            ev->blocks[ev->n_blocks++] = b;
        }
        int last_chunk = done + (size_t)m == n;
        int every = all && out; /* rows for every token go straight to the caller */
        for (int32_t i = 0; i < m; i++)
            ev->btok[i] = (hl_batch_token){.token = toks[done + (size_t)i], .pos = ev->n_past + i, .seq = 0,
                                           .logits = every || (out && last_chunk && i == m - 1)};
        hl_batch_seq seq = {.blocks = ev->blocks, .n_blocks = ev->n_blocks};
        hl_batch batch = {.tokens = ev->btok, .n_tokens = m, .seqs = &seq, .n_seqs = 1};
        float *dst = every ? out + done * (size_t)ev->n_vocab : last_chunk ? out : NULL;
        int rc = hl_model_forward(ev->fctx, ev->kv, &batch, dst, err);
        if (rc) return rc;
        ev->n_past = end;
        done += (size_t)m;
    }
    return HL_OK;
}
