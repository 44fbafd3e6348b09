/* The CPU backend's step: one parallel region (hl_pool_run) per batch. Fused
 * blocks (cpu_exec.h) run as a handful of stages separated by barriers, every
 * thread computing its own slice of each stage:
 *   - row stages (norms, residual adds, activation conversion) split tokens,
 *     always with the same split, so consecutive row stages need no barrier;
 *   - matmul stages split weight rows (hl_matmul_slice);
 *   - projection/rope/store splits heads; attention splits (tile, heads),
 *     a tile being consecutive tokens of one sequence (attn_tile.c).
 * Every value is computed by exactly one thread in an order that depends only
 * on its own token and sequence, so results do not depend on the batch's other
 * contents or on the thread count. Blocks that are not fused, and a prologue
 * or epilogue that is not, run op by op (cpu_ops.c) inside the same region.
 * Nothing is allocated here. */
#include "backend/cpu/cpu_exec.h"

#include "base/assert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */


/* Up to three matmuls that read the same input: the input is converted once
 * per distinct activation type; slot[i] names the buffer weight i reads. */
typedef struct act_group {
    const hl_tensor *w[3];
    int n;
    int slot[3];
} act_group;

static act_group group_of(const hl_tensor *a, const hl_tensor *b, const hl_tensor *c) {
    act_group g = {.w = {a, b, c}, .n = c ? 3 : b ? 2 : 1};
    for (int i = 0; i < g.n; i++) {
        g.slot[i] = i;
        for (int j = 0; j < i; j++)
            if (hl_matmul_act_type(g.w[j]->type) == hl_matmul_act_type(g.w[i]->type)) {
                g.slot[i] = g.slot[j];
                break;
            }
    }
    return g;
}

/* Converts rows [r0, r1) of x (stride ldx) for every distinct type in g. The
 * conversion of one row is independent of the others, so each thread converts
 * exactly the rows it produced, with no barrier in between. */
static void prep_rows(hl_backend_prog *c, const act_group *g, const float *x, int64_t ldx, int64_t r0, int64_t r1) {
    if (r1 <= r0) return;
    for (int i = 0; i < g->n; i++) {
        if (g->slot[i] != i) continue;
        const hl_tensor *w = g->w[i];
        size_t rs = hl_matmul_act_size(w->type, 1, w->ne0);
        hl_matmul_prepare(w->type, x + r0 * ldx, ldx, r1 - r0, w->ne0, (char *)c->xq[i] + (size_t)r0 * rs, 0, 1);
    }
}

static void mm_slice(hl_backend_prog *c, const act_group *g, int i, float *out, int64_t ldo, int64_t m, int ith,
                     int nth) {
    const hl_tensor *w = g->w[i];
    hl_matmul_slice(w->type, w->data, w->ne1, w->ne0, c->xq[g->slot[i]], m, out, ldo, ith, nth);
}

/* Elements per block of the activation format weight w wants (1 for F32). */
static int64_t act_block(const hl_tensor *w) {
    const hl_type_traits *tr = hl_type_get(hl_matmul_act_type(w->type));
    return tr ? (int64_t)tr->blck : 1;
}

/* Converts elements [j0, j1) of activation row t (x points at the row) into
 * row t of xq for weight w. The activation formats are sequences of
 * independent blocks, so a block-aligned span converts on its own into the
 * bytes it occupies in the whole row. */
static void prep_span(const hl_tensor *w, void *xq, const float *x, int64_t t, int64_t j0, int64_t j1) {
    if (j1 <= j0) return;
    hl_type at = hl_matmul_act_type(w->type);
    size_t row = hl_row_size(at, w->ne0), off = hl_row_size(at, j0);
    hl_matmul_prepare(w->type, x + j0, j1 - j0, 1, j1 - j0, (char *)xq + (size_t)t * row + off, 0, 1);
}

/* Heads per attention unit: a unit's output span must be whole activation
 * blocks of wo's input (0 when heads cannot be grouped that way). Among the
 * sizes that qualify, whole KV-head groups are preferred (each K and V row is
 * then converted once for all the heads that share it) as long as every
 * thread gets a unit; otherwise the smallest. */
static int32_t heads_per_unit(const hl_tensor *wo, int32_t hdv, int32_t nh, int32_t gqa, int64_t n_tiles, int nth) {
    int64_t blk = act_block(wo);
    int32_t smallest = 0;
    for (int32_t k = 1; k <= nh; k++) {
        if (nh % k != 0 || ((int64_t)k * hdv) % blk != 0) continue;
        if (!smallest) smallest = k;
        if (k % gqa == 0) return n_tiles * (nh / k) >= (int64_t)nth ? k : smallest;
    }
    return smallest;
}

/* Rows [j0, j1) of matmul i of the group for all m activation rows, on the
 * calling thread: lets a stage split work at head granularity itself. */
static void mm_rows(hl_backend_prog *c, const act_group *g, int i, int64_t j0, int64_t j1, float *out, int64_t ldo,
                    int64_t m) {
    const hl_tensor *w = g->w[i];
    if (j1 <= j0) return;
    hl_matmul_slice(w->type, (const char *)w->data + (size_t)j0 * w->row_bytes, j1 - j0, w->ne0, c->xq[g->slot[i]], m,
                    out + j0, ldo, 0, 1);
}

/* Rotates the first n_rot dims of one head by the token's angles (cs holds
 * cos, sin pairs). NORM rotates adjacent pairs, NEOX the two halves. */
void cpu_rope_head(float *x, const float *cs, int32_t n_rot, hl_rope_style style) {
    int32_t half = n_rot / 2;
    if (style == HL_ROPE_NORM) {
        for (int32_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * c - x1 * s;
            x[2 * i + 1] = x0 * s + x1 * c;
        }
    } else {
        for (int32_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c - x1 * s;
            x[i + half] = x0 * s + x1 * c;
        }
    }
}

/* The cos, sin pairs of one position's rope angles. */
void cpu_rope_angles(float *cs, int32_t pos, const double *inv_freq, int32_t half) {
    for (int32_t i = 0; i < half; i++) {
        double th = (double)pos * inv_freq[i];
        cs[2 * i] = (float)cos(th);
        cs[2 * i + 1] = (float)sin(th);
    }
}

/* Writes one head's K (which 0) or V (1) row of batch token t into its slot. */
void cpu_store_kv_row(hl_kv_cache *kv, int32_t layer, int which, const hl_batch *b, int64_t t, int32_t head,
                      const float *src, int32_t hd, const hl_vec_ops *vo) {
    const hl_kv_params *kp = hl_kv_get_params(kv);
    const hl_batch_token *bt = &b->tokens[t];
    const hl_batch_seq *seq = &b->seqs[bt->seq];
    const int32_t bs = kp->block_size;
    size_t slot = (size_t)seq->blocks[bt->pos / bs] * bs + (size_t)(bt->pos % bs);
    size_t hb = which ? hl_kv_head_bytes_v(kv) : hl_kv_head_bytes_k(kv);
    uint8_t *dst = (which ? hl_kv_layer_v(kv, layer) : hl_kv_layer_k(kv, layer)) + (slot * kp->n_head_kv + head) * hb;
    if (kp->type == HL_TYPE_Q8_0) hl_matmul_prepare(HL_TYPE_Q8_0, src, hd, 1, hd, dst, 0, 1);
    else vo->to_f16((hl_f16 *)dst, src, hd);
}

/* ---- the step ---- */

void cpu_sync(hl_backend_prog *c) {
    if (!c->serial) hl_pool_barrier(c->be->pool);
}

/* The FFN residual of a fused block is added by the next row stage (saving a
 * barrier); anything else that reads the residual stream first does it here,
 * for every row, then synchronizes. */
void cpu_flush_pending(hl_backend_prog *c, int ith, int nth) {
    if (c->pending_ffn < 0) return;
    const int64_t E = c->plan->n_embd;
    const hl_tensor *pn = c->blocks[c->pending_ffn].post_ffn_norm;
    float *x = c->buf[HL_BUF_X], *fo = c->buf[HL_BUF_FFN_OUT];
    int64_t r0, r1;
    cpu_split(c->batch->n_tokens, ith, nth, &r0, &r1);
    for (int64_t t = r0; t < r1; t++) {
        if (pn) c->vo->rmsnorm(fo + t * E, fo + t * E, pn->data, E, c->blocks[c->pending_ffn].eps);
        c->vo->add(x + t * E, fo + t * E, E);
    }
    cpu_sync(c);
    c->pending_ffn = -1;
}

/* Embeddings of this thread's tokens, and each token's rope angles for every
 * table the fused blocks use. */
static void fused_prologue(hl_backend_prog *c, const hl_op *embed, int64_t r0, int64_t r1) {
    const hl_tensor *te = embed->w;
    const int64_t E = c->plan->n_embd;
    const int32_t half = c->n_rot / 2;
    float *x = c->buf[HL_BUF_X];
    for (int64_t t = r0; t < r1; t++) {
        const hl_batch_token *bt = &c->batch->tokens[t];
        hl_dequantize(te->type, (const char *)te->data + (size_t)bt->token * te->row_bytes, x + t * E, E);
        if (embed->p.embed.scale != 1.0f) c->vo->scale(x + t * E, embed->p.embed.scale, E);
        for (int i = 0; i < c->n_rope_tables; i++)
            cpu_rope_angles(c->rope_cs[i] + t * half * 2, bt->pos, c->rope_tables[i], half);
    }
}

/* One fused block (the op sequence of model/plan.c's block). */
static void fused_block(hl_backend_prog *c, int32_t l, int ith, int nth) {
    const cpu_block *L = &c->blocks[l];
    const hl_batch *b = c->batch;
    const hl_vec_ops *vo = c->vo;
    const int64_t T = b->n_tokens, E = c->plan->n_embd, F = L->gate->ne1;
    const int32_t nh = c->n_head, nkv = c->n_head_kv, hdk = c->head_dim_k, hdv = c->head_dim_v;
    const int32_t half = c->n_rot / 2, gqa = nh / nkv;
    const int64_t QD = (int64_t)nh * hdk, KD = (int64_t)nkv * hdk, VD = (int64_t)nkv * hdv, OD = (int64_t)nh * hdv;
    const float eps = L->eps;
    float *x = c->buf[HL_BUF_X], *attn_in = c->buf[HL_BUF_ATTN_IN], *q = c->buf[HL_BUF_Q], *k = c->buf[HL_BUF_K];
    float *v = c->buf[HL_BUF_V], *att = c->buf[HL_BUF_ATTN], *attn_out = c->buf[HL_BUF_ATTN_OUT];
    float *ffn_in = c->buf[HL_BUF_FFN_IN], *gate = c->buf[HL_BUF_GATE], *up = c->buf[HL_BUF_UP];
    float *ffn_act = c->buf[HL_BUF_FFN_ACT], *ffn_out = c->buf[HL_BUF_FFN_OUT];
    const float *rope = c->rope_cs[L->rope_table];
    int64_t r0, r1; /* this thread's tokens in every row stage */
    cpu_split(T, ith, nth, &r0, &r1);

    /* residual of the previous block's feed-forward, then attention norm and conversion for Q, K, V */
    act_group gqkv = group_of(L->wq, L->wk, L->wv);
    const cpu_block *P = c->pending_ffn >= 0 ? &c->blocks[c->pending_ffn] : NULL;
    for (int64_t t = r0; t < r1; t++) {
        if (P) {
            if (P->post_ffn_norm) vo->rmsnorm(ffn_out + t * E, ffn_out + t * E, P->post_ffn_norm->data, E, P->eps);
            vo->add(x + t * E, ffn_out + t * E, E);
        }
        vo->rmsnorm(attn_in + t * E, x + t * E, L->attn_norm->data, E, eps);
    }
    c->pending_ffn = -1;
    prep_rows(c, &gqkv, attn_in, E, r0, r1);
    cpu_sync(c);

    /* Q, K, V projections, split among threads at head granularity so that
     * each thread then finishes its own heads for every token: bias, q/k
     * norm, rope; K and V go into the paged cache. */
    int64_t u0, u1;
    cpu_split(nh + 2 * nkv, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1;) {
        int kind = u < nh ? 0 : u < nh + nkv ? 1 : 2;
        int64_t base = kind == 0 ? 0 : kind == 1 ? nh : nh + nkv;
        int64_t end = kind == 0 ? nh : kind == 1 ? nh + nkv : nh + 2 * nkv;
        if (end > u1) end = u1;
        int32_t hd = kind == 2 ? hdv : hdk;
        int64_t ld = kind == 0 ? QD : kind == 1 ? KD : VD;
        float *out = kind == 0 ? q : kind == 1 ? k : v;
        mm_rows(c, &gqkv, kind, (u - base) * hd, (end - base) * hd, out, ld, T);
        const hl_tensor *bias = kind == 0 ? L->bq : kind == 1 ? L->bk : L->bv;
        const hl_tensor *hnorm = kind == 0 ? L->q_norm : kind == 1 ? L->k_norm : NULL;
        for (int64_t hh = u - base; hh < end - base; hh++) {
            for (int64_t t = 0; t < T; t++) {
                float *xh = out + t * ld + hh * hd;
                if (bias) vo->add(xh, (const float *)bias->data + hh * hd, hd);
                if (hnorm) vo->rmsnorm(xh, xh, hnorm->data, hd, eps);
                if (kind < 2) cpu_rope_head(xh, rope + t * half * 2, c->n_rot, c->rope_style);
                if (kind > 0) cpu_store_kv_row(c->kv, l, kind - 1, b, t, (int32_t)hh, xh, hd, vo);
            }
        }
        u = end;
    }
    cpu_sync(c);

    /* attention, in units of whole activation blocks of the output
     * projection's input (usually one head), so that each thread converts
     * the part of the attention row it produced: no separate conversion
     * stage. Block-aligned spans convert independently of each other. */
    act_group go = group_of(L->wo, NULL, NULL);
    /* tiles of consecutive tokens of one sequence; heads per unit chosen
     * against the number of tiles whole KV-head groups would make */
    const int32_t gq = gqa < HL_ATTN_ROWS ? gqa : HL_ATTN_ROWS;
    int64_t n_tiles = 0;
    for (int64_t t0 = 0; t0 < T; t0 = cpu_attn_tile_end(b, t0, HL_ATTN_ROWS / gq)) n_tiles++;
    int32_t hpu = heads_per_unit(L->wo, hdv, nh, gqa, n_tiles, nth);
    const int32_t hu = hpu ? hpu : gqa, run = hu < gq ? hu : gq, tq = HL_ATTN_ROWS / run;
    float *scratch = c->attn + (size_t)ith * c->attn_floats;
    cpu_attn_job job = {.kv = c->kv, .layer = l, .b = b, .q = q, .ldq = QD, .out = att, .ldo = OD, .hdk = hdk,
                        .hdv = hdv, .window = L->window, .causal = 1, .scale = c->attn_scale,
                        .sinks = L->sinks};
    /* units (tile, heads), numbered in order and claimed one at a time from
     * a counter the threads share: in a causal prefill later tiles cost
     * more, and on a shared machine a thread can lose its core for a while,
     * so any fixed deal leaves one thread waiting at the barrier; a unit's
     * result does not depend on the thread that computes it. Fused blocks
     * take turns with two counters: thread 0 zeroes the next turn's one
     * here, where every thread is past the previous fused block's attention
     * (the barrier above) and none has reached the next one's (at least one
     * barrier below). */
    const int32_t turn = c->attn_turn++;
    _Atomic int64_t *claim = &c->attn_claim[(turn & 1) * 8];
    if (ith == 0) atomic_store_explicit(&c->attn_claim[((turn + 1) & 1) * 8], 0, memory_order_relaxed);
    int64_t unit = 0, mine = atomic_fetch_add_explicit(claim, 1, memory_order_relaxed);
    for (int64_t t0 = 0, t1; t0 < T; t0 = t1) {
        t1 = cpu_attn_tile_end(b, t0, tq);
        for (int32_t h0 = 0; h0 < nh; h0 += hu, unit++) {
            if (unit != mine) continue;
            mine = atomic_fetch_add_explicit(claim, 1, memory_order_relaxed);
            const int32_t h1 = h0 + hu;
            for (int32_t h = h0; h < h1;) { /* runs of heads that share a KV head */
                int32_t he = (h / gqa + 1) * gqa;
                if (he > h1) he = h1;
                if (he - h > run) he = h + run;
                job.t0 = t0, job.t1 = t1, job.h0 = h, job.h1 = he, job.kvh = h / gqa;
                cpu_attend_tile(vo, &job, scratch);
                h = he;
            }
            if (hpu)
                for (int64_t t = t0; t < t1; t++) prep_span(L->wo, c->xq[0], att + t * OD, t, (int64_t)h0 * hdv, (int64_t)h1 * hdv);
        }
    }
    if (!hpu) { /* heads do not align with activation blocks: convert whole rows */
        cpu_sync(c);
        prep_rows(c, &go, att, OD, r0, r1);
    }
    cpu_sync(c);

    /* output projection */
    mm_slice(c, &go, 0, attn_out, E, T, ith, nth);
    cpu_sync(c);

    /* residual, feed-forward norm, conversion for gate and up */
    act_group ggu = group_of(L->gate, L->up, NULL);
    for (int64_t t = r0; t < r1; t++) {
        if (L->post_attn_norm) vo->rmsnorm(attn_out + t * E, attn_out + t * E, L->post_attn_norm->data, E, eps);
        vo->add(x + t * E, attn_out + t * E, E);
        vo->rmsnorm(ffn_in + t * E, x + t * E, L->ffn_norm->data, E, eps);
    }
    prep_rows(c, &ggu, ffn_in, E, r0, r1);
    cpu_sync(c);

    /* gate and up projections, split in whole activation blocks of the
     * down projection's input so each thread applies the activation and
     * converts its own columns right away */
    act_group gd = group_of(L->down, NULL, NULL);
    gd.slot[0] = 2; /* gate/up still read slots 0 and 1 during this stage */
    int64_t blk = act_block(L->down);
    int64_t nb = F / blk;
    cpu_split(nb, ith, nth, &u0, &u1);
    int64_t j0 = u0 * blk, j1 = u1 * blk;
    mm_rows(c, &ggu, 0, j0, j1, gate, F, T);
    mm_rows(c, &ggu, 1, j0, j1, up, F, T);
    for (int64_t t = 0; t < T && j1 > j0; t++) {
        float *g = gate + t * F + j0, *a = ffn_act + t * F + j0;
        if (L->act == HL_ACT_GELU)
            vo->gelu_mul(a, g, up + t * F + j0, j1 - j0);
        else
            vo->silu_mul(a, g, up + t * F + j0, j1 - j0);
        prep_span(L->down, c->xq[2], ffn_act + t * F, t, j0, j1);
    }
    cpu_sync(c);

    /* down projection (added to the residual by the next row stage) */
    mm_slice(c, &gd, 0, ffn_out, E, T, ith, nth);
    cpu_sync(c);
    c->pending_ffn = l;
}

/* Gather + output norm + logits: the last residual add and the final norm
 * only for the rows that want logits, packed densely. */
static void fused_epilogue(hl_backend_prog *c, const hl_op *norm, const hl_op *mm, int ith, int nth) {
    const int64_t E = c->plan->n_embd;
    float *x = c->buf[HL_BUF_X], *ffn_out = c->buf[HL_BUF_FFN_OUT], *xout = c->buf[HL_BUF_OUT_NORM];
    const cpu_block *P = c->pending_ffn >= 0 ? &c->blocks[c->pending_ffn] : NULL;
    act_group gout = group_of(mm->w, NULL, NULL);
    int64_t r0, r1;
    cpu_split(c->batch->n_tokens, ith, nth, &r0, &r1);
    for (int64_t t = r0; t < r1; t++) {
        int32_t o = c->out_row[t];
        if (o < 0) continue;
        if (P) {
            if (P->post_ffn_norm) c->vo->rmsnorm(ffn_out + t * E, ffn_out + t * E, P->post_ffn_norm->data, E, P->eps);
            c->vo->add(x + t * E, ffn_out + t * E, E);
        }
        c->vo->rmsnorm(xout + (int64_t)o * E, x + t * E, norm->w->data, E, norm->p.norm.eps);
        prep_rows(c, &gout, xout, E, o, o + 1);
    }
    c->pending_ffn = -1;
    if (c->n_wanted == 0) return;
    cpu_sync(c);
    /* logits, straight into the caller's buffer */
    mm_slice(c, &gout, 0, c->logits, c->plan->n_vocab, c->n_wanted, ith, nth);
}

void cpu_step_thread(void *vctx, int ith, int nth) {
    hl_backend_prog *c = vctx;
    const hl_plan *p = c->plan;
    int64_t r0, r1;
    cpu_split(c->batch->n_tokens, ith, nth, &r0, &r1);
    /* every thread keeps its own copy of the pending flag: all of them take
     * the same path through the plan, so the copies agree */
    hl_backend_prog local = *c;
    hl_backend_prog *lc = &local;
    lc->pending_ffn = -1;
    lc->attn_turn = 0;
    int32_t first = p->layer_ops[0];
    if (lc->blocks[0].fused && first == 1 && p->ops[0].kind == HL_OP_EMBED && p->n_layer > 0) {
        fused_prologue(lc, &p->ops[0], r0, r1);
        /* a fused block starts with a row stage over this thread's own rows: no barrier needed */
    } else {
        for (int32_t i = 0; i < first; i++) cpu_op_exec(lc, &p->ops[i], ith, nth);
        if (lc->n_rope_tables > 0) { /* angles for the fused blocks further on */
            for (int64_t t = r0; t < r1; t++)
                for (int i = 0; i < lc->n_rope_tables; i++)
                    cpu_rope_angles(lc->rope_cs[i] + t * (lc->n_rot / 2) * 2, lc->batch->tokens[t].pos,
                                    lc->rope_tables[i], lc->n_rot / 2);
            cpu_sync(lc);
        }
    }
    for (int32_t l = 0; l < p->n_layer; l++) {
        if (lc->blocks[l].fused) {
            fused_block(lc, l, ith, nth);
            continue;
        }
        cpu_flush_pending(lc, ith, nth);
        for (int32_t i = p->layer_ops[l]; i < p->layer_ops[l + 1]; i++) cpu_op_exec(lc, &p->ops[i], ith, nth);
    }
    int32_t e0 = p->layer_ops[p->n_layer];
    if (lc->fused_epilogue) {
        fused_epilogue(lc, &p->ops[e0 + 1], &p->ops[e0 + 2], ith, nth);
        return;
    }
    cpu_flush_pending(lc, ith, nth);
    for (int32_t i = e0; i < p->n_ops; i++) cpu_op_exec(lc, &p->ops[i], ith, nth);
}
