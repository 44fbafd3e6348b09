/* The plan's ops (backend/backend.h) as Vulkan dispatches: one recorder
 * turns an op, the device buffers of its named activation buffers, its
 * weights on the device and the batch into the dispatches that compute it,
 * appended to a list that one hl_vk_run submits. The same recorder serves
 * run_op (one op, buffers filled from the host) and a whole step of a model
 * (every op of the plan over resident buffers), so there is one definition
 * of each op on the GPU.
 *
 * What the host prepares per step, at record time, in small buffers the
 * recorder owns (kept from step to step, so a step of the same shape names
 * the same buffers): each token's KV slot (KV_STORE), its visible
 * positions and its sequence's block table (ATTN), the rope cos/sin
 * of each position (computed in double and rounded, as the reference does),
 * the rows that want logits (GATHER). EMBED is done on the host too: the
 * token rows of the (mapped) embedding table, dequantized straight into the
 * output buffer, so it must be recorded before anything on the device writes
 * that buffer in the same run (it is the plan's first op).
 *
 * Ownership: the recorder owns its list and its step buffers; the views and
 * weights it is given are borrowed and must live until the run is done. */
#ifndef HL_BACKEND_VULKAN_VK_OPS_H
#define HL_BACKEND_VULKAN_VK_OPS_H

#include "backend/backend.h"
#include "backend/vulkan/vk_compute.h"

/* A KV pool on the device: the host view (backend/kv.h, laid out in the
 * buffer's mapping by hl_kv_new_in) and the buffer itself. */
typedef struct hl_vk_kv {
    hl_kv_cache *kv;
    hl_vk_buffer buf;
} hl_vk_kv;

/* The tensors an op reads besides w and b, at fixed places (NULL where the
 * op has none): ATTN its sinks; MOE its router, experts, their biases and
 * the shared expert (the order of hl_vk_moe_tensor). */
enum { HL_VK_OP_EXTRA = 12 };
typedef enum hl_vk_moe_tensor {
    HL_VK_MOE_ROUTER, HL_VK_MOE_GATE, HL_VK_MOE_UP, HL_VK_MOE_DOWN,
    HL_VK_MOE_ROUTER_B, HL_VK_MOE_GATE_B, HL_VK_MOE_UP_B, HL_VK_MOE_DOWN_B,
    HL_VK_MOE_SH_GATE, HL_VK_MOE_SH_UP, HL_VK_MOE_SH_DOWN, HL_VK_MOE_SH_GATE_INP,
} hl_vk_moe_tensor;
void hl_vk_op_extra(const hl_op *op, const hl_tensor *out[HL_VK_OP_EXTRA]);
/* bytes of a tensor's data (every slice of a 3-D one) */
size_t hl_vk_tensor_bytes(const hl_tensor *t);

typedef struct hl_vk_op_args {
    const hl_vk_buffer *buf[HL_BUF_COUNT]; /* the plan's buffers on the device, NULL where unused */
    const hl_vk_buffer *w, *b;             /* the op's weight and bias on the device (MATMUL, NORM) */
    const hl_vk_buffer *ext[HL_VK_OP_EXTRA]; /* its hl_vk_op_extra tensors on the device */
    const hl_batch *batch;
    int32_t n_wanted;                      /* rows of the output buffers */
    const hl_vk_kv *kv;                    /* KV_STORE, ATTN */
} hl_vk_op_args;

typedef struct hl_vk_rec {
    hl_vk_kernels *k; /* borrowed */
    hl_vk_dispatch *list;
    int n, cap;
    hl_vk_buffer **tmp; /* step buffers, kept from step to step (tmp_buffer in vk_ops.c) */
    int n_tmp, cap_tmp, n_used; /* n_used: handed out since the last reset */
    /* step data shared by every layer's op of the same kind */
    hl_vk_buffer *slots;
    struct { int32_t window; int causal; hl_vk_buffer *buf; } meta[4];
    int n_meta;
    struct { const double *inv_freq; int32_t half; double mscale; hl_vk_buffer *cs; } rope[4];
    int n_rope;
    /* activations already converted this step (the q, k and v products of
     * one input share one), forgotten when a dispatch writes their source */
    struct { const hl_vk_buffer *x; int act; int64_t m, k; hl_vk_buffer *q, *d; } conv[8];
    int n_conv;
} hl_vk_rec;

void hl_vk_rec_init(hl_vk_rec *r, hl_vk_kernels *k);
/* Appends op's dispatches (HL_ENOTSUP, naming it, for an op or type without a kernel). */
int hl_vk_rec_op(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err);
/* Submits what was recorded and waits. */
int hl_vk_rec_run(hl_vk_rec *r, hl_err *err);
/* Empties the list; the step buffers are kept for the next step's asks. */
void hl_vk_rec_reset(hl_vk_rec *r);
void hl_vk_rec_free(hl_vk_rec *r);

/* 0 when op can run here; else HL_ENOTSUP with a message naming it. */
int hl_vk_op_check(const hl_op *op, hl_err *err);
/* Whether a buffer holds one row per token that wants logits. */
int hl_vk_is_output_buf(hl_buf_id b);

#endif
