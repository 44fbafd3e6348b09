/* The Vulkan backend behind hl_backend_ops (vulkan.h): one device, its
 * kernels, KV pools in device buffers, and both ways of running ops through
 * the one recorder (vk_ops.h):
 *
 *   run_op   one op on host buffers: inputs copied into fresh device
 *            buffers, the op recorded, run, the output copied back (the
 *            cross-backend op harness);
 *   run      a step of a prepared model: every op of the plan recorded over
 *            the program's resident buffers and weights, one submission,
 *            the wanted logits rows read back.
 *
 * prepare uploads each weight tensor once (tensors shared by two ops, such
 * as tied embeddings, once) and allocates each plan buffer for max_tokens
 * rows. Weights live in device-local memory (hl_vk_buffer_new_device:
 * staged on discrete GPUs, written through the mapping where the heap is
 * shared); plan buffers and KV pools are host-visible, since the host
 * writes embedding rows and reads logits and KV blocks through them. Both
 * are checked first against the device's free memory times the memory
 * fraction (fits()). */
#include "backend/vulkan/vulkan.h"

#include "backend/vulkan/vk_ops.h"
#include "base/memfit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_KV_POOLS = 16 };

typedef struct vk_backend {
    hl_backend base;
    hl_vk_instance *vi;
    hl_vk_device *dev;
    hl_vk_kernels *k;
    hl_vk_kv *pools[MAX_KV_POOLS]; /* the pools kv_new made, found by their host view */
    double fraction;               /* of the free device memory a placement may take */
    char desc[768];
} vk_backend;

typedef struct vk_weight {
    const void *data; /* the tensor's host data: the key */
    hl_vk_buffer buf;
} vk_weight;

struct hl_backend_prog {
    const hl_plan *plan;
    int32_t max_tokens;
    hl_vk_buffer bufs[HL_BUF_COUNT];
    vk_weight *w;
    int n_w;
    size_t weight_bytes, scratch_bytes;
    hl_vk_rec rec;
};

static int32_t count_wanted(const hl_batch *b) {
    int32_t n = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) n += b->tokens[t].logits != 0;
    return n;
}

static const hl_vk_kv *find_pool(vk_backend *vb, const hl_kv_cache *kv) {
    for (int i = 0; kv && i < MAX_KV_POOLS; i++)
        if (vb->pools[i] && vb->pools[i]->kv == kv) return vb->pools[i];
    return NULL;
}

static int vk_supports(hl_backend *be, const hl_plan *plan, hl_err *err) {
    (void)be;
    for (int32_t i = 0; i < plan->n_ops; i++) {
        int rc = hl_vk_op_check(&plan->ops[i], err);
        if (rc) return rc;
    }
    return 0;
}

/* ---- device memory ---- */

/* What the backend may still place: its share of the device's free memory. */
static uint64_t room(vk_backend *vb) { return (uint64_t)((double)hl_vk_device_free_bytes(vb->dev) * vb->fraction); }

/* 0 when `need` (its parts filled in) fits in room(); else HL_ENOMEM with the shared wording. */
static int fits(vk_backend *vb, hl_mem_need *need, const char *try_text, hl_err *err) {
    need->avail = (int64_t)room(vb);
    if (need->need <= need->avail) return 0;
    char memory[320], note[96], freeb[32];
    snprintf(memory, sizeof memory, "GPU memory on %s", vb->vi->devices[vb->dev->index].name);
    hl_mem_bytes((int64_t)hl_vk_device_free_bytes(vb->dev), freeb, sizeof freeb);
    snprintf(note, sizeof note, "engine.gpu_memory_fraction %g of %s free", vb->fraction, freeb);
    return hl_mem_refuse(err, memory, need, note, try_text);
}

/* ---- the model path ---- */

static void vk_release(hl_backend *be, hl_backend_prog *c) {
    vk_backend *vb = (vk_backend *)be;
    if (!c) return;
    hl_vk_rec_free(&c->rec);
    for (int i = 0; i < HL_BUF_COUNT; i++) hl_vk_buffer_free(vb->dev, &c->bufs[i]);
    for (int i = 0; i < c->n_w; i++) hl_vk_buffer_free(vb->dev, &c->w[i].buf);
    free(c->w);
    free(c);
}

static const hl_vk_buffer *weight_of(const hl_backend_prog *c, const hl_tensor *t) {
    if (!t || !t->data) return NULL;
    for (int i = 0; i < c->n_w; i++)
        if (c->w[i].data == t->data) return &c->w[i].buf;
    return NULL;
}

static int upload(vk_backend *vb, hl_backend_prog *c, const hl_tensor *t, hl_err *err) {
    if (!t || !t->data || weight_of(c, t)) return 0;
    size_t bytes = hl_vk_tensor_bytes(t);
    vk_weight *w = &c->w[c->n_w];
    int rc = hl_vk_buffer_new_device(vb->dev, bytes, &w->buf, err);
    if (!rc) rc = hl_vk_buffer_write(vb->dev, &w->buf, t->data, bytes, err);
    if (rc) {
        hl_vk_buffer_free(vb->dev, &w->buf);
        return hl_err_prefix(err, "uploading %s: ", t->name), rc;
    }
    w->data = t->data;
    c->n_w++;
    c->weight_bytes += bytes;
    return 0;
}

/* the tensors an op reads on the device: w, b and its hl_vk_op_extra
 * (EMBED's tables are read on the host from the mapping) */
enum { N_OP_TENSORS = 2 + HL_VK_OP_EXTRA };
static void op_tensors(const hl_op *op, const hl_tensor *out[N_OP_TENSORS]) {
    out[0] = op->kind == HL_OP_EMBED ? NULL : op->w;
    out[1] = op->kind == HL_OP_EMBED ? NULL : op->b;
    hl_vk_op_extra(op, out + 2);
}

static int vk_prepare(hl_backend *be, const hl_plan *plan, int32_t max_tokens, hl_backend_prog **out, hl_err *err) {
    vk_backend *vb = (vk_backend *)be;
    *out = NULL;
    int rc = vk_supports(be, plan, err);
    if (rc) return rc;
    if (max_tokens <= 0 || max_tokens > (1 << 20))
        return hl_err_set(err, HL_EINVAL, "forward context: max_tokens %d out of range (1..%d)", max_tokens, 1 << 20);
    hl_backend_prog *c = calloc(1, sizeof *c);
    if (c) c->w = calloc((size_t)((2 + HL_VK_OP_EXTRA) * plan->n_ops + 1), sizeof *c->w);
    if (!c || !c->w) {
        free(c);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    c->plan = plan, c->max_tokens = max_tokens;
    hl_vk_rec_init(&c->rec, vb->k);
    /* everything this program will place, checked before anything is */
    hl_mem_need need = {.overhead = (int64_t)hl_plan_buffer_bytes(plan, max_tokens)};
    for (int32_t i = 0; i < plan->n_ops; i++) {
        const hl_tensor *ti[N_OP_TENSORS];
        op_tensors(&plan->ops[i], ti);
        for (int j = 0; j < N_OP_TENSORS; j++) {
            const hl_tensor *t = ti[j];
            int seen = !t || !t->data;
            for (int32_t k = 0; k < i && !seen; k++) { /* a tensor two ops share (tied embeddings) once */
                const hl_tensor *tk[N_OP_TENSORS];
                op_tensors(&plan->ops[k], tk);
                for (int l = 0; l < N_OP_TENSORS && !seen; l++) seen = tk[l] && tk[l]->data == t->data;
            }
            for (int k = 0; k < j && !seen; k++) seen = ti[k] && ti[k]->data == t->data;
            if (!seen) need.weights += (int64_t)hl_vk_tensor_bytes(t);
        }
    }
    need.need = need.weights + need.overhead;
    char tr[200];
    snprintf(tr, sizeof tr, "a smaller quantization (e.g. q4_K_M), a smaller model, fewer tokens per step "
                            "(engine.step_tokens, now %d), or the CPU backend (engine.backend = \"cpu\")", max_tokens);
    rc = fits(vb, &need, tr, err);
    for (int i = 0; i < HL_BUF_COUNT && !rc; i++) {
        if (plan->bufs[i].width <= 0) continue;
        size_t bytes = (size_t)max_tokens * (size_t)plan->bufs[i].width * sizeof(float);
        rc = hl_vk_buffer_new(vb->dev, bytes, &c->bufs[i], err);
        c->scratch_bytes += bytes;
    }
    for (int32_t i = 0; i < plan->n_ops && !rc; i++) {
        const hl_tensor *ti[N_OP_TENSORS];
        op_tensors(&plan->ops[i], ti);
        for (int j = 0; j < N_OP_TENSORS && !rc; j++) rc = upload(vb, c, ti[j], err);
    }
    if (rc) {
        vk_release(be, c);
        return rc;
    }
    *out = c;
    return 0;
}

static int record_step(vk_backend *vb, hl_backend_prog *c, const hl_vk_kv *pool, const hl_batch *b, int32_t wanted,
                       hl_err *err) {
    hl_vk_op_args a = {.batch = b, .n_wanted = wanted, .kv = pool};
    for (int i = 0; i < HL_BUF_COUNT; i++) a.buf[i] = c->bufs[i].buf ? &c->bufs[i] : NULL;
    for (int32_t i = 0; i < c->plan->n_ops; i++) {
        const hl_op *op = &c->plan->ops[i];
        a.w = weight_of(c, op->w), a.b = weight_of(c, op->b);
        const hl_tensor *ext[HL_VK_OP_EXTRA];
        hl_vk_op_extra(op, ext);
        for (int j = 0; j < HL_VK_OP_EXTRA; j++) a.ext[j] = weight_of(c, ext[j]);
        int rc = hl_vk_rec_op(&c->rec, op, &a, err);
        if (rc) return hl_err_prefix(err, "layer %d %s: ", op->layer, hl_op_name(op->kind)), rc;
    }
    (void)vb;
    return 0;
}

static int vk_run(hl_backend *be, hl_backend_prog *c, hl_kv_cache *kv, const hl_batch *b, const hl_step_io *io,
                  hl_err *err) {
    vk_backend *vb = (vk_backend *)be;
    if (b->n_tokens > c->max_tokens)
        return hl_err_set(err, HL_ERANGE, "batch of %d tokens exceeds the forward context's %d", b->n_tokens, c->max_tokens);
    const hl_vk_kv *pool = find_pool(vb, kv);
    if (!pool) return hl_err_set(err, HL_EINVAL, "backend vulkan: the KV cache was not made by this backend");
    int32_t wanted = count_wanted(b);
    hl_vk_rec_reset(&c->rec);
    const size_t x_bytes = (size_t)b->n_tokens * (size_t)c->plan->n_embd * sizeof(float);
    if (io->x_in) memcpy(c->bufs[HL_BUF_X].map, io->x_in, x_bytes);
    int rc = record_step(vb, c, pool, b, wanted, err);
    if (!rc) rc = hl_vk_rec_run(&c->rec, err);
    if (!rc && wanted && io->logits)
        memcpy(io->logits, c->bufs[HL_BUF_LOGITS].map,
               (size_t)wanted * (size_t)c->plan->bufs[HL_BUF_LOGITS].width * sizeof(float));
    if (!rc && io->x_out) memcpy(io->x_out, c->bufs[HL_BUF_X].map, x_bytes);
    hl_vk_rec_reset(&c->rec);
    return rc;
}

/* ---- one op on host buffers ---- */

static int64_t in2_width(const hl_op *op) {
    return op->kind == HL_OP_KV_STORE ? (int64_t)op->p.kv.n_head_kv * op->p.kv.head_dim_v : op->n_in;
}

static int vk_run_op(hl_backend *be, const hl_op *op, const hl_op_io *io, hl_err *err) {
    vk_backend *vb = (vk_backend *)be;
    if (!io->batch) return hl_err_set(err, HL_EINVAL, "backend vulkan: run_op without a batch");
    int rc = hl_vk_op_check(op, err);
    if (rc) return rc;
    const hl_batch *b = io->batch;
    const int32_t wanted = count_wanted(b);
    hl_vk_op_args a = {.batch = b, .n_wanted = wanted};
    if (op->kind == HL_OP_KV_STORE || op->kind == HL_OP_ATTN) {
        if (!(a.kv = find_pool(vb, io->kv)))
            return hl_err_set(err, HL_EINVAL, "backend vulkan: op %s needs a KV cache made by this backend", hl_op_name(op->kind));
    }
    /* the buffers this op touches, with their row widths */
    struct { hl_buf_id id; int64_t width; } use[3] = {{op->in, op->n_in}, {op->in2, in2_width(op)}, {op->out, op->n_out}};
    int n_use = op->kind == HL_OP_GLU || op->kind == HL_OP_KV_STORE ? 3 : 2;
    if (op->kind != HL_OP_GLU && op->kind != HL_OP_KV_STORE) use[1] = use[2];
    if (op->kind == HL_OP_EMBED) use[0].id = HL_BUF_NONE;
    if (op->kind == HL_OP_KV_STORE) n_use = 2;
    if (op->kind == HL_OP_ROPE && (op->out == HL_BUF_NONE || op->out == op->in)) n_use = 1;
    hl_vk_buffer mine[3] = {{0}}, wb = {0}, bb = {0}, xb[HL_VK_OP_EXTRA] = {{0}};
    size_t size[3] = {0};
    for (int i = 0; i < n_use && !rc; i++) {
        hl_buf_id id = use[i].id;
        if (id == HL_BUF_NONE || a.buf[id]) continue;
        if (!io->buf[id]) {
            rc = hl_err_set(err, HL_EINVAL, "backend vulkan: op %s: buffer %s not given", hl_op_name(op->kind), hl_buf_name(id));
            break;
        }
        size[i] = (size_t)((hl_vk_is_output_buf(id) ? wanted : b->n_tokens) * use[i].width) * sizeof(float);
        if (!(rc = hl_vk_buffer_new(vb->dev, size[i], &mine[i], err))) {
            memcpy(mine[i].map, io->buf[id], size[i]);
            a.buf[id] = &mine[i];
        }
    }
    const hl_tensor *tw = op->kind == HL_OP_EMBED ? NULL : op->w, *tb = op->b;
    if (!rc && tw && tw->data && !(rc = hl_vk_buffer_new(vb->dev, tw->row_bytes * (size_t)tw->ne1, &wb, err))) {
        memcpy(wb.map, tw->data, tw->row_bytes * (size_t)tw->ne1);
        a.w = &wb;
    }
    if (!rc && tb && tb->data && !(rc = hl_vk_buffer_new(vb->dev, tb->row_bytes * (size_t)tb->ne1, &bb, err))) {
        memcpy(bb.map, tb->data, tb->row_bytes * (size_t)tb->ne1);
        a.b = &bb;
    }
    const hl_tensor *ext[HL_VK_OP_EXTRA];
    hl_vk_op_extra(op, ext);
    for (int j = 0; j < HL_VK_OP_EXTRA && !rc; j++) {
        const hl_tensor *t = ext[j];
        if (!t || !t->data || (rc = hl_vk_buffer_new(vb->dev, hl_vk_tensor_bytes(t), &xb[j], err))) continue;
        memcpy(xb[j].map, t->data, hl_vk_tensor_bytes(t));
        a.ext[j] = &xb[j];
    }
    hl_vk_rec rec;
    hl_vk_rec_init(&rec, vb->k);
    if (!rc) rc = hl_vk_rec_op(&rec, op, &a, err);
    if (!rc) rc = hl_vk_rec_run(&rec, err);
    hl_vk_rec_free(&rec);
    /* the written buffer back: out, or in for an op that works in place */
    hl_buf_id wrote = op->kind == HL_OP_KV_STORE ? HL_BUF_NONE
                      : op->kind == HL_OP_ROPE && (op->out == HL_BUF_NONE || op->out == op->in) ? op->in : op->out;
    for (int i = 0; i < n_use; i++) {
        if (!rc && use[i].id == wrote && mine[i].map) memcpy(io->buf[wrote], mine[i].map, size[i]);
        hl_vk_buffer_free(vb->dev, &mine[i]);
    }
    hl_vk_buffer_free(vb->dev, &wb);
    hl_vk_buffer_free(vb->dev, &bb);
    for (int j = 0; j < HL_VK_OP_EXTRA; j++) hl_vk_buffer_free(vb->dev, &xb[j]);
    return rc;
}

/* ---- KV pools in device buffers, reached from the host through the mapping ---- */

static int vk_kv_new(hl_backend *be, const hl_kv_params *p, hl_kv_cache **out, hl_err *err) {
    vk_backend *vb = (vk_backend *)be;
    *out = NULL;
    int slot = -1;
    for (int i = 0; i < MAX_KV_POOLS && slot < 0; i++)
        if (!vb->pools[i]) slot = i;
    if (slot < 0) return hl_err_set(err, HL_ENOMEM, "backend vulkan: more than %d KV pools", MAX_KV_POOLS);
    int rc = hl_kv_check_params(p, err);
    if (rc) return rc;
    hl_vk_kv *pool = calloc(1, sizeof *pool);
    if (!pool) return hl_err_set(err, HL_ENOMEM, "out of memory");
    size_t bytes = hl_kv_region_bytes(p, HL_VK_OFFSET_ALIGN);
    hl_mem_need need = {.kv = (int64_t)bytes, .ctx = (int64_t)p->n_blocks * p->block_size, .need = (int64_t)bytes};
    if ((rc = fits(vb, &need, "a smaller context (num_ctx), fewer parallel sequences (engine.max_seqs), a smaller KV "
                              "budget (engine.kv_budget) or kv_cache_type \"q8_0\"", err))) {
        free(pool);
        return rc;
    }
    if ((rc = hl_vk_buffer_new(vb->dev, bytes, &pool->buf, err)) ||
        (rc = hl_kv_new_in(&pool->kv, p, pool->buf.map, pool->buf.size, HL_VK_OFFSET_ALIGN, err))) {
        hl_vk_buffer_free(vb->dev, &pool->buf);
        free(pool);
        return rc;
    }
    vb->pools[slot] = pool;
    *out = pool->kv;
    return 0;
}

static void vk_kv_free(hl_backend *be, hl_kv_cache *kv) {
    vk_backend *vb = (vk_backend *)be;
    for (int i = 0; kv && i < MAX_KV_POOLS; i++)
        if (vb->pools[i] && vb->pools[i]->kv == kv) {
            hl_kv_free(kv);
            hl_vk_buffer_free(vb->dev, &vb->pools[i]->buf);
            free(vb->pools[i]);
            vb->pools[i] = NULL;
        }
}
static void vk_kv_copy_block(hl_backend *be, hl_kv_cache *kv, int32_t dst, int32_t src) {
    (void)be, hl_kv_copy_block(kv, dst, src);
}
static void vk_kv_truncate(hl_backend *be, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep) {
    (void)be, hl_host_kv_truncate(kv, blocks, n_blocks, n_keep);
}

static void vk_memory(hl_backend *be, const hl_backend_prog *c, hl_backend_mem *out) {
    vk_backend *vb = (vk_backend *)be;
    *out = (hl_backend_mem){.where = vb->vi->devices[vb->dev->index].name, .free = (size_t)room(vb)};
    if (c) out->weights = c->weight_bytes, out->scratch = c->scratch_bytes;
    for (int i = 0; i < MAX_KV_POOLS; i++)
        if (vb->pools[i]) out->kv += (size_t)vb->pools[i]->buf.size;
}

static void vk_destroy(hl_backend *be) {
    vk_backend *vb = (vk_backend *)be;
    if (!vb) return;
    for (int i = 0; i < MAX_KV_POOLS; i++)
        if (vb->pools[i]) vk_kv_free(be, vb->pools[i]->kv);
    hl_vk_kernels_free(vb->k);
    hl_vk_device_close(vb->dev);
    hl_vk_instance_close(vb->vi);
    free(vb);
}

static const hl_backend_ops vk_ops = {
    .name = "vulkan",
    .supports = vk_supports,
    .prepare = vk_prepare,
    .release = vk_release,
    .run = vk_run,
    .run_op = vk_run_op,
    .kv_new = vk_kv_new,
    .kv_free = vk_kv_free,
    .kv_copy_block = vk_kv_copy_block,
    .kv_truncate = vk_kv_truncate,
    .memory = vk_memory,
    .destroy = vk_destroy,
};

/* The kernel choices, read here and nowhere else: the parameters, and where
 * they say auto, HYPERLAMA_VULKAN_MATVEC (auto | subgroup | shared),
 * HYPERLAMA_VULKAN_INT_DOT and HYPERLAMA_VULKAN_TILED (auto | on | off);
 * a bad value is refused by name. */
static int kernel_settings(const hl_vulkan_backend_params *p, hl_vk_kernel_opts *o, hl_err *err) {
    static const struct { const char *env, *what, *names[3]; } set[3] = {
        {"HYPERLAMA_VULKAN_MATVEC", "matvec", {"auto", "subgroup", "shared"}},
        {"HYPERLAMA_VULKAN_INT_DOT", "int_dot", {"auto", "on", "off"}},
        {"HYPERLAMA_VULKAN_TILED", "tiled", {"auto", "on", "off"}},
    };
    int val[3] = {p ? p->matvec : 0, p ? p->int_dot : 0, p ? p->tiled : 0};
    for (int s = 0; s < 3; s++) {
        if (val[s] < 0 || val[s] > 2)
            return hl_err_set(err, HL_EINVAL, "backend vulkan: %s kind %d (0 %s, 1 %s, 2 %s)", set[s].what, val[s],
                              set[s].names[0], set[s].names[1], set[s].names[2]);
        const char *env = getenv(set[s].env);
        if (val[s] != 0 || !env || !*env) continue;
        int found = -1;
        for (int v = 0; v < 3; v++)
            if (!strcmp(env, set[s].names[v])) found = v;
        if (found < 0)
            return hl_err_set(err, HL_EINVAL, "%s=\"%s\": expected %s, %s or %s", set[s].env, env, set[s].names[0],
                              set[s].names[1], set[s].names[2]);
        val[s] = found;
    }
    *o = (hl_vk_kernel_opts){.matvec = (hl_vk_matvec)val[0], .int_dot = (hl_vk_int_dot)val[1], .tiled = (hl_vk_tiling)val[2]};
    return 0;
}

int hl_backend_vulkan_new(hl_backend **out, const hl_vulkan_backend_params *p, hl_err *err) {
    *out = NULL;
    vk_backend *vb = calloc(1, sizeof *vb);
    if (!vb) return hl_err_set(err, HL_ENOMEM, "out of memory");
    vb->base.ops = &vk_ops;
    vb->fraction = p && p->memory_fraction > 0 && p->memory_fraction <= 1 ? p->memory_fraction : 0.9;
    int rc = hl_vk_instance_open(&vb->vi, err);
    if (rc) goto fail;
    int idx = hl_vk_pick(vb->vi, p ? p->device : -1, p ? p->allow_cpu : 0, err);
    if (idx < 0) {
        rc = HL_ENOTSUP;
        goto fail;
    }
    hl_vk_kernel_opts ko;
    if ((rc = kernel_settings(p, &ko, err))) goto fail;
    if ((rc = hl_vk_device_open(vb->vi, idx, &vb->dev, err)) || (rc = hl_vk_kernels_new(vb->dev, &ko, &vb->k, err)))
        goto fail;
    hl_vk_describe(&vb->vi->devices[idx], vb->desc, sizeof vb->desc);
    size_t used = strlen(vb->desc);
    snprintf(vb->desc + used, sizeof vb->desc - used, "; matmul: ");
    used = strlen(vb->desc);
    hl_vk_kernels_describe(vb->k, vb->desc + used, sizeof vb->desc - used);
    *out = &vb->base;
    return 0;
fail:
    vk_destroy(&vb->base);
    return rc;
}

const char *hl_backend_vulkan_device(const hl_backend *be) {
    return be && be->ops == &vk_ops ? ((const vk_backend *)be)->desc : "";
}

void hl_backend_vulkan_run_stats(const hl_backend *be, hl_vulkan_run_stats *out) {
    *out = (hl_vulkan_run_stats){0};
    if (!be || be->ops != &vk_ops) return;
    const hl_vk_kernels *k = ((const vk_backend *)be)->k;
    pthread_mutex_lock(&k->d->submit_mu);
    *out = (hl_vulkan_run_stats){k->stats.runs, k->stats.reused, k->stats.dispatches, k->stats.barriers};
    pthread_mutex_unlock(&k->d->submit_mu);
}
