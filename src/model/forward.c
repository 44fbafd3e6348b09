/* The forward pass as the runner sees it: a model bound to one backend, or
 * split between two (partial offload, hl_forward_ctx_new_placed), KV
 * storage created through them, and one step over a validated batch. Which
 * backend runs is decided by whoever opened it; nothing here depends on it.
 *
 * A split is made of parts, each a backend with its own slice of the
 * model's plan: part 0 holds the prologue (EMBED) and layers [0, L), part 1
 * layers [L, n_layer) and the epilogue (output norm, logits). The slices are
 * copies of the model's ops with their layer indices renumbered from 0, so
 * each backend sees an ordinary plan of fewer layers and keeps a KV pool of
 * just those layers. A step runs part 0 with x_out (the residual stream X
 * comes back to the host), then part 1 with x_in = that X (hl_step_io):
 * one generation path, one copy of n_tokens x n_embd floats at the
 * boundary. The KV handle the runner holds is part 0's pool; the other
 * parts' pools hang off the context, found by it. */
#include "model/model_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PARTS = 2, MAX_KVS = 8 };

typedef struct fwd_part {
    hl_backend *be;        /* borrowed */
    hl_plan plan;          /* a slice of the model's plan (ops and layer_ops owned) or the model's (sliced = 0) */
    int sliced;
    int32_t layer0;        /* first model layer of this part */
    hl_backend_prog *prog; /* owned (released through be) */
} fwd_part;

typedef struct fwd_kv {
    hl_kv_cache *pools[MAX_PARTS]; /* pools[0] is the handle */
} fwd_kv;

struct hl_forward_ctx {
    const hl_model *m;     /* borrowed */
    fwd_part parts[MAX_PARTS];
    int n_parts;
    int32_t max_tokens;
    float *x;              /* the boundary: X [max_tokens][n_embd] (splits only) */
    fwd_kv kvs[MAX_KVS];
    char name[128];
};

/* The slice of the model's plan for layers [l0, l1), with the prologue when
 * l0 == 0 and the epilogue when l1 == n_layer. */
static int slice_plan(const hl_plan *src, int32_t l0, int32_t l1, hl_plan *dst, hl_err *err) {
    *dst = *src;
    int with_pro = l0 == 0, with_epi = l1 == src->n_layer;
    int32_t o0 = with_pro ? 0 : src->layer_ops[l0], o1 = with_epi ? src->n_ops : src->layer_ops[l1];
    dst->n_layer = l1 - l0;
    dst->n_ops = o1 - o0;
    dst->kv.n_layer = l1 - l0;
    dst->weight_bytes = src->n_layer > 0 ? src->weight_bytes / (size_t)src->n_layer * (size_t)(l1 - l0) : 0;
    dst->ops = malloc((size_t)(dst->n_ops > 0 ? dst->n_ops : 1) * sizeof *dst->ops);
    dst->layer_ops = malloc((size_t)(dst->n_layer + 1) * sizeof *dst->layer_ops);
    if (!dst->ops || !dst->layer_ops) {
        free(dst->ops), free(dst->layer_ops);
        dst->ops = NULL, dst->layer_ops = NULL;
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    for (int32_t i = 0; i < dst->n_ops; i++) {
        dst->ops[i] = src->ops[o0 + i];
        if (dst->ops[i].layer >= 0) dst->ops[i].layer -= l0;
    }
    for (int32_t l = 0; l <= dst->n_layer; l++) dst->layer_ops[l] = src->layer_ops[l0 + l] - o0;
    if (!with_epi) /* the output rows never exist in this part */
        dst->bufs[HL_BUF_OUT_IN].width = dst->bufs[HL_BUF_OUT_NORM].width = dst->bufs[HL_BUF_LOGITS].width = 0;
    return 0;
}

static void ctx_free(hl_forward_ctx *c) {
    for (int i = 0; i < c->n_parts; i++) {
        fwd_part *p = &c->parts[i];
        if (p->prog) p->be->ops->release(p->be, p->prog);
        if (p->sliced) free(p->plan.ops), free(p->plan.layer_ops);
    }
    free(c->x);
    free(c);
}

int hl_forward_ctx_new_placed(hl_forward_ctx **out, const hl_model *m, const hl_forward_placement *pl, int32_t max_tokens,
                              hl_err *err) {
    *out = NULL;
    if (max_tokens <= 0 || max_tokens > (1 << 20))
        return hl_err_set(err, HL_EINVAL, "forward context: max_tokens %d out of range (1..%d)", max_tokens, 1 << 20);
    if (!pl || !pl->be) return hl_err_set(err, HL_EINVAL, "forward context: no backend");
    const hl_plan *plan = hl_model_plan_for(m, pl->n_ctx);
    int32_t n = plan->n_layer, on_be = pl->n_on_be < 0 || pl->n_on_be > n ? n : pl->n_on_be;
    hl_backend *only = !pl->first || on_be == n ? pl->be : on_be == 0 ? pl->first : NULL;
    hl_forward_ctx *c = calloc(1, sizeof *c);
    if (!c) return hl_err_set(err, HL_ENOMEM, "out of memory");
    c->m = m;
    c->max_tokens = max_tokens;
    int rc = 0;
    if (only) {
        c->n_parts = 1;
        c->parts[0] = (fwd_part){.be = only, .plan = *plan};
        snprintf(c->name, sizeof c->name, "%s", hl_backend_name(only));
    } else {
        c->n_parts = 2;
        c->parts[0] = (fwd_part){.be = pl->first, .sliced = 1, .layer0 = 0};
        c->parts[1] = (fwd_part){.be = pl->be, .sliced = 1, .layer0 = n - on_be};
        rc = slice_plan(plan, 0, n - on_be, &c->parts[0].plan, err);
        if (!rc) rc = slice_plan(plan, n - on_be, n, &c->parts[1].plan, err);
        if (!rc && !(c->x = malloc((size_t)max_tokens * (size_t)plan->n_embd * sizeof *c->x)))
            rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        snprintf(c->name, sizeof c->name, "%s (%d of %d layers, the rest on %s)", hl_backend_name(pl->be), on_be, n,
                 hl_backend_name(pl->first));
    }
    for (int i = 0; i < c->n_parts && !rc; i++) {
        fwd_part *p = &c->parts[i];
        rc = p->be->ops->supports(p->be, &p->plan, err);
        if (!rc) rc = p->be->ops->prepare(p->be, &p->plan, max_tokens, &p->prog, err);
    }
    if (rc) {
        ctx_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int hl_forward_ctx_new(hl_forward_ctx **out, const hl_model *m, hl_backend *be, int32_t max_tokens, hl_err *err) {
    return hl_forward_ctx_new_placed(out, m, &(hl_forward_placement){.be = be, .n_on_be = -1}, max_tokens, err);
}

void hl_forward_ctx_free(hl_forward_ctx *c) {
    if (c) ctx_free(c);
}

int32_t hl_forward_ctx_max_tokens(const hl_forward_ctx *c) { return c->max_tokens; }
const char *hl_forward_backend_name(const hl_forward_ctx *c) { return c->name; }

void hl_forward_memory(const hl_forward_ctx *c, hl_backend_mem *out) {
    const fwd_part *p = &c->parts[c->n_parts - 1];
    p->be->ops->memory(p->be, p->prog, out);
}

void hl_forward_gpu_share(const hl_forward_ctx *c, int32_t *gpu_layers, size_t *gpu_weight_bytes) {
    *gpu_layers = 0, *gpu_weight_bytes = 0;
    for (int i = 0; i < c->n_parts; i++) {
        const fwd_part *p = &c->parts[i];
        if (!hl_backend_is_gpu(p->be)) continue;
        hl_backend_mem mem = {0};
        p->be->ops->memory(p->be, p->prog, &mem);
        *gpu_layers += p->plan.n_layer;
        *gpu_weight_bytes += mem.weights;
    }
}

static fwd_kv *find_kv(hl_forward_ctx *c, const hl_kv_cache *kv) {
    for (int i = 0; kv && i < MAX_KVS; i++)
        if (c->kvs[i].pools[0] == kv) return &c->kvs[i];
    return NULL;
}

int hl_forward_kv_new(hl_forward_ctx *c, int32_t n_blocks, int32_t block_size, hl_type kv_type, hl_kv_cache **out,
                      hl_err *err) {
    *out = NULL;
    fwd_kv *slot = NULL;
    for (int i = 0; i < MAX_KVS && !slot; i++)
        if (!c->kvs[i].pools[0]) slot = &c->kvs[i];
    if (!slot) return hl_err_set(err, HL_ENOMEM, "forward context: more than %d KV pools", MAX_KVS);
    for (int i = 0; i < c->n_parts; i++) {
        fwd_part *p = &c->parts[i];
        hl_kv_params kp = hl_model_kv_params(c->m, n_blocks, block_size);
        kp.type = kv_type;
        kp.n_layer = p->plan.n_layer;
        int rc = p->be->ops->kv_new(p->be, &kp, &slot->pools[i], err);
        if (rc) {
            for (int j = 0; j < i; j++) c->parts[j].be->ops->kv_free(c->parts[j].be, slot->pools[j]);
            memset(slot, 0, sizeof *slot);
            return rc;
        }
    }
    *out = slot->pools[0];
    return 0;
}

void hl_forward_kv_free(hl_forward_ctx *c, hl_kv_cache *kv) {
    fwd_kv *k = find_kv(c, kv);
    if (!k) return;
    for (int i = 0; i < c->n_parts; i++) c->parts[i].be->ops->kv_free(c->parts[i].be, k->pools[i]);
    memset(k, 0, sizeof *k);
}

void hl_forward_kv_copy_block(hl_forward_ctx *c, hl_kv_cache *kv, int32_t dst, int32_t src) {
    fwd_kv *k = find_kv(c, kv);
    for (int i = 0; k && i < c->n_parts; i++) c->parts[i].be->ops->kv_copy_block(c->parts[i].be, k->pools[i], dst, src);
}

void hl_forward_kv_truncate(hl_forward_ctx *c, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks,
                            int32_t n_keep) {
    fwd_kv *k = find_kv(c, kv);
    for (int i = 0; k && i < c->n_parts; i++)
        c->parts[i].be->ops->kv_truncate(c->parts[i].be, k->pools[i], blocks, n_blocks, n_keep);
}

static int check_batch(const hl_forward_ctx *c, const hl_kv_cache *kv, const hl_batch *b, const float *logits,
                       hl_err *err) {
    const hl_model *m = c->m;
    if (b->n_tokens <= 0) return hl_err_set(err, HL_EINVAL, "empty batch");
    if (b->n_tokens > c->max_tokens)
        return hl_err_set(err, HL_ERANGE, "batch of %d tokens exceeds the forward context's %d", b->n_tokens,
                          c->max_tokens);
    const hl_kv_params *kp = hl_kv_get_params(kv);
    if (kp->n_layer != c->parts[0].plan.n_layer || kp->n_head_kv != m->hp.n_head_kv ||
        kp->head_dim_k != m->hp.head_dim_k || kp->head_dim_v != m->hp.head_dim_v)
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
        if (m->w.position_embd.data && bt->pos >= m->w.position_embd.ne1)
            return hl_err_set(err, HL_EINVAL, "position %d is beyond the model's %lld absolute positions", bt->pos,
                              (long long)m->w.position_embd.ne1);
        if (bt->logits) n_wanted++;
    }
    if (n_wanted > 0 && !logits) return hl_err_set(err, HL_EINVAL, "logits wanted but no output buffer given");
    return 0;
}

int hl_model_forward(hl_forward_ctx *c, hl_kv_cache *kv, const hl_batch *b, float *logits, hl_err *err) {
    int rc = check_batch(c, kv, b, logits, err);
    if (rc) return rc;
    fwd_kv *k = c->n_parts > 1 ? find_kv(c, kv) : NULL;
    if (c->n_parts > 1 && !k) return hl_err_set(err, HL_EINVAL, "the KV cache was not made by this forward context");
    for (int i = 0; i < c->n_parts && !rc; i++) {
        fwd_part *p = &c->parts[i];
        hl_step_io io = {.logits = i == c->n_parts - 1 ? logits : NULL, .x_in = i > 0 ? c->x : NULL,
                         .x_out = i < c->n_parts - 1 ? c->x : NULL};
        rc = p->be->ops->run(p->be, p->prog, k ? k->pools[i] : kv, b, &io, err);
    }
    return rc;
}
