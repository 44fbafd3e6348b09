/* The reference backend's ops: each op of the plan (backend.h) written out
 * as the plainest scalar loops that compute its definition, one token and
 * one head at a time. Matrix products go through backend/cpu's scalar oracle
 * (the integer sums the quantized formats define); norms, softmax and the
 * attention sums are taken in double and rounded once, so this is the most
 * accurate result we have, not a copy of any fast kernel's rounding.
 *
 * Row strides: buffer `in` has rows of n_in floats, `out` rows of n_out
 * floats, `in2` rows of n_in floats except for KV_STORE (V rows: n_head_kv *
 * head_dim_v). Rows are batch tokens, or the wanted tokens for the output
 * buffers. */
#include "backend/ref/ref_impl.h"

#include "backend/cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t rows_of(const hl_ref_io *io, hl_buf_id b) {
    return io->per_output[b] ? io->n_wanted : io->batch->n_tokens;
}

void hl_ref_op_scratch(const hl_op *op, int64_t rows, size_t *xq_bytes, int64_t *row_n) {
    if (op->kind == HL_OP_MATMUL && op->w && hl_matmul_supported(op->w->type)) {
        size_t b = hl_matmul_act_size(op->w->type, rows, op->n_in);
        if (b > *xq_bytes) *xq_bytes = b;
    }
    if (op->kind == HL_OP_EMBED && op->p.embed.pos && op->n_out > *row_n) *row_n = op->n_out;
    if (op->kind == HL_OP_ATTN) {
        int64_t n = op->p.attn.head_dim_k > op->p.attn.head_dim_v ? op->p.attn.head_dim_k : op->p.attn.head_dim_v;
        if (n > *row_n) *row_n = n;
    }
}

/* ---- elementwise helpers ---- */

static double act_fn(hl_act a, double cap, double x) {
    if (a == HL_ACT_SOFTCAP) return cap * tanh(x / cap);
    if (a == HL_ACT_SCALE) return x * cap;
    if (a == HL_ACT_GELU) {
        const double c = 0.79788456080286535588; /* sqrt(2 / pi) */
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
    }
    if (a == HL_ACT_GELU_ERF) return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
    return x / (1.0 + exp(-x));
}

double hl_ref_glu(hl_act a, double alpha, double limit, double gate, double up) {
    if (a != HL_ACT_SWIGLU_CLAMP) return act_fn(a, 0.0, gate) * up;
    /* gpt-oss: the gate clamped above, up on both sides, then (up + 1) times
     * the gate's sigmoid-weighted value */
    const double g = gate < limit ? gate : limit, u = up < -limit ? -limit : up > limit ? limit : up;
    return (u + 1.0) * g / (1.0 + exp(-alpha * g));
}

/* ---- ops ---- */

static int op_embed(const hl_op *op, const hl_ref_io *io, hl_ref_scratch *sc, hl_err *err) {
    const hl_tensor *w = op->w;
    float *out = io->buf[op->out];
    for (int32_t t = 0; t < io->batch->n_tokens; t++) {
        int32_t tok = io->batch->tokens[t].token;
        if (tok < 0 || tok >= w->ne1)
            return hl_err_set(err, HL_EINVAL, "token %d of the batch is id %d, outside %s's %lld rows", t, tok,
                              w->name, (long long)w->ne1);
        float *y = out + (int64_t)t * op->n_out;
        int rc = hl_dequantize(w->type, (const char *)w->data + (size_t)tok * w->row_bytes, y, op->n_out);
        if (rc) return hl_err_set(err, rc, "cannot dequantize a row of %s (%s)", w->name, hl_type_name(w->type));
        for (int64_t i = 0; i < op->n_out; i++) y[i] *= op->p.embed.scale;
        const hl_tensor *pt = op->p.embed.pos;
        if (pt || op->b) {
            int32_t pos = io->batch->tokens[t].pos;
            if (pt && (pos < 0 || pos >= pt->ne1))
                return hl_err_set(err, HL_EINVAL, "position %d of batch token %d is outside %s's %lld rows", pos, t,
                                  pt->name, (long long)pt->ne1);
            float *row = sc->row; /* n_embd floats (hl_ref_op_scratch) */
            if (pt) {
                rc = hl_dequantize(pt->type, (const char *)pt->data + (size_t)pos * pt->row_bytes, row, op->n_out);
                if (rc) return hl_err_set(err, rc, "cannot dequantize a row of %s", pt->name);
                for (int64_t i = 0; i < op->n_out; i++) y[i] += row[i];
            }
            if (op->b)
                for (int64_t i = 0; i < op->n_out; i++) y[i] += ((const float *)op->b->data)[i];
        }
    }
    return 0;
}

/* RMS: x / sqrt(mean(x^2) + eps); LayerNorm: (x - mean) / sqrt(var + eps);
 * then * w (+ b), per group. A weight as long as the group repeats for each
 * group (per-head norms); one as long as the row spans it. */
static int op_norm(const hl_op *op, const hl_ref_io *io, hl_err *err) {
    const int64_t n = op->n_in, g = op->p.norm.group;
    const float *w = op->w && op->w->data ? op->w->data : NULL;
    const float *b = op->b && op->b->data ? op->b->data : NULL;
    const int wg = op->w && op->w->ne0 == g, bg = op->b && op->b->ne0 == g;
    const float *in = io->buf[op->in];
    float *out = io->buf[op->out];
    for (int64_t r = 0; r < rows_of(io, op->in); r++) {
        const float *x = in + r * n;
        float *y = out + r * op->n_out;
        for (int64_t g0 = 0; g0 < n; g0 += g) {
            double mean = 0.0, ss = 0.0;
            if (op->p.norm.kind == HL_NORM_LAYER) {
                for (int64_t i = 0; i < g; i++) mean += x[g0 + i];
                mean /= (double)g;
            }
            for (int64_t i = 0; i < g; i++) ss += ((double)x[g0 + i] - mean) * ((double)x[g0 + i] - mean);
            double inv = 1.0 / sqrt(ss / (double)g + (double)op->p.norm.eps);
            for (int64_t i = 0; i < g; i++) {
                double v = ((double)x[g0 + i] - mean) * inv;
                if (w) v *= w[wg ? i : g0 + i];
                if (b) v += b[bg ? i : g0 + i];
                y[g0 + i] = (float)v;
            }
        }
    }
    return 0;
}

/* The scalar oracle: activations converted once to the weight type's
 * activation format, one oracle dot product per output element. */
static int op_matmul(const hl_op *op, const hl_ref_io *io, hl_ref_scratch *s, hl_err *err) {
    const hl_tensor *w = op->w;
    const int64_t m = rows_of(io, op->in);
    if (m == 0) return 0;
    if (hl_matmul_act_size(w->type, m, op->n_in) > s->xq_bytes)
        return hl_err_set(err, HL_ERANGE, "matmul of %lld rows needs more scratch than prepared", (long long)m);
    hl_matmul_prepare_at(HL_SIMD_SCALAR, w->type, io->buf[op->in], op->n_in, m, op->n_in, s->xq, 0, 1);
    float *out = io->buf[op->out];
    hl_matmul_slice_at(HL_SIMD_SCALAR, w->type, w->data, op->n_out, op->n_in, s->xq, m, out, op->n_out, 0, 1);
    if (op->b && op->b->data) {
        const float *b = op->b->data;
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < op->n_out; j++) out[r * op->n_out + j] += b[j];
    }
    return 0;
}

/* Angles pos * inv_freq[i] in double, cos/sin rounded to float, the rotation
 * in float: NORM pairs (x[2i], x[2i+1]), NEOX pairs (x[i], x[i + n_rot/2]). */
static int op_rope(const hl_op *op, const hl_ref_io *io, hl_err *err) {
    const int32_t half = op->p.rope.n_rot / 2, hd = op->p.rope.head_dim;
    float *buf = io->buf[op->in];
    if (op->out != HL_BUF_NONE && op->out != op->in) { /* not in place: rotate a copy */
        memcpy(io->buf[op->out], buf, (size_t)(rows_of(io, op->in) * op->n_in) * sizeof(float));
        buf = io->buf[op->out];
    }
    for (int32_t t = 0; t < io->batch->n_tokens; t++) {
        const double pos = io->batch->tokens[t].pos;
        for (int32_t h = 0; h < op->p.rope.n_head; h++) {
            float *x = buf + (int64_t)t * op->n_in + (int64_t)h * hd;
            for (int32_t i = 0; i < half; i++) {
                double th = pos * op->p.rope.inv_freq[i];
                const double ms = op->p.rope.mscale != 0.0f ? op->p.rope.mscale : 1.0;
                float c = (float)(cos(th) * ms), sn = (float)(sin(th) * ms);
                int32_t i0 = op->p.rope.style == HL_ROPE_NORM ? 2 * i : i;
                int32_t i1 = op->p.rope.style == HL_ROPE_NORM ? 2 * i + 1 : i + half;
                float x0 = x[i0], x1 = x[i1];
                x[i0] = x0 * c - x1 * sn;
                x[i1] = x0 * sn + x1 * c;
            }
        }
    }
    return 0;
}

/* Slot index (block * block_size + offset) of position pos of a sequence. */
static int slot_of(const hl_ref_io *io, int32_t seq, int32_t pos, size_t *slot, hl_err *err) {
    const hl_batch *b = io->batch;
    const int32_t bs = hl_kv_block_size(io->kv), nb = hl_kv_n_blocks(io->kv);
    if (seq < 0 || seq >= b->n_seqs)
        return hl_err_set(err, HL_EINVAL, "a token names sequence %d of the batch's %d", seq, b->n_seqs);
    const hl_batch_seq *sq = &b->seqs[seq];
    if (pos < 0 || pos / bs >= sq->n_blocks)
        return hl_err_set(err, HL_EINVAL, "position %d of sequence %d is outside its block table (%d blocks of %d)",
                          pos, seq, sq->n_blocks, bs);
    int32_t blk = sq->blocks[pos / bs];
    if (blk < 0 || blk >= nb)
        return hl_err_set(err, HL_EINVAL, "sequence %d: block table entry %d = %d outside the pool (%d blocks)", seq,
                          pos / bs, blk, nb);
    *slot = (size_t)blk * (size_t)bs + (size_t)(pos % bs);
    return 0;
}

/* One head's row into the pool: f16 per element, or Q8_0 blocks written by
 * the scalar activation quantizer (the bytes the CPU's KV rows have). */
static void store_row(hl_type t, uint8_t *dst, const float *x, int32_t n) {
    if (t == HL_TYPE_Q8_0) {
        hl_matmul_prepare_at(HL_SIMD_SCALAR, HL_TYPE_Q8_0, x, n, 1, n, dst, 0, 1);
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        hl_f16 h = hl_f32_to_f16(x[i]);
        memcpy(dst + 2 * (size_t)i, &h, 2);
    }
}

static int op_kv_store(const hl_op *op, const hl_ref_io *io, hl_err *err) {
    const int32_t nkv = op->p.kv.n_head_kv, hdk = op->p.kv.head_dim_k, hdv = op->p.kv.head_dim_v;
    const hl_type t = hl_kv_get_params(io->kv)->type;
    uint8_t *kl = hl_kv_layer_k(io->kv, op->layer), *vl = hl_kv_layer_v(io->kv, op->layer);
    const size_t khb = hl_kv_head_bytes_k(io->kv), vhb = hl_kv_head_bytes_v(io->kv);
    const float *k = io->buf[op->in], *v = io->buf[op->in2];
    for (int32_t tk = 0; tk < io->batch->n_tokens; tk++) {
        const hl_batch_token *bt = &io->batch->tokens[tk];
        size_t slot;
        int rc = slot_of(io, bt->seq, bt->pos, &slot, err);
        if (rc) return rc;
        for (int32_t h = 0; h < nkv; h++) {
            store_row(t, kl + (slot * nkv + h) * khb, k + (int64_t)tk * op->n_in + (int64_t)h * hdk, hdk);
            store_row(t, vl + (slot * nkv + h) * vhb, v + (int64_t)tk * nkv * hdv + (int64_t)h * hdv, hdv);
        }
    }
    return 0;
}

/* One query head attending: pass 0 finds the largest score, pass 1 sums
 * exp(score - max) and the weighted values, all in double. */
typedef struct attn_head {
    const hl_op *op;
    const hl_ref_io *io;
    hl_type kv_type;
    const uint8_t *k, *v;   /* this layer's K and V, at KV head kvh */
    size_t kstride, vstride; /* bytes per slot */
    const float *q;
    float *row;
    double *acc, mx, sum;
} attn_head;

static void read_row(hl_type t, const uint8_t *src, float *dst, int32_t n) {
    if (t == HL_TYPE_Q8_0) {
        hl_dequantize(HL_TYPE_Q8_0, src, dst, n);
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        hl_f16 h;
        memcpy(&h, src + 2 * (size_t)i, 2);
        dst[i] = hl_f16_to_f32(h);
    }
}

static int attn_visit(attn_head *a, int32_t seq, int32_t pos, int pass, hl_err *err) {
    const int32_t hdk = a->op->p.attn.head_dim_k, hdv = a->op->p.attn.head_dim_v;
    size_t slot;
    int rc = slot_of(a->io, seq, pos, &slot, err);
    if (rc) return rc;
    read_row(a->kv_type, a->k + slot * a->kstride, a->row, hdk);
    double dot = 0.0;
    for (int32_t i = 0; i < hdk; i++) dot += (double)a->q[i] * a->row[i];
    double s = (double)a->op->p.attn.scale * dot;
    if (a->op->p.attn.softcap > 0) s = a->op->p.attn.softcap * tanh(s / a->op->p.attn.softcap);
    if (pass == 0) {
        if (s > a->mx) a->mx = s;
        return 0;
    }
    double e = exp(s - a->mx);
    a->sum += e;
    read_row(a->kv_type, a->v + slot * a->vstride, a->row, hdv);
    for (int32_t i = 0; i < hdv; i++) a->acc[i] += e * a->row[i];
    return 0;
}

static int op_attn(const hl_op *op, const hl_ref_io *io, hl_ref_scratch *s, hl_err *err) {
    const int32_t nh = op->p.attn.n_head, nkv = op->p.attn.n_head_kv;
    const int32_t hdk = op->p.attn.head_dim_k, hdv = op->p.attn.head_dim_v, gqa = nh / nkv;
    if (s->row_n < hdk || s->row_n < hdv)
        return hl_err_set(err, HL_ERANGE, "attention heads of %d/%d need more scratch than prepared", hdk, hdv);
    const hl_batch *b = io->batch;
    const size_t khb = hl_kv_head_bytes_k(io->kv), vhb = hl_kv_head_bytes_v(io->kv);
    for (int32_t t = 0; t < b->n_tokens; t++) {
        const hl_batch_token *bt = &b->tokens[t];
        const int32_t w = op->p.attn.window;
        const int32_t p0 = w > 0 && bt->pos >= w ? bt->pos - w + 1 : 0;
        for (int32_t h = 0; h < nh; h++) {
            attn_head a = {
                .op = op, .io = io, .kv_type = hl_kv_get_params(io->kv)->type,
                .k = hl_kv_layer_k(io->kv, op->layer) + (size_t)(h / gqa) * khb,
                .v = hl_kv_layer_v(io->kv, op->layer) + (size_t)(h / gqa) * vhb,
                .kstride = (size_t)nkv * khb, .vstride = (size_t)nkv * vhb,
                .q = io->buf[op->in] + (int64_t)t * op->n_in + (int64_t)h * hdk,
                .row = s->row, .acc = s->acc, .mx = -INFINITY, .sum = 0.0,
            };
            memset(a.acc, 0, (size_t)hdv * sizeof *a.acc);
            for (int pass = 0; pass < 2; pass++) {
                /* causal: up to the token's own position; bidirectional: up
                 * to the last position of its sequence in this batch */
                int32_t end = bt->pos;
                if (!op->p.attn.causal)
                    for (int32_t u = 0; u < b->n_tokens; u++)
                        if (b->tokens[u].seq == bt->seq && b->tokens[u].pos > end) end = b->tokens[u].pos;
                for (int32_t p = p0; p <= end; p++) {
                    int rc = attn_visit(&a, bt->seq, p, pass, err);
                    if (rc) return rc;
                }
            }
            /* an attention sink: exp(sink - max) more in the denominator, no value */
            if (op->p.attn.sinks) a.sum += exp((double)((const float *)op->p.attn.sinks->data)[h] - a.mx);
            float *y = io->buf[op->out] + (int64_t)t * op->n_out + (int64_t)h * hdv;
            for (int32_t i = 0; i < hdv; i++) y[i] = (float)(a.acc[i] / a.sum);
        }
    }
    return 0;
}

static int op_elementwise(const hl_op *op, const hl_ref_io *io) {
    const float *x = io->buf[op->in], *x2 = op->kind == HL_OP_GLU ? io->buf[op->in2] : NULL;
    float *y = io->buf[op->out];
    const int64_t rows = rows_of(io, op->in), n = op->n_out;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) {
            int64_t ix = r * op->n_in + i, iy = r * n + i;
            switch (op->kind) {
            case HL_OP_GLU: y[iy] = (float)hl_ref_glu(op->p.act.act, op->p.act.alpha, op->p.act.limit, x[ix], x2[ix]); break;
            case HL_OP_ACT: y[iy] = (float)act_fn(op->p.act.act, op->p.act.cap, x[ix]); break;
            default: /* ADD */
                y[iy] += op->p.add.scale != 0.0f ? (float)((double)x[ix] * op->p.add.scale) : x[ix];
                break;
            }
        }
    return 0;
}

static int op_gather(const hl_op *op, const hl_ref_io *io) {
    int64_t r = 0;
    for (int32_t t = 0; t < io->batch->n_tokens; t++) {
        if (!io->batch->tokens[t].logits) continue;
        memcpy(io->buf[op->out] + r * op->n_out, io->buf[op->in] + (int64_t)t * op->n_in,
               (size_t)op->n_in * sizeof(float));
        r++;
    }
    return 0;
}

/* y[0..n) = w[0..n) . x for one row x (the scalar oracle, m = 1). */
static void mat_row(const hl_tensor *w, const void *data, int64_t n, int64_t k, const float *x, void *xq, float *y) {
    hl_matmul_prepare_at(HL_SIMD_SCALAR, w->type, x, k, 1, k, xq, 0, 1);
    hl_matmul_slice_at(HL_SIMD_SCALAR, w->type, data, n, k, xq, 1, y, n, 0, 1);
}

static const void *slice_of(const hl_tensor *w, int32_t e) {
    return (const char *)w->data + (size_t)e * (size_t)w->ne1 * w->row_bytes;
}

/* MOE by its definition, one token at a time: router, the k largest (ties:
 * the lower expert), softmax in double, each chosen expert's GLU FFN, the
 * weighted sum in double in rank order, the shared expert added last. */
static int op_moe(const hl_op *op, const hl_ref_io *io, hl_err *err) {
    const char *why = hl_moe_op_malformed(op);
    if (why) return hl_err_set(err, HL_ENOTSUP, "backend ref: op moe (layer %d): %s", op->layer, why);
    const int64_t E = op->n_in, F = op->p.moe.n_ff_exp, S = op->p.moe.n_ff_shexp, W = F > S ? F : S;
    const int32_t NE = op->p.moe.n_expert, K = op->p.moe.n_expert_used;
    const hl_tensor *R = op->p.moe.router, *G = op->p.moe.gate_exps, *U = op->p.moe.up_exps, *D = op->p.moe.down_exps;
    const int64_t wide = E > W ? E : W;
    size_t xb = 0;
    const hl_tensor *all[7] = {R, G, U, D, op->p.moe.gate_shexp, op->p.moe.up_shexp, op->p.moe.down_shexp};
    for (int i = 0; i < 7; i++)
        if (all[i] && hl_matmul_act_size(all[i]->type, 1, wide) > xb) xb = hl_matmul_act_size(all[i]->type, 1, wide);
    void *xq = malloc(xb);
    float *lg = malloc((size_t)NE * sizeof(float)), *g = malloc((size_t)W * sizeof(float));
    float *u = malloc((size_t)W * sizeof(float)), *y = malloc((size_t)E * sizeof(float));
    double *acc = malloc((size_t)E * sizeof(double));
    int32_t *sel = malloc((size_t)K * sizeof(int32_t));
    int rc = 0;
    if (!xq || !lg || !g || !u || !y || !acc || !sel) rc = hl_err_set(err, HL_ENOMEM, "backend ref: out of memory (moe)");
    for (int32_t t = 0; !rc && t < io->batch->n_tokens; t++) {
        const float *x = io->buf[op->in] + (int64_t)t * E;
        mat_row(R, R->data, NE, E, x, xq, lg);
        if (op->p.moe.router_b)
            for (int32_t e = 0; e < NE; e++) lg[e] += ((const float *)op->p.moe.router_b->data)[e];
        for (int32_t j = 0; j < K; j++) {
            int32_t best = -1;
            for (int32_t e = 0; e < NE; e++) {
                int used = 0;
                for (int32_t i = 0; i < j; i++) used |= sel[i] == e;
                if (!used && (best < 0 || lg[e] > lg[best])) best = e;
            }
            sel[j] = best;
        }
        double mx = lg[sel[0]], z = 0, zk = 0;
        for (int32_t e = 0; e < NE; e++) z += exp((double)lg[e] - mx);
        for (int32_t j = 0; j < K; j++) zk += exp((double)lg[sel[j]] - mx);
        for (int64_t i = 0; i < E; i++) acc[i] = 0;
        for (int32_t j = 0; j < K; j++) {
            const int32_t e = sel[j];
            const double p = exp((double)lg[e] - mx);
            const double wt = op->p.moe.gating == HL_MOE_TOPK_SOFTMAX ? p / zk
                              : op->p.moe.norm_topk                  ? (p / z) / (zk / z)
                                                                     : p / z;
            mat_row(G, slice_of(G, e), F, E, x, xq, g);
            mat_row(U, slice_of(U, e), F, E, x, xq, u);
            for (int64_t i = 0; i < F; i++) {
                double gi = g[i], ui = u[i];
                if (op->p.moe.gate_exps_b) gi += ((const float *)op->p.moe.gate_exps_b->data)[(int64_t)e * F + i];
                if (op->p.moe.up_exps_b) ui += ((const float *)op->p.moe.up_exps_b->data)[(int64_t)e * F + i];
                g[i] = (float)hl_ref_glu(op->p.moe.act, op->p.moe.alpha, op->p.moe.limit, gi, ui);
            }
            mat_row(D, slice_of(D, e), E, F, g, xq, y);
            for (int64_t i = 0; i < E; i++) {
                double yi = y[i];
                if (op->p.moe.down_exps_b) yi += ((const float *)op->p.moe.down_exps_b->data)[(int64_t)e * E + i];
                acc[i] += (double)(float)wt * yi;
            }
        }
        if (S > 0) {
            const hl_tensor *SG = op->p.moe.gate_shexp, *SU = op->p.moe.up_shexp, *SD = op->p.moe.down_shexp;
            mat_row(SG, SG->data, S, E, x, xq, g);
            mat_row(SU, SU->data, S, E, x, xq, u);
            for (int64_t i = 0; i < S; i++) g[i] = (float)hl_ref_glu(op->p.moe.act, op->p.moe.alpha, op->p.moe.limit, g[i], u[i]);
            mat_row(SD, SD->data, E, S, g, xq, y);
            double gs = 1.0;
            if (op->p.moe.shexp_gate) {
                double d = 0;
                for (int64_t i = 0; i < E; i++) d += (double)((const float *)op->p.moe.shexp_gate->data)[i] * x[i];
                gs = 1.0 / (1.0 + exp(-d));
            }
            for (int64_t i = 0; i < E; i++) acc[i] += gs * y[i];
        }
        float *o = io->buf[op->out] + (int64_t)t * op->n_out;
        for (int64_t i = 0; i < E; i++) o[i] = (float)acc[i];
    }
    free(xq), free(lg), free(g), free(u), free(y), free(acc), free(sel);
    return rc;
}

int hl_ref_exec(const hl_op *op, const hl_ref_io *io, hl_ref_scratch *s, hl_err *err) {
    switch (op->kind) {
    case HL_OP_EMBED: return op_embed(op, io, s, err);
    case HL_OP_NORM: return op_norm(op, io, err);
    case HL_OP_MATMUL: return op_matmul(op, io, s, err);
    case HL_OP_ROPE: return op_rope(op, io, err);
    case HL_OP_KV_STORE: return op_kv_store(op, io, err);
    case HL_OP_ATTN: return op_attn(op, io, s, err);
    case HL_OP_GLU:
    case HL_OP_ACT:
    case HL_OP_ADD: return op_elementwise(op, io);
    case HL_OP_GATHER: return op_gather(op, io);
    case HL_OP_MOE: return op_moe(op, io, err);
    default:
        return hl_err_set(err, HL_ENOTSUP, "backend ref: layer %d op %s is not supported", op->layer,
                          hl_op_name(op->kind));
    }
}
