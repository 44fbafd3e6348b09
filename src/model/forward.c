/* The forward pass as the runner sees it: a model bound to a backend (the
 * backend's program for the model's plan), KV storage created by that
 * backend, and one step over a validated batch. Which backend runs is
 * decided by whoever opened it; nothing here depends on it. */
#include "model/model_impl.h"

#include <stdlib.h>

struct hl_forward_ctx {
    const hl_model *m;     /* borrowed */
    hl_backend *be;        /* borrowed */
    hl_backend_prog *prog; /* owned (released through be) */
    int32_t max_tokens;
};

int hl_forward_ctx_new(hl_forward_ctx **out, const hl_model *m, hl_backend *be, int32_t max_tokens, hl_err *err) {
    *out = NULL;
    if (max_tokens <= 0 || max_tokens > (1 << 20))
        return hl_err_set(err, HL_EINVAL, "forward context: max_tokens %d out of range (1..%d)", max_tokens, 1 << 20);
    int rc = be->ops->supports(be, &m->plan, err);
    if (rc) return rc;
    hl_forward_ctx *c = calloc(1, sizeof *c);
    if (!c) return hl_err_set(err, HL_ENOMEM, "out of memory");
    c->m = m;
    c->be = be;
    c->max_tokens = max_tokens;
    rc = be->ops->prepare(be, &m->plan, max_tokens, &c->prog, err);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void hl_forward_ctx_free(hl_forward_ctx *c) {
    if (!c) return;
    c->be->ops->release(c->be, c->prog);
    free(c);
}

int32_t hl_forward_ctx_max_tokens(const hl_forward_ctx *c) { return c->max_tokens; }
const char *hl_forward_backend_name(const hl_forward_ctx *c) { return c->be->ops->name; }
void hl_forward_memory(const hl_forward_ctx *c, hl_backend_mem *out) { c->be->ops->memory(c->be, c->prog, out); }

int hl_forward_kv_new(hl_forward_ctx *c, int32_t n_blocks, int32_t block_size, hl_type kv_type, hl_kv_cache **out,
                      hl_err *err) {
    hl_kv_params kp = hl_model_kv_params(c->m, n_blocks, block_size);
    kp.type = kv_type;
    return c->be->ops->kv_new(c->be, &kp, out, err);
}

void hl_forward_kv_free(hl_forward_ctx *c, hl_kv_cache *kv) {
    if (kv) c->be->ops->kv_free(c->be, kv);
}

void hl_forward_kv_copy_block(hl_forward_ctx *c, hl_kv_cache *kv, int32_t dst, int32_t src) {
    c->be->ops->kv_copy_block(c->be, kv, dst, src);
}

void hl_forward_kv_truncate(hl_forward_ctx *c, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks,
                            int32_t n_keep) {
    c->be->ops->kv_truncate(c->be, kv, blocks, n_blocks, n_keep);
}

static int check_batch(const hl_forward_ctx *c, const hl_kv_cache *kv, const hl_batch *b, const float *logits,
                       hl_err *err) {
    const hl_model *m = c->m;
    if (b->n_tokens <= 0) return hl_err_set(err, HL_EINVAL, "empty batch");
    if (b->n_tokens > c->max_tokens)
        return hl_err_set(err, HL_ERANGE, "batch of %d tokens exceeds the forward context's %d", b->n_tokens,
                          c->max_tokens);
    const hl_kv_params *kp = hl_kv_get_params(kv);
    if (kp->n_layer != m->hp.n_layer || kp->n_head_kv != m->hp.n_head_kv || kp->head_dim_k != m->hp.head_dim_k ||
        kp->head_dim_v != m->hp.head_dim_v)
        return hl_err_set(err, HL_EINVAL, "KV cache shape does not match the model");
    if (b->n_seqs <= 0 || !b->seqs) return hl_err_set(err, HL_EINVAL, "batch has no sequences");
    for (int32_t s = 0; s < b->n_seqs; s++) {
        const hl_batch_seq *sq = &b->seqs[s];
        if (sq->n_blocks < 0 || (sq->n_blocks > 0 && !sq->blocks))
            return hl_err_set(err, HL_EINVAL, "sequence %d has an invalid block table", s);
        for (int32_t i = 0; i < sq->n_blocks; i++)
            if (sq->blocks[i] < 0 || sq->blocks[i] >= kp->n_blocks)
                return hl_err_set(err, HL_EINVAL, "sequence %d: block table entry %d = %d outside the pool (%d blocks)",
                                  s, i, sq->blocks[i], kp->n_blocks);
    }
    int32_t n_wanted = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) {
        const hl_batch_token *bt = &b->tokens[t];
        if (bt->token < 0 || bt->token >= m->hp.n_vocab)
            return hl_err_set(err, HL_EINVAL, "token id %d out of range (vocabulary of %d)", bt->token, m->hp.n_vocab);
        if (bt->seq < 0 || bt->seq >= b->n_seqs)
            return hl_err_set(err, HL_EINVAL, "batch token %d names sequence %d of %d", t, bt->seq, b->n_seqs);
        if (bt->pos < 0 || bt->pos / kp->block_size >= b->seqs[bt->seq].n_blocks)
            return hl_err_set(err, HL_EINVAL, "position %d of sequence %d is outside its block table (%d blocks of %d)",
                              bt->pos, bt->seq, b->seqs[bt->seq].n_blocks, kp->block_size);
        if (bt->logits) n_wanted++;
    }
    if (n_wanted > 0 && !logits) return hl_err_set(err, HL_EINVAL, "logits wanted but no output buffer given");
    return 0;
}

int hl_model_forward(hl_forward_ctx *c, hl_kv_cache *kv, const hl_batch *b, float *logits, hl_err *err) {
    int rc = check_batch(c, kv, b, logits, err);
    if (rc) return rc;
    return c->be->ops->run(c->be, c->prog, kv, b, logits, err);
}
