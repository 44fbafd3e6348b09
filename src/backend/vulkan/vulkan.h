/* The Vulkan compute backend (issue 9), first part: the device layer
 * (vk_device.h: the loader opened at run time, devices described and
 * chosen), the kernel layer (vk_compute.h: embedded SPIR-V, buffers,
 * dispatch) and, behind the backend interface, the ops that have GPU
 * kernels so far: MATMUL for F32, F16, Q8_0 and Q4_0 weights (activations
 * quantized to Q8_0 on the device, integer block sums as the scalar oracle
 * defines them). Those run through run_op, so the cross-backend op harness
 * checks them against the reference backend.
 *
 * It does not run models yet: supports() refuses every plan, naming the
 * first op that has no kernel here, so no engine ever selects it, and it is
 * not among the names model/backends.c maps. KV pools are host memory for
 * now (the op harness's KV cases get HL_ENOTSUP from run_op). */
#ifndef HL_BACKEND_VULKAN_H
#define HL_BACKEND_VULKAN_H

#include "backend/backend.h"

typedef struct hl_vulkan_backend_params {
    int device;    /* index into the instance's devices; -1: auto */
    int allow_cpu; /* let auto choose a CPU implementation (lavapipe): tests only */
} hl_vulkan_backend_params;

/* HL_ENOTSUP (with the reason) when there is no loader or no usable device. */
int hl_backend_vulkan_new(hl_backend **out, const hl_vulkan_backend_params *p, hl_err *err);

/* The chosen device, as hl_vk_describe prints it (for logs and tests). */
const char *hl_backend_vulkan_device(const hl_backend *be);

#endif
