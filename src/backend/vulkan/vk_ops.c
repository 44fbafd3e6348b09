/* The plan's ops as dispatches (vk_ops.h). Each op_* checks its shapes,
 * prepares what the host must (step buffers), and appends dispatches whose
 * push constants match the layout of the shader named. Every op kind of the
 * plan has a definition here: MOE (op_moe) as a chain of dispatches over
 * step buffers (router product, moe_gate.comp, the expert products of
 * matmul.comp -DMOE through an index list of (expert, row), the
 * elementwise steps), GLU with the clamped SwiGLU; ATTN has its own file
 * (vk_attn.c), which records through the helpers exported here
 * (hl_vk_rec_buffer, hl_vk_rec_dispatch, hl_vk_kv_slot). hl_vk_op_check refuses by name what the kernels lack (weight types
 * without a matmul kernel, more than MOE_MAX_K experts per token, tensors
 * the kernels cannot address). */
#include "backend/vulkan/vk_ops.h"

#include "backend/vulkan/vk_attn.h"

#include "backend/cpu/cpu.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int hl_vk_is_output_buf(hl_buf_id b) { return b == HL_BUF_OUT_IN || b == HL_BUF_OUT_NORM || b == HL_BUF_LOGITS; }

static int64_t rows_of(const hl_vk_op_args *a, hl_buf_id b) {
    return hl_vk_is_output_buf(b) ? a->n_wanted : a->batch->n_tokens;
}

static int matmul_kernel(hl_type t) {
    switch (t) {
    case HL_TYPE_F32: return HL_VK_K_matmul_f32;
    case HL_TYPE_F16: return HL_VK_K_matmul_f16;
    case HL_TYPE_BF16: return HL_VK_K_matmul_bf16;
    case HL_TYPE_Q4_0: return HL_VK_K_matmul_q4_0;
    case HL_TYPE_Q4_1: return HL_VK_K_matmul_q4_1;
    case HL_TYPE_Q5_0: return HL_VK_K_matmul_q5_0;
    case HL_TYPE_Q5_1: return HL_VK_K_matmul_q5_1;
    case HL_TYPE_Q8_0: return HL_VK_K_matmul_q8_0;
    case HL_TYPE_Q2_K: return HL_VK_K_matmul_q2_k;
    case HL_TYPE_Q3_K: return HL_VK_K_matmul_q3_k;
    case HL_TYPE_Q4_K: return HL_VK_K_matmul_q4_k;
    case HL_TYPE_Q5_K: return HL_VK_K_matmul_q5_k;
    case HL_TYPE_Q6_K: return HL_VK_K_matmul_q6_k;
    case HL_TYPE_IQ4_NL: return HL_VK_K_matmul_iq4_nl;
    case HL_TYPE_IQ4_XS: return HL_VK_K_matmul_iq4_xs;
    case HL_TYPE_MXFP4: return HL_VK_K_matmul_mxfp4;
    default: return -1;
    }
}

/* the activation converter a weight type's product takes (quant.comp), its
 * block and the floats of extras per block; -1 for float weights */
static int act_kernel(hl_type t, int64_t *block, int64_t *extra) {
    switch (hl_matmul_act_type(t)) {
    case HL_TYPE_Q8_0: *block = 32, *extra = 0; return HL_VK_K_quant_q8_0;
    case HL_TYPE_Q8_1: *block = 32, *extra = 1; return HL_VK_K_quant_q8_1;
    case HL_TYPE_Q8_K: *block = 256, *extra = 16; return HL_VK_K_quant_q8_k;
    default: return -1;
    }
}

/* k a whole number of t's blocks, and the rows' bytes what the type says */
static int whole_blocks(const hl_tensor *w, int64_t k, hl_err *err) {
    int64_t block = 1, extra = 0;
    const int quant = act_kernel(w->type, &block, &extra) >= 0;
    if (k % (quant ? block : 1) || hl_row_size(w->type, k) != w->row_bytes)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: %s rows of %lld are not whole blocks", w->name, (long long)k);
    return 0;
}

void hl_vk_op_extra(const hl_op *op, const hl_tensor *out[HL_VK_OP_EXTRA]) {
    for (int i = 0; i < HL_VK_OP_EXTRA; i++) out[i] = NULL;
    if (op->kind == HL_OP_ATTN) out[0] = op->p.attn.sinks;
    if (op->kind != HL_OP_MOE) return;
    out[HL_VK_MOE_ROUTER] = op->p.moe.router, out[HL_VK_MOE_GATE] = op->p.moe.gate_exps;
    out[HL_VK_MOE_UP] = op->p.moe.up_exps, out[HL_VK_MOE_DOWN] = op->p.moe.down_exps;
    out[HL_VK_MOE_ROUTER_B] = op->p.moe.router_b, out[HL_VK_MOE_GATE_B] = op->p.moe.gate_exps_b;
    out[HL_VK_MOE_UP_B] = op->p.moe.up_exps_b, out[HL_VK_MOE_DOWN_B] = op->p.moe.down_exps_b;
    if (op->p.moe.n_ff_shexp > 0) {
        out[HL_VK_MOE_SH_GATE] = op->p.moe.gate_shexp, out[HL_VK_MOE_SH_UP] = op->p.moe.up_shexp;
        out[HL_VK_MOE_SH_DOWN] = op->p.moe.down_shexp, out[HL_VK_MOE_SH_GATE_INP] = op->p.moe.shexp_gate;
    }
}

size_t hl_vk_tensor_bytes(const hl_tensor *t) {
    return t->row_bytes * (size_t)(t->ne1 > 0 ? t->ne1 : 1) * (size_t)(t->ne2 > 1 ? t->ne2 : 1);
}

enum { MOE_MAX_K = 32, MOE_CHUNK = 8 }; /* moe_gate.comp's MAXK, matmul.comp's and matvec.comp's CHUNK */

/* a well-formed MOE op (hl_moe_op_malformed, as every backend checks), then
 * what the kernels here add: a matmul kernel for every weight type, gate and
 * up quantizing their input alike, whole blocks, at most MOE_MAX_K experts
 * per token, tensors under 4 GiB (the kernels address them in 32-bit words) */
static int moe_check(const hl_op *op, hl_err *err) {
    const char *why = hl_moe_op_malformed(op);
    if (!why && hl_matmul_act_type(op->p.moe.gate_exps->type) != hl_matmul_act_type(op->p.moe.up_exps->type))
        why = "MoE gate and up weights of unlike types";
    if (!why && op->p.moe.n_ff_shexp > 0 &&
        hl_matmul_act_type(op->p.moe.gate_shexp->type) != hl_matmul_act_type(op->p.moe.up_shexp->type))
        why = "shared-expert gate and up weights of unlike types";
    if (why) return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op moe (layer %d): %s", op->layer, why);
    if (op->p.moe.n_expert_used > MOE_MAX_K)
        return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op moe (layer %d) with %d experts per token (at most %d)",
                          op->layer, op->p.moe.n_expert_used, MOE_MAX_K);
    const hl_tensor *t[HL_VK_OP_EXTRA];
    hl_vk_op_extra(op, t);
    const int64_t E = op->n_in, F = op->p.moe.n_ff_exp, S = op->p.moe.n_ff_shexp;
    const int64_t k[4] = {E, E, E, F}, ks[3] = {E, E, S};
    for (int i = 0; i < HL_VK_OP_EXTRA; i++) {
        if (!t[i]) continue;
        if (hl_vk_tensor_bytes(t[i]) > UINT32_MAX)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: %s is over 4 GiB", t[i]->name);
        const int mat = i <= HL_VK_MOE_DOWN || (i >= HL_VK_MOE_SH_GATE && i <= HL_VK_MOE_SH_DOWN);
        if (!mat) continue;
        if (matmul_kernel(t[i]->type) < 0)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: no matmul kernel for %s weights (%s) yet",
                              hl_type_name(t[i]->type), t[i]->name);
        int rc = whole_blocks(t[i], i <= HL_VK_MOE_DOWN ? k[i] : ks[i - HL_VK_MOE_SH_GATE], err);
        if (rc) return rc;
    }
    return 0;
}

int hl_vk_op_check(const hl_op *op, hl_err *err) {
    switch (op->kind) {
    case HL_OP_MATMUL:
        if (!op->w || matmul_kernel(op->w->type) < 0)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: no matmul kernel for %s weights (%s) yet",
                              op->w ? hl_type_name(op->w->type) : "missing", op->w ? op->w->name : "?");
        return 0;
    case HL_OP_NORM:
        if ((op->w && op->w->data && op->w->type != HL_TYPE_F32) || (op->b && op->b->data && op->b->type != HL_TYPE_F32))
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: norm weights of type %s (%s)", hl_type_name(op->w->type),
                              op->w->name);
        return 0;
    case HL_OP_ATTN:
        if (op->p.attn.head_dim_k > 256 || op->p.attn.head_dim_v > 256)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: attention heads of %d/%d (at most 256)",
                              op->p.attn.head_dim_k, op->p.attn.head_dim_v);
        if (op->p.attn.sinks && (op->p.attn.sinks->type != HL_TYPE_F32 || op->p.attn.sinks->ne0 != op->p.attn.n_head))
            return hl_err_set(err, HL_EINVAL, "backend vulkan: attention sinks %s (layer %d) are not one F32 per query head",
                              op->p.attn.sinks->name, op->layer);
        return 0;
    case HL_OP_KV_STORE:
        if (op->p.kv.head_dim_k % 2 || op->p.kv.head_dim_v % 2)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: odd KV head dims %d/%d", op->p.kv.head_dim_k,
                              op->p.kv.head_dim_v);
        return 0;
    case HL_OP_EMBED:
        if (op->p.embed.pos && op->p.embed.pos->data &&
            (!hl_type_get(op->p.embed.pos->type) || !hl_type_get(op->p.embed.pos->type)->supported))
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: position embeddings of type %s (%s)",
                              hl_type_name(op->p.embed.pos->type), op->p.embed.pos->name);
        if (op->b && op->b->data && op->b->type != HL_TYPE_F32)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: token-type embedding of type %s (%s)",
                              hl_type_name(op->b->type), op->b->name);
        return 0;
    case HL_OP_GLU:
    case HL_OP_ACT:
        if (op->p.act.act != HL_ACT_SILU && op->p.act.act != HL_ACT_GELU && op->p.act.act != HL_ACT_GELU_ERF &&
            (op->kind == HL_OP_ACT || op->p.act.act != HL_ACT_SWIGLU_CLAMP) &&
            (op->kind == HL_OP_GLU || (op->p.act.act != HL_ACT_SOFTCAP && op->p.act.act != HL_ACT_SCALE)))
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op %s (layer %d) with activation %s has no Vulkan kernel",
                              hl_op_name(op->kind), op->layer,
                              op->p.act.act == HL_ACT_SWIGLU_CLAMP ? "clamped SwiGLU (outside a GLU)"
                              : op->p.act.act == HL_ACT_SOFTCAP    ? "softcap (in a GLU)"
                              : op->p.act.act == HL_ACT_SCALE      ? "scale (in a GLU)"
                                                                   : "?");
        if (op->p.act.act == HL_ACT_SWIGLU_CLAMP && !(op->p.act.limit > 0.0f))
            return hl_err_set(err, HL_EINVAL, "backend vulkan: clamped SwiGLU limit %g (layer %d) must be positive",
                              op->p.act.limit, op->layer);
        if (op->p.act.act == HL_ACT_SOFTCAP && !(op->p.act.cap > 0.0f))
            return hl_err_set(err, HL_EINVAL, "backend vulkan: softcap %g (layer %d) must be positive", op->p.act.cap, op->layer);
        return 0;
    case HL_OP_MOE: return moe_check(op, err);
    case HL_OP_ROPE:
    case HL_OP_ADD:
    case HL_OP_GATHER: return 0;
    default:
        return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op %s (layer %d) has no Vulkan kernel yet", hl_op_name(op->kind),
                          op->layer);
    }
}

/* ---- the recorder ---- */

void hl_vk_rec_init(hl_vk_rec *r, hl_vk_kernels *k) { *r = (hl_vk_rec){.k = k}; }

void hl_vk_rec_reset(hl_vk_rec *r) {
    r->n = r->n_used = r->n_rope = r->n_attn = r->n_conv = 0;
    r->slots = NULL;
}

void hl_vk_rec_free(hl_vk_rec *r) {
    if (!r->k) return;
    for (int i = 0; i < r->n_tmp; i++) {
        hl_vk_buffer_free(r->k->d, r->tmp[i]);
        free(r->tmp[i]);
    }
    free(r->list);
    free(r->tmp);
    free(r->tmp_dev);
    *r = (hl_vk_rec){0};
}

int hl_vk_rec_run(hl_vk_rec *r, hl_err *err) { return hl_vk_run(r->k, r->list, r->n, err); }

/* The step's next buffer of at least `bytes`: host-visible and mapped for
 * the host to fill, or device-local (device_local; mapped only where that
 * memory is host-visible too). Step buffers are kept from step to step and
 * handed out in the order they are asked for, so a step of the same shape
 * as the last gets the same buffers and records the same list (which
 * hl_vk_run then submits without recording it again); one too small, or of
 * the other kind, is replaced by one of the next power of two of bytes, so
 * a growing context replaces its block tables rarely. */
static int tmp_buffer_of(hl_vk_rec *r, size_t bytes, int device_local, hl_vk_buffer **out, hl_err *err) {
    if (r->n_used < r->n_tmp && r->tmp[r->n_used]->size >= bytes && r->tmp_dev[r->n_used] == (device_local != 0)) {
        *out = r->tmp[r->n_used++];
        return 0;
    }
    size_t size = 256;
    while (size < bytes) size *= 2;
    if (r->n_used == r->n_tmp) {
        if (r->n_tmp == r->cap_tmp) {
            int cap = r->cap_tmp ? 2 * r->cap_tmp : 16;
            hl_vk_buffer **t = realloc(r->tmp, (size_t)cap * sizeof *t);
            if (!t) return hl_err_set(err, HL_ENOMEM, "out of memory");
            r->tmp = t;
            uint8_t *dv = realloc(r->tmp_dev, (size_t)cap);
            if (!dv) return hl_err_set(err, HL_ENOMEM, "out of memory");
            r->tmp_dev = dv, r->cap_tmp = cap;
        }
        if (!(r->tmp[r->n_tmp] = calloc(1, sizeof **r->tmp))) return hl_err_set(err, HL_ENOMEM, "out of memory");
        r->n_tmp++;
    } else {
        hl_vk_buffer_free(r->k->d, r->tmp[r->n_used]);
    }
    hl_vk_buffer *b = r->tmp[r->n_used];
    r->tmp_dev[r->n_used] = device_local != 0;
    int rc = device_local ? hl_vk_buffer_new_device(r->k->d, size, b, err) : hl_vk_buffer_new(r->k->d, size, b, err);
    if (rc) return rc; /* b stays zeroed in its slot, replaced by the next ask */
    r->n_used++;
    *out = b;
    return 0;
}

static int tmp_buffer(hl_vk_rec *r, size_t bytes, hl_vk_buffer **out, hl_err *err) {
    return tmp_buffer_of(r, bytes, 0, out, err);
}

int hl_vk_rec_buffer(hl_vk_rec *r, size_t bytes, int device_local, hl_vk_buffer **out, hl_err *err) {
    return tmp_buffer_of(r, bytes, device_local, out, err);
}

/* x's contents change: its conversions are no longer its activations */
static void forget_conversions(hl_vk_rec *r, const hl_vk_buffer *x) {
    int n = 0;
    for (int i = 0; i < r->n_conv; i++)
        if (r->conv[i].x != x) r->conv[n++] = r->conv[i];
    r->n_conv = n;
}

static int push_dispatch(hl_vk_rec *r, hl_vk_kernel_id kern, const hl_vk_buffer *const bufs[HL_VK_BINDINGS],
                         const VkDeviceSize *off, const void *push, size_t push_bytes, uint32_t groups, hl_err *err) {
    for (int j = 0; j < HL_VK_BINDINGS; j++)
        if (bufs[j] && (r->k->writes[kern] & (1u << j))) forget_conversions(r, bufs[j]);
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        hl_vk_dispatch *l = realloc(r->list, (size_t)cap * sizeof *l);
        if (!l) return hl_err_set(err, HL_ENOMEM, "out of memory");
        r->list = l, r->cap = cap;
    }
    hl_vk_dispatch *d = &r->list[r->n++];
    memset(d, 0, sizeof *d);
    d->kernel = kern;
    for (int j = 0; j < HL_VK_BINDINGS; j++) {
        d->bufs[j] = bufs[j];
        d->off[j] = off ? off[j] : 0;
    }
    memcpy(d->push, push, push_bytes);
    d->push_bytes = (uint32_t)push_bytes;
    hl_vk_groups_2d(r->k->d, groups, d->groups);
    return 0;
}

int hl_vk_rec_dispatch(hl_vk_rec *r, hl_vk_kernel_id kern, const hl_vk_buffer *const bufs[HL_VK_BINDINGS],
                       const VkDeviceSize *off, const void *push, size_t push_bytes, uint32_t groups, hl_err *err) {
    return push_dispatch(r, kern, bufs, off, push, push_bytes, groups, err);
}

static uint32_t div_up(uint64_t n, uint32_t d) { return (uint32_t)((n + d - 1) / d); }

static int too_big(int64_t a, int64_t b, hl_err *err) {
    if ((uint64_t)a * (uint64_t)b > UINT32_MAX)
        return hl_err_set(err, HL_ERANGE, "backend vulkan: %lld x %lld elements is too large for one dispatch",
                          (long long)a, (long long)b);
    return 0;
}

/* ---- ops ---- */

/* on the host, into the mapped X: the token's row (times scale), plus the
 * position's row of p.embed.pos and the token-type row b (encoders) */
static int op_embed(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    forget_conversions(r, a->buf[op->out]); /* written by the host, below */
    const hl_tensor *w = op->w, *pt = op->p.embed.pos && op->p.embed.pos->data ? op->p.embed.pos : NULL;
    const float *tt = op->b && op->b->data ? op->b->data : NULL;
    float *row = NULL;
    if (pt && !(row = malloc((size_t)op->n_out * sizeof *row))) return hl_err_set(err, HL_ENOMEM, "out of memory");
    float *out = a->buf[op->out]->map;
    for (int32_t t = 0; t < a->batch->n_tokens; t++) {
        int32_t tok = a->batch->tokens[t].token;
        int rc = 0;
        if (tok < 0 || tok >= w->ne1)
            rc = hl_err_set(err, HL_EINVAL, "token %d of the batch is id %d, outside %s's %lld rows", t, tok, w->name,
                            (long long)w->ne1);
        float *y = out + (int64_t)t * op->n_out;
        if (!rc && (rc = hl_dequantize(w->type, (const char *)w->data + (size_t)tok * w->row_bytes, y, op->n_out)))
            hl_err_set(err, rc, "cannot dequantize a row of %s (%s)", w->name, hl_type_name(w->type));
        if (!rc && op->p.embed.scale != 1.0f)
            for (int64_t i = 0; i < op->n_out; i++) y[i] *= op->p.embed.scale;
        const int32_t pos = a->batch->tokens[t].pos;
        if (!rc && pt && (pos < 0 || pos >= pt->ne1))
            rc = hl_err_set(err, HL_EINVAL, "position %d of batch token %d is outside %s's %lld rows", pos, t, pt->name,
                            (long long)pt->ne1);
        if (!rc && pt && (rc = hl_dequantize(pt->type, (const char *)pt->data + (size_t)pos * pt->row_bytes, row, op->n_out)))
            hl_err_set(err, rc, "cannot dequantize a row of %s", pt->name);
        if (rc) {
            free(row);
            return rc;
        }
        if (pt)
            for (int64_t i = 0; i < op->n_out; i++) y[i] += row[i];
        if (tt)
            for (int64_t i = 0; i < op->n_out; i++) y[i] += tt[i];
    }
    free(row);
    return 0;
}

/* the activations of the m rows of k floats in x converted for weights of
 * type t (quant.comp) into step buffers q, d; float weights: none (q = d = NULL).
 * A conversion of the same rows in the same format since x was last written
 * is taken as it is, so products that share an input share one conversion. */
static int convert(hl_vk_rec *r, hl_type t, const hl_vk_buffer *x, int64_t m, int64_t k, hl_vk_buffer **q,
                   hl_vk_buffer **d, hl_err *err) {
    int64_t block = 1, extra = 0;
    const int act = act_kernel(t, &block, &extra);
    *q = *d = NULL;
    if (act < 0) return 0;
    for (int i = 0; i < r->n_conv; i++)
        if (r->conv[i].x == x && r->conv[i].act == act && r->conv[i].m == m && r->conv[i].k == k) {
            *q = r->conv[i].q, *d = r->conv[i].d;
            return 0;
        }
    int rc;
    if ((rc = tmp_buffer(r, (size_t)(m * k), q, err)) || (rc = tmp_buffer(r, (size_t)(m * (k / block) * (1 + extra)) * 4, d, err)))
        return rc;
    struct { uint32_t k, m, ldx; } qp = {(uint32_t)k, (uint32_t)m, (uint32_t)k};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {x, *q, *d};
    if ((rc = push_dispatch(r, (hl_vk_kernel_id)act, b, NULL, &qp, sizeof qp, div_up((uint64_t)m * (k / block), 64), err)))
        return rc;
    const int slot = r->n_conv < (int)(sizeof r->conv / sizeof r->conv[0]) ? r->n_conv++ : 0;
    r->conv[slot].x = x, r->conv[slot].act = act, r->conv[slot].m = m, r->conv[slot].k = k;
    r->conv[slot].q = *q, r->conv[slot].d = *d;
    return 0;
}

/* out[i][j] (rows of ldo) = w[j] . x[i] (+ bias[j]) for m rows of k and n
 * weight rows: x as floats (float weights) or converted (q, d of convert) */
static int product(hl_vk_rec *r, hl_type t, const hl_vk_buffer *w, const hl_vk_buffer *x, const hl_vk_buffer *q,
                   const hl_vk_buffer *d, const hl_vk_buffer *bias, const hl_vk_buffer *out, int64_t m, int64_t k,
                   int64_t n, int64_t ldo, hl_err *err) {
    struct { uint32_t k, n, m, ldx, ldo, has_bias; } mp = {(uint32_t)k, (uint32_t)n, (uint32_t)m, (uint32_t)k,
                                                            (uint32_t)ldo, bias != NULL};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {w, q ? q : x, q ? d : NULL, bias, out};
    const hl_vk_kernel_id kern = (hl_vk_kernel_id)matmul_kernel(t);
    int rc = push_dispatch(r, kern, b, NULL, &mp, sizeof mp, div_up((uint64_t)n, r->k->rows[kern]), err);
    /* prefill and batched decode: the tiled pipeline, where the kernel has one
     * (it sums each row as the direct one does: the same bits) */
    if (!rc && m > HL_VK_DIRECT_ROWS && r->k->tiled[kern]) r->list[r->n - 1].tiled = 1;
    return rc;
}

static int op_matmul(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const hl_tensor *w = op->w;
    const int64_t m = rows_of(a, op->in), k = op->n_in, n = op->n_out;
    if (m == 0) return 0;
    if (w->ne0 != k || w->ne1 != n)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: %s is %lldx%lld, the op wants %lldx%lld", w->name,
                          (long long)w->ne1, (long long)w->ne0, (long long)n, (long long)k);
    int rc;
    if ((rc = whole_blocks(w, k, err)) || (rc = too_big(m, k, err)) || (rc = too_big(m, n, err))) return rc;
    const hl_vk_buffer *x = a->buf[op->in];
    hl_vk_buffer *q = NULL, *d = NULL;
    if ((rc = convert(r, w->type, x, m, k, &q, &d, err))) return rc;
    return product(r, w->type, a->w, x, q, d, op->b && op->b->data ? a->b : NULL, a->buf[op->out], m, k, n, n, err);
}

static int op_norm(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const int64_t n = op->n_in, g = op->p.norm.group, rows = rows_of(a, op->in);
    if (g <= 0 || n % g) return hl_err_set(err, HL_EINVAL, "backend vulkan: norm group %lld does not divide %lld", (long long)g, (long long)n);
    if (rows == 0) return 0;
    const int hw = op->w && op->w->data, hb = op->b && op->b->data;
    struct { uint32_t n, group, rows, ldx, ldy, kind, wmode, bmode; float eps; } p = {
        (uint32_t)n, (uint32_t)g, (uint32_t)rows, (uint32_t)n, (uint32_t)op->n_out, (uint32_t)op->p.norm.kind,
        hw ? (op->w->ne0 == g ? 1u : 2u) : 0u, hb ? (op->b->ne0 == g ? 1u : 2u) : 0u, op->p.norm.eps};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {a->buf[op->in], hw ? a->w : NULL, hb ? a->b : NULL, NULL, a->buf[op->out]};
    int rc = too_big(rows, n / g, err);
    return rc ? rc : push_dispatch(r, HL_VK_K_norm, b, NULL, &p, sizeof p, (uint32_t)(rows * (n / g)), err);
}

typedef struct ew_push {
    uint32_t n, rows, ldx, ldy, mode, act;
    float cap;          /* ACT: softcap / scale factor; ADD: the residual scale (0: none) */
    float alpha, limit; /* GLU with SWIGLU_CLAMP */
    uint32_t k;         /* COMBINE: the experts per token */
} ew_push;
enum { EW_ADD = 0, EW_GLU = 1, EW_ACT = 2, EW_COPY = 3, EW_EXPERT_BIAS = 4, EW_COMBINE = 5, EW_GATED_ADD = 6 };

static int op_elementwise(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const int64_t rows = rows_of(a, op->in), n = op->n_out;
    if (rows == 0) return 0;
    int rc = too_big(rows, n, err);
    if (rc) return rc;
    uint32_t mode = op->kind == HL_OP_ADD ? EW_ADD : op->kind == HL_OP_GLU ? EW_GLU : EW_ACT;
    const float cap = op->kind == HL_OP_ADD ? (op->p.add.scale != 1.0f ? op->p.add.scale : 0.0f) : op->p.act.cap;
    ew_push p = {(uint32_t)n, (uint32_t)rows, (uint32_t)op->n_in, (uint32_t)n, mode,
                 op->kind == HL_OP_ADD ? 0u : (uint32_t)op->p.act.act, cap,
                 op->kind == HL_OP_ADD ? 0.0f : op->p.act.alpha, op->kind == HL_OP_ADD ? 0.0f : op->p.act.limit, 0};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {a->buf[op->in], op->kind == HL_OP_GLU ? a->buf[op->in2] : NULL, NULL, NULL,
                                             a->buf[op->out]};
    return push_dispatch(r, HL_VK_K_elementwise, b, NULL, &p, sizeof p, div_up((uint64_t)rows * n, 64), err);
}

/* cos, sin of pos * inv_freq[i] for every token, times the op's mscale
 * (LongRoPE's attn_factor; rounded once from double, as the reference
 * does), shared by the layers that use the same frequencies and scale */
static int rope_table(hl_vk_rec *r, const hl_op *op, const hl_batch *batch, hl_vk_buffer **out, hl_err *err) {
    const int32_t half = op->p.rope.n_rot / 2;
    const double ms = op->p.rope.mscale != 0.0f ? op->p.rope.mscale : 1.0;
    for (int i = 0; i < r->n_rope; i++)
        if (r->rope[i].inv_freq == op->p.rope.inv_freq && r->rope[i].half == half && r->rope[i].mscale == ms)
            return *out = r->rope[i].cs, 0;
    hl_vk_buffer *cs = NULL;
    int rc = tmp_buffer(r, (size_t)batch->n_tokens * (size_t)half * 2 * sizeof(float), &cs, err);
    if (rc) return rc;
    float *v = cs->map;
    for (int32_t t = 0; t < batch->n_tokens; t++)
        for (int32_t i = 0; i < half; i++) {
            double th = (double)batch->tokens[t].pos * op->p.rope.inv_freq[i];
            v[2 * ((size_t)t * half + i)] = (float)(cos(th) * ms);
            v[2 * ((size_t)t * half + i) + 1] = (float)(sin(th) * ms);
        }
    if (r->n_rope < (int)(sizeof r->rope / sizeof r->rope[0])) {
        r->rope[r->n_rope].inv_freq = op->p.rope.inv_freq, r->rope[r->n_rope].half = half, r->rope[r->n_rope].mscale = ms;
        r->rope[r->n_rope++].cs = cs;
    }
    *out = cs;
    return 0;
}

static int op_rope(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const int64_t rows = a->batch->n_tokens;
    const int32_t half = op->p.rope.n_rot / 2;
    if (rows == 0 || half == 0) return 0;
    const hl_vk_buffer *x = a->buf[op->in];
    int rc;
    if (op->out != HL_BUF_NONE && op->out != op->in) { /* not in place: rotate a copy */
        ew_push cp = {(uint32_t)op->n_in, (uint32_t)rows, (uint32_t)op->n_in, (uint32_t)op->n_in, EW_COPY, 0, 0.0f, 0.0f, 0.0f, 0};
        const hl_vk_buffer *b[HL_VK_BINDINGS] = {x, NULL, NULL, NULL, a->buf[op->out]};
        if ((rc = push_dispatch(r, HL_VK_K_elementwise, b, NULL, &cp, sizeof cp, div_up((uint64_t)rows * op->n_in, 64), err)))
            return rc;
        x = a->buf[op->out];
    }
    hl_vk_buffer *cs = NULL;
    if ((rc = rope_table(r, op, a->batch, &cs, err))) return rc;
    struct { uint32_t rows, n_head, head_dim, half_rot, ld, style; } p = {
        (uint32_t)rows, (uint32_t)op->p.rope.n_head, (uint32_t)op->p.rope.head_dim, (uint32_t)half, (uint32_t)op->n_in,
        (uint32_t)op->p.rope.style};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {cs, NULL, NULL, NULL, x};
    return push_dispatch(r, HL_VK_K_rope, b, NULL, &p, sizeof p, div_up((uint64_t)rows * op->p.rope.n_head * half, 64), err);
}

/* slot (block * block_size + offset) of position pos of a token's sequence, checked */
int hl_vk_kv_slot(const hl_batch *b, const hl_kv_cache *kv, int32_t seq, int32_t pos, uint32_t *slot, hl_err *err) {
    const int32_t bs = hl_kv_block_size(kv), nb = hl_kv_n_blocks(kv);
    if (seq < 0 || seq >= b->n_seqs)
        return hl_err_set(err, HL_EINVAL, "a token names sequence %d of the batch's %d", seq, b->n_seqs);
    const hl_batch_seq *sq = &b->seqs[seq];
    if (pos < 0 || pos / bs >= sq->n_blocks)
        return hl_err_set(err, HL_EINVAL, "position %d of sequence %d is outside its block table (%d blocks of %d)", pos,
                          seq, sq->n_blocks, bs);
    int32_t blk = sq->blocks[pos / bs];
    if (blk < 0 || blk >= nb)
        return hl_err_set(err, HL_EINVAL, "sequence %d: block table entry %d = %d outside the pool (%d blocks)", seq,
                          pos / bs, blk, nb);
    *slot = (uint32_t)blk * (uint32_t)bs + (uint32_t)(pos % bs);
    return 0;
}

void hl_vk_kv_layer_offsets(const hl_vk_kv *kv, int32_t layer, VkDeviceSize *ko, VkDeviceSize *vo) {
    const uint8_t *base = kv->buf.map;
    *ko = (VkDeviceSize)(hl_kv_layer_k(kv->kv, layer) - base);
    *vo = (VkDeviceSize)(hl_kv_layer_v(kv->kv, layer) - base);
}

static int op_kv_store(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const hl_batch *batch = a->batch;
    const hl_kv_params *kp = hl_kv_get_params(a->kv->kv);
    if (batch->n_tokens == 0) return 0;
    if (kp->n_head_kv != op->p.kv.n_head_kv || kp->head_dim_k != op->p.kv.head_dim_k || kp->head_dim_v != op->p.kv.head_dim_v)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: the KV pool's heads do not match the op's");
    int rc;
    if (!r->slots) {
        if ((rc = tmp_buffer(r, (size_t)batch->n_tokens * 4, &r->slots, err))) return rc;
        uint32_t *s = r->slots->map;
        for (int32_t t = 0; t < batch->n_tokens; t++)
            if ((rc = hl_vk_kv_slot(batch, a->kv->kv, batch->tokens[t].seq, batch->tokens[t].pos, &s[t], err))) return rc;
    }
    const uint32_t unit = kp->type == HL_TYPE_Q8_0 ? 32 : 2, nkv = (uint32_t)op->p.kv.n_head_kv;
    const uint32_t per = nkv * ((uint32_t)op->p.kv.head_dim_k / unit + (uint32_t)op->p.kv.head_dim_v / unit);
    struct { uint32_t rows, nkv, hdk, hdv, ldk, ldv; } p = {
        (uint32_t)batch->n_tokens, nkv, (uint32_t)op->p.kv.head_dim_k, (uint32_t)op->p.kv.head_dim_v,
        (uint32_t)op->n_in, nkv * (uint32_t)op->p.kv.head_dim_v};
    VkDeviceSize off[HL_VK_BINDINGS] = {0};
    hl_vk_kv_layer_offsets(a->kv, op->layer, &off[3], &off[4]);
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {a->buf[op->in], a->buf[op->in2], r->slots, &a->kv->buf, &a->kv->buf};
    return push_dispatch(r, kp->type == HL_TYPE_Q8_0 ? HL_VK_K_kv_store_q8_0 : HL_VK_K_kv_store_f16, b, off, &p, sizeof p,
                         div_up((uint64_t)batch->n_tokens * per, 64), err);
}

static int op_gather(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const hl_batch *batch = a->batch;
    if (a->n_wanted == 0) return 0;
    hl_vk_buffer *idx = NULL;
    int rc = tmp_buffer(r, (size_t)a->n_wanted * 4, &idx, err);
    if (rc) return rc;
    uint32_t *ix = idx->map, n = 0;
    for (int32_t t = 0; t < batch->n_tokens; t++)
        if (batch->tokens[t].logits && n < (uint32_t)a->n_wanted) ix[n++] = (uint32_t)t;
    struct { uint32_t n, rows, ldx, ldy; } p = {(uint32_t)op->n_in, n, (uint32_t)op->n_in, (uint32_t)op->n_out};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {a->buf[op->in], idx, NULL, NULL, a->buf[op->out]};
    return push_dispatch(r, HL_VK_K_gather, b, NULL, &p, sizeof p, div_up((uint64_t)n * op->n_in, 64), err);
}

/* Out (rows of ldo) = for each row r of the slots, expert slice idx[2r] of
 * w (3-D, n rows per slice) against activation row idx[2r + 1] (gathered)
 * or r (the slots' own rows) of x (m rows of k; converted as q, d) */
static int moe_product(hl_vk_rec *r, hl_type t, const hl_vk_buffer *w, const hl_vk_buffer *x, const hl_vk_buffer *q,
                       const hl_vk_buffer *d, const hl_vk_buffer *idx, int64_t slots, int gathered,
                       const hl_vk_buffer *out, int64_t m, int64_t k, int64_t n, hl_err *err) {
    struct { uint32_t k, n, m, ldx, ldo, has_bias, slots, gathered; } mp = {
        (uint32_t)k, (uint32_t)n, (uint32_t)m, (uint32_t)k, (uint32_t)n, 0, (uint32_t)slots, (uint32_t)gathered};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {w, q ? q : x, q ? d : NULL, NULL, out, idx};
    const hl_vk_kernel_id kern = (hl_vk_kernel_id)(HL_VK_K_moe_matmul_f32 + (matmul_kernel(t) - HL_VK_K_matmul_f32));
    return push_dispatch(r, kern, b, NULL, &mp, sizeof mp, div_up((uint64_t)n, r->k->rows[kern]) * div_up((uint64_t)slots, MOE_CHUNK),
                         err);
}

static int ew(hl_vk_rec *r, uint32_t mode, const hl_vk_buffer *x, const hl_vk_buffer *x2, const hl_vk_buffer *idx,
              const hl_vk_buffer *y, int64_t rows, int64_t n, int64_t ldx, const hl_op *op, uint32_t k, hl_err *err) {
    ew_push p = {(uint32_t)n, (uint32_t)rows, (uint32_t)ldx, (uint32_t)n, mode, (uint32_t)op->p.moe.act, 0.0f,
                 op->p.moe.alpha, op->p.moe.limit, k};
    const hl_vk_buffer *b[HL_VK_BINDINGS] = {x, x2, NULL, NULL, y, idx};
    return push_dispatch(r, HL_VK_K_elementwise, b, NULL, &p, sizeof p, div_up((uint64_t)rows * n, 64), err);
}

/* The routed experts, as the CPU's cpu_op_moe defines them: router logits
 * (+ bias), the gating (moe_gate.comp: each token's k experts and weights),
 * then for every (token, rank) row the expert's gate and up products over
 * the token's converted input, their biases, the GLU, the down product over
 * the row's own converted GLU output, its bias, and each token's rows summed
 * in rank order with their weights; the shared expert (over the batch, with
 * its sigmoid gate) added last. Every product reads only the expert slices
 * the rows name (decode: the k a token uses) and sums each row as a dense
 * row, so a token's output does not depend on the rest of the batch. */
static int op_moe(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const int64_t T = rows_of(a, op->in), E = op->n_in, F = op->p.moe.n_ff_exp, S = op->p.moe.n_ff_shexp;
    const int64_t NE = op->p.moe.n_expert, K = op->p.moe.n_expert_used, TK = T * K;
    if (T == 0) return 0;
    const hl_tensor *t[HL_VK_OP_EXTRA];
    hl_vk_op_extra(op, t);
    for (int i = 0; i < HL_VK_OP_EXTRA; i++)
        if (t[i] && t[i]->data && !a->ext[i])
            return hl_err_set(err, HL_EINVAL, "backend vulkan: %s is not on the device", t[i]->name);
    const hl_vk_buffer *const *w = a->ext, *x = a->buf[op->in], *out = a->buf[op->out];
    int rc;
    if ((rc = too_big(T, NE, err)) || (rc = too_big(TK, F > S ? F : S, err)) || (rc = too_big(TK, E, err))) return rc;
    hl_vk_buffer *q = NULL, *d = NULL, *lg, *idx, *wt, *g, *u, *h, *y;
    /* 1. router logits, the gating */
    if ((rc = convert(r, t[HL_VK_MOE_ROUTER]->type, x, T, E, &q, &d, err)) ||
        (rc = tmp_buffer(r, (size_t)(T * NE) * 4, &lg, err)) ||
        (rc = product(r, t[HL_VK_MOE_ROUTER]->type, w[HL_VK_MOE_ROUTER], x, q, d, t[HL_VK_MOE_ROUTER_B] ? w[HL_VK_MOE_ROUTER_B] : NULL,
                      lg, T, E, NE, NE, err)))
        return rc;
    if ((rc = tmp_buffer(r, (size_t)TK * 8, &idx, err)) || (rc = tmp_buffer(r, (size_t)TK * 4, &wt, err))) return rc;
    struct { uint32_t rows, ne, k, gating, norm; } gp = {(uint32_t)T, (uint32_t)NE, (uint32_t)K, (uint32_t)op->p.moe.gating,
                                                         (uint32_t)(op->p.moe.norm_topk != 0)};
    const hl_vk_buffer *gb[HL_VK_BINDINGS] = {lg, NULL, NULL, wt, idx};
    if ((rc = push_dispatch(r, HL_VK_K_moe_gate, gb, NULL, &gp, sizeof gp, div_up((uint64_t)T, 64), err))) return rc;
    /* 2. gate and up of each row's expert over its token's input, biases, GLU */
    const hl_type tg = t[HL_VK_MOE_GATE]->type, td = t[HL_VK_MOE_DOWN]->type;
    if ((rc = convert(r, tg, x, T, E, &q, &d, err)) || (rc = tmp_buffer(r, (size_t)(TK * F) * 4, &g, err)) ||
        (rc = tmp_buffer(r, (size_t)(TK * F) * 4, &u, err)) || (rc = tmp_buffer(r, (size_t)(TK * F) * 4, &h, err)) ||
        (rc = moe_product(r, tg, w[HL_VK_MOE_GATE], x, q, d, idx, TK, 1, g, T, E, F, err)) ||
        (rc = moe_product(r, t[HL_VK_MOE_UP]->type, w[HL_VK_MOE_UP], x, q, d, idx, TK, 1, u, T, E, F, err)))
        return rc;
    if (t[HL_VK_MOE_GATE_B] && (rc = ew(r, EW_EXPERT_BIAS, w[HL_VK_MOE_GATE_B], NULL, idx, g, TK, F, F, op, 0, err))) return rc;
    if (t[HL_VK_MOE_UP_B] && (rc = ew(r, EW_EXPERT_BIAS, w[HL_VK_MOE_UP_B], NULL, idx, u, TK, F, F, op, 0, err))) return rc;
    if ((rc = ew(r, EW_GLU, g, u, NULL, h, TK, F, F, op, 0, err))) return rc;
    /* 3. down of each row's expert over the row's own GLU output, its bias */
    if ((rc = convert(r, td, h, TK, F, &q, &d, err)) || (rc = tmp_buffer(r, (size_t)(TK * E) * 4, &y, err)) ||
        (rc = moe_product(r, td, w[HL_VK_MOE_DOWN], h, q, d, idx, TK, 0, y, TK, F, E, err)))
        return rc;
    if (t[HL_VK_MOE_DOWN_B] && (rc = ew(r, EW_EXPERT_BIAS, w[HL_VK_MOE_DOWN_B], NULL, idx, y, TK, E, E, op, 0, err))) return rc;
    /* 4. each token's rows in rank order, weighted */
    if ((rc = ew(r, EW_COMBINE, y, wt, NULL, out, T, E, E, op, (uint32_t)K, err))) return rc;
    if (S <= 0) return 0;
    /* 5. the shared expert over the batch, added with its gate */
    const hl_type sg = t[HL_VK_MOE_SH_GATE]->type, sd = t[HL_VK_MOE_SH_DOWN]->type;
    hl_vk_buffer *a1, *a2, *a3, *sy, *gl = NULL;
    if ((rc = convert(r, sg, x, T, E, &q, &d, err)) || (rc = tmp_buffer(r, (size_t)(T * S) * 4, &a1, err)) ||
        (rc = tmp_buffer(r, (size_t)(T * S) * 4, &a2, err)) || (rc = tmp_buffer(r, (size_t)(T * S) * 4, &a3, err)) ||
        (rc = product(r, sg, w[HL_VK_MOE_SH_GATE], x, q, d, NULL, a1, T, E, S, S, err)) ||
        (rc = product(r, t[HL_VK_MOE_SH_UP]->type, w[HL_VK_MOE_SH_UP], x, q, d, NULL, a2, T, E, S, S, err)) ||
        (rc = ew(r, EW_GLU, a1, a2, NULL, a3, T, S, S, op, 0, err)) || (rc = convert(r, sd, a3, T, S, &q, &d, err)) ||
        (rc = tmp_buffer(r, (size_t)(T * E) * 4, &sy, err)) ||
        (rc = product(r, sd, w[HL_VK_MOE_SH_DOWN], a3, q, d, NULL, sy, T, S, E, E, err)))
        return rc;
    if (t[HL_VK_MOE_SH_GATE_INP] &&
        ((rc = tmp_buffer(r, (size_t)T * 4, &gl, err)) ||
         (rc = product(r, HL_TYPE_F32, w[HL_VK_MOE_SH_GATE_INP], x, NULL, NULL, NULL, gl, T, E, 1, 1, err))))
        return rc;
    return ew(r, gl ? EW_GATED_ADD : EW_ADD, sy, gl, NULL, out, T, E, E, op, 0, err);
}

int hl_vk_rec_op(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    int rc = hl_vk_op_check(op, err);
    if (rc) return rc;
    if ((op->kind == HL_OP_KV_STORE || op->kind == HL_OP_ATTN) && !a->kv)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: op %s without a KV pool", hl_op_name(op->kind));
    switch (op->kind) {
    case HL_OP_EMBED: return op_embed(r, op, a, err);
    case HL_OP_NORM: return op_norm(r, op, a, err);
    case HL_OP_MATMUL: return op_matmul(r, op, a, err);
    case HL_OP_ROPE: return op_rope(r, op, a, err);
    case HL_OP_KV_STORE: return op_kv_store(r, op, a, err);
    case HL_OP_ATTN: return hl_vk_attn_record(r, op, a, err);
    case HL_OP_GLU:
    case HL_OP_ACT:
    case HL_OP_ADD: return op_elementwise(r, op, a, err);
    case HL_OP_GATHER: return op_gather(r, op, a, err);
    case HL_OP_MOE: return op_moe(r, op, a, err);
    default: return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op %s has no Vulkan kernel yet", hl_op_name(op->kind));
    }
}
