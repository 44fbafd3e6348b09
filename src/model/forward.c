/* The generic forward pass over a batch, driven by the architecture
 * description, plus the scratch context it runs in.
 *
 * The whole step is ONE parallel region (hl_pool_run); stages are separated
 * by barriers and every thread computes its own slice of each stage:
 *   - row stages (norms, residual adds, activation conversion) split tokens,
 *     always with the same split, so consecutive row stages need no barrier;
 *   - matmul stages split weight rows (hl_matmul_slice);
 *   - rope/store splits (token, head) units, attention splits (token, head).
 * Every value is computed by exactly one thread in an order that depends only
 * on its own token and sequence, so results do not depend on the batch's other
 * contents or on the thread count. Nothing is allocated here after
 * hl_forward_ctx_new. */
#include "model/model_impl.h"

#include "base/assert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- context ---- */

static void *scratch_alloc(size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}

void hl_forward_ctx_free(hl_forward_ctx *c) {
    if (!c) return;
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->gate);
    free(c->up);
    free(c->rope);
    free(c->rope_swa);
    free(c->xout);
    free(c->scores);
    free(c->rows);
    for (int i = 0; i < 3; i++) free(c->xq[i]);
    free(c->out_row);
    free(c);
}

static size_t act_bytes(const hl_wt *w, int64_t m) {
    return w->data ? hl_matmul_act_size(w->type, m, w->ne0) : 0;
}

int hl_forward_ctx_new(hl_forward_ctx **out, const hl_model *m, int32_t max_tokens, int32_t max_threads,
                       hl_err *err) {
    *out = NULL;
    if (max_tokens <= 0 || max_tokens > (1 << 20))
        return hl_err_set(err, HL_EINVAL, "forward context: max_tokens %d out of range (1..%d)", max_tokens, 1 << 20);
    if (max_threads <= 0 || max_threads > 1024)
        return hl_err_set(err, HL_EINVAL, "forward context: max_threads %d out of range (1..1024)", max_threads);
    const hl_hparams *hp = &m->hp;
    size_t T = (size_t)max_tokens;
    hl_forward_ctx *c = calloc(1, sizeof *c);
    if (!c) return hl_err_set(err, HL_ENOMEM, "out of memory");
    c->max_tokens = max_tokens;
    c->max_threads = max_threads;
    c->n_embd = hp->n_embd;
    c->n_vocab = hp->n_vocab;
    size_t qd = (size_t)hp->n_head * hp->head_dim_k, kd = (size_t)hp->n_head_kv * hp->head_dim_k;
    size_t vd = (size_t)hp->n_head_kv * hp->head_dim_v, od = (size_t)hp->n_head * hp->head_dim_v;
    c->x = scratch_alloc(T * hp->n_embd * sizeof(float));
    c->xb = scratch_alloc(T * hp->n_embd * sizeof(float));
    c->q = scratch_alloc(T * qd * sizeof(float));
    c->k = scratch_alloc(T * kd * sizeof(float));
    c->v = scratch_alloc(T * vd * sizeof(float));
    c->att = scratch_alloc(T * od * sizeof(float));
    c->gate = scratch_alloc(T * hp->n_ff * sizeof(float));
    c->up = scratch_alloc(T * hp->n_ff * sizeof(float));
    c->rope = scratch_alloc(T * (size_t)(hp->n_rot / 2) * 2 * sizeof(float));
    c->rope_swa = scratch_alloc(T * (size_t)(hp->n_rot / 2) * 2 * sizeof(float));
    c->xout = scratch_alloc(T * hp->n_embd * sizeof(float));
    /* scores for a whole training context per thread (capped), so attention
     * normally takes the single-pass path */
    int64_t ns = hp->n_ctx_train < HL_ATTN_CHUNK ? HL_ATTN_CHUNK : hp->n_ctx_train;
    c->n_scores = (int32_t)(ns > HL_ATTN_MAX_SCORES ? HL_ATTN_MAX_SCORES : ns);
    c->scores = scratch_alloc((size_t)max_threads * HL_ATTN_GROUP * (size_t)c->n_scores * sizeof(float));
    c->rows = scratch_alloc((size_t)max_threads * (size_t)c->n_scores * sizeof *c->rows);
    c->out_row = calloc(T, sizeof *c->out_row);
    /* activation buffers: the largest conversion any matmul of any layer needs */
    size_t xs = act_bytes(&m->w.output, max_tokens);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const hl_layer_weights *L = &m->w.layers[l];
        const hl_wt *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            size_t b = act_bytes(ws[i], max_tokens);
            if (b > xs) xs = b;
        }
    }
    c->xq_size = xs;
    int ok = c->x && c->xb && c->q && c->k && c->v && c->att && c->gate && c->up && c->rope && c->rope_swa && c->xout &&
             c->scores && c->rows && c->out_row;
    for (int i = 0; i < 3; i++) ok = ok && (c->xq[i] = scratch_alloc(xs)) != NULL;
    if (!ok) {
        hl_forward_ctx_free(c);
        return hl_err_set(err, HL_ENOMEM, "out of memory allocating forward scratch for %d tokens", max_tokens);
    }
    *out = c;
    return 0;
}

int32_t hl_forward_ctx_max_tokens(const hl_forward_ctx *c) { return c->max_tokens; }
void hl_forward_ctx_set_threads(hl_forward_ctx *c, hl_threads_mode mode) { c->threads_mode = mode; }

/* ---- helpers ---- */

static inline void split(int64_t n, int ith, int nth, int64_t *i0, int64_t *i1) {
    *i0 = n * ith / nth;
    *i1 = n * (ith + 1) / nth;
}

/* Up to three matmuls that read the same input: the input is converted once
 * per distinct activation type; slot[i] names the buffer weight i reads. */
typedef struct act_group {
    const hl_wt *w[3];
    int n;
    int slot[3];
} act_group;

static act_group group_of(const hl_wt *a, const hl_wt *b, const hl_wt *c) {
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
static void prep_rows(hl_forward_ctx *c, const act_group *g, const float *x, int64_t ldx, int64_t r0, int64_t r1) {
    if (r1 <= r0) return;
    for (int i = 0; i < g->n; i++) {
        if (g->slot[i] != i) continue;
        const hl_wt *w = g->w[i];
        size_t rs = hl_matmul_act_size(w->type, 1, w->ne0);
        hl_matmul_prepare(w->type, x + r0 * ldx, ldx, r1 - r0, w->ne0, (char *)c->xq[i] + (size_t)r0 * rs, 0, 1);
    }
}

static void mm_slice(hl_forward_ctx *c, const act_group *g, int i, float *out, int64_t ldo, int64_t m, int ith,
                     int nth) {
    const hl_wt *w = g->w[i];
    hl_matmul_slice(w->type, w->data, w->ne1, w->ne0, c->xq[g->slot[i]], m, out, ldo, ith, nth);
}

/* Elements per block of the activation format weight w wants (1 for F32). */
static int64_t act_block(const hl_wt *w) {
    const hl_type_traits *tr = hl_type_get(hl_matmul_act_type(w->type));
    return tr ? (int64_t)tr->blck : 1;
}

/* Converts elements [j0, j1) of activation row t (x points at the row) into
 * row t of xq for weight w. The activation formats are sequences of
 * independent blocks, so a block-aligned span converts on its own into the
 * bytes it occupies in the whole row. */
static void prep_span(const hl_wt *w, void *xq, const float *x, int64_t t, int64_t j0, int64_t j1) {
    if (j1 <= j0) return;
    hl_type at = hl_matmul_act_type(w->type);
    size_t row = hl_row_size(at, w->ne0), off = hl_row_size(at, j0);
    hl_matmul_prepare(w->type, x + j0, j1 - j0, 1, j1 - j0, (char *)xq + (size_t)t * row + off, 0, 1);
}

/* Heads per attention unit: a unit's output span must be whole activation
 * blocks of wo's input (0 when heads cannot be grouped that way). Among the
 * sizes that qualify, whole KV-head groups are preferred (each K and V row is
 * then read once for all the heads that share it) as long as there are at
 * least two units per thread to balance; otherwise the smallest. */
static int32_t heads_per_unit(const hl_wt *wo, int32_t hdv, int32_t nh, int32_t gqa, int64_t n_tokens, int nth) {
    int64_t blk = act_block(wo);
    int32_t smallest = 0;
    for (int32_t k = 1; k <= nh; k++) {
        if (nh % k != 0 || ((int64_t)k * hdv) % blk != 0) continue;
        if (!smallest) smallest = k;
        if (k % gqa == 0) return n_tokens * (nh / k) >= 2 * (int64_t)nth ? k : smallest;
    }
    return smallest;
}

/* Rows [j0, j1) of matmul i of the group for all m activation rows, on the
 * calling thread: lets a stage split work at head granularity itself. */
static void mm_rows(hl_forward_ctx *c, const act_group *g, int i, int64_t j0, int64_t j1, float *out, int64_t ldo,
                    int64_t m) {
    const hl_wt *w = g->w[i];
    if (j1 <= j0) return;
    hl_matmul_slice(w->type, (const char *)w->data + (size_t)j0 * w->row_bytes, j1 - j0, w->ne0, c->xq[g->slot[i]], m,
                    out + j0, ldo, 0, 1);
}

/* Rotates the first n_rot dims of one head by the token's angles (cs holds
 * cos, sin pairs). NORM rotates adjacent pairs, NEOX the two halves. */
static void rope_head(float *x, const float *cs, int32_t n_rot, hl_rope_style style) {
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

/* Causal attention of nq query heads of one token that share KV head kvh,
 * over its sequence's cached positions p0..pos. Up to n_scores positions:
 * scores for all, one vectorized softmax per head, then the weighted sum of
 * values. Longer spans (beyond the model's training context): online softmax
 * over fixed chunks of HL_ATTN_CHUNK positions. Which path runs, and the
 * chunking, depend only on the positions, and the kernels give each head the
 * bits it would get alone, so a token's result never depends on the rest of
 * the batch or on how heads are grouped. rows holds n_scores row pointers,
 * scores nq * n_scores floats (this thread's scratch). */
typedef struct {
    const uint8_t *k, *v;  /* this layer's K and V storage */
    size_t khb, vhb;       /* bytes of one head's row */
    int q8;                /* rows are Q8_0 (else F16) */
} kv_view;

static void attend(const hl_vec_ops *vo, float *out, const float *qh, int32_t nq, const kv_view *kv,
                   const hl_batch_seq *seq, int32_t p0, int32_t pos, int32_t bs, int32_t n_kv, int32_t kvh,
                   int32_t hdk, int32_t hdv, float scale, float *scores, const void **rows, int32_t n_scores) {
    memset(out, 0, (size_t)nq * (size_t)hdv * sizeof(float));
    const uint8_t *kh = kv->k + (size_t)kvh * kv->khb, *vh = kv->v + (size_t)kvh * kv->vhb;
    const size_t kstride = (size_t)n_kv * kv->khb, vstride = (size_t)n_kv * kv->vhb;
    const int32_t chunk = pos - p0 + 1 <= n_scores ? pos - p0 + 1 : HL_ATTN_CHUNK;
    float mx[HL_ATTN_GROUP], sum[HL_ATTN_GROUP];
    for (int32_t h = 0; h < nq; h++) mx[h] = -INFINITY, sum[h] = 0.0f;
    for (int32_t c0 = p0; c0 <= pos; c0 += chunk) {
        const int32_t c1 = c0 + chunk <= pos + 1 ? c0 + chunk : pos + 1, n = c1 - c0;
        /* walk the block table incrementally: no division per position */
        int32_t bi = c0 / bs, si = c0 % bs;
        for (int32_t p = 0; p < n; p++) {
            rows[p] = kh + ((size_t)seq->blocks[bi] * bs + (size_t)si) * kstride;
            if (++si == bs) si = 0, bi++;
        }
        (kv->q8 ? vo->attn_scores_q8_0 : vo->attn_scores_f16)(rows, n, qh, hdk, nq, hdk, scale, scores, n_scores);
        for (int32_t h = 0; h < nq; h++) {
            float *sc = scores + (size_t)h * n_scores;
            if (chunk == pos - p0 + 1) {
                /* everything in one piece: plain softmax gives the weights */
                vo->softmax(sc, n);
                continue;
            }
            float cmax = -INFINITY, csum = 0.0f;
            for (int32_t p = 0; p < n; p++) cmax = sc[p] > cmax ? sc[p] : cmax;
            if (cmax > mx[h]) {
                float corr = expf(mx[h] - cmax); /* 0 on the first chunk */
                if (c0 > p0) vo->scale(out + (size_t)h * hdv, corr, hdv);
                sum[h] *= corr;
                mx[h] = cmax;
            }
            for (int32_t p = 0; p < n; p++) csum += sc[p] = expf(sc[p] - mx[h]);
            sum[h] += csum;
        }
        bi = c0 / bs, si = c0 % bs;
        for (int32_t p = 0; p < n; p++) {
            rows[p] = vh + ((size_t)seq->blocks[bi] * bs + (size_t)si) * vstride;
            if (++si == bs) si = 0, bi++;
        }
        (kv->q8 ? vo->attn_wsum_q8_0 : vo->attn_wsum_f16)(rows, n, scores, n_scores, nq, hdv, out, hdv);
    }
    if (chunk != pos - p0 + 1)
        for (int32_t h = 0; h < nq; h++) vo->scale(out + (size_t)h * hdv, 1.0f / sum[h], hdv);
}

/* ---- the step ---- */

/* A step this small runs on the calling thread alone: each barrier costs
 * microseconds (far more when a sibling thread is descheduled on a busy
 * machine) and a tiny model's stages are shorter than that. Results do not
 * depend on the thread count, so this is only a speed decision. */
#define HL_SERIAL_BYTES (1u << 20)

static void sync_threads(hl_forward_ctx *c) {
    if (!c->serial) hl_pool_barrier(c->pool);
}

static void forward_thread(void *vctx, int ith, int nth) {
    hl_forward_ctx *c = vctx;
    const hl_model *m = c->m;
    const hl_hparams *hp = &m->hp;
    const hl_weights *W = &m->w;
    const hl_batch *b = c->batch;
    const hl_vec_ops *vo = c->vo;
    const int64_t T = b->n_tokens, E = hp->n_embd, F = hp->n_ff;
    const int32_t nh = hp->n_head, nkv = hp->n_head_kv, hdk = hp->head_dim_k, hdv = hp->head_dim_v;
    const int32_t half = hp->n_rot / 2, gqa = nh / nkv, bs = hl_kv_block_size(c->kv);
    const int kv_q8 = hl_kv_get_params(c->kv)->type == HL_TYPE_Q8_0;
    const int64_t QD = (int64_t)nh * hdk, KD = (int64_t)nkv * hdk, VD = (int64_t)nkv * hdv, OD = (int64_t)nh * hdv;
    const float eps = hp->norm_eps;
    float *x = c->x, *xb = c->xb, *q = c->q, *k = c->k, *v = c->v, *att = c->att;
    int64_t r0, r1; /* this thread's tokens in every row stage */
    split(T, ith, nth, &r0, &r1);

    /* embeddings and each token's rope angles */
    for (int64_t t = r0; t < r1; t++) {
        const hl_batch_token *bt = &b->tokens[t];
        hl_dequantize(W->token_embd.type, (const char *)W->token_embd.data + (size_t)bt->token * W->token_embd.row_bytes,
                      x + t * E, E);
        if (hp->embd_scale != 1.0f) vo->scale(x + t * E, hp->embd_scale, E);
        float *cs = c->rope + t * half * 2, *cw = c->rope_swa + t * half * 2;
        for (int32_t i = 0; i < half; i++) {
            double th = (double)bt->pos * m->rope_inv_freq[i];
            cs[2 * i] = (float)cos(th);
            cs[2 * i + 1] = (float)sin(th);
            if (hp->n_swa > 0) {
                double tw = (double)bt->pos * m->rope_inv_freq_swa[i];
                cw[2 * i] = (float)cos(tw);
                cw[2 * i + 1] = (float)sin(tw);
            }
        }
    }

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const hl_layer_weights *L = &W->layers[l];
        uint8_t *kl = hl_kv_layer_k(c->kv, l), *vl = hl_kv_layer_v(c->kv, l);
        const kv_view kvv = {kl, vl, hl_kv_head_bytes_k(c->kv), hl_kv_head_bytes_v(c->kv), kv_q8};
        const int swa = m->layer_swa[l];
        const float *rope = swa ? c->rope_swa : c->rope;

        /* residual of the previous block's feed-forward, then attention norm and conversion for Q, K, V */
        act_group gqkv = group_of(&L->wq, &L->wk, &L->wv);
        for (int64_t t = r0; t < r1; t++) {
            if (l > 0) {
                const hl_wt *pn = &W->layers[l - 1].post_ffn_norm;
                if (pn->data) vo->rmsnorm(xb + t * E, xb + t * E, pn->data, E, eps);
                vo->add(x + t * E, xb + t * E, E);
            }
            vo->rmsnorm(xb + t * E, x + t * E, L->attn_norm.data, E, eps);
        }
        prep_rows(c, &gqkv, xb, E, r0, r1);
        sync_threads(c);

        /* Q, K, V projections, split among threads at head granularity so that
         * each thread then finishes its own heads for every token: bias, q/k
         * norm, rope; K and V go into the paged cache. */
        int64_t u0, u1;
        split(nh + 2 * nkv, ith, nth, &u0, &u1);
        for (int64_t u = u0; u < u1;) {
            int kind = u < nh ? 0 : u < nh + nkv ? 1 : 2;
            int64_t base = kind == 0 ? 0 : kind == 1 ? nh : nh + nkv;
            int64_t end = kind == 0 ? nh : kind == 1 ? nh + nkv : nh + 2 * nkv;
            if (end > u1) end = u1;
            int32_t hd = kind == 2 ? hdv : hdk;
            int64_t ld = kind == 0 ? QD : kind == 1 ? KD : VD;
            float *out = kind == 0 ? q : kind == 1 ? k : v;
            mm_rows(c, &gqkv, kind, (u - base) * hd, (end - base) * hd, out, ld, T);
            const hl_wt *bias = kind == 0 ? &L->bq : kind == 1 ? &L->bk : &L->bv;
            const hl_wt *hnorm = kind == 0 ? &L->q_norm : kind == 1 ? &L->k_norm : NULL;
            for (int64_t hh = u - base; hh < end - base; hh++) {
                for (int64_t t = 0; t < T; t++) {
                    float *xh = out + t * ld + hh * hd;
                    if (bias->data) vo->add(xh, (const float *)bias->data + hh * hd, hd);
                    if (hnorm && hnorm->data) vo->rmsnorm(xh, xh, hnorm->data, hd, eps);
                    if (kind < 2) rope_head(xh, rope + t * half * 2, hp->n_rot, hp->rope_style);
                    if (kind > 0) {
                        const hl_batch_token *bt = &b->tokens[t];
                        const hl_batch_seq *seq = &b->seqs[bt->seq];
                        size_t slot = (size_t)seq->blocks[bt->pos / bs] * bs + (size_t)(bt->pos % bs);
                        uint8_t *dst = (kind == 1 ? kl : vl) + (slot * nkv + hh) * (kind == 1 ? kvv.khb : kvv.vhb);
                        if (kv_q8) hl_matmul_prepare(HL_TYPE_Q8_0, xh, hd, 1, hd, dst, 0, 1);
                        else vo->to_f16((hl_f16 *)dst, xh, hd);
                    }
                }
            }
            u = end;
        }
        sync_threads(c);

        /* attention, in units of whole activation blocks of the output
         * projection's input (usually one head), so that each thread converts
         * the part of the attention row it produced: no separate conversion
         * stage. Block-aligned spans convert independently of each other. */
        act_group go = group_of(&L->wo, NULL, NULL);
        int32_t hpu = heads_per_unit(&L->wo, hdv, nh, gqa, T, nth);
        float *scores = c->scores + (size_t)ith * c->n_scores * HL_ATTN_GROUP;
        const void **rows = c->rows + (size_t)ith * c->n_scores;
        int64_t nu = nh / (hpu ? hpu : 1);
        /* units dealt round-robin: in a causal prefill later tokens cost more,
         * so contiguous ranges would leave the early threads idle */
        for (int64_t u = ith; u < T * nu; u += nth) {
            int64_t t = u / nu;
            int32_t h0 = (int32_t)(u % nu) * (hpu ? hpu : 1), h1 = h0 + (hpu ? hpu : 1);
            const hl_batch_token *bt = &b->tokens[t];
            /* sliding-window layers see the last n_swa positions, this one included */
            int32_t p0 = swa && bt->pos >= hp->n_swa ? bt->pos - hp->n_swa + 1 : 0;
            /* the unit's heads in runs that share a KV head */
            for (int32_t h = h0; h < h1;) {
                int32_t he = (h / gqa + 1) * gqa;
                if (he > h1) he = h1;
                if (he - h > HL_ATTN_GROUP) he = h + HL_ATTN_GROUP;
                attend(vo, att + t * OD + (int64_t)h * hdv, q + t * QD + (int64_t)h * hdk, he - h, &kvv,
                       &b->seqs[bt->seq], p0, bt->pos, bs, nkv, h / gqa, hdk, hdv, hp->attn_scale, scores, rows,
                       c->n_scores);
                h = he;
            }
            if (hpu) prep_span(&L->wo, c->xq[0], att + t * OD, t, (int64_t)h0 * hdv, (int64_t)h1 * hdv);
        }
        if (!hpu) { /* heads do not align with activation blocks: convert whole rows */
            sync_threads(c);
            prep_rows(c, &go, att, OD, r0, r1);
        }
        sync_threads(c);

        /* output projection */
        mm_slice(c, &go, 0, xb, E, T, ith, nth);
        sync_threads(c);

        /* residual, feed-forward norm, conversion for gate and up */
        act_group ggu = group_of(&L->ffn_gate, &L->ffn_up, NULL);
        for (int64_t t = r0; t < r1; t++) {
            if (L->post_attn_norm.data) vo->rmsnorm(xb + t * E, xb + t * E, L->post_attn_norm.data, E, eps);
            vo->add(x + t * E, xb + t * E, E);
            vo->rmsnorm(xb + t * E, x + t * E, L->ffn_norm.data, E, eps);
        }
        prep_rows(c, &ggu, xb, E, r0, r1);
        sync_threads(c);

        /* gate and up projections, split in whole activation blocks of the
         * down projection's input so each thread applies the activation and
         * converts its own columns right away */
        act_group gd = group_of(&L->ffn_down, NULL, NULL);
        gd.slot[0] = 2; /* gate/up still read slots 0 and 1 during this stage */
        int64_t blk = act_block(&L->ffn_down);
        int64_t nb = F / blk;
        split(nb, ith, nth, &u0, &u1);
        int64_t j0 = u0 * blk, j1 = u1 * blk;
        mm_rows(c, &ggu, 0, j0, j1, c->gate, F, T);
        mm_rows(c, &ggu, 1, j0, j1, c->up, F, T);
        for (int64_t t = 0; t < T && j1 > j0; t++) {
            float *g = c->gate + t * F + j0;
            if (hp->act == HL_ACT_GELU)
                vo->gelu_mul(g, g, c->up + t * F + j0, j1 - j0);
            else
                vo->silu_mul(g, g, c->up + t * F + j0, j1 - j0);
            prep_span(&L->ffn_down, c->xq[2], c->gate + t * F, t, j0, j1);
        }
        sync_threads(c);

        /* down projection (added to the residual by the next row stage) */
        mm_slice(c, &gd, 0, xb, E, T, ith, nth);
        sync_threads(c);
    }

    /* last residual, final norm of the rows that want logits (packed densely) */
    act_group gout = group_of(&W->output, NULL, NULL);
    const hl_wt *pn = &W->layers[hp->n_layer - 1].post_ffn_norm;
    for (int64_t t = r0; t < r1; t++) {
        int32_t o = c->out_row[t];
        if (o < 0) continue;
        if (pn->data) vo->rmsnorm(xb + t * E, xb + t * E, pn->data, E, eps);
        vo->add(x + t * E, xb + t * E, E);
        vo->rmsnorm(c->xout + (int64_t)o * E, x + t * E, W->output_norm.data, E, eps);
        prep_rows(c, &gout, c->xout, E, o, o + 1);
    }
    if (c->n_wanted == 0) return;
    sync_threads(c);

    /* logits, straight into the caller's buffer */
    mm_slice(c, &gout, 0, c->logits, hp->n_vocab, c->n_wanted, ith, nth);
}

static int check_batch(const hl_model *m, const hl_forward_ctx *c, hl_pool *pool, const hl_kv_cache *kv,
                       const hl_batch *b, const float *logits, hl_err *err) {
    if (b->n_tokens <= 0) return hl_err_set(err, HL_EINVAL, "empty batch");
    if (b->n_tokens > c->max_tokens)
        return hl_err_set(err, HL_ERANGE, "batch of %d tokens exceeds the forward context's %d", b->n_tokens,
                          c->max_tokens);
    if (hl_pool_size(pool) > c->max_threads)
        return hl_err_set(err, HL_ERANGE, "thread pool of %d exceeds the forward context's %d threads",
                          hl_pool_size(pool), c->max_threads);
    if (c->n_embd != m->hp.n_embd || c->n_vocab != m->hp.n_vocab)
        return hl_err_set(err, HL_EINVAL, "forward context was created for another model");
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

int hl_model_forward(const hl_model *m, hl_forward_ctx *c, hl_pool *pool, hl_kv_cache *kv, const hl_batch *b,
                     float *logits, hl_err *err) {
    int rc = check_batch(m, c, pool, kv, b, logits, err);
    if (rc) return rc;
    int32_t n_wanted = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) c->out_row[t] = b->tokens[t].logits ? n_wanted++ : -1;
    c->m = m;
    c->vo = hl_vec_ops_at(hl_cpu_simd());
    c->pool = pool;
    c->kv = kv;
    c->batch = b;
    c->logits = logits;
    c->n_wanted = n_wanted;
    size_t per_layer = m->weight_bytes / (size_t)m->hp.n_layer;
    size_t rows = b->n_tokens < 8 ? 1 : (size_t)b->n_tokens / 8;
    c->serial = hl_pool_size(pool) == 1 || c->threads_mode == HL_THREADS_SERIAL ||
                (c->threads_mode == HL_THREADS_AUTO && per_layer * rows < HL_SERIAL_BYTES);
    if (c->serial)
        forward_thread(c, 0, 1);
    else
        hl_pool_run(pool, forward_thread, c);
    c->batch = NULL;
    c->logits = NULL;
    return 0;
}
