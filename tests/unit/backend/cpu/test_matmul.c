/* Tests for the CPU matmul: for every weight type, batch sizes 1, 3, 16, 67
 * and an odd number of weight rows, the result is checked against
 *  (a) an independent double-precision reference built from quant/'s
 *      hl_dequantize of the weights AND of the converted 8-bit activations
 *      (what the integer kernels must compute, up to float rounding);
 *  (b) the float reference with the original activations, within a bound
 *      derived from the 8-bit activation rounding (|x - q d| <= d / 2 with
 *      d = amax / 127, plus the f16 rounding of d);
 *  (c) the scalar oracle, for every SIMD level this CPU has (tight);
 * and thread counts 1, 2, 3 and batch size must not change a single bit.
 * Weights are random bytes with sane scale fields, so every bit pattern of
 * the quantized values is exercised, independently of any quantizer. */
#include "harness.h"

#include "backend/cpu/cpu.h"
#include "quant/quant.h"

#include <stdlib.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(void) { return (float)(rnd() & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f; }
static hl_f16 rnd_scale(float lo, float hi) { return hl_f32_to_f16(lo + (hi - lo) * (rndf() * 0.5f + 0.5f)); }

/* Random weight rows of type t: random bytes, then the f16 scale fields made finite. */
static void *make_weights(hl_type t, int64_t n, int64_t k) {
    size_t rs = hl_row_size(t, k), total = rs * (size_t)n;
    uint8_t *w = malloc(total);
    if (t == HL_TYPE_F32) {
        for (int64_t i = 0; i < n * k; i++) ((float *)w)[i] = rndf();
        return w;
    }
    if (t == HL_TYPE_F16 || t == HL_TYPE_BF16) {
        for (int64_t i = 0; i < n * k; i++)
            ((uint16_t *)w)[i] = t == HL_TYPE_F16 ? hl_f32_to_f16(rndf()) : hl_f32_to_bf16(rndf());
        return w;
    }
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)rnd();
    const hl_type_traits *tr = hl_type_get(t);
    for (size_t b = 0; b < total / tr->size; b++) {
        uint8_t *blk = w + b * tr->size;
        switch (t) {
        case HL_TYPE_Q4_0: ((hl_block_q4_0 *)blk)->d = rnd_scale(-0.02f, 0.02f); break;
        case HL_TYPE_Q5_0: ((hl_block_q5_0 *)blk)->d = rnd_scale(-0.02f, 0.02f); break;
        case HL_TYPE_Q8_0: ((hl_block_q8_0 *)blk)->d = rnd_scale(-0.01f, 0.01f); break;
        case HL_TYPE_Q4_1: ((hl_block_q4_1 *)blk)->d = rnd_scale(0.0f, 0.02f); ((hl_block_q4_1 *)blk)->m = rnd_scale(-0.2f, 0.0f); break;
        case HL_TYPE_Q5_1: ((hl_block_q5_1 *)blk)->d = rnd_scale(0.0f, 0.02f); ((hl_block_q5_1 *)blk)->m = rnd_scale(-0.2f, 0.0f); break;
        case HL_TYPE_Q2_K: ((hl_block_q2_K *)blk)->d = rnd_scale(0.0f, 0.01f); ((hl_block_q2_K *)blk)->dmin = rnd_scale(0.0f, 0.01f); break;
        case HL_TYPE_Q3_K: ((hl_block_q3_K *)blk)->d = rnd_scale(-0.01f, 0.01f); break;
        case HL_TYPE_Q4_K: ((hl_block_q4_K *)blk)->d = rnd_scale(0.0f, 0.002f); ((hl_block_q4_K *)blk)->dmin = rnd_scale(0.0f, 0.002f); break;
        case HL_TYPE_Q5_K: ((hl_block_q5_K *)blk)->d = rnd_scale(0.0f, 0.002f); ((hl_block_q5_K *)blk)->dmin = rnd_scale(0.0f, 0.002f); break;
        case HL_TYPE_Q6_K: ((hl_block_q6_K *)blk)->d = rnd_scale(-0.002f, 0.002f); break;
        case HL_TYPE_IQ4_NL: ((hl_block_iq4_nl *)blk)->d = rnd_scale(-0.0002f, 0.0002f); break;
        case HL_TYPE_IQ4_XS: ((hl_block_iq4_xs *)blk)->d = rnd_scale(0.0f, 0.0002f); break;
        case HL_TYPE_MXFP4: ((hl_block_mxfp4 *)blk)->e = (uint8_t)(118 + rnd() % 8); break; /* 2^-10 .. 2^-3 */
        case HL_TYPE_IQ2_XXS: ((hl_block_iq2_xxs *)blk)->d = rnd_scale(-0.001f, 0.001f); break;
        case HL_TYPE_IQ2_XS: ((hl_block_iq2_xs *)blk)->d = rnd_scale(-0.001f, 0.001f); break;
        case HL_TYPE_IQ2_S: ((hl_block_iq2_s *)blk)->d = rnd_scale(-0.001f, 0.001f); break;
        case HL_TYPE_IQ3_XXS: ((hl_block_iq3_xxs *)blk)->d = rnd_scale(-0.001f, 0.001f); break;
        case HL_TYPE_IQ3_S: ((hl_block_iq3_s *)blk)->d = rnd_scale(-0.001f, 0.001f); break;
        case HL_TYPE_IQ1_S: ((hl_block_iq1_s *)blk)->d = rnd_scale(-0.01f, 0.01f); break;
        case HL_TYPE_IQ1_M: { /* the f16 d is the top nibbles of the 4 scale words */
            uint16_t d = rnd_scale(0.0f, 0.01f), sc[4];
            memcpy(sc, ((hl_block_iq1_m *)blk)->scales, 8);
            for (int q = 0; q < 4; q++) sc[q] = (uint16_t)((sc[q] & 0x0FFF) | ((d >> (4 * q)) & 0xF) << 12);
            memcpy(((hl_block_iq1_m *)blk)->scales, sc, 8);
            break;
        }
        default: break;
        }
    }
    return w;
}

static const hl_type all_types[] = {HL_TYPE_F32,  HL_TYPE_F16,  HL_TYPE_BF16, HL_TYPE_Q4_0, HL_TYPE_Q4_1,
                                    HL_TYPE_Q5_0, HL_TYPE_Q5_1, HL_TYPE_Q8_0, HL_TYPE_Q2_K, HL_TYPE_Q3_K,
                                    HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K, HL_TYPE_IQ4_NL, HL_TYPE_IQ4_XS,
                                    HL_TYPE_MXFP4, HL_TYPE_IQ2_XXS, HL_TYPE_IQ2_XS, HL_TYPE_IQ2_S, HL_TYPE_IQ3_XXS,
                                    HL_TYPE_IQ3_S, HL_TYPE_IQ1_S, HL_TYPE_IQ1_M};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Per-block float-reference bound for the 8-bit activations of one row. */
static double act_bound(hl_type at, const float *wd, const float *x, int64_t k) {
    if (at == HL_TYPE_F32) return 0.0;
    int64_t bl = at == HL_TYPE_Q8_K ? HL_QK_K : HL_QK;
    double bound = 0.0;
    for (int64_t b = 0; b < k; b += bl) {
        double amax = 0, sw = 0, mw = 0;
        for (int64_t i = b; i < b + bl; i++) {
            amax = fmax(amax, fabs(x[i]));
            sw += fabs(wd[i]);
            mw = fmax(mw, fabs(wd[i]));
        }
        /* rounding to the grid + f16 rounding of d (and of s = d * sum q for Q8_1) */
        bound += sw * amax / 254.0 + sw * amax / 1024.0 + (at == HL_TYPE_Q8_1 ? mw * bl * amax / 1024.0 : 0.0);
    }
    return bound;
}

static void check_type(hl_type t, int64_t m, int64_t n, int64_t k) {
    const char *tn = hl_type_name(t);
    hl_type at = hl_matmul_act_type(t);
    void *w = make_weights(t, n, k);
    float *x = malloc(sizeof(float) * (size_t)(m * k));
    for (int64_t i = 0; i < m * k; i++) x[i] = rndf() * (i % 7 == 0 ? 4.0f : 1.0f);
    float *wd = malloc(sizeof(float) * (size_t)(n * k));
    float *xd = malloc(sizeof(float) * (size_t)(m * k));
    size_t wrow = hl_row_size(t, k);
    for (int64_t j = 0; j < n; j++) CHECK_EQ(hl_dequantize(t, (char *)w + j * wrow, wd + j * k, k), 0);

    size_t xs = hl_matmul_act_size(t, m, k);
    void *xq = malloc(xs), *xq2 = malloc(xs), *scratch = malloc(xs);
    hl_matmul_prepare_at(HL_SIMD_SCALAR, t, x, k, m, k, xq, 0, 1);
    size_t xrow = hl_row_size(at, k);
    for (int64_t i = 0; i < m; i++) CHECK_EQ(hl_dequantize(at, (char *)xq + i * xrow, xd + i * k, k), 0);

    float *ref = malloc(sizeof(float) * (size_t)(m * n));
    hl_matmul_slice_at(HL_SIMD_SCALAR, t, w, n, k, xq, m, ref, n, 0, 1);
    double *mag = malloc(sizeof(double) * (size_t)(m * n));
    int bad_a = 0, bad_b = 0;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s_q = 0, s_x = 0, a = 0;
            for (int64_t l = 0; l < k; l++) {
                s_q += (double)wd[j * k + l] * xd[i * k + l];
                s_x += (double)wd[j * k + l] * x[i * k + l];
                a += fabs((double)wd[j * k + l] * xd[i * k + l]);
            }
            mag[i * n + j] = a;
            double got = ref[i * n + j];
            /* Q8_1's s is an f16 of d * sum(q): the only rounding beyond float sums */
            double tol_a = 2e-5 * a + 1e-6 + (at == HL_TYPE_Q8_1 ? act_bound(at, wd + j * k, x + i * k, k) * 0.25 : 0);
            if (fabs(got - s_q) > tol_a && bad_a++ < 3)
                hl_test_fail(__FILE__, __LINE__, "%s m=%lld [%lld,%lld]: oracle %.7g vs dequantized ref %.7g (tol %.3g)",
                             tn, (long long)m, (long long)i, (long long)j, got, s_q, tol_a);
            double tol_b = act_bound(at, wd + j * k, x + i * k, k) + 2e-5 * a + 1e-6;
            if (fabs(got - s_x) > tol_b && bad_b++ < 3)
                hl_test_fail(__FILE__, __LINE__, "%s m=%lld [%lld,%lld]: %.7g vs float ref %.7g (tol %.3g)", tn,
                             (long long)m, (long long)i, (long long)j, got, s_x, tol_b);
        }
    }

    /* every SIMD level: same activation bytes, results within float-rounding of the oracle */
    float *out = malloc(sizeof(float) * (size_t)(m * n)), *out2 = malloc(sizeof(float) * (size_t)(m * n));
    for (hl_simd lv = HL_SIMD_AVX2; lv <= HL_SIMD_AVX512; lv++) {
        if (!hl_cpu_simd_supported(lv)) continue;
        hl_matmul_prepare_at(lv, t, x, k, m, k, xq2, 0, 1);
        CHECK(memcmp(xq, xq2, xs) == 0);
        hl_matmul_slice_at(lv, t, w, n, k, xq2, m, out, n, 0, 1);
        int bad = 0;
        for (int64_t e = 0; e < m * n; e++) {
            double tol = 1e-5 * mag[e] + 1e-6;
            if (!(fabs(out[e] - ref[e]) <= tol) && bad++ < 3)
                hl_test_fail(__FILE__, __LINE__, "%s %s m=%lld elem %lld: %.7g vs oracle %.7g", hl_simd_name(lv), tn,
                             (long long)m, (long long)e, out[e], ref[e]);
        }
        /* batch invariance: each row alone gives the same bits as inside the batch */
        for (int64_t i = 0; i < m; i += (m > 4 ? m / 3 : 1)) {
            hl_matmul_slice_at(lv, t, w, n, k, (char *)xq2 + i * xrow, 1, out2, n, 0, 1);
            CHECK(memcmp(out2, out + i * n, sizeof(float) * (size_t)n) == 0);
        }
    }

    /* thread counts: identical bits, with the level in use, through the pool */
    hl_matmul(NULL, t, w, n, k, x, m, out, n, scratch);
    for (int nt = 2; nt <= 3; nt++) {
        hl_pool *pool = hl_pool_new(nt);
        memset(out2, 0, sizeof(float) * (size_t)(m * n));
        hl_matmul(pool, t, w, n, k, x, m, out2, n, scratch);
        if (memcmp(out, out2, sizeof(float) * (size_t)(m * n)) != 0)
            hl_test_fail(__FILE__, __LINE__, "%s m=%lld: %d threads differ from 1", tn, (long long)m, nt);
        hl_pool_free(pool);
    }
    free(w); free(x); free(wd); free(xd); free(xq); free(xq2); free(scratch); free(ref); free(mag); free(out); free(out2);
}

static void check_all_m(hl_type t) {
    int64_t bl = hl_type_get(t)->blck;
    int64_t k = bl == HL_QK_K ? 2 * HL_QK_K : (bl == 1 ? 200 : 9 * HL_QK);
    static const int64_t ms[] = {1, 3, 16, 67};
    for (size_t i = 0; i < 4; i++) check_type(t, ms[i], 37, k);
}

TEST(matmul_f32) { check_all_m(HL_TYPE_F32); }
TEST(matmul_f16) { check_all_m(HL_TYPE_F16); }
TEST(matmul_bf16) { check_all_m(HL_TYPE_BF16); }
TEST(matmul_q4_0) { check_all_m(HL_TYPE_Q4_0); }
TEST(matmul_q4_1) { check_all_m(HL_TYPE_Q4_1); }
TEST(matmul_q5_0) { check_all_m(HL_TYPE_Q5_0); }
TEST(matmul_q5_1) { check_all_m(HL_TYPE_Q5_1); }
TEST(matmul_q8_0) { check_all_m(HL_TYPE_Q8_0); }
TEST(matmul_q2_K) { check_all_m(HL_TYPE_Q2_K); }
TEST(matmul_q3_K) { check_all_m(HL_TYPE_Q3_K); }
TEST(matmul_q4_K) { check_all_m(HL_TYPE_Q4_K); }
TEST(matmul_q5_K) { check_all_m(HL_TYPE_Q5_K); }
TEST(matmul_q6_K) { check_all_m(HL_TYPE_Q6_K); }
TEST(matmul_iq4_nl) { check_all_m(HL_TYPE_IQ4_NL); }
TEST(matmul_iq4_xs) { check_all_m(HL_TYPE_IQ4_XS); }
TEST(matmul_mxfp4) { check_all_m(HL_TYPE_MXFP4); }
TEST(matmul_iq2_xxs) { check_all_m(HL_TYPE_IQ2_XXS); }
TEST(matmul_iq2_xs) { check_all_m(HL_TYPE_IQ2_XS); }
TEST(matmul_iq2_s) { check_all_m(HL_TYPE_IQ2_S); }
TEST(matmul_iq3_xxs) { check_all_m(HL_TYPE_IQ3_XXS); }
TEST(matmul_iq3_s) { check_all_m(HL_TYPE_IQ3_S); }
TEST(matmul_iq1_s) { check_all_m(HL_TYPE_IQ1_S); }
TEST(matmul_iq1_m) { check_all_m(HL_TYPE_IQ1_M); }

TEST(matmul_act_types_and_sizes) {
    CHECK_EQ(hl_matmul_act_type(HL_TYPE_Q4_1), HL_TYPE_Q8_1);
    CHECK_EQ(hl_matmul_act_type(HL_TYPE_Q4_0), HL_TYPE_Q8_0);
    CHECK_EQ(hl_matmul_act_type(HL_TYPE_Q6_K), HL_TYPE_Q8_K);
    CHECK_EQ(hl_matmul_act_type(HL_TYPE_F16), HL_TYPE_F32);
    CHECK_EQ(hl_matmul_act_type(HL_TYPE_I32), HL_TYPE_COUNT);
    CHECK(!hl_matmul_supported(HL_TYPE_Q8_K));
    CHECK_EQ(hl_matmul_act_size(HL_TYPE_Q4_K, 3, 512), 3 * 2 * sizeof(hl_block_q8_K));
    for (size_t i = 0; i < N_TYPES; i++) CHECK(hl_matmul_supported(all_types[i]));
}

TEST(cpu_detect_reports) {
    hl_cpu_info ci;
    hl_cpu_detect(&ci);
    CHECK(ci.n_cores >= 1);
    CHECK(ci.model[0] != 0);
    const char *lv = hl_cpu_simd_level();
    CHECK(strcmp(lv, "scalar") == 0 || strcmp(lv, "AVX2") == 0 || strcmp(lv, "AVX512-VNNI") == 0);
    printf("cpu: %s, %d cores, avx2 %d fma %d f16c %d avx512f %d, kernels %s\n", ci.model, ci.n_cores, ci.avx2, ci.fma,
           ci.f16c, ci.avx512f, lv);
}

/* Strided activations (ldx > k) and outputs (ldo > n), as a forward pass
 * uses them with views into wider buffers: same results as the packed case,
 * and the padding columns of out are never written. */
TEST(matmul_strides) {
    const int64_t m = 5, n = 9, k = 256, ldx = 300, ldo = 13;
    hl_type t = HL_TYPE_Q4_K;
    void *w = make_weights(t, n, k);
    float *x = malloc(sizeof(float) * (size_t)(m * ldx)), *xp = malloc(sizeof(float) * (size_t)(m * k));
    for (int64_t i = 0; i < m * ldx; i++) x[i] = rndf();
    for (int64_t i = 0; i < m; i++) memcpy(xp + i * k, x + i * ldx, sizeof(float) * (size_t)k);
    size_t xs = hl_matmul_act_size(t, m, k);
    void *q1 = malloc(xs), *q2 = malloc(xs);
    float out1[5 * 13], out2[5 * 9];
    for (int i = 0; i < 5 * 13; i++) out1[i] = 12345.0f;
    hl_matmul_prepare(t, x, ldx, m, k, q1, 0, 1);
    hl_matmul_prepare(t, xp, k, m, k, q2, 0, 1);
    CHECK(memcmp(q1, q2, xs) == 0);
    /* two "threads" called one after the other: each writes only its rows */
    hl_matmul_slice(t, w, n, k, q1, m, out1, ldo, 0, 2);
    hl_matmul_slice(t, w, n, k, q1, m, out1, ldo, 1, 2);
    hl_matmul_slice(t, w, n, k, q2, m, out2, n, 0, 1);
    for (int64_t i = 0; i < m; i++) {
        CHECK(memcmp(out1 + i * ldo, out2 + i * n, sizeof(float) * (size_t)n) == 0);
        for (int64_t j = n; j < ldo; j++) CHECK(out1[i * ldo + j] == 12345.0f);
    }
    free(w); free(x); free(xp); free(q1); free(q2);
}

/* Longer K-quant rows (6 superblocks, as in Qwen2.5-1.5B's projections): the
 * batch-1 kernels loop over superblocks with prefetches that run past the
 * row, and must still give the batched path's bits. */
TEST(matmul_kquants_long_rows) {
    static const hl_type kt[] = {HL_TYPE_Q2_K, HL_TYPE_Q3_K, HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof kt / sizeof kt[0]; i++) check_type(kt[i], 5, 11, 6 * HL_QK_K);
}

/* Small batches, m = 1..9 rows (decode, batched decode, a speculative step
 * of k+1 rows), with odd row counts and lengths: each level against the
 * oracle and row-alone invariance (check_type), and every AVX level giving
 * the AVX2 bits (the AVX-512 kernels compute the same integer lanes). */
static void check_small_m(hl_type t) {
    const int64_t k = 3 * HL_QK_K, n = 13;
    for (int64_t m = 1; m <= 9; m++) check_type(t, m, n, k);
    if (!hl_cpu_simd_supported(HL_SIMD_AVX512)) return;
    void *w = make_weights(t, n, k);
    for (int64_t m = 1; m <= 9; m++) { /* odd and even: the AVX-512 kernels pair rows */
        float *x = malloc(sizeof(float) * (size_t)(m * k));
        for (int64_t i = 0; i < m * k; i++) x[i] = rndf();
        size_t xs = hl_matmul_act_size(t, m, k);
        void *xq = malloc(xs);
        float *o2 = malloc(sizeof(float) * (size_t)(m * n)), *o5 = malloc(sizeof(float) * (size_t)(m * n));
        hl_matmul_prepare_at(HL_SIMD_AVX2, t, x, k, m, k, xq, 0, 1);
        hl_matmul_slice_at(HL_SIMD_AVX2, t, w, n, k, xq, m, o2, n, 0, 1);
        hl_matmul_slice_at(HL_SIMD_AVX512, t, w, n, k, xq, m, o5, n, 0, 1);
        if (memcmp(o2, o5, sizeof(float) * (size_t)(m * n)) != 0)
            hl_test_fail(__FILE__, __LINE__, "%s m=%lld: AVX512 bits differ from AVX2", hl_type_name(t), (long long)m);
        free(x); free(xq); free(o2); free(o5);
    }
    free(w);
}

TEST(matmul_small_m_q4_K) { check_small_m(HL_TYPE_Q4_K); }
TEST(matmul_small_m_q6_K) { check_small_m(HL_TYPE_Q6_K); }
TEST(matmul_small_m_q4_1) { check_small_m(HL_TYPE_Q4_1); }
TEST(matmul_small_m_q8_0) { check_small_m(HL_TYPE_Q8_0); }
