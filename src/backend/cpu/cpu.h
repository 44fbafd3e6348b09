/* The CPU backend: a thread pool with a cheap barrier, run-time SIMD dispatch,
 * and the kernels the forward pass is built from.
 *
 * Execution model. The forward pass runs inside ONE parallel region per step:
 * hl_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) on every thread (the
 * caller is thread 0) and returns when all are done. Inside, stages are
 * separated by hl_pool_barrier(pool). Kernels therefore come as "slice"
 * functions taking (ith, nth): each thread computes its own part of the
 * output, with no allocation and no synchronisation of their own. Workers
 * spin briefly at the barrier, then sleep, so a descheduled sibling does not
 * collapse throughput on a shared machine.
 *
 * Matrix multiply. out[i][j] = sum_k x[i][k] * W[j][k] for i < m (batch rows)
 * and j < n (weight rows). W is a weight tensor exactly as GGUF stores it
 * (n rows of k elements of type wtype, ne[0] = k). Activations are first
 * converted once per call to the format the weight type's dot product wants
 * (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL/MXFP4, Q8_1 for Q4_1/Q5_1, Q8_K for the
 * K-quants and IQ4_XS, F32 otherwise), then every thread multiplies its share of the weight rows
 * with all m activation rows, so one pass over the weights serves the batch.
 * Float weights (F32, F16, BF16) take F32 activations (a plain copy), which
 * keeps them exact; the integer formats take 8-bit activations so the inner
 * loops are integer multiply-adds.
 *
 * Dispatch. The SIMD level is chosen once, at first use, from cpuid (and the
 * HL_SIMD environment variable); the *_at variants take an explicit level so
 * tests can compare every SIMD kernel with the scalar one in one process.
 * The scalar kernels (integer sums times scales, as the formats define them)
 * are the oracle; every SIMD kernel computes the same integer sums. For a
 * given level, out[i][j] does not depend on m, on the thread count or on
 * which rows a thread got (batch invariance). */
#ifndef HL_BACKEND_CPU_H
#define HL_BACKEND_CPU_H

#include "base/err.h"
#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

/* ---- CPU features and dispatch ---- */
typedef struct hl_cpu_info {
    int avx2, fma, f16c, bmi2, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni;
    int n_cores;        /* online logical CPUs */
    char model[128];    /* "AMD EPYC ..." from /proc/cpuinfo or cpuid */
} hl_cpu_info;
void hl_cpu_detect(hl_cpu_info *info);
/* "AVX512-VNNI", "AVX2", or "scalar": the kernel level in use. HL_SIMD=scalar|avx2
 * in the environment forces a lower level (tests use it to cover every path). */
const char *hl_cpu_simd_level(void);

/* Kernel levels, lowest first. */
typedef enum hl_simd { HL_SIMD_SCALAR = 0, HL_SIMD_AVX2 = 1, HL_SIMD_AVX512 = 2 } hl_simd;
/* The level in use (detected once, capped by HL_SIMD). */
hl_simd hl_cpu_simd(void);
/* Nonzero when this CPU can run kernels of that level (AVX512 is the AVX2
 * table with AVX-512 VNNI attention and Q4_K / Q6_K matmul kernels on top,
 * giving the AVX2 bits). */
int hl_cpu_simd_supported(hl_simd level);
const char *hl_simd_name(hl_simd level);

/* ---- thread pool ---- */
typedef struct hl_pool hl_pool;
hl_pool *hl_pool_new(int n_threads); /* n_threads <= 0: number of cores */
void hl_pool_free(hl_pool *pool);
int hl_pool_size(const hl_pool *pool);
/* How long waiters spin before sleeping: at a barrier (default 5 us) and
 * between runs (default 50 us); a negative value keeps the current one. Call
 * only while no run is in progress. */
void hl_pool_set_spin(hl_pool *pool, int barrier_us, int idle_us);
typedef void (*hl_pool_fn)(void *ctx, int ith, int nth);
/* Runs fn on every thread. One process has one pool, shared by every loaded
 * model: callers on different threads take turns, one run at a time, in the
 * order they arrived (so two busy models alternate step by step instead of
 * oversubscribing the cores). Never call it from inside a run. */
void hl_pool_run(hl_pool *pool, hl_pool_fn fn, void *ctx);
/* Only valid inside hl_pool_run; every thread must call it the same number of times. */
void hl_pool_barrier(hl_pool *pool);

/* ---- matrix multiply ---- */
/* Nonzero for the weight types hl_matmul_* accept: F32, F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4 (integer
 * kernels, AVX2 and scalar) and the lattice i-quants IQ1_S, IQ1_M, IQ2_XXS,
 * IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S (scalar only: each weight super-block is
 * dequantized and dotted with f32 activations; correct, and slow). k must be
 * a multiple of the type's block length (32 or 256). */
int hl_matmul_supported(hl_type wtype);
/* The activation type used with weights of type wtype (HL_TYPE_COUNT if unsupported). */
hl_type hl_matmul_act_type(hl_type wtype);
/* Bytes of scratch needed to hold m converted activation rows of length k. */
size_t hl_matmul_act_size(hl_type wtype, int64_t m, int64_t k);
/* Converts activation rows (row stride ldx floats) into xq; threads split rows.
 * Typical use inside hl_pool_run (xq sized by hl_matmul_act_size):
 *     hl_matmul_prepare(t, x, ldx, m, k, xq, ith, nth);
 *     hl_pool_barrier(pool);
 *     hl_matmul_slice(t, w, n, k, xq, m, out, ldo, ith, nth);
 *     hl_pool_barrier(pool);   (before anyone reads out)
 * Projections of the same input (q/k/v, gate/up) whose weight types share an
 * activation type can share one prepared xq. */
void hl_matmul_prepare(hl_type wtype, const float *x, int64_t ldx, int64_t m, int64_t k, void *xq, int ith, int nth);
/* out rows have stride ldo floats. Threads split the n weight rows in
 * contiguous, balanced chunks; thread ith writes only its columns of out. */
void hl_matmul_slice(hl_type wtype, const void *w, int64_t n, int64_t k, const void *xq, int64_t m, float *out,
                     int64_t ldo, int ith, int nth);
/* Convenience for tests and one-off callers: prepare + barrier + slice on the pool. */
void hl_matmul(hl_pool *pool, hl_type wtype, const void *w, int64_t n, int64_t k, const float *x, int64_t m,
               float *out, int64_t ldo, void *scratch);
/* The same at an explicit kernel level (must be supported by this CPU). xq
 * must come from hl_matmul_prepare_at with the same level. */
void hl_matmul_prepare_at(hl_simd level, hl_type wtype, const float *x, int64_t ldx, int64_t m, int64_t k, void *xq,
                          int ith, int nth);
void hl_matmul_slice_at(hl_simd level, hl_type wtype, const void *w, int64_t n, int64_t k, const void *xq, int64_t m,
                        float *out, int64_t ldo, int ith, int nth);
void hl_matmul_at(hl_simd level, hl_pool *pool, hl_type wtype, const void *w, int64_t n, int64_t k, const float *x,
                  int64_t m, float *out, int64_t ldo, void *scratch);

/* ---- vector kernels (single thread; callers split work) ---- */
float hl_vec_dot_f32(const float *a, const float *b, int64_t n);
float hl_vec_dot_f16(const hl_f16 *a, const float *b, int64_t n); /* a in f16, b in f32 */
void hl_vec_axpy_f16(float *y, const hl_f16 *x, float a, int64_t n); /* y += a * x */
void hl_vec_to_f16(hl_f16 *dst, const float *src, int64_t n);
void hl_vec_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps); /* w may be NULL */
void hl_vec_softmax(float *x, int64_t n); /* in place, numerically stable */
void hl_vec_silu_mul(float *out, const float *gate, const float *up, int64_t n);
void hl_vec_gelu_mul(float *out, const float *gate, const float *up, int64_t n); /* tanh approximation */
void hl_vec_add(float *y, const float *x, int64_t n);                           /* y += x */
void hl_vec_scale(float *y, float s, int64_t n);

/* Keys per block of the tiled attention: the online softmax steps at fixed
 * multiples of it, so a row's result never depends on how queries are tiled. */
#define HL_ATTN_BK 64

/* The vector kernels of one level, for tests and benchmarks. */
typedef struct hl_vec_ops {
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    float (*dot_f16)(const hl_f16 *a, const float *b, int64_t n);
    void (*axpy_f16)(float *y, const hl_f16 *x, float a, int64_t n);
    void (*to_f16)(hl_f16 *dst, const float *src, int64_t n);
    void (*rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps);
    void (*softmax)(float *x, int64_t n);
    void (*silu_mul)(float *out, const float *gate, const float *up, int64_t n);
    void (*gelu_mul)(float *out, const float *gate, const float *up, int64_t n);
    void (*add)(float *y, const float *x, int64_t n);
    void (*scale)(float *y, float s, int64_t n);
    /* Tiled attention (attn_tile.c drives them; HL_ATTN_BK keys per block).
     * Rows are query rows (one token, one head); a block's scores are
     * s[r * HL_ATTN_BK + j], j the key's offset in its block.
     *   f16_to_f32 / q8_0_to_f32: one K or V row into floats (q8_0: n a
     *     multiple of 32, each value d * q).
     *   attn_kt: kt[d * HL_ATTN_BK + j] = k[j * hd + d] for j in [j0, j1)
     *     (multiples of 8), d < hd: a block of key rows transposed.
     *   attn_qk: s[r * HL_ATTN_BK + j] for rows r < nr, keys j in [j0, j1)
     *     (multiples of 8): query row r (q + r * hd) against column j of kt,
     *     one fma per d in order from 0 -- the same bits however many rows or
     *     keys one call computes.
     *   attn_softmax: for each row, the online-softmax step over its
     *     HL_ATTN_BK scores (-inf = masked): mnew = max(m, max s), corr =
     *     exp(m - mnew) (0 while mnew is -inf), s = exp(s - mnew) (0 where
     *     masked), l = l * corr + (sum of s: sixteen lanes, lane i summing
     *     s[i], s[i + 16], ... in order; then lanes i and i + 8 added and
     *     the eight reduced as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))), m = mnew.
     *   attn_pv: out[r][i] = out[r][i] * corr[r], then fma(p[r * HL_ATTN_BK
     *     + j], v[j * hd + i], .) for j in [j0, j1) in order, for r < nr, i <
     *     hd: each element's arithmetic is fixed whatever nr is. */
    void (*f16_to_f32)(float *dst, const hl_f16 *src, int64_t n);
    void (*q8_0_to_f32)(float *dst, const void *src, int64_t n);
    void (*attn_kt)(float *kt, const float *k, int32_t j0, int32_t j1, int32_t hd);
    void (*attn_qk)(float *s, const float *q, int32_t nr, const float *kt, int32_t j0, int32_t j1, int32_t hd);
    void (*attn_softmax)(float *s, int32_t nr, float *m, float *l, float *corr);
    void (*attn_pv)(float *const *out, int32_t nr, const float *p, const float *corr, const float *v, int32_t j0,
                    int32_t j1, int32_t hd);
} hl_vec_ops;
const hl_vec_ops *hl_vec_ops_at(hl_simd level);

/* The kernel table of a level (opaque; built once, read-only afterwards). */
typedef struct hl_cpu_kernels hl_cpu_kernels;
const hl_cpu_kernels *hl_cpu_kernels_at(hl_simd level);

/* ---- the CPU backend: hl_backend (backend/backend.h) over these kernels ---- */
/* Threading policy of a step. AUTO (the default) runs steps of tiny models on
 * the calling thread alone, since barriers would cost more than the work; the
 * others force one choice (tests use PARALLEL to cover the threaded path).
 * Results are the same either way. */
typedef enum { HL_THREADS_AUTO = 0, HL_THREADS_PARALLEL = 1, HL_THREADS_SERIAL = 2 } hl_threads_mode;
typedef struct hl_cpu_backend_params {
    hl_pool *pool;           /* borrowed: the process's one pool, shared by every model */
    hl_threads_mode threads;
    int no_fuse;             /* run every op of the plan on its own (tests: fused = unfused, bit for bit) */
} hl_cpu_backend_params;
struct hl_backend;
int hl_backend_cpu_new(struct hl_backend **out, const hl_cpu_backend_params *p, hl_err *err);

#endif
