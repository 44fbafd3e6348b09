/* The CPU backend's hl_backend table: what it supports, lowering a plan into
 * a program (each block matched against the fused form, cpu_exec.h), the
 * program's scratch, running a step on the process's thread pool, one op at
 * a time for the op harness, and host KV storage. Weights are read from the
 * file's mapping: nothing is copied or repacked. */
#include "backend/cpu/cpu_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A step this small runs on the calling thread alone: each barrier costs
 * microseconds (far more when a sibling thread is descheduled on a busy
 * machine) and a tiny model's stages are shorter than that. Results do not
 * depend on the thread count, so this is only a speed decision. */
#define HL_SERIAL_BYTES (1u << 20)

static int cpu_supports(hl_backend *be, const hl_plan *plan, hl_err *err) {
    for (int32_t i = 0; i < plan->n_ops; i++) {
        const hl_op *op = &plan->ops[i];
        const char *why = cpu_op_unsupported(op);
        if (!why) continue;
        if (op->w && op->kind == HL_OP_MATMUL && !hl_matmul_supported(op->w->type))
            return hl_err_set(err, HL_ENOTSUP, "backend %s cannot multiply tensor %s of type %s", be->ops->name,
                              op->w->name, hl_type_name(op->w->type));
        if (op->layer >= 0)
            return hl_err_set(err, HL_ENOTSUP, "backend %s cannot run layer %d op %s: %s is not supported",
                              be->ops->name, op->layer, hl_op_name(op->kind), why);
        return hl_err_set(err, HL_ENOTSUP, "backend %s cannot run op %s: %s is not supported", be->ops->name,
                          hl_op_name(op->kind), why);
    }
    return 0;
}

/* ---- lowering: match a block against the fused form ---- */

typedef struct matcher {
    const hl_op *op, *end;
} matcher;

/* The next op if it is of this kind and reads/writes these buffers. */
static const hl_op *take(matcher *mt, hl_op_kind kind, hl_buf_id in, hl_buf_id out) {
    if (mt->op == mt->end || mt->op->kind != kind || mt->op->in != in || mt->op->out != out) return NULL;
    return mt->op++;
}

static int rope_table_of(hl_backend_prog *c, const double *tab) {
    for (int i = 0; i < c->n_rope_tables; i++)
        if (c->rope_tables[i] == tab) return i;
    if (c->n_rope_tables == CPU_MAX_ROPE_TABLES - 1) return -1; /* the last one is the op path's */
    c->rope_tables[c->n_rope_tables] = tab;
    return c->n_rope_tables++;
}

/* Fills blk when ops [first, last) are model/plan.c's block with options the
 * fused step handles and dimensions that agree with the program's. */
static int match_block(hl_backend_prog *c, const hl_op *first, const hl_op *last, cpu_block *blk) {
    matcher mt = {first, last};
    const hl_op *o;
    memset(blk, 0, sizeof *blk);
    if (!(o = take(&mt, HL_OP_NORM, HL_BUF_X, HL_BUF_ATTN_IN)) || o->p.norm.kind != HL_NORM_RMS || o->b || !o->w ||
        o->p.norm.group != o->n_in)
        return 0;
    blk->attn_norm = o->w;
    blk->eps = o->p.norm.eps;
    const hl_op *mq = take(&mt, HL_OP_MATMUL, HL_BUF_ATTN_IN, HL_BUF_Q);
    const hl_op *mk = take(&mt, HL_OP_MATMUL, HL_BUF_ATTN_IN, HL_BUF_K);
    const hl_op *mv = take(&mt, HL_OP_MATMUL, HL_BUF_ATTN_IN, HL_BUF_V);
    if (!mq || !mk || !mv) return 0;
    blk->wq = mq->w, blk->bq = mq->b, blk->wk = mk->w, blk->bk = mk->b, blk->wv = mv->w, blk->bv = mv->b;
    if ((o = take(&mt, HL_OP_NORM, HL_BUF_Q, HL_BUF_Q))) {
        if (o->p.norm.kind != HL_NORM_RMS || o->b || !o->w || o->p.norm.group != c->head_dim_k || o->p.norm.eps != blk->eps)
            return 0;
        blk->q_norm = o->w;
    }
    if ((o = take(&mt, HL_OP_NORM, HL_BUF_K, HL_BUF_K))) {
        if (o->p.norm.kind != HL_NORM_RMS || o->b || !o->w || o->p.norm.group != c->head_dim_k || o->p.norm.eps != blk->eps)
            return 0;
        blk->k_norm = o->w;
    }
    const hl_op *rq = take(&mt, HL_OP_ROPE, HL_BUF_Q, HL_BUF_Q), *rk = take(&mt, HL_OP_ROPE, HL_BUF_K, HL_BUF_K);
    if (!rq || !rk || rq->p.rope.inv_freq != rk->p.rope.inv_freq || rq->p.rope.style != c->rope_style ||
        (rq->p.rope.mscale != 0.0f && rq->p.rope.mscale != 1.0f) || (rk->p.rope.mscale != 0.0f && rk->p.rope.mscale != 1.0f) ||
        rk->p.rope.style != c->rope_style || rq->p.rope.n_rot != c->n_rot || rk->p.rope.n_rot != c->n_rot ||
        rq->p.rope.head_dim != c->head_dim_k || rq->p.rope.n_head != c->n_head || rk->p.rope.n_head != c->n_head_kv)
        return 0;
    if ((blk->rope_table = rope_table_of(c, rq->p.rope.inv_freq)) < 0) return 0;
    o = take(&mt, HL_OP_KV_STORE, HL_BUF_K, HL_BUF_NONE);
    if (!o || o->in2 != HL_BUF_V || o->layer != first->layer) return 0;
    o = take(&mt, HL_OP_ATTN, HL_BUF_Q, HL_BUF_ATTN);
    if (!o || o->layer != first->layer || !o->p.attn.causal || o->p.attn.softcap > 0 || o->p.attn.n_head != c->n_head ||
        o->p.attn.n_head_kv != c->n_head_kv || o->p.attn.scale != c->attn_scale)
        return 0;
    blk->window = o->p.attn.window;
    blk->sinks = o->p.attn.sinks ? o->p.attn.sinks->data : NULL;
    if (!(o = take(&mt, HL_OP_MATMUL, HL_BUF_ATTN, HL_BUF_ATTN_OUT)) || o->b) return 0;
    blk->wo = o->w;
    if ((o = take(&mt, HL_OP_NORM, HL_BUF_ATTN_OUT, HL_BUF_ATTN_OUT))) {
        if (o->p.norm.kind != HL_NORM_RMS || o->b || !o->w || o->p.norm.group != o->n_in || o->p.norm.eps != blk->eps)
            return 0;
        blk->post_attn_norm = o->w;
    }
    if (!(o = take(&mt, HL_OP_ADD, HL_BUF_ATTN_OUT, HL_BUF_X)) || (o->p.add.scale != 0.0f && o->p.add.scale != 1.0f))
        return 0;
    if (!(o = take(&mt, HL_OP_NORM, HL_BUF_X, HL_BUF_FFN_IN)) || o->p.norm.kind != HL_NORM_RMS || o->b || !o->w ||
        o->p.norm.group != o->n_in || o->p.norm.eps != blk->eps)
        return 0;
    blk->ffn_norm = o->w;
    const hl_op *mg = take(&mt, HL_OP_MATMUL, HL_BUF_FFN_IN, HL_BUF_GATE);
    const hl_op *mu = take(&mt, HL_OP_MATMUL, HL_BUF_FFN_IN, HL_BUF_UP);
    if (!mg || !mu || mg->b || mu->b) return 0;
    blk->gate = mg->w, blk->up = mu->w;
    if (!(o = take(&mt, HL_OP_GLU, HL_BUF_GATE, HL_BUF_FFN_ACT)) || o->in2 != HL_BUF_UP ||
        (o->p.act.act != HL_ACT_SILU && o->p.act.act != HL_ACT_GELU))
        return 0;
    blk->act = o->p.act.act;
    if (!(o = take(&mt, HL_OP_MATMUL, HL_BUF_FFN_ACT, HL_BUF_FFN_OUT)) || o->b) return 0;
    blk->down = o->w;
    /* the fused step splits gate/up in whole activation blocks of down's input */
    const hl_type_traits *tr = hl_type_get(hl_matmul_act_type(blk->down->type));
    if (tr && blk->gate->ne1 % tr->blck) return 0;
    if ((o = take(&mt, HL_OP_NORM, HL_BUF_FFN_OUT, HL_BUF_FFN_OUT))) {
        if (o->p.norm.kind != HL_NORM_RMS || o->b || !o->w || o->p.norm.group != o->n_in || o->p.norm.eps != blk->eps)
            return 0;
        blk->post_ffn_norm = o->w;
    }
    if (!(o = take(&mt, HL_OP_ADD, HL_BUF_FFN_OUT, HL_BUF_X)) || (o->p.add.scale != 0.0f && o->p.add.scale != 1.0f))
        return 0;
    return mt.op == mt.end;
}

static void lower(hl_backend_prog *c) {
    const hl_plan *p = c->plan;
    /* the program's attention shape: from the first block's attention op */
    for (int32_t i = 0; i < p->n_ops; i++) {
        const hl_op *op = &p->ops[i];
        if (op->kind == HL_OP_ATTN && !c->n_head) {
            c->n_head = op->p.attn.n_head, c->n_head_kv = op->p.attn.n_head_kv;
            c->head_dim_k = op->p.attn.head_dim_k, c->head_dim_v = op->p.attn.head_dim_v;
            c->attn_scale = op->p.attn.scale;
        }
        if (op->kind == HL_OP_ROPE && !c->n_rot) c->n_rot = op->p.rope.n_rot, c->rope_style = op->p.rope.style;
    }
    for (int32_t l = 0; l < p->n_layer; l++) {
        cpu_block *b = &c->blocks[l];
        if (c->be->no_fuse || !c->n_head || !match_block(c, &p->ops[p->layer_ops[l]], &p->ops[p->layer_ops[l + 1]], b))
            memset(b, 0, sizeof *b);
        else b->fused = 1;
    }
    int32_t e0 = p->layer_ops[p->n_layer];
    const hl_op *g = &p->ops[e0];
    c->fused_epilogue = !c->be->no_fuse && p->n_ops - e0 == 3 && g[0].kind == HL_OP_GATHER && g[0].in == HL_BUF_X &&
                        g[0].out == HL_BUF_OUT_IN && g[1].kind == HL_OP_NORM && g[1].in == HL_BUF_OUT_IN &&
                        g[1].out == HL_BUF_OUT_NORM && g[1].p.norm.kind == HL_NORM_RMS && g[1].w && !g[1].b &&
                        g[1].p.norm.group == g[1].n_in && g[2].kind == HL_OP_MATMUL && g[2].in == HL_BUF_OUT_NORM &&
                        g[2].out == HL_BUF_LOGITS && !g[2].b;
}

/* ---- programs ---- */

static void *scratch_alloc(hl_backend_prog *c, size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    if (!n) n = 64;
    void *p = aligned_alloc(64, n);
    if (p) memset(p, 0, n);
    c->scratch_bytes += n;
    return p;
}

static void cpu_release(hl_backend *be, hl_backend_prog *c) {
    (void)be;
    if (!c) return;
    for (int i = 0; i < HL_BUF_COUNT; i++) free(c->buf[i]);
    for (int i = 0; i < CPU_MAX_ROPE_TABLES; i++) free(c->rope_cs[i]);
    free(c->attn);
    free((void *)c->attn_claim);
    for (int i = 0; i < 3; i++) free(c->xq[i]);
    free(c->out_row);
    cpu_moe_scratch_free(c->moe);
    free(c->blocks);
    free(c);
}

static int cpu_prepare(hl_backend *be, const hl_plan *plan, int32_t max_tokens, hl_backend_prog **out, hl_err *err) {
    *out = NULL;
    cpu_backend *cb = (cpu_backend *)be;
    if (max_tokens <= 0 || max_tokens > (1 << 20))
        return hl_err_set(err, HL_EINVAL, "forward context: max_tokens %d out of range (1..%d)", max_tokens, 1 << 20);
    int rc = cpu_supports(be, plan, err);
    if (rc) return rc;
    hl_backend_prog *c = calloc(1, sizeof *c);
    if (!c) return hl_err_set(err, HL_ENOMEM, "out of memory");
    c->plan = plan;
    c->be = cb;
    c->max_tokens = max_tokens;
    c->max_threads = hl_pool_size(cb->pool);
    c->blocks = calloc((size_t)(plan->n_layer > 0 ? plan->n_layer : 1), sizeof *c->blocks);
    int ok = c->blocks != NULL;
    if (ok) lower(c);
    size_t T = (size_t)max_tokens;
    for (int b = HL_BUF_NONE + 1; ok && b < HL_BUF_COUNT; b++) {
        if (b == HL_BUF_LOGITS || plan->bufs[b].width <= 0) continue;
        ok = (c->buf[b] = scratch_alloc(c, T * (size_t)plan->bufs[b].width * sizeof(float))) != NULL;
    }
    int32_t half = c->n_rot / 2;
    for (int i = 0; ok && i < CPU_MAX_ROPE_TABLES; i++)
        ok = (c->rope_cs[i] = scratch_alloc(c, T * (size_t)(half > 0 ? half : 1) * 2 * sizeof(float))) != NULL;
    /* attention tiles: a few blocks of keys and values per thread, whatever the context */
    int32_t hk = 1, hv = 1; /* the widest attention op (unfused blocks may differ from the fused ones) */
    for (int32_t i = 0; i < plan->n_ops; i++)
        if (plan->ops[i].kind == HL_OP_ATTN) {
            hk = plan->ops[i].p.attn.head_dim_k > hk ? plan->ops[i].p.attn.head_dim_k : hk;
            hv = plan->ops[i].p.attn.head_dim_v > hv ? plan->ops[i].p.attn.head_dim_v : hv;
        }
    c->attn_floats = cpu_attn_scratch_floats(hk, hv);
    if (ok) ok = (c->attn = scratch_alloc(c, (size_t)c->max_threads * c->attn_floats * sizeof(float))) != NULL;
    if (ok) ok = (c->attn_claim = scratch_alloc(c, 16 * sizeof *c->attn_claim)) != NULL;
    if (ok) ok = (c->out_row = scratch_alloc(c, T * sizeof *c->out_row)) != NULL;
    /* activation buffers: the largest conversion any matmul needs */
    size_t xs = 0;
    for (int32_t i = 0; i < plan->n_ops; i++) {
        const hl_op *op = &plan->ops[i];
        if (op->kind != HL_OP_MATMUL) continue;
        size_t b = hl_matmul_act_size(op->w->type, max_tokens, op->w->ne0);
        if (b > xs) xs = b;
    }
    c->xq_size = xs;
    for (int i = 0; ok && i < 3; i++) ok = (c->xq[i] = scratch_alloc(c, xs)) != NULL;
    if (ok) {
        const hl_op **moe = malloc((size_t)(plan->n_ops > 0 ? plan->n_ops : 1) * sizeof *moe);
        int32_t n_moe = 0;
        for (int32_t i = 0; moe && i < plan->n_ops; i++)
            if (plan->ops[i].kind == HL_OP_MOE) moe[n_moe++] = &plan->ops[i];
        ok = moe && cpu_moe_scratch_new(moe, n_moe, max_tokens, &c->moe, &c->scratch_bytes) == 0;
        free(moe);
    }
    if (!ok) {
        cpu_release(be, c);
        return hl_err_set(err, HL_ENOMEM, "out of memory allocating forward scratch for %d tokens", max_tokens);
    }
    *out = c;
    return 0;
}

static int cpu_run(hl_backend *be, hl_backend_prog *c, hl_kv_cache *kv, const hl_batch *b, const hl_step_io *io,
                   hl_err *err) {
    float *logits = io->logits;
    cpu_backend *cb = (cpu_backend *)be;
    if (b->n_tokens > c->max_tokens)
        return hl_err_set(err, HL_ERANGE, "batch of %d tokens exceeds the forward context's %d", b->n_tokens,
                          c->max_tokens);
    int32_t n_wanted = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) c->out_row[t] = b->tokens[t].logits ? n_wanted++ : -1;
    c->vo = hl_vec_ops_at(hl_cpu_simd());
    c->kv = kv;
    c->batch = b;
    c->logits = logits;
    c->n_wanted = n_wanted;
    c->pending_ffn = -1;
    size_t per_layer = c->plan->weight_bytes / (size_t)(c->plan->n_layer > 0 ? c->plan->n_layer : 1);
    size_t rows = b->n_tokens < 8 ? 1 : (size_t)b->n_tokens / 8;
    c->serial = hl_pool_size(cb->pool) == 1 || cb->threads == HL_THREADS_SERIAL ||
                (cb->threads == HL_THREADS_AUTO && per_layer * rows < HL_SERIAL_BYTES);
    const size_t x_bytes = (size_t)b->n_tokens * (size_t)c->plan->n_embd * sizeof(float);
    if (io->x_in) memcpy(c->buf[HL_BUF_X], io->x_in, x_bytes);
    atomic_store(&c->attn_claim[0], 0);
    atomic_store(&c->attn_claim[8], 0);
    if (c->serial) cpu_step_thread(c, 0, 1);
    else hl_pool_run(cb->pool, cpu_step_thread, c);
    if (io->x_out) memcpy(io->x_out, c->buf[HL_BUF_X], x_bytes);
    c->batch = NULL;
    c->logits = NULL;
    return 0;
}

/* ---- one op (the op harness) ---- */

typedef struct op_call {
    hl_backend_prog *prog;
    const hl_op *op;
} op_call;

static void op_thread(void *ctx, int ith, int nth) {
    op_call *oc = ctx;
    cpu_op_exec(oc->prog, oc->op, ith, nth);
}

static int cpu_run_op(hl_backend *be, const hl_op *op, const hl_op_io *io, hl_err *err) {
    cpu_backend *cb = (cpu_backend *)be;
    const char *why = cpu_op_unsupported(op);
    if (why) return hl_err_set(err, HL_ENOTSUP, "backend cpu cannot run op %s: %s is not supported", hl_op_name(op->kind), why);
    const hl_batch *b = io->batch;
    int32_t T = b->n_tokens, n_wanted = 0;
    /* a one-op program over the caller's buffers */
    hl_plan plan = {0};
    plan.bufs[op->in].width = op->n_in;
    plan.bufs[op->out].width = op->n_out;
    if (op->in2) plan.bufs[op->in2].width = op->n_in;
    for (int i = 0; i < HL_BUF_COUNT; i++) plan.bufs[i].per_output = i >= HL_BUF_OUT_IN;
    hl_backend_prog c = {.plan = &plan, .be = cb, .max_tokens = T, .max_threads = hl_pool_size(cb->pool)};
    for (int i = 0; i < HL_BUF_COUNT; i++) c.buf[i] = io->buf[i];
    c.logits = io->buf[HL_BUF_LOGITS];
    int32_t out_row[T > 0 ? T : 1];
    for (int32_t t = 0; t < T; t++) out_row[t] = b->tokens[t].logits ? n_wanted++ : -1;
    c.out_row = out_row;
    c.n_wanted = n_wanted;
    int rc = 0;
    if (op->kind == HL_OP_ATTN) {
        c.attn_floats = cpu_attn_scratch_floats(op->p.attn.head_dim_k, op->p.attn.head_dim_v);
        c.attn = calloc((size_t)c.max_threads * c.attn_floats, sizeof(float));
    }
    c.rope_cs[CPU_MAX_ROPE_TABLES - 1] = calloc((size_t)(T > 0 ? T : 1) * (size_t)(op->kind == HL_OP_ROPE ? op->p.rope.n_rot : 2), sizeof(float));
    if (op->kind == HL_OP_MATMUL) {
        int64_t m = op->in >= HL_BUF_OUT_IN ? n_wanted : T;
        c.xq[0] = calloc(1, hl_matmul_act_size(op->w->type, m > 0 ? m : 1, op->w->ne0));
    }
    if (op->kind == HL_OP_MOE && cpu_moe_scratch_new(&op, 1, T, &c.moe, NULL)) c.moe = NULL, rc = HL_ENOMEM;
    if (rc || (op->kind == HL_OP_ATTN && !c.attn) || !c.rope_cs[CPU_MAX_ROPE_TABLES - 1] || (op->kind == HL_OP_MATMUL && !c.xq[0]))
        rc = hl_err_set(err, HL_ENOMEM, "out of memory running op %s", hl_op_name(op->kind));
    if (!rc) {
        c.vo = hl_vec_ops_at(hl_cpu_simd());
        c.kv = io->kv;
        c.batch = b;
        c.pending_ffn = -1;
        c.serial = hl_pool_size(cb->pool) == 1 || cb->threads == HL_THREADS_SERIAL;
        op_call oc = {&c, op};
        if (c.serial) op_thread(&oc, 0, 1);
        else hl_pool_run(cb->pool, op_thread, &oc);
    }
    free(c.attn);
    free(c.rope_cs[CPU_MAX_ROPE_TABLES - 1]);
    free(c.xq[0]);
    cpu_moe_scratch_free(c.moe);
    return rc;
}

/* ---- KV storage and the rest ---- */

static size_t kv_pool_bytes(const hl_kv_params *p) { return hl_kv_block_bytes(p) * (size_t)p->n_blocks; }

static int cpu_kv_new(hl_backend *be, const hl_kv_params *p, hl_kv_cache **out, hl_err *err) {
    int rc = hl_host_kv_new(p, out, err);
    if (!rc) atomic_fetch_add(&((cpu_backend *)be)->kv_bytes, kv_pool_bytes(p));
    return rc;
}
static void cpu_kv_free(hl_backend *be, hl_kv_cache *kv) {
    if (!kv) return;
    atomic_fetch_sub(&((cpu_backend *)be)->kv_bytes, kv_pool_bytes(hl_kv_get_params(kv)));
    hl_kv_free(kv);
}
static void cpu_kv_copy_block(hl_backend *be, hl_kv_cache *kv, int32_t dst, int32_t src) {
    (void)be, hl_kv_copy_block(kv, dst, src);
}
static void cpu_kv_truncate(hl_backend *be, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep) {
    (void)be, hl_host_kv_truncate(kv, blocks, n_blocks, n_keep);
}

static void cpu_memory(hl_backend *be, const hl_backend_prog *prog, hl_backend_mem *out) {
    *out = (hl_backend_mem){.weights = 0, .scratch = prog ? prog->scratch_bytes : 0,
                            .kv = atomic_load(&((cpu_backend *)be)->kv_bytes), .where = "host"};
}

static void cpu_destroy(hl_backend *be) { free(be); }

static const hl_backend_ops cpu_ops = {
    .name = "cpu",
    .supports = cpu_supports,
    .prepare = cpu_prepare,
    .release = cpu_release,
    .run = cpu_run,
    .run_op = cpu_run_op,
    .kv_new = cpu_kv_new,
    .kv_free = cpu_kv_free,
    .kv_copy_block = cpu_kv_copy_block,
    .kv_truncate = cpu_kv_truncate,
    .memory = cpu_memory,
    .destroy = cpu_destroy,
};

int hl_backend_cpu_new(hl_backend **out, const hl_cpu_backend_params *p, hl_err *err) {
    *out = NULL;
    if (!p || !p->pool) return hl_err_set(err, HL_EINVAL, "the CPU backend needs the process's thread pool");
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return hl_err_set(err, HL_ENOMEM, "out of memory");
    cb->base.ops = &cpu_ops;
    cb->pool = p->pool;
    cb->threads = p->threads;
    cb->no_fuse = p->no_fuse;
    *out = &cb->base;
    return 0;
}
