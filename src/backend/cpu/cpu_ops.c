/* The CPU backend's ops one at a time: what runs a block that the fused step
 * does not recognize, a prologue or epilogue that is not the usual one, and
 * run_op (the cross-backend op harness). Every thread of the region calls
 * cpu_op_exec for the same op; work is split by rows, weight rows or (token,
 * head) units as the fused step splits it, and each op ends with a barrier.
 * The kernels and their order per value are the fused step's, so a block run
 * here gives the bits it gives fused. */
#include "backend/cpu/cpu_exec.h"

#include "base/half.h"

#include <math.h>
#include <string.h>

const char *cpu_op_unsupported(const hl_op *op) {
    switch (op->kind) {
    case HL_OP_EMBED: {
        const hl_type_traits *tr = hl_type_get(op->w->type);
        if (!tr || !tr->supported) return "its embedding table's type";
        if (op->p.embed.pos && op->p.embed.pos->type != HL_TYPE_F32 && op->p.embed.pos->type != HL_TYPE_F16)
            return "a position table that is not F32 or F16";
        if (op->b && op->b->type != HL_TYPE_F32) return "a token-type row that is not F32";
        return NULL;
    }
    case HL_OP_NORM:
        if ((op->w && op->w->type != HL_TYPE_F32) || (op->b && op->b->type != HL_TYPE_F32))
            return "a norm weight that is not F32";
        if (op->p.norm.group <= 0 || op->n_in % op->p.norm.group) return "a norm group that does not divide the row";
        return NULL;
    case HL_OP_MATMUL:
        if (!hl_matmul_supported(op->w->type)) return "its weight type";
        if (op->b && op->b->type != HL_TYPE_F32) return "a bias that is not F32";
        return NULL;
    case HL_OP_ATTN:
        if (op->p.attn.n_head % op->p.attn.n_head_kv) return "query heads that are not a multiple of the KV heads";
        if (op->p.attn.sinks && (op->p.attn.sinks->type != HL_TYPE_F32 || op->p.attn.sinks->ne0 != op->p.attn.n_head))
            return "attention sinks that are not one F32 per query head";
        return NULL;
    case HL_OP_GLU:
        if (op->p.act.act == HL_ACT_GELU_ERF) return "a gated exact-GELU feed-forward";
        if (op->p.act.act == HL_ACT_SWIGLU_CLAMP && !(op->p.act.limit > 0))
            return "a clamped SwiGLU whose limit is not positive";
        if (op->p.act.act != HL_ACT_SILU && op->p.act.act != HL_ACT_GELU && op->p.act.act != HL_ACT_SWIGLU_CLAMP)
            return "a gated activation it lacks";
        return NULL;
    case HL_OP_ACT:
        if (op->p.act.act == HL_ACT_SOFTCAP && !(op->p.act.cap > 0)) return "a softcap that is not positive";
        if (op->p.act.act != HL_ACT_SILU && op->p.act.act != HL_ACT_GELU && op->p.act.act != HL_ACT_SOFTCAP &&
            op->p.act.act != HL_ACT_SCALE && op->p.act.act != HL_ACT_GELU_ERF)
            return "an activation it lacks";
        return NULL;
    case HL_OP_ROPE:
    case HL_OP_KV_STORE:
    case HL_OP_ADD:
    case HL_OP_GATHER: return NULL;
    case HL_OP_MOE: return cpu_moe_unsupported(op);
    case HL_OP_COUNT: break;
    }
    return "an unknown op";
}

static float *buf_of(hl_backend_prog *c, hl_buf_id b) { return b == HL_BUF_LOGITS ? c->logits : c->buf[b]; }
static int64_t rows_of(const hl_backend_prog *c, hl_buf_id b) {
    return c->plan->bufs[b].per_output ? c->n_wanted : c->batch->n_tokens;
}

static void op_embed(hl_backend_prog *c, const hl_op *op, int64_t r0, int64_t r1) {
    const hl_tensor *te = op->w;
    float *out = buf_of(c, op->out);
    for (int64_t t = r0; t < r1; t++) {
        int32_t tok = c->batch->tokens[t].token;
        hl_dequantize(te->type, (const char *)te->data + (size_t)tok * te->row_bytes, out + t * op->n_out, op->n_out);
        if (op->p.embed.scale != 1.0f) c->vo->scale(out + t * op->n_out, op->p.embed.scale, op->n_out);
        /* encoders: absolute position and token-type rows, added in this
         * order, one element at a time (no scratch: F32 or F16 tables) */
        const hl_tensor *pt = op->p.embed.pos;
        if (pt) {
            int32_t pos = c->batch->tokens[t].pos;
            if (pos >= pt->ne1) pos = (int32_t)pt->ne1 - 1; /* run_op callers only: hl_model_forward checks */
            const char *pr = (const char *)pt->data + (size_t)pos * pt->row_bytes;
            float *y = out + t * op->n_out;
            if (pt->type == HL_TYPE_F32)
                for (int64_t i = 0; i < op->n_out; i++) y[i] += ((const float *)pr)[i];
            else
                for (int64_t i = 0; i < op->n_out; i++) y[i] += hl_f16_to_f32(((const hl_f16 *)pr)[i]);
        }
        if (op->b) c->vo->add(out + t * op->n_out, op->b->data, op->n_out);
    }
}

static void layer_norm(float *out, const float *x, const float *w, const float *b, int64_t n, float eps) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    float inv = (float)(1.0 / sqrt(var / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) {
        float y = (float)((double)x[i] - mean) * inv;
        out[i] = (w ? y * w[i] : y) + (b ? b[i] : 0.0f);
    }
}

static void op_norm(hl_backend_prog *c, const hl_op *op, int64_t r0, int64_t r1) {
    const float *in = buf_of(c, op->in);
    float *out = buf_of(c, op->out);
    const int64_t g = op->p.norm.group, ng = op->n_in / g;
    const float *w = op->w ? op->w->data : NULL, *b = op->b ? op->b->data : NULL;
    for (int64_t t = r0; t < r1; t++)
        for (int64_t j = 0; j < ng; j++) {
            const float *xi = in + t * op->n_in + j * g;
            float *yo = out + t * op->n_out + j * g;
            if (op->p.norm.kind == HL_NORM_LAYER) layer_norm(yo, xi, w, b, g, op->p.norm.eps);
            else {
                c->vo->rmsnorm(yo, xi, w, g, op->p.norm.eps);
                if (b) c->vo->add(yo, b, g);
            }
        }
}

static void op_matmul(hl_backend_prog *c, const hl_op *op, int ith, int nth) {
    const hl_tensor *w = op->w;
    const float *in = buf_of(c, op->in);
    float *out = buf_of(c, op->out);
    const int64_t m = rows_of(c, op->in);
    int64_t r0, r1;
    cpu_split(m, ith, nth, &r0, &r1);
    size_t rs = hl_matmul_act_size(w->type, 1, w->ne0);
    if (r1 > r0) hl_matmul_prepare(w->type, in + r0 * op->n_in, op->n_in, r1 - r0, w->ne0, (char *)c->xq[0] + r0 * rs, 0, 1);
    cpu_sync(c);
    if (m > 0) hl_matmul_slice(w->type, w->data, w->ne1, w->ne0, c->xq[0], m, out, op->n_out, ith, nth);
    if (op->b) {
        cpu_sync(c);
        for (int64_t t = r0; t < r1; t++) c->vo->add(out + t * op->n_out, op->b->data, op->n_out);
    }
}

static void op_rope(hl_backend_prog *c, const hl_op *op, int ith, int nth) {
    const int64_t T = c->batch->n_tokens;
    const int32_t half = op->p.rope.n_rot / 2, nh = op->p.rope.n_head, hd = op->p.rope.head_dim;
    float *x = buf_of(c, op->out), *cs = c->rope_cs[CPU_MAX_ROPE_TABLES - 1]; /* the op path's own table */
    int64_t r0, r1;
    cpu_split(T, ith, nth, &r0, &r1);
    const float ms = op->p.rope.mscale;
    for (int64_t t = r0; t < r1; t++) {
        cpu_rope_angles(cs + t * half * 2, c->batch->tokens[t].pos, op->p.rope.inv_freq, half);
        if (ms != 0.0f && ms != 1.0f)
            for (int32_t i = 0; i < 2 * half; i++) cs[t * half * 2 + i] *= ms;
    }
    cpu_sync(c);
    int64_t u0, u1;
    cpu_split(T * nh, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        int64_t t = u / nh, h = u % nh;
        cpu_rope_head(x + t * op->n_in + h * hd, cs + t * half * 2, op->p.rope.n_rot, op->p.rope.style);
    }
}

static void op_kv_store(hl_backend_prog *c, const hl_op *op, int ith, int nth) {
    const int64_t T = c->batch->n_tokens;
    const int32_t nkv = op->p.kv.n_head_kv, hdk = op->p.kv.head_dim_k, hdv = op->p.kv.head_dim_v;
    const float *k = buf_of(c, op->in), *v = buf_of(c, op->in2);
    int64_t u0, u1;
    cpu_split(T * nkv, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        int64_t t = u / nkv;
        int32_t h = (int32_t)(u % nkv);
        cpu_store_kv_row(c->kv, op->layer, 0, c->batch, t, h, k + t * (int64_t)nkv * hdk + (int64_t)h * hdk, hdk, c->vo);
        cpu_store_kv_row(c->kv, op->layer, 1, c->batch, t, h, v + t * (int64_t)nkv * hdv + (int64_t)h * hdv, hdv, c->vo);
    }
}

static void op_attn(hl_backend_prog *c, const hl_op *op, int ith, int nth) {
    const hl_batch *b = c->batch;
    const int32_t nh = op->p.attn.n_head, gqa = nh / op->p.attn.n_head_kv;
    const int32_t run = gqa < HL_ATTN_ROWS ? gqa : HL_ATTN_ROWS, tq = HL_ATTN_ROWS / run;
    float *scratch = c->attn + (size_t)ith * c->attn_floats;
    cpu_attn_job job = {.kv = c->kv, .layer = op->layer, .b = b, .q = buf_of(c, op->in), .ldq = op->n_in,
                        .out = buf_of(c, op->out), .ldo = op->n_out, .hdk = op->p.attn.head_dim_k,
                        .hdv = op->p.attn.head_dim_v, .window = op->p.attn.window, .causal = op->p.attn.causal,
                        .scale = op->p.attn.scale, .softcap = op->p.attn.softcap,
                        .sinks = op->p.attn.sinks ? op->p.attn.sinks->data : NULL};
    /* units: (tile, run of heads sharing a KV head), dealt round-robin (the
     * fused step claims them from a shared counter instead) */
    int64_t unit = 0;
    for (int64_t t0 = 0, t1; t0 < b->n_tokens; t0 = t1) {
        t1 = cpu_attn_tile_end(b, t0, tq);
        for (int32_t h = 0; h < nh; unit++) {
            int32_t he = (h / gqa + 1) * gqa;
            if (he - h > run) he = h + run;
            if (unit % nth == ith) {
                job.t0 = t0, job.t1 = t1, job.h0 = h, job.h1 = he, job.kvh = h / gqa;
                cpu_attend_tile(c->vo, &job, scratch);
            }
            h = he;
        }
    }
}

static float gelu1(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

void cpu_glu(const hl_vec_ops *vo, hl_act act, float alpha, float limit, float *out, const float *gate,
             const float *up, int64_t n) {
    if (act == HL_ACT_GELU) {
        vo->gelu_mul(out, gate, up, n);
        return;
    }
    if (act != HL_ACT_SWIGLU_CLAMP) {
        vo->silu_mul(out, gate, up, n);
        return;
    }
    /* gpt-oss: scalar (an expert's FFN is dominated by its matmuls) */
    for (int64_t i = 0; i < n; i++) {
        const float g = fminf(gate[i], limit), u = fminf(fmaxf(up[i], -limit), limit);
        out[i] = (u + 1.0f) * (g / (1.0f + expf(-alpha * g)));
    }
}

static void op_rows(hl_backend_prog *c, const hl_op *op, int64_t r0, int64_t r1) {
    const float *in = buf_of(c, op->in);
    float *out = buf_of(c, op->out);
    for (int64_t t = r0; t < r1; t++) {
        const float *xi = in + t * op->n_in;
        float *yo = out + t * op->n_out;
        switch (op->kind) {
        case HL_OP_GLU:
            cpu_glu(c->vo, op->p.act.act, op->p.act.alpha, op->p.act.limit, yo, xi, buf_of(c, op->in2) + t * op->n_in,
                    op->n_out);
            break;
        case HL_OP_ACT:
            if (op->p.act.act == HL_ACT_SCALE) {
                for (int64_t i = 0; i < op->n_out; i++) yo[i] = xi[i] * op->p.act.cap;
                break;
            }
            if (op->p.act.act == HL_ACT_SOFTCAP) {
                const float cap = op->p.act.cap;
                for (int64_t i = 0; i < op->n_out; i++) yo[i] = cap * tanhf(xi[i] / cap);
                break;
            }
            for (int64_t i = 0; i < op->n_out; i++)
                yo[i] = op->p.act.act == HL_ACT_GELU       ? gelu1(xi[i])
                        : op->p.act.act == HL_ACT_GELU_ERF ? 0.5f * xi[i] * (1.0f + erff(xi[i] * 0.70710678f))
                                                           : xi[i] / (1.0f + expf(-xi[i]));
            break;
        case HL_OP_ADD:
            if (op->p.add.scale != 0.0f && op->p.add.scale != 1.0f)
                for (int64_t i = 0; i < op->n_out; i++) yo[i] += xi[i] * op->p.add.scale;
            else c->vo->add(yo, xi, op->n_out);
            break;
        case HL_OP_GATHER:
            if (c->out_row[t] >= 0) memcpy(out + (int64_t)c->out_row[t] * op->n_out, xi, (size_t)op->n_in * sizeof(float));
            break;
        default: break;
        }
    }
}

void cpu_op_exec(hl_backend_prog *c, const hl_op *op, int ith, int nth) {
    int64_t r0, r1;
    cpu_split(rows_of(c, op->out == HL_BUF_NONE ? op->in : op->kind == HL_OP_GATHER ? op->in : op->out), ith, nth, &r0, &r1);
    switch (op->kind) {
    case HL_OP_EMBED: op_embed(c, op, r0, r1); break;
    case HL_OP_NORM: op_norm(c, op, r0, r1); break;
    case HL_OP_MATMUL: op_matmul(c, op, ith, nth); break;
    case HL_OP_ROPE: op_rope(c, op, ith, nth); break;
    case HL_OP_KV_STORE: op_kv_store(c, op, ith, nth); break;
    case HL_OP_ATTN: op_attn(c, op, ith, nth); break;
    case HL_OP_GLU:
    case HL_OP_ACT:
    case HL_OP_ADD:
    case HL_OP_GATHER: op_rows(c, op, r0, r1); break;
    case HL_OP_MOE: cpu_op_moe(c, op, buf_of(c, op->in), buf_of(c, op->out), ith, nth); break;
    case HL_OP_COUNT: break; /* cannot happen: refused by supports() */
    }
    cpu_sync(c);
}
