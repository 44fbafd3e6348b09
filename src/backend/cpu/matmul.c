/* The matrix-multiply driver: activation conversion split over batch rows,
 * then the weight rows split over threads in contiguous, balanced chunks.
 * Within a chunk, weight rows are taken a few at a time (a block small enough
 * to stay in L1/L2) and the whole batch is swept over them in tiles, so the
 * weights are read from memory once and the activations come from cache. The
 * tile kernel itself is the level's; the scalar one is a loop over the oracle
 * dot products. */
#include "backend/cpu/cpu_impl.h"

#include "base/assert.h"

int hl_matmul_supported(hl_type wtype) { return hl_dot_scalar_for(wtype) != NULL; }

hl_type hl_matmul_act_type(hl_type wtype) {
    switch (wtype) {
    case HL_TYPE_F32:
    case HL_TYPE_F16:
    case HL_TYPE_BF16: return HL_TYPE_F32;
    case HL_TYPE_IQ2_XXS: /* the lattice i-quants: dequantized rows times f32 */
    case HL_TYPE_IQ2_XS:
    case HL_TYPE_IQ2_S:
    case HL_TYPE_IQ3_XXS:
    case HL_TYPE_IQ3_S:
    case HL_TYPE_IQ1_S:
    case HL_TYPE_IQ1_M: return HL_TYPE_F32;
    case HL_TYPE_Q4_0:
    case HL_TYPE_Q5_0:
    case HL_TYPE_Q8_0:
    case HL_TYPE_IQ4_NL:
    case HL_TYPE_MXFP4: return HL_TYPE_Q8_0;
    case HL_TYPE_Q4_1:
    case HL_TYPE_Q5_1: return HL_TYPE_Q8_1;
    case HL_TYPE_Q2_K:
    case HL_TYPE_Q3_K:
    case HL_TYPE_Q4_K:
    case HL_TYPE_Q5_K:
    case HL_TYPE_Q6_K:
    case HL_TYPE_IQ4_XS: return HL_TYPE_Q8_K;
    default: return HL_TYPE_COUNT;
    }
}

size_t hl_matmul_act_size(hl_type wtype, int64_t m, int64_t k) {
    hl_type at = hl_matmul_act_type(wtype);
    if (at == HL_TYPE_COUNT || m <= 0) return 0;
    return (size_t)m * hl_row_size(at, k);
}

/* Scalar tile: the oracle dot product per output element. */
static void hl_tile_scalar(hl_dot_fn dot, int64_t k, const void *w, size_t wstride, int nw, const void *x,
                           size_t xstride, int nx, float *out, int64_t ldo) {
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < nw; j++)
            out[i * ldo + j] = dot(k, (const char *)w + j * wstride, (const char *)x + i * xstride);
}

#define HL_SCALAR_TILE(name, type)                                                                             \
    static void name(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o, \
                     int64_t ldo) {                                                                            \
        hl_tile_scalar(hl_dot_scalar_for(type), k, w, ws, nw, x, xs, nx, o, ldo);                             \
    }
HL_SCALAR_TILE(tile_f32, HL_TYPE_F32)
HL_SCALAR_TILE(tile_f16, HL_TYPE_F16)
HL_SCALAR_TILE(tile_bf16, HL_TYPE_BF16)
HL_SCALAR_TILE(tile_q4_0, HL_TYPE_Q4_0)
HL_SCALAR_TILE(tile_q4_1, HL_TYPE_Q4_1)
HL_SCALAR_TILE(tile_q5_0, HL_TYPE_Q5_0)
HL_SCALAR_TILE(tile_q5_1, HL_TYPE_Q5_1)
HL_SCALAR_TILE(tile_q8_0, HL_TYPE_Q8_0)
HL_SCALAR_TILE(tile_q2_K, HL_TYPE_Q2_K)
HL_SCALAR_TILE(tile_q3_K, HL_TYPE_Q3_K)
HL_SCALAR_TILE(tile_q4_K, HL_TYPE_Q4_K)
HL_SCALAR_TILE(tile_q5_K, HL_TYPE_Q5_K)
HL_SCALAR_TILE(tile_q6_K, HL_TYPE_Q6_K)
HL_SCALAR_TILE(tile_iq4_nl, HL_TYPE_IQ4_NL)
HL_SCALAR_TILE(tile_iq4_xs, HL_TYPE_IQ4_XS)
HL_SCALAR_TILE(tile_mxfp4, HL_TYPE_MXFP4)
HL_SCALAR_TILE(tile_iq2_xxs, HL_TYPE_IQ2_XXS)
HL_SCALAR_TILE(tile_iq2_xs, HL_TYPE_IQ2_XS)
HL_SCALAR_TILE(tile_iq2_s, HL_TYPE_IQ2_S)
HL_SCALAR_TILE(tile_iq3_xxs, HL_TYPE_IQ3_XXS)
HL_SCALAR_TILE(tile_iq3_s, HL_TYPE_IQ3_S)
HL_SCALAR_TILE(tile_iq1_s, HL_TYPE_IQ1_S)
HL_SCALAR_TILE(tile_iq1_m, HL_TYPE_IQ1_M)

void hl_cpu_kernels_init_scalar(hl_cpu_kernels *kt) {
    *kt = (hl_cpu_kernels){.level = HL_SIMD_SCALAR};
    kt->act[HL_TYPE_F32] = hl_act_f32_copy;
    kt->act[HL_TYPE_Q8_0] = hl_act_q8_0_scalar;
    kt->act[HL_TYPE_Q8_1] = hl_act_q8_1_scalar;
    kt->act[HL_TYPE_Q8_K] = hl_act_q8_K_scalar;
    static const struct { hl_type t; hl_tile_fn f; } tiles[] = {
        {HL_TYPE_F32, tile_f32},   {HL_TYPE_F16, tile_f16},   {HL_TYPE_BF16, tile_bf16}, {HL_TYPE_Q4_0, tile_q4_0},
        {HL_TYPE_Q4_1, tile_q4_1}, {HL_TYPE_Q5_0, tile_q5_0}, {HL_TYPE_Q5_1, tile_q5_1}, {HL_TYPE_Q8_0, tile_q8_0},
        {HL_TYPE_Q2_K, tile_q2_K}, {HL_TYPE_Q3_K, tile_q3_K}, {HL_TYPE_Q4_K, tile_q4_K}, {HL_TYPE_Q5_K, tile_q5_K},
        {HL_TYPE_Q6_K, tile_q6_K},
        {HL_TYPE_IQ4_NL, tile_iq4_nl}, {HL_TYPE_IQ4_XS, tile_iq4_xs}, {HL_TYPE_MXFP4, tile_mxfp4},
        {HL_TYPE_IQ2_XXS, tile_iq2_xxs}, {HL_TYPE_IQ2_XS, tile_iq2_xs}, {HL_TYPE_IQ2_S, tile_iq2_s},
        {HL_TYPE_IQ3_XXS, tile_iq3_xxs}, {HL_TYPE_IQ3_S, tile_iq3_s}, {HL_TYPE_IQ1_S, tile_iq1_s},
        {HL_TYPE_IQ1_M, tile_iq1_m},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        kt->tile[tiles[i].t] = tiles[i].f;
        kt->tile_nw[tiles[i].t] = 1;
        kt->tile_nx[tiles[i].t] = 1;
    }
    hl_vec_ops_init_scalar(&kt->vec);
}

void hl_matmul_prepare_at(hl_simd level, hl_type wtype, const float *x, int64_t ldx, int64_t m, int64_t k, void *xq,
                          int ith, int nth) {
    const hl_cpu_kernels *kt = hl_cpu_kernels_at(level);
    hl_type at = hl_matmul_act_type(wtype);
    HL_ASSERT(at != HL_TYPE_COUNT && kt->act[at]);
    size_t rs = hl_row_size(at, k);
    HL_ASSERT(rs > 0);
    int64_t i0, i1;
    hl_cpu_split(m, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) kt->act[at](x + i * ldx, (char *)xq + i * rs, k);
}

void hl_matmul_slice_at(hl_simd level, hl_type wtype, const void *w, int64_t n, int64_t k, const void *xq, int64_t m,
                        float *out, int64_t ldo, int ith, int nth) {
    const hl_cpu_kernels *kt = hl_cpu_kernels_at(level);
    hl_type at = hl_matmul_act_type(wtype);
    HL_ASSERT(at != HL_TYPE_COUNT && kt->tile[wtype]);
    hl_tile_fn tile = kt->tile[wtype];
    const int tw = kt->tile_nw[wtype], tx = kt->tile_nx[wtype];
    const size_t wrow = hl_row_size(wtype, k), xrow = hl_row_size(at, k);
    HL_ASSERT(wrow > 0 && xrow > 0);
    int64_t j0, j1;
    hl_cpu_split(n, ith, nth, &j0, &j1);
    if (j1 <= j0) return;
    if (m > 1 && kt->gemm[wtype] &&
        kt->gemm[wtype](k, (const char *)w + j0 * wrow, wrow, j1 - j0, xq, xrow, m, out + j0, ldo))
        return;
    /* weight rows per block: ~24 KiB so they stay in L1/L2 while the batch sweeps over them */
    int64_t jb = (int64_t)(24576 / wrow);
    jb = jb < tw ? tw : jb - jb % tw;
    if (m <= tx) jb = j1 - j0; /* nothing to reuse: one sweep */
    for (int64_t b0 = j0; b0 < j1; b0 += jb) {
        int64_t b1 = b0 + jb < j1 ? b0 + jb : j1;
        for (int64_t i = 0; i < m; i += tx) {
            int nx = (int)(m - i < tx ? m - i : tx);
            for (int64_t j = b0; j < b1; j += tw) {
                int nw = (int)(b1 - j < tw ? b1 - j : tw);
                tile(k, (const char *)w + j * wrow, wrow, nw, (const char *)xq + i * xrow, xrow, nx, out + i * ldo + j,
                     ldo);
            }
        }
    }
}

void hl_matmul_prepare(hl_type wtype, const float *x, int64_t ldx, int64_t m, int64_t k, void *xq, int ith, int nth) {
    hl_matmul_prepare_at(hl_cpu_simd(), wtype, x, ldx, m, k, xq, ith, nth);
}

void hl_matmul_slice(hl_type wtype, const void *w, int64_t n, int64_t k, const void *xq, int64_t m, float *out,
                     int64_t ldo, int ith, int nth) {
    hl_matmul_slice_at(hl_cpu_simd(), wtype, w, n, k, xq, m, out, ldo, ith, nth);
}

typedef struct {
    hl_simd level;
    hl_pool *pool;
    hl_type wtype;
    const void *w;
    int64_t n, k, m, ldo;
    const float *x;
    float *out;
    void *scratch;
} hl_matmul_job;

static void hl_matmul_job_run(void *vctx, int ith, int nth) {
    hl_matmul_job *j = vctx;
    hl_matmul_prepare_at(j->level, j->wtype, j->x, j->k, j->m, j->k, j->scratch, ith, nth);
    if (j->pool) hl_pool_barrier(j->pool);
    hl_matmul_slice_at(j->level, j->wtype, j->w, j->n, j->k, j->scratch, j->m, j->out, j->ldo, ith, nth);
}

void hl_matmul_at(hl_simd level, hl_pool *pool, hl_type wtype, const void *w, int64_t n, int64_t k, const float *x,
                  int64_t m, float *out, int64_t ldo, void *scratch) {
    hl_matmul_job job = {level, pool, wtype, w, n, k, m, ldo, x, out, scratch};
    if (pool && hl_pool_size(pool) > 1)
        hl_pool_run(pool, hl_matmul_job_run, &job);
    else {
        job.pool = NULL;
        hl_matmul_job_run(&job, 0, 1);
    }
}

void hl_matmul(hl_pool *pool, hl_type wtype, const void *w, int64_t n, int64_t k, const float *x, int64_t m,
               float *out, int64_t ldo, void *scratch) {
    hl_matmul_at(hl_cpu_simd(), pool, wtype, w, n, k, x, m, out, ldo, scratch);
}
