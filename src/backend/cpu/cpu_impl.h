/* Internals of the CPU backend shared by its files (not for other modules):
 * the kernel table one SIMD level provides, and the per-level constructors.
 * A table is built once per level and never changes afterwards, so it may be
 * shared freely between threads. Tile kernels compute a small block of the
 * output (nw weight rows x nx activation rows) so one unpacked weight block is
 * reused across several activation rows; for batch invariance every kernel
 * must compute out[i][j] with the same arithmetic whatever nw and nx are. */
#ifndef HL_BACKEND_CPU_IMPL_H
#define HL_BACKEND_CPU_IMPL_H

#include "backend/cpu/cpu.h"

/* Converts one activation row of k floats to the activation format. */
typedef void (*hl_act_fn)(const float *x, void *y, int64_t k);
/* out[i * ldo + j] = dot(weight row j, activation row i), j < nw, i < nx;
 * rows are wstride / xstride bytes apart. nw <= tile_nw, nx <= tile_nx. */
typedef void (*hl_tile_fn)(int64_t k, const void *w, size_t wstride, int nw, const void *x, size_t xstride, int nx,
                           float *out, int64_t ldo);

/* Optional batched path (m > 1) over n weight rows and m activation rows,
 * free to choose its own loop order; returns 0 if it declines the shape (the
 * caller then tiles). Must give the same bits per element as the tile. */
typedef int (*hl_gemm_fn)(int64_t k, const void *w, size_t wstride, int64_t n, const void *x, size_t xstride,
                          int64_t m, float *out, int64_t ldo);

struct hl_cpu_kernels {
    hl_simd level;
    hl_act_fn act[HL_TYPE_COUNT];   /* indexed by activation type */
    hl_tile_fn tile[HL_TYPE_COUNT]; /* indexed by weight type */
    hl_gemm_fn gemm[HL_TYPE_COUNT]; /* NULL: tile loop */
    unsigned char tile_nw[HL_TYPE_COUNT], tile_nx[HL_TYPE_COUNT];
    hl_vec_ops vec;
};

void hl_cpu_kernels_init_scalar(hl_cpu_kernels *k);
/* Overrides the entries it accelerates; the rest stay scalar. */
void hl_cpu_kernels_init_avx2(hl_cpu_kernels *k);

/* Parts of the AVX2 table, one per *_avx2.c file. */
void hl_avx2_init_act(hl_cpu_kernels *k);
void hl_avx2_init_legacy(hl_cpu_kernels *k);
void hl_avx2_init_kquants(hl_cpu_kernels *k);
void hl_avx2_init_iquants(hl_cpu_kernels *k); /* IQ4_NL, IQ4_XS, MXFP4 */
void hl_avx2_init_vec(hl_cpu_kernels *k);
void hl_avx2_init_attn(hl_cpu_kernels *k);
/* AVX-512 parts (*_avx512.c), laid over the AVX2 table. */
void hl_avx512_init_attn(hl_cpu_kernels *k);
void hl_avx512_init_kquants(hl_cpu_kernels *k); /* Q4_K, Q6_K with VNNI */

/* AVX2 batch-1 kernels (dotk1_avx2.c): out[j] = dot(weight row j, x) for
 * j < nw, one Q8_K activation row x; same bits as the tiled path. */
typedef void (*hl_k1_fn)(int64_t k, const void *w, size_t wstride, int nw, const void *x, float *out);
void hl_avx2_k1_q4_K(int64_t k, const void *w, size_t wstride, int nw, const void *x, float *out);
void hl_avx2_k1_q5_K(int64_t k, const void *w, size_t wstride, int nw, const void *x, float *out);
void hl_avx2_k1_q6_K(int64_t k, const void *w, size_t wstride, int nw, const void *x, float *out);
/* The same for g (1..4) activation rows xstride bytes apart: out[i * ldo + j]
 * for j < nw, i < g, each weight chunk decoded once for the g rows. */
typedef void (*hl_kg_fn)(int64_t k, const void *w, size_t wstride, int64_t nw, const void *x, size_t xstride, int g,
                         float *out, int64_t ldo);
void hl_avx2_kg_q4_K(int64_t k, const void *w, size_t wstride, int64_t nw, const void *x, size_t xstride, int g,
                     float *out, int64_t ldo);
void hl_avx2_kg_q5_K(int64_t k, const void *w, size_t wstride, int64_t nw, const void *x, size_t xstride, int g,
                     float *out, int64_t ldo);
void hl_avx2_kg_q6_K(int64_t k, const void *w, size_t wstride, int64_t nw, const void *x, size_t xstride, int g,
                     float *out, int64_t ldo);

/* Scalar pieces other files reuse (defined in act_scalar.c / dot_scalar.c). */
void hl_act_q8_0_scalar(const float *x, void *y, int64_t k);
void hl_act_q8_1_scalar(const float *x, void *y, int64_t k);
void hl_act_q8_K_scalar(const float *x, void *y, int64_t k);
void hl_act_f32_copy(const float *x, void *y, int64_t k);
typedef float (*hl_dot_fn)(int64_t k, const void *w, const void *x);
hl_dot_fn hl_dot_scalar_for(hl_type wtype);
void hl_vec_ops_init_scalar(hl_vec_ops *v);

/* Splits [0, n) into nth contiguous, balanced parts; part ith is [*a, *b). */
static inline void hl_cpu_split(int64_t n, int ith, int nth, int64_t *a, int64_t *b) {
    *a = n * ith / nth;
    *b = n * (ith + 1) / nth;
}

#endif
