/* Buffers, compute kernels and their submission on one Vulkan device.
 *
 * Kernels are the GLSL compute shaders in shaders/, compiled to SPIR-V by
 * glslc at build time and embedded in the binary (module.mk), listed once
 * in HL_VK_KERNELS below (the Makefile's VK_SHADERS must name the same).
 * Every kernel has the same interface, so one descriptor-set layout and one
 * pipeline layout serve them all: six storage buffers (bindings 0..5; a
 * kernel that uses fewer gets the device's dummy buffer in the others) and
 * up to 64 bytes of push constants.
 *
 * The matrix products come in two kinds, chosen once per device when the
 * pipelines are made: matmul.comp, one work group of 64 per weight row and a
 * shared-memory tree (any device), and, for every type (HL_VK_MATVEC_*),
 * matvec.comp, one subgroup per row and several rows per work group
 * (devices with subgroup arithmetic; specialized for the device's subgroup
 * size; the quantized types built with integer dot products where the
 * device has them: hl_vk_int_dot). A subgroup kernel of a quantized type
 * can have two pipelines, one specialization each: direct (up to
 * HL_VK_DIRECT_ROWS activation rows a pass, decode; always) and tiled
 * (activation tiles staged in shared memory, prefill; hl_vk_tiling, and
 * only where a tile holds more rows than a direct pass), the recorder
 * taking it for m > HL_VK_DIRECT_ROWS; both sum every row in the same order,
 * so a row's result never depends on how many rows the batch has,
 * whichever runs it.
 * hl_vk_kernels.rows says how many weight rows one work group of a pipeline
 * computes.
 *
 * A run is a list of dispatches recorded into the kernel set's command
 * buffer, submitted once and waited for (the device's submit_mu makes runs
 * of several models on one device take turns). A barrier goes in only where
 * a dispatch touches bytes that one since the last barrier may have written,
 * or writes bytes one since then read (which bindings a kernel writes comes
 * from its SPIR-V: vk_spirv.h), so independent dispatches -- the q, k and v
 * products of one input, gate and up -- run together. The recording is kept:
 * a run whose list equals the last one's (the same kernels, buffers,
 * offsets, push constants and groups: the next decode step of the same batch
 * shape, its step data rewritten in place by the host) submits it again
 * without recording, unless a buffer was freed since (hl_vk_device.freed). Buffers are either host-visible and coherent (mapped
 * for their lifetime, preferring memory that is also device-local: scratch,
 * KV pools, which the host reads and writes) or device-local (weights:
 * written once through hl_vk_buffer_write, which copies through a staging
 * buffer when that memory is not host-visible, as on discrete GPUs, and
 * writes through the mapping where the heap is shared, as on integrated GPUs
 * and lavapipe).
 *
 * Ownership: hl_vk_kernels and hl_vk_buffer are owned by their creator and
 * freed with the device that made them still open. */
#ifndef HL_BACKEND_VULKAN_VK_COMPUTE_H
#define HL_BACKEND_VULKAN_VK_COMPUTE_H

#include "backend/vulkan/vk_device.h"

/* name: the shader file shaders/<file>.comp and its build defines (module.mk) */
#define HL_VK_KERNELS(X) \
    X(quant_q8_0)        \
    X(quant_q8_1)        \
    X(quant_q8_k)        \
    X(matmul_f32)          \
    X(matmul_f16)          \
    X(matmul_bf16)         \
    X(matmul_q4_0)         \
    X(matmul_q4_1)         \
    X(matmul_q5_0)         \
    X(matmul_q5_1)         \
    X(matmul_q8_0)         \
    X(matmul_q2_k)         \
    X(matmul_q3_k)         \
    X(matmul_q4_k)         \
    X(matmul_q5_k)         \
    X(matmul_q6_k)         \
    X(matmul_iq4_nl)       \
    X(matmul_iq4_xs)       \
    X(matmul_mxfp4)        \
    X(moe_matmul_f32)      \
    X(moe_matmul_f16)      \
    X(moe_matmul_bf16)     \
    X(moe_matmul_q4_0)     \
    X(moe_matmul_q4_1)     \
    X(moe_matmul_q5_0)     \
    X(moe_matmul_q5_1)     \
    X(moe_matmul_q8_0)     \
    X(moe_matmul_q2_k)     \
    X(moe_matmul_q3_k)     \
    X(moe_matmul_q4_k)     \
    X(moe_matmul_q5_k)     \
    X(moe_matmul_q6_k)     \
    X(moe_matmul_iq4_nl)   \
    X(moe_matmul_iq4_xs)   \
    X(moe_matmul_mxfp4)    \
    X(moe_gate)          \
    X(elementwise)       \
    X(norm)              \
    X(rope)              \
    X(gather)            \
    X(kv_store_f16)      \
    X(kv_store_q8_0)     \
    X(attn_f16)          \
    X(attn_q8_0)         \
    X(attn_combine)

/* the weight types of the subgroup kernels (matvec_<type>, module.mk): every
 * matmul type. The quantized ones, with their values per block, also have
 * an integer-dot build (matvec_dot_<type>) and a tiled pipeline. */
#define HL_VK_MATVEC_FLOAT(X) X(f32) X(f16) X(bf16)
#define HL_VK_MATVEC_QUANT(X)                                                                                  \
    X(q4_0, 32) X(q4_1, 32) X(q5_0, 32) X(q5_1, 32) X(q8_0, 32) X(q2_k, 256) X(q3_k, 256) X(q4_k, 256) X(q5_k, 256) \
    X(q6_k, 256) X(iq4_nl, 32) X(iq4_xs, 256) X(mxfp4, 32)

typedef enum hl_vk_kernel_id {
#define HL_VK_KERNEL_ENUM(name) HL_VK_K_##name,
    HL_VK_KERNELS(HL_VK_KERNEL_ENUM)
#undef HL_VK_KERNEL_ENUM
    HL_VK_K_COUNT
} hl_vk_kernel_id;

enum { HL_VK_BINDINGS = 6, HL_VK_PUSH_BYTES = 64, HL_VK_OFFSET_ALIGN = 256 };
/* matvec.comp: MAXM, the activation rows of one direct pass (more take the
 * tiled pipeline); NACC, the most rows of a tile; the shared memory a tile
 * may take (the least of this and the device's maxComputeSharedMemorySize) */
enum { HL_VK_DIRECT_ROWS = 8, HL_VK_TILE_ROWS = 32, HL_VK_TILE_BYTES = 32768 };

typedef struct hl_vk_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map; /* host address for the buffer's lifetime; NULL for device-only memory */
    VkDeviceSize device_bytes; /* device-local bytes it holds (counted in hl_vk_device.allocated) */
} hl_vk_buffer;

/* What the runs of a kernel set did (tests, `--verbose` diagnostics). */
typedef struct hl_vk_run_stats {
    uint64_t runs;       /* submissions */
    uint64_t reused;     /* of which submitted a kept recording */
    uint64_t dispatches; /* recorded */
    uint64_t barriers;   /* recorded between dispatches (not counting a run's first and last) */
} hl_vk_run_stats;

typedef struct hl_vk_dispatch hl_vk_dispatch;

typedef struct hl_vk_kernels {
    hl_vk_device *d; /* borrowed */
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkDescriptorPool pool;
    int pool_sets; /* the pool's capacity; a longer run grows it */
    VkPipeline pipe[HL_VK_K_COUNT];
    uint32_t rows[HL_VK_K_COUNT]; /* weight rows a work group of a matmul_* pipeline computes (1: matmul.comp) */
    VkPipeline tiled[HL_VK_K_COUNT]; /* matvec.comp's tiled pipeline of a quantized matmul_* (else VK_NULL_HANDLE) */
    uint32_t tile_rows[HL_VK_K_COUNT]; /* activation rows it stages per tile */
    int subgroup;                 /* the matvec.comp kernels are in use */
    int int_dot;                  /* with integer dot products (matvec_dot_*) */
    uint32_t writes[HL_VK_K_COUNT]; /* bindings each kernel may write (vk_spirv.h) */
    hl_vk_buffer dummy; /* bound to the bindings a dispatch leaves empty */
    VkCommandBuffer cmd;  /* this set's own, from the device's pool */
    hl_vk_dispatch *last; /* the list cmd holds recorded (valid while recorded) */
    int n_last, cap_last, recorded;
    uint64_t last_freed;  /* hl_vk_device.freed when it was recorded */
    hl_vk_run_stats stats;
} hl_vk_kernels;

/* One dispatch: binding j sees bufs[j] from byte off[j] (a multiple of
 * HL_VK_OFFSET_ALIGN, the largest storage-buffer offset alignment Vulkan
 * allows) for range[j] bytes (0: to the end). The push constants are kept
 * inline, so a list can be built op by op and run later. */
struct hl_vk_dispatch {
    hl_vk_kernel_id kernel;
    const hl_vk_buffer *bufs[HL_VK_BINDINGS]; /* NULL: the dummy */
    VkDeviceSize off[HL_VK_BINDINGS], range[HL_VK_BINDINGS];
    uint8_t push[HL_VK_PUSH_BYTES];
    uint32_t push_bytes;
    uint32_t groups[3];
    int tiled; /* run the kernel's tiled pipeline (hl_vk_kernels.tiled; for m > HL_VK_DIRECT_ROWS) */
};

/* host-visible, mapped */
int hl_vk_buffer_new(hl_vk_device *d, VkDeviceSize size, hl_vk_buffer *out, hl_err *err);
/* device-local (mapped only when that memory is host-visible too) */
int hl_vk_buffer_new_device(hl_vk_device *d, VkDeviceSize size, hl_vk_buffer *out, hl_err *err);
/* bytes from src to the start of dst: through the mapping, else a staging copy */
int hl_vk_buffer_write(hl_vk_device *d, hl_vk_buffer *dst, const void *src, size_t bytes, hl_err *err);
void hl_vk_buffer_free(hl_vk_device *d, hl_vk_buffer *b);

/* Which matrix products a device gets: auto = the subgroup kernels where
 * the device has subgroup arithmetic (and a subgroup of 4 to 128 lanes),
 * else the shared-memory ones; the other two force a kind (tests, device
 * checks; subgroup fails with HL_ENOTSUP on a device without). */
typedef enum hl_vk_matvec { HL_VK_MATVEC_AUTO = 0, HL_VK_MATVEC_SUBGROUP = 1, HL_VK_MATVEC_SHARED = 2 } hl_vk_matvec;

/* Integer dot products in the subgroup kernels of the quantized types
 * (matvec.comp -DINT_DOT): auto = where the device has
 * shaderIntegerDotProduct; on fails with HL_ENOTSUP on a device without;
 * off = the plain multiplies (the same integer sums, so the same bits). */
typedef enum hl_vk_int_dot { HL_VK_INT_DOT_AUTO = 0, HL_VK_INT_DOT_ON = 1, HL_VK_INT_DOT_OFF = 2 } hl_vk_int_dot;

/* The tiled pipelines of the quantized subgroup kernels (prefill and
 * batched decode, m > HL_VK_DIRECT_ROWS): auto = on GPUs, not on CPU
 * implementations (lavapipe: its caches serve the direct kernel's re-reads,
 * and staging is then a copy that costs more than it saves); on = wherever
 * the subgroup kernels run (HL_ENOTSUP elsewhere: tests, device checks);
 * off = the direct kernel for every m. Either way the same bits. */
typedef enum hl_vk_tiling { HL_VK_TILED_AUTO = 0, HL_VK_TILED_ON = 1, HL_VK_TILED_OFF = 2 } hl_vk_tiling;

/* What hl_vk_kernels_new builds; zero: every choice automatic. */
typedef struct hl_vk_kernel_opts {
    hl_vk_matvec matvec;
    hl_vk_int_dot int_dot;
    hl_vk_tiling tiled;
} hl_vk_kernel_opts;

int hl_vk_kernels_new(hl_vk_device *d, const hl_vk_kernel_opts *opts, hl_vk_kernels **out, hl_err *err);
/* "subgroup (32 lanes, 4 rows per work group, int8 dot, tiles of 16-32 rows)" or "shared memory (64 per row)" */
void hl_vk_kernels_describe(const hl_vk_kernels *k, char *buf, size_t n);
void hl_vk_kernels_free(hl_vk_kernels *k);

/* Submits the dispatches in order and waits: recorded with barriers where
 * data depends, or the kept recording when the list is the last run's. A
 * list compares equal only byte for byte, so build dispatches zeroed (as the
 * recorder does) for reuse to find them. */
int hl_vk_run(hl_vk_kernels *k, const hl_vk_dispatch *list, int n, hl_err *err);

/* Work groups for `count` groups along x, spilling into y past the device's x limit. */
void hl_vk_groups_2d(const hl_vk_device *d, uint32_t count, uint32_t groups[3]);

#endif
