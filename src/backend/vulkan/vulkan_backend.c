/* The Vulkan backend behind hl_backend_ops (vulkan.h): one device, its
 * kernels, and run_op for the ops that have kernels. Each run_op call
 * copies its inputs into fresh device buffers, records the op's dispatches
 * (activation quantization, then the product) into one submission, waits,
 * and copies the output back: a test path, not the model path, which will
 * keep weights resident and activations on the device between ops. */
#include "backend/vulkan/vulkan.h"

#include "backend/vulkan/vk_compute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vk_backend {
    hl_backend base;
    hl_vk_instance *vi;
    hl_vk_device *dev;
    hl_vk_kernels *k;
    char desc[512];
} vk_backend;

static int is_output_buf(hl_buf_id b) { return b == HL_BUF_OUT_IN || b == HL_BUF_OUT_NORM || b == HL_BUF_LOGITS; }

static int32_t count_wanted(const hl_batch *b) {
    int32_t n = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) n += b->tokens[t].logits != 0;
    return n;
}

/* the matmul kernel for a weight type, or -1 */
static int matmul_kernel(hl_type t) {
    switch (t) {
    case HL_TYPE_F32: return HL_VK_K_matmul_f32;
    case HL_TYPE_F16: return HL_VK_K_matmul_f16;
    case HL_TYPE_Q8_0: return HL_VK_K_matmul_q8_0;
    case HL_TYPE_Q4_0: return HL_VK_K_matmul_q4_0;
    default: return -1;
    }
}

static int op_supported(const hl_op *op) { return op->kind == HL_OP_MATMUL && op->w && matmul_kernel(op->w->type) >= 0; }

static int vk_supports(hl_backend *be, const hl_plan *plan, hl_err *err) {
    (void)be;
    for (int32_t i = 0; i < plan->n_ops; i++) {
        const hl_op *op = &plan->ops[i];
        if (op_supported(op)) continue;
        if (op->kind == HL_OP_MATMUL && op->w)
            return hl_err_set(err, HL_ENOTSUP, "backend vulkan: no matmul kernel for %s weights (%s) yet",
                              hl_type_name(op->w->type), op->w->name);
        return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op %s (layer %d) has no Vulkan kernel yet; "
                          "this backend runs matrix products only so far", hl_op_name(op->kind), op->layer);
    }
    return 0;
}

static int vk_prepare(hl_backend *be, const hl_plan *plan, int32_t max_tokens, hl_backend_prog **out, hl_err *err) {
    (void)max_tokens;
    *out = NULL;
    int rc = vk_supports(be, plan, err);
    return rc ? rc : hl_err_set(err, HL_ENOTSUP, "backend vulkan: whole-model programs are not built yet");
}

static void vk_release(hl_backend *be, hl_backend_prog *prog) { (void)be, (void)prog; }

static int vk_run(hl_backend *be, hl_backend_prog *prog, hl_kv_cache *kv, const hl_batch *b, float *logits, hl_err *err) {
    (void)be, (void)prog, (void)kv, (void)b, (void)logits;
    return hl_err_set(err, HL_ENOTSUP, "backend vulkan: whole-model programs are not built yet");
}

typedef struct mm_push {
    uint32_t k, n, m, ldx, ldo, has_bias;
} mm_push;

typedef struct q8_push {
    uint32_t k, m, ldx;
} q8_push;

static int run_matmul(vk_backend *vb, const hl_op *op, const hl_op_io *io, hl_err *err) {
    const hl_tensor *w = op->w;
    const int64_t m = is_output_buf(op->in) ? count_wanted(io->batch) : io->batch->n_tokens;
    const int64_t k = op->n_in, n = op->n_out;
    if (m == 0) return 0;
    if (w->ne0 != k || w->ne1 != n)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: %s is %lldx%lld, the op wants %lldx%lld", w->name,
                          (long long)w->ne1, (long long)w->ne0, (long long)n, (long long)k);
    const int quant = w->type == HL_TYPE_Q8_0 || w->type == HL_TYPE_Q4_0;
    if (quant && k % 32)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: %s rows of %lld are not whole blocks", w->name, (long long)k);
    if ((uint64_t)m * (uint64_t)k > UINT32_MAX || (uint64_t)m * (uint64_t)n > UINT32_MAX)
        return hl_err_set(err, HL_ERANGE, "backend vulkan: a %lld-row matmul is too large for one dispatch", (long long)m);
    hl_vk_device *d = vb->dev;
    hl_vk_buffer bw = {0}, bx = {0}, bq = {0}, bd = {0}, bb = {0}, bo = {0};
    int rc;
    if ((rc = hl_vk_buffer_new(d, w->row_bytes * (size_t)n, &bw, err)) ||
        (rc = hl_vk_buffer_new(d, (size_t)(m * k) * sizeof(float), &bx, err)) ||
        (rc = hl_vk_buffer_new(d, (size_t)(m * n) * sizeof(float), &bo, err)) ||
        (op->b && op->b->data && (rc = hl_vk_buffer_new(d, (size_t)n * sizeof(float), &bb, err))) ||
        (quant && ((rc = hl_vk_buffer_new(d, (size_t)(m * k), &bq, err)) ||
                   (rc = hl_vk_buffer_new(d, (size_t)(m * k / 32) * sizeof(float), &bd, err)))))
        goto out;
    memcpy(bw.map, w->data, w->row_bytes * (size_t)n);
    memcpy(bx.map, io->buf[op->in], (size_t)(m * k) * sizeof(float));
    if (bb.map) memcpy(bb.map, op->b->data, (size_t)n * sizeof(float));
    hl_vk_dispatch list[2];
    int nd = 0;
    q8_push qp = {(uint32_t)k, (uint32_t)m, (uint32_t)k};
    if (quant) {
        list[nd] = (hl_vk_dispatch){.kernel = HL_VK_K_quant_q8_0, .bufs = {&bx, &bq, &bd}, .push = &qp,
                                    .push_bytes = sizeof qp};
        hl_vk_groups_2d(d, (uint32_t)((m * (k / 32) + 63) / 64), list[nd].groups);
        nd++;
    }
    mm_push mp = {(uint32_t)k, (uint32_t)n, (uint32_t)m, (uint32_t)k, (uint32_t)n, bb.map != NULL};
    list[nd] = (hl_vk_dispatch){.kernel = (hl_vk_kernel_id)matmul_kernel(w->type),
                                .bufs = {&bw, quant ? &bq : &bx, quant ? &bd : NULL, bb.map ? &bb : NULL, &bo},
                                .push = &mp, .push_bytes = sizeof mp};
    hl_vk_groups_2d(d, (uint32_t)n, list[nd].groups);
    nd++;
    if ((rc = hl_vk_run(vb->k, list, nd, err))) goto out;
    memcpy(io->buf[op->out], bo.map, (size_t)(m * n) * sizeof(float));
out:
    hl_vk_buffer_free(d, &bw);
    hl_vk_buffer_free(d, &bx);
    hl_vk_buffer_free(d, &bq);
    hl_vk_buffer_free(d, &bd);
    hl_vk_buffer_free(d, &bb);
    hl_vk_buffer_free(d, &bo);
    return rc;
}

static int vk_run_op(hl_backend *be, const hl_op *op, const hl_op_io *io, hl_err *err) {
    vk_backend *vb = (vk_backend *)be;
    if (!io->batch) return hl_err_set(err, HL_EINVAL, "backend vulkan: run_op without a batch");
    if (op->kind == HL_OP_MATMUL && op->w && matmul_kernel(op->w->type) < 0)
        return hl_err_set(err, HL_ENOTSUP, "backend vulkan: no matmul kernel for %s weights yet", hl_type_name(op->w->type));
    if (!op_supported(op)) return hl_err_set(err, HL_ENOTSUP, "backend vulkan: op %s has no Vulkan kernel yet", hl_op_name(op->kind));
    if (!io->buf[op->in] || !io->buf[op->out])
        return hl_err_set(err, HL_EINVAL, "backend vulkan: op %s: buffer %s or %s not given", hl_op_name(op->kind),
                          hl_buf_name(op->in), hl_buf_name(op->out));
    return run_matmul(vb, op, io, err);
}

/* KV pools stay in host memory until attention runs on the device. */
static int vk_kv_new(hl_backend *be, const hl_kv_params *p, hl_kv_cache **out, hl_err *err) {
    (void)be;
    return hl_host_kv_new(p, out, err);
}
static void vk_kv_free(hl_backend *be, hl_kv_cache *kv) { (void)be, hl_kv_free(kv); }
static void vk_kv_copy_block(hl_backend *be, hl_kv_cache *kv, int32_t dst, int32_t src) {
    (void)be, hl_kv_copy_block(kv, dst, src);
}
static void vk_kv_truncate(hl_backend *be, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep) {
    (void)be, hl_host_kv_truncate(kv, blocks, n_blocks, n_keep);
}

static void vk_memory(hl_backend *be, const hl_backend_prog *prog, hl_backend_mem *out) {
    (void)prog;
    *out = (hl_backend_mem){.where = ((vk_backend *)be)->vi->devices[((vk_backend *)be)->dev->index].name};
}

static void vk_destroy(hl_backend *be) {
    vk_backend *vb = (vk_backend *)be;
    if (!vb) return;
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

int hl_backend_vulkan_new(hl_backend **out, const hl_vulkan_backend_params *p, hl_err *err) {
    *out = NULL;
    vk_backend *vb = calloc(1, sizeof *vb);
    if (!vb) return hl_err_set(err, HL_ENOMEM, "out of memory");
    vb->base.ops = &vk_ops;
    int rc = hl_vk_instance_open(&vb->vi, err);
    if (rc) goto fail;
    int idx = hl_vk_pick(vb->vi, p ? p->device : -1, p ? p->allow_cpu : 0, err);
    if (idx < 0) {
        rc = HL_ENOTSUP;
        goto fail;
    }
    if ((rc = hl_vk_device_open(vb->vi, idx, &vb->dev, err)) || (rc = hl_vk_kernels_new(vb->dev, &vb->k, err))) goto fail;
    hl_vk_describe(&vb->vi->devices[idx], vb->desc, sizeof vb->desc);
    *out = &vb->base;
    return 0;
fail:
    vk_destroy(&vb->base);
    return rc;
}

const char *hl_backend_vulkan_device(const hl_backend *be) {
    return be && be->ops == &vk_ops ? ((const vk_backend *)be)->desc : "";
}
