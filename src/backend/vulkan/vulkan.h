/* The Vulkan compute backend (issue 9): the device layer (vk_device.h: the
 * loader opened at run time, devices described and chosen), the kernel
 * layer (vk_compute.h: embedded SPIR-V, buffers, dispatch), the plan's ops
 * as dispatches (vk_ops.h) and, behind the backend interface, whole models:
 * prepare uploads the weights once, run records every op of the plan into
 * one submission over resident buffers, KV pools live in device buffers
 * (laid out by backend/kv.c, reached by the host through the mapping); a
 * step of the same shape as the last resubmits its recorded command buffer.
 *
 * Kernels so far: matrix products (a subgroup kernel where the device has
 * subgroup arithmetic, else a shared-memory one) for every weight type the CPU runs (F32,
 * F16, BF16, Q4_0..Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS, MXFP4; activations
 * quantized on the device, bit for bit as the CPU does, integer block sums
 * as the scalar oracle defines them, with integer dot products where the
 * device has them and activation tiles in shared memory for prefill on
 * GPUs), norms, rope,
 * GLU / activations / residual adds, gather, KV store (F16 and Q8_0, the
 * CPU's bytes) and attention over the paged pool; embedding rows are read
 * on the host. A plan with another weight type or op (MoE) is refused by
 * supports(), naming it. Selected in model/backends.c ("vulkan",
 * "vulkan:N", and "auto" when there is a GPU).
 *
 * Memory: weights go to device-local memory once (through a staging buffer
 * where that memory is not host-visible); scratch and KV pools are
 * host-visible. Before placing a model's weights or a KV pool the backend
 * checks them against the free device memory (VK_EXT_memory_budget when the
 * driver has it) times memory_fraction, and refuses with base/memfit.h's
 * message (what it needs, what there is, what to try) rather than failing
 * an allocation half way. memory() reports what is left in `free`. */
#ifndef HL_BACKEND_VULKAN_H
#define HL_BACKEND_VULKAN_H

#include "backend/backend.h"

typedef struct hl_vulkan_backend_params {
    int device;    /* index into the instance's devices; -1: auto */
    int allow_cpu; /* let auto choose a CPU implementation (lavapipe): tests only */
    double memory_fraction; /* share of the free device memory weights, buffers and KV may take; <= 0: 0.9 */
    int matvec;    /* matrix-product kernels (vk_compute.h hl_vk_matvec): 0 auto, 1 subgroup, 2 shared
                      memory; auto reads HYPERLAMA_VULKAN_MATVEC (subgroup | shared), else takes the
                      subgroup kernels where the device has subgroup arithmetic */
    int int_dot;   /* integer dot products in the quantized subgroup kernels (vk_compute.h hl_vk_int_dot):
                      0 auto, 1 on, 2 off; auto reads HYPERLAMA_VULKAN_INT_DOT (on | off), else uses them
                      where the device has shaderIntegerDotProduct */
    int tiled;     /* the tiled prefill pipelines (vk_compute.h hl_vk_tiling): 0 auto, 1 on, 2 off; auto
                      reads HYPERLAMA_VULKAN_TILED (on | off), else uses them on GPUs, not on lavapipe */
} hl_vulkan_backend_params;

/* HL_ENOTSUP (with the reason) when there is no loader or no usable device. */
int hl_backend_vulkan_new(hl_backend **out, const hl_vulkan_backend_params *p, hl_err *err);

/* The chosen device, as hl_vk_describe prints it, and the matrix-product
 * kernels in use ("...; matmul: subgroup (32 lanes, 4 rows per work
 * group, int8 dot, prefill tiles of 32 rows)"), for logs, bench and tests. */
const char *hl_backend_vulkan_device(const hl_backend *be);

/* What the backend's submissions did so far (vk_compute.h's counters: runs,
 * those that reused the kept recording, dispatches and barriers recorded);
 * zeros for a backend that is not this one. */
typedef struct hl_vulkan_run_stats {
    uint64_t runs, reused, dispatches, barriers;
} hl_vulkan_run_stats;
void hl_backend_vulkan_run_stats(const hl_backend *be, hl_vulkan_run_stats *out);

#endif
