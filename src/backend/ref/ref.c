/* The reference backend's hl_backend table: what it accepts (every op but
 * MOE; weights the scalar oracle multiplies; F32 norm vectors; embedding
 * tables hl_dequantize reads), its program (one host buffer per plan buffer
 * for max_tokens rows plus the scratch of the largest op; weights read in
 * place from the mapping), a step as the plan's ops in order on the calling
 * thread, the same code run_op runs, and KV in host memory (backend/kv.h).
 * The op kernels are in ref_ops.c. */
#include "backend/ref/ref.h"

#include "backend/cpu/cpu.h"
#include "backend/ref/ref_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_backend {
    hl_backend base;
    size_t kv_bytes; /* pools allocated by kv_new and not yet freed */
} ref_backend;

struct hl_backend_prog {
    const hl_plan *plan;
    int32_t max_tokens;
    float *buf[HL_BUF_COUNT]; /* [max_tokens][plan width]; LOGITS is the caller's */
    hl_ref_scratch s;
    size_t bytes;             /* everything above */
};

/* ---- checks ---- */

/* Buffers an op reads and writes (the row widths ref_ops.c uses). */
static int uses_in(hl_op_kind k) { return k != HL_OP_EMBED; }
static int uses_in2(hl_op_kind k) { return k == HL_OP_KV_STORE || k == HL_OP_GLU; }
static int uses_out(hl_op_kind k) { return k != HL_OP_KV_STORE && k != HL_OP_ROPE; }
static int64_t in2_width(const hl_op *op) {
    return op->kind == HL_OP_KV_STORE ? (int64_t)op->p.kv.n_head_kv * op->p.kv.head_dim_v : op->n_in;
}

static int bad_op(const hl_op *op, hl_err *err, const char *what, long long a, long long b) {
    return hl_err_set(err, HL_EINVAL, "backend ref: layer %d op %s: %s (%lld vs %lld)", op->layer,
                      hl_op_name(op->kind), what, a, b);
}

/* An F32 vector (or matrix of vectors: the MoE expert biases) with as many
 * elements as one of the two counts given (NULL passes). */
static int check_vec(const hl_tensor *t, int64_t n1, int64_t n2, hl_err *err) {
    if (!t || !t->data) return 0;
    const int64_t n = t->ne0 * (t->ne1 > 0 ? t->ne1 : 1);
    if (t->type != HL_TYPE_F32)
        return hl_err_set(err, HL_ENOTSUP, "backend ref: tensor %s has type %s; norm weights and biases must be F32",
                          t->name, hl_type_name(t->type));
    if (n != n1 && n != n2)
        return hl_err_set(err, HL_EINVAL, "backend ref: tensor %s has %lld elements, expected %lld", t->name,
                          (long long)n, (long long)n1);
    return 0;
}

static int check_kv_shape(const hl_op *op, const hl_kv_params *kv, int32_t nkv, int32_t hdk, int32_t hdv,
                          hl_err *err) {
    if (!kv) return 0;
    if (op->layer < 0 || op->layer >= kv->n_layer) return bad_op(op, err, "layer outside the KV pool", op->layer, kv->n_layer);
    if (nkv != kv->n_head_kv) return bad_op(op, err, "KV heads differ from the pool's", nkv, kv->n_head_kv);
    if (hdk != kv->head_dim_k || hdv != kv->head_dim_v)
        return hl_err_set(err, HL_EINVAL, "backend ref: layer %d op %s: head dims %d/%d differ from the pool's %d/%d",
                          op->layer, hl_op_name(op->kind), hdk, hdv, kv->head_dim_k, kv->head_dim_v);
    return 0;
}

/* A 3-D (or 2-D when ne2 is 0) multiplicable tensor of this shape. */
static int check_mat(const hl_op *op, const hl_tensor *t, int64_t ne0, int64_t ne1, int64_t ne2, hl_err *err) {
    if (!t || !t->data) return bad_op(op, err, "an expert, router or shared-expert tensor is missing", 0, 0);
    if (!hl_matmul_supported(t->type))
        return hl_err_set(err, HL_ENOTSUP, "backend ref: tensor %s has type %s, which it cannot multiply", t->name,
                          hl_type_name(t->type));
    const int64_t n2 = t->ne2 > 0 ? t->ne2 : 1;
    if (t->ne0 != ne0 || t->ne1 != ne1 || n2 != (ne2 > 0 ? ne2 : 1) || hl_row_size(t->type, t->ne0) == 0)
        return hl_err_set(err, HL_EINVAL, "backend ref: tensor %s is [%lld, %lld, %lld], the op needs [%lld, %lld, %lld]",
                          t->name, (long long)t->ne0, (long long)t->ne1, (long long)n2, (long long)ne0,
                          (long long)ne1, (long long)(ne2 > 0 ? ne2 : 1));
    return 0;
}

static int check_moe(const hl_op *op, hl_err *err) {
    const int32_t NE = op->p.moe.n_expert, K = op->p.moe.n_expert_used;
    const int64_t E = op->n_in, F = op->p.moe.n_ff_exp, S = op->p.moe.n_ff_shexp;
    if (NE <= 0 || K <= 0 || K > NE) return bad_op(op, err, "expert counts out of range", NE, K);
    if (F <= 0 || S < 0 || op->n_out != E) return bad_op(op, err, "expert widths out of range", F, S);
    if (op->p.moe.act == HL_ACT_SWIGLU_CLAMP &&
        (!(op->p.moe.limit > 0) || !isfinite(op->p.moe.limit) || !isfinite(op->p.moe.alpha)))
        return bad_op(op, err, "clamped SwiGLU needs a positive limit and a finite alpha", 0, 0);
    if (op->p.moe.act != HL_ACT_SILU && op->p.moe.act != HL_ACT_GELU && op->p.moe.act != HL_ACT_SWIGLU_CLAMP)
        return bad_op(op, err, "unknown activation", op->p.moe.act, 0);
    if (op->p.moe.gating != HL_MOE_SOFTMAX_TOPK && op->p.moe.gating != HL_MOE_TOPK_SOFTMAX)
        return bad_op(op, err, "unknown gating", op->p.moe.gating, 0);
    int rc;
    if ((rc = check_mat(op, op->p.moe.router, E, NE, 0, err)) || (rc = check_mat(op, op->p.moe.gate_exps, E, F, NE, err)) ||
        (rc = check_mat(op, op->p.moe.up_exps, E, F, NE, err)) || (rc = check_mat(op, op->p.moe.down_exps, F, E, NE, err)) ||
        (rc = check_vec(op->p.moe.router_b, NE, NE, err)) || (rc = check_vec(op->p.moe.gate_exps_b, F * NE, F * NE, err)) ||
        (rc = check_vec(op->p.moe.up_exps_b, F * NE, F * NE, err)) || (rc = check_vec(op->p.moe.down_exps_b, E * NE, E * NE, err)))
        return rc;
    if (S > 0 && ((rc = check_mat(op, op->p.moe.gate_shexp, E, S, 0, err)) || (rc = check_mat(op, op->p.moe.up_shexp, E, S, 0, err)) ||
                  (rc = check_mat(op, op->p.moe.down_shexp, S, E, 0, err)) || (rc = check_vec(op->p.moe.shexp_gate, E, E, err))))
        return rc;
    return 0;
}

/* Everything ref_ops.c relies on for one op. plan (for buffer widths) and kv
 * (the pool's shape) may be NULL when not known. */
static int check_op(const hl_op *op, const hl_plan *plan, const hl_kv_params *kv, hl_err *err) {
    if (op->kind < 0 || op->kind >= HL_OP_COUNT)
        return hl_err_set(err, HL_ENOTSUP, "backend ref: layer %d op %s is not supported", op->layer,
                          hl_op_name(op->kind));
    const hl_buf_id ids[3] = {op->in, op->in2, op->out};
    const int used[3] = {uses_in(op->kind), uses_in2(op->kind), uses_out(op->kind)};
    const int64_t widths[3] = {op->n_in, in2_width(op), op->n_out};
    for (int i = 0; i < 3; i++) {
        if (!used[i]) continue;
        if (ids[i] <= HL_BUF_NONE || ids[i] >= HL_BUF_COUNT) return bad_op(op, err, "buffer id out of range", ids[i], 0);
        if (plan && plan->bufs[ids[i]].width != widths[i])
            return hl_err_set(err, HL_EINVAL, "backend ref: layer %d op %s: buffer %s is %lld wide, the op needs %lld",
                              op->layer, hl_op_name(op->kind), hl_buf_name(ids[i]),
                              (long long)plan->bufs[ids[i]].width, (long long)widths[i]);
    }
    if (op->n_in < 0 || op->n_out < 0 || (uses_in(op->kind) && op->n_in == 0))
        return bad_op(op, err, "row widths must be positive", op->n_in, op->n_out);
    const hl_tensor *w = op->w;
    switch (op->kind) {
    case HL_OP_EMBED: {
        const hl_type_traits *tr = w ? hl_type_get(w->type) : NULL;
        if (!w || !w->data) return bad_op(op, err, "no embedding table", 0, 0);
        if (!tr || !tr->supported)
            return hl_err_set(err, HL_ENOTSUP, "backend ref: tensor %s has type %s, which it cannot read", w->name,
                              hl_type_name(w->type));
        if (w->ne0 != op->n_out) return bad_op(op, err, "table rows differ from the output width", w->ne0, op->n_out);
        const hl_tensor *pt = op->p.embed.pos;
        if (pt && (!pt->data || pt->ne0 != op->n_out || !hl_type_get(pt->type) || !hl_type_get(pt->type)->supported))
            return bad_op(op, err, "position table rows differ from the output width", pt->ne0, op->n_out);
        return check_vec(op->b, op->n_out, op->n_out, err);
    }
    case HL_OP_NORM: {
        const int64_t g = op->p.norm.group;
        if (g <= 0 || op->n_in % g) return bad_op(op, err, "group does not divide the row", g, op->n_in);
        if (op->n_out != op->n_in) return bad_op(op, err, "output width differs from input", op->n_out, op->n_in);
        int rc = check_vec(w, g, op->n_in, err);
        return rc ? rc : check_vec(op->b, g, op->n_in, err);
    }
    case HL_OP_MATMUL: {
        if (!w || !w->data) return bad_op(op, err, "no weight", 0, 0);
        if (!hl_matmul_supported(w->type))
            return hl_err_set(err, HL_ENOTSUP, "backend ref: tensor %s has type %s, which it cannot multiply", w->name,
                              hl_type_name(w->type));
        if (w->ne0 != op->n_in || w->ne1 != op->n_out)
            return hl_err_set(err, HL_EINVAL, "backend ref: tensor %s is [%lld, %lld], the op needs [%lld, %lld]",
                              w->name, (long long)w->ne0, (long long)w->ne1, (long long)op->n_in,
                              (long long)op->n_out);
        if (hl_row_size(w->type, w->ne0) == 0)
            return hl_err_set(err, HL_EINVAL, "backend ref: tensor %s: rows of %lld are not whole %s blocks", w->name,
                              (long long)w->ne0, hl_type_name(w->type));
        return check_vec(op->b, op->n_out, op->n_out, err);
    }
    case HL_OP_ROPE: {
        const int32_t nr = op->p.rope.n_rot, hd = op->p.rope.head_dim;
        if (nr < 0 || nr % 2 || nr > hd) return bad_op(op, err, "n_rot must be even and at most head_dim", nr, hd);
        if ((int64_t)op->p.rope.n_head * hd > op->n_in) return bad_op(op, err, "heads exceed the row", (long long)op->p.rope.n_head * hd, op->n_in);
        if (nr > 0 && !op->p.rope.inv_freq) return bad_op(op, err, "no frequencies", 0, 0);
        if (op->out != HL_BUF_NONE && op->out != op->in && op->n_out != op->n_in)
            return bad_op(op, err, "output width differs from input", op->n_out, op->n_in);
        return 0;
    }
    case HL_OP_KV_STORE: {
        const int32_t nkv = op->p.kv.n_head_kv;
        if (nkv <= 0 || op->p.kv.head_dim_k <= 0 || op->p.kv.head_dim_v <= 0)
            return bad_op(op, err, "KV heads must be positive", nkv, 0);
        if ((int64_t)nkv * op->p.kv.head_dim_k != op->n_in)
            return bad_op(op, err, "K row is not n_head_kv * head_dim_k", op->n_in, (long long)nkv * op->p.kv.head_dim_k);
        return check_kv_shape(op, kv, nkv, op->p.kv.head_dim_k, op->p.kv.head_dim_v, err);
    }
    case HL_OP_ATTN: {
        const int32_t nh = op->p.attn.n_head, nkv = op->p.attn.n_head_kv;
        if (nh <= 0 || nkv <= 0 || nh % nkv) return bad_op(op, err, "query heads must be a multiple of KV heads", nh, nkv);
        if (op->p.attn.head_dim_k <= 0 || op->p.attn.head_dim_v <= 0)
            return bad_op(op, err, "head dims must be positive", op->p.attn.head_dim_k, op->p.attn.head_dim_v);
        if ((int64_t)nh * op->p.attn.head_dim_k != op->n_in)
            return bad_op(op, err, "Q row is not n_head * head_dim_k", op->n_in, (long long)nh * op->p.attn.head_dim_k);
        if ((int64_t)nh * op->p.attn.head_dim_v != op->n_out)
            return bad_op(op, err, "output is not n_head * head_dim_v", op->n_out, (long long)nh * op->p.attn.head_dim_v);
        if (op->p.attn.sinks) {
            int rc = check_vec(op->p.attn.sinks, nh, nh, err);
            if (rc) return rc;
        }
        return check_kv_shape(op, kv, nkv, op->p.attn.head_dim_k, op->p.attn.head_dim_v, err);
    }
    case HL_OP_GLU:
    case HL_OP_ACT:
        if (op->kind == HL_OP_ACT && op->p.act.act == HL_ACT_SCALE) {
            if (!isfinite(op->p.act.cap)) return bad_op(op, err, "scale is not finite", 0, 0);
        } else if (op->kind == HL_OP_ACT && op->p.act.act == HL_ACT_SOFTCAP) {
            if (!(op->p.act.cap > 0)) return bad_op(op, err, "softcap is not positive", 0, 0);
        } else if (op->kind == HL_OP_GLU && op->p.act.act == HL_ACT_SWIGLU_CLAMP) {
            if (!(op->p.act.limit > 0) || !isfinite(op->p.act.limit) || !isfinite(op->p.act.alpha))
                return bad_op(op, err, "clamped SwiGLU needs a positive limit and a finite alpha", 0, 0);
        } else if (op->p.act.act != HL_ACT_SILU && op->p.act.act != HL_ACT_GELU &&
                   op->p.act.act != HL_ACT_GELU_ERF)
            return bad_op(op, err, "unknown activation", op->p.act.act, 0);
        /* fall through */
    case HL_OP_ADD:
    case HL_OP_GATHER:
        if (op->n_out != op->n_in) return bad_op(op, err, "output width differs from input", op->n_out, op->n_in);
        return 0;
    case HL_OP_MOE: return check_moe(op, err);
    default:
        return hl_err_set(err, HL_ENOTSUP, "backend ref: layer %d op %s is not supported", op->layer,
                          hl_op_name(op->kind));
    }
}

static int ref_supports(hl_backend *be, const hl_plan *plan, hl_err *err) {
    for (int32_t i = 0; i < plan->n_ops; i++) {
        int rc = check_op(&plan->ops[i], plan, &plan->kv, err);
        if (rc) return rc;
    }
    return 0;
}

/* ---- program ---- */

static void ref_release(hl_backend *be, hl_backend_prog *prog) {
    if (!prog) return;
    for (int b = 0; b < HL_BUF_COUNT; b++) free(prog->buf[b]);
    free(prog->s.xq);
    free(prog->s.row);
    free(prog->s.acc);
    free(prog);
}

static int scratch_alloc(hl_ref_scratch *s, size_t xq_bytes, int64_t row_n) {
    s->xq_bytes = xq_bytes;
    s->row_n = row_n;
    s->xq = xq_bytes ? aligned_alloc(64, (xq_bytes + 63) & ~(size_t)63) : NULL;
    s->row = row_n ? calloc((size_t)row_n, sizeof *s->row) : NULL;
    s->acc = row_n ? calloc((size_t)row_n, sizeof *s->acc) : NULL;
    return (!xq_bytes || s->xq) && (!row_n || (s->row && s->acc));
}

static int ref_prepare(hl_backend *be, const hl_plan *plan, int32_t max_tokens, hl_backend_prog **out, hl_err *err) {
    *out = NULL;
    if (max_tokens <= 0) return hl_err_set(err, HL_EINVAL, "backend ref: max_tokens %d must be positive", max_tokens);
    int rc = ref_supports(be, plan, err);
    if (rc) return rc;
    hl_backend_prog *p = calloc(1, sizeof *p);
    if (!p) return hl_err_set(err, HL_ENOMEM, "backend ref: out of memory");
    p->plan = plan;
    p->max_tokens = max_tokens;
    int ok = 1;
    for (int b = HL_BUF_NONE + 1; b < HL_BUF_COUNT && ok; b++) {
        if (b == HL_BUF_LOGITS || plan->bufs[b].width <= 0) continue;
        size_t n = (size_t)max_tokens * (size_t)plan->bufs[b].width;
        ok = (p->buf[b] = calloc(n, sizeof(float))) != NULL;
        p->bytes += n * sizeof(float);
    }
    size_t xq = 0;
    int64_t row_n = 0;
    for (int32_t i = 0; i < plan->n_ops; i++) hl_ref_op_scratch(&plan->ops[i], max_tokens, &xq, &row_n);
    ok = ok && scratch_alloc(&p->s, xq, row_n);
    p->bytes += xq + (size_t)row_n * (sizeof(float) + sizeof(double));
    if (!ok) {
        size_t bytes = p->bytes;
        ref_release(be, p);
        return hl_err_set(err, HL_ENOMEM, "backend ref: out of memory allocating %zu bytes of activations for %d tokens",
                          bytes, max_tokens);
    }
    *out = p;
    return 0;
}

static int32_t count_wanted(const hl_batch *b) {
    int32_t n = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) n += b->tokens[t].logits != 0;
    return n;
}

static int ref_run(hl_backend *be, hl_backend_prog *prog, hl_kv_cache *kv, const hl_batch *b, const hl_step_io *sio,
                   hl_err *err) {
    const hl_plan *plan = prog->plan;
    if (b->n_tokens > prog->max_tokens)
        return hl_err_set(err, HL_ERANGE, "backend ref: batch of %d tokens exceeds the program's %d", b->n_tokens,
                          prog->max_tokens);
    if (kv) {
        const hl_kv_params *k = hl_kv_get_params(kv), *w = &plan->kv;
        if (k->n_layer != w->n_layer || k->n_head_kv != w->n_head_kv || k->head_dim_k != w->head_dim_k ||
            k->head_dim_v != w->head_dim_v)
            return hl_err_set(err, HL_EINVAL, "backend ref: the KV cache's shape does not match the plan's");
    }
    hl_ref_io io = {.batch = b, .n_wanted = count_wanted(b), .kv = kv};
    for (int i = 0; i < HL_BUF_COUNT; i++) {
        io.buf[i] = prog->buf[i];
        io.per_output[i] = plan->bufs[i].per_output;
    }
    io.buf[HL_BUF_LOGITS] = sio->logits;
    const size_t x_bytes = (size_t)b->n_tokens * (size_t)plan->n_embd * sizeof(float);
    if (sio->x_in) memcpy(io.buf[HL_BUF_X], sio->x_in, x_bytes);
    for (int32_t i = 0; i < plan->n_ops; i++) {
        const hl_op *op = &plan->ops[i];
        if ((op->kind == HL_OP_KV_STORE || op->kind == HL_OP_ATTN) && !kv)
            return hl_err_set(err, HL_EINVAL, "backend ref: layer %d op %s needs a KV cache", op->layer,
                              hl_op_name(op->kind));
        int rc = hl_ref_exec(op, &io, &prog->s, err);
        if (rc) return hl_err_prefix(err, "backend ref: layer %d op %s: ", op->layer, hl_op_name(op->kind));
    }
    if (sio->x_out) memcpy(sio->x_out, io.buf[HL_BUF_X], x_bytes);
    return 0;
}

/* The output buffers hold one row per wanted token (backend.h). */
static int is_output_buf(hl_buf_id b) { return b == HL_BUF_OUT_IN || b == HL_BUF_OUT_NORM || b == HL_BUF_LOGITS; }

static int ref_run_op(hl_backend *be, const hl_op *op, const hl_op_io *io, hl_err *err) {
    if (!io->batch) return hl_err_set(err, HL_EINVAL, "backend ref: run_op without a batch");
    const int needs_kv = op->kind == HL_OP_KV_STORE || op->kind == HL_OP_ATTN;
    if (needs_kv && !io->kv)
        return hl_err_set(err, HL_EINVAL, "backend ref: layer %d op %s needs a KV cache", op->layer,
                          hl_op_name(op->kind));
    int rc = check_op(op, NULL, needs_kv ? hl_kv_get_params(io->kv) : NULL, err);
    if (rc) return rc;
    hl_ref_io rio = {.batch = io->batch, .n_wanted = count_wanted(io->batch), .kv = io->kv};
    for (int i = 0; i < HL_BUF_COUNT; i++) {
        rio.buf[i] = io->buf[i];
        rio.per_output[i] = is_output_buf((hl_buf_id)i);
    }
    const hl_buf_id ids[3] = {op->in, op->in2, op->out};
    const int used[3] = {uses_in(op->kind), uses_in2(op->kind), uses_out(op->kind)};
    for (int i = 0; i < 3; i++)
        if (used[i] && !rio.buf[ids[i]] && (rio.per_output[ids[i]] ? rio.n_wanted : io->batch->n_tokens) > 0)
            return hl_err_set(err, HL_EINVAL, "backend ref: layer %d op %s: buffer %s not given", op->layer,
                              hl_op_name(op->kind), hl_buf_name(ids[i]));
    int64_t rows = rio.per_output[op->in] ? rio.n_wanted : io->batch->n_tokens;
    size_t xq = 0;
    int64_t row_n = 0;
    hl_ref_op_scratch(op, rows, &xq, &row_n);
    hl_ref_scratch s = {0};
    if (!scratch_alloc(&s, xq, row_n)) rc = hl_err_set(err, HL_ENOMEM, "backend ref: out of memory");
    else rc = hl_ref_exec(op, &rio, &s, err);
    free(s.xq);
    free(s.row);
    free(s.acc);
    return rc;
}

/* ---- KV storage (host memory) ---- */

static int ref_kv_new(hl_backend *be, const hl_kv_params *p, hl_kv_cache **out, hl_err *err) {
    if (p->type != HL_TYPE_F16 && p->type != HL_TYPE_Q8_0)
        return hl_err_set(err, HL_ENOTSUP, "backend ref: KV cache type %s is not supported (f16 or q8_0)",
                          hl_type_name(p->type));
    int rc = hl_host_kv_new(p, out, err);
    if (rc) return rc;
    ((ref_backend *)be)->kv_bytes += hl_kv_block_bytes(hl_kv_get_params(*out)) * (size_t)p->n_blocks;
    return 0;
}

static void ref_kv_free(hl_backend *be, hl_kv_cache *kv) {
    if (!kv) return;
    const hl_kv_params *p = hl_kv_get_params(kv);
    ((ref_backend *)be)->kv_bytes -= hl_kv_block_bytes(p) * (size_t)p->n_blocks;
    hl_kv_free(kv);
}

static void ref_kv_copy_block(hl_backend *be, hl_kv_cache *kv, int32_t dst, int32_t src) {
    hl_kv_copy_block(kv, dst, src);
}

static void ref_kv_truncate(hl_backend *be, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep) {
    hl_host_kv_truncate(kv, blocks, n_blocks, n_keep);
}

static void ref_memory(hl_backend *be, const hl_backend_prog *prog, hl_backend_mem *out) {
    *out = (hl_backend_mem){
        .weights = 0, .scratch = prog ? prog->bytes : 0, .kv = ((ref_backend *)be)->kv_bytes, .where = "host"};
}

static void ref_destroy(hl_backend *be) { free(be); }

static const hl_backend_ops ref_ops = {
    .name = "ref",
    .supports = ref_supports,
    .prepare = ref_prepare,
    .release = ref_release,
    .run = ref_run,
    .run_op = ref_run_op,
    .kv_new = ref_kv_new,
    .kv_free = ref_kv_free,
    .kv_copy_block = ref_kv_copy_block,
    .kv_truncate = ref_kv_truncate,
    .memory = ref_memory,
    .destroy = ref_destroy,
};

int hl_backend_ref_new(hl_backend **out, hl_err *err) {
    *out = NULL;
    ref_backend *be = calloc(1, sizeof *be);
    if (!be) return hl_err_set(err, HL_ENOMEM, "backend ref: out of memory");
    be->base.ops = &ref_ops;
    *out = &be->base;
    return 0;
}
