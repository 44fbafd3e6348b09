/* Round-trip tests of every quantizer: quantize, dequantize, measure the
 * error. gguf-py has no quantizer for Q8_1, Q8_K, the K-quants or IQ4_NL /
 * IQ4_XS, so these are
 * held to (a) an RMSE bound on gaussian data derived from the format's step
 * size, (b) beating a naive min/max quantizer written here with the same bits
 * per sub-block, and (c) edge cases: zeros, constants, tiny and huge values,
 * never producing NaN or inf. Activation formats also get their side data
 * (Q8_1 s, Q8_K bsums) checked against a recomputation here. */
#include "quant/quant.h"

#include "harness.h"

#include <stdlib.h>

#define NBLK 64
#define N (HL_QK_K * NBLK)

/* splitmix64 + Box-Muller: deterministic gaussian data */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) { return ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static void gaussian(float *x, int64_t n, double sigma, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(sigma * sqrt(-2.0 * log(rng_unit(&seed))) * cos(6.283185307179586 * rng_unit(&seed)));
}

/* Quantizes and dequantizes x; returns the RMSE, or -1 on failure (reported). */
static double roundtrip(hl_type type, const float *x, int64_t n, float *y) {
    const size_t sz = hl_row_size(type, n);
    void *q = aligned_alloc(64, (sz + 63) / 64 * 64);
    double err = -1.0;
    if (hl_quantize(type, x, q, n) != sz) {
        hl_test_fail(__FILE__, __LINE__, "%s: hl_quantize wrote an unexpected size", hl_type_name(type));
    } else if (hl_dequantize(type, q, y, n) != 0) {
        hl_test_fail(__FILE__, __LINE__, "%s: hl_dequantize failed", hl_type_name(type));
    } else {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(y[i])) {
                hl_test_fail(__FILE__, __LINE__, "%s: non-finite output at %lld", hl_type_name(type), (long long)i);
                break;
            }
            s += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        }
        err = sqrt(s / (double)n);
    }
    free(q);
    return err;
}

/* The naive quantizer: per sub-block of `sub`, map [min, max] (asym) or
 * [-amax, amax] (sym) linearly onto `levels` levels with an f32 scale. */
static double naive_rmse(const float *x, int64_t n, int sub, int levels, int asym) {
    double s = 0.0;
    for (int64_t b = 0; b < n; b += sub) {
        float lo = x[b], hi = x[b], amax = 0.0f;
        for (int j = 0; j < sub; j++) {
            lo = fminf(lo, x[b + j]);
            hi = fmaxf(hi, x[b + j]);
            amax = fmaxf(amax, fabsf(x[b + j]));
        }
        if (!asym) lo = -amax, hi = amax;
        const double step = (hi - lo) / (levels - 1);
        for (int j = 0; j < sub; j++) {
            const double v = step > 0 ? lo + step * round((x[b + j] - lo) / step) : lo;
            s += (v - x[b + j]) * (v - x[b + j]);
        }
    }
    return sqrt(s / (double)n);
}

static const struct {
    hl_type type;
    double max_rmse;  /* on N(0, 1) data */
    int sub, levels, asym; /* the naive quantizer to beat (0 = none) */
} k_cases[] = {
    /* Bounds are step/sqrt(12) estimates, step = the expected range of a
     * gaussian sub-block (~4.1 sigma for 32 values, ~3.5 for 16; the symmetric
     * formats span twice the largest magnitude) over its levels, plus a few
     * percent; the K-quants must also beat the naive quantizer, which keeps
     * its scale in f32 rather than 4..8 bits. */
    {HL_TYPE_F16, 0.0005, 0, 0, 0},
    {HL_TYPE_BF16, 0.004, 0, 0, 0},
    {HL_TYPE_Q8_0, 0.0085, 0, 0, 0},
    {HL_TYPE_Q8_1, 0.0085, 0, 0, 0},
    {HL_TYPE_Q8_K, 0.0120, 0, 0, 0},
    {HL_TYPE_Q5_0, 0.045, 0, 0, 0},
    {HL_TYPE_Q5_1, 0.040, 0, 0, 0},
    {HL_TYPE_Q4_0, 0.090, 0, 0, 0},
    {HL_TYPE_Q4_1, 0.080, 0, 0, 0},
    {HL_TYPE_Q6_K, 0.0180, 16, 64, 0},
    {HL_TYPE_Q5_K, 0.037, 32, 32, 1},
    {HL_TYPE_Q4_K, 0.075, 32, 16, 1},
    {HL_TYPE_Q3_K, 0.152, 16, 8, 0},
    {HL_TYPE_Q2_K, 0.280, 16, 4, 1},
    /* the non-linear table concentrates levels near zero, where gaussian
     * values are: better than Q4_0's uniform 16 levels on one f16 scale */
    {HL_TYPE_IQ4_NL, 0.078, 32, 16, 0},
    {HL_TYPE_IQ4_XS, 0.079, 32, 16, 0},
};

TEST(roundtrip_gaussian_rmse) {
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    gaussian(x, N, 1.0, 42);
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        const double e = roundtrip(k_cases[i].type, x, N, y);
        printf("    %-5s rmse %.5f (bound %.4f", hl_type_name(k_cases[i].type), e, k_cases[i].max_rmse);
        if (k_cases[i].sub) {
            const double nv = naive_rmse(x, N, k_cases[i].sub, k_cases[i].levels, k_cases[i].asym);
            printf(", naive %.5f", nv);
            if (!(e <= nv))
                hl_test_fail(__FILE__, __LINE__, "%s: rmse %.5f worse than naive min/max %.5f",
                             hl_type_name(k_cases[i].type), e, nv);
        }
        printf(")\n");
        if (!(e >= 0 && e <= k_cases[i].max_rmse))
            hl_test_fail(__FILE__, __LINE__, "%s: rmse %.5f above bound %.4f", hl_type_name(k_cases[i].type), e,
                         k_cases[i].max_rmse);
    }
    free(x);
    free(y);
}

/* Scale invariance: data at sigma 0.05 and 100 keep the same relative error
 * (within f16 precision of the scales: much smaller data pushes Q6_K's
 * d = max scale / 128 into f16 subnormals, a limit of the format). */
TEST(roundtrip_scaled) {
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    const double sigmas[] = {0.05, 100.0};
    for (size_t s = 0; s < 2; s++) {
        gaussian(x, N, sigmas[s], 7 + s);
        for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
            const double e = roundtrip(k_cases[i].type, x, N, y) / sigmas[s];
            if (!(e >= 0 && e <= k_cases[i].max_rmse * 1.05))
                hl_test_fail(__FILE__, __LINE__, "%s at sigma %g: relative rmse %.5f above %.4f",
                             hl_type_name(k_cases[i].type), sigmas[s], e, k_cases[i].max_rmse * 1.05);
        }
    }
    free(x);
    free(y);
}

/* Zeros come back as exact zeros; a constant block comes back close;
 * tiny and huge (but representable) values stay finite and bounded. */
TEST(roundtrip_edge_cases) {
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        const hl_type t = k_cases[i].type;
        memset(x, 0, N * sizeof(float));
        CHECK(roundtrip(t, x, N, y) == 0.0);
        for (int64_t j = 0; j < N; j++) x[j] = 0.75f;
        const double ec = roundtrip(t, x, N, y);
        if (!(ec >= 0 && ec <= 0.75 * 0.01))
            hl_test_fail(__FILE__, __LINE__, "%s: constant block rmse %g", hl_type_name(t), ec);
        for (int64_t j = 0; j < N; j++) x[j] = -0.75f;
        const double en = roundtrip(t, x, N, y);
        if (!(en >= 0 && en <= 0.75 * 0.01))
            hl_test_fail(__FILE__, __LINE__, "%s: negative constant block rmse %g", hl_type_name(t), en);
        /* tiny: below f16's smallest subnormal scales; must not blow up */
        gaussian(x, N, 1e-9, 99);
        const double et = roundtrip(t, x, N, y);
        if (!(et >= 0 && et <= 2e-9))
            hl_test_fail(__FILE__, __LINE__, "%s: tiny values rmse %g", hl_type_name(t), et);
        /* huge: sigma 1e4 (per-block scales stay well inside f16 range) */
        gaussian(x, N, 1e4, 100);
        const double eh = roundtrip(t, x, N, y) / 1e4;
        if (!(eh >= 0 && eh <= k_cases[i].max_rmse * 1.05))
            hl_test_fail(__FILE__, __LINE__, "%s: huge values relative rmse %g", hl_type_name(t), eh);
        /* one spike among small values: the spike must survive */
        gaussian(x, N, 0.01, 101);
        x[1000] = 50.0f;
        if (roundtrip(t, x, N, y) >= 0) CHECK_NEAR(y[1000], 50.0, 50.0 * 0.06);
    }
    free(x);
    free(y);
}

/* Q8_1 and Q8_K side data, recomputed here from the stored quants. */
TEST(activation_side_data) {
    float x[HL_QK_K];
    gaussian(x, HL_QK_K, 3.0, 5);
    hl_block_q8_1 b1[HL_QK_K / HL_QK];
    CHECK_EQ(hl_quantize(HL_TYPE_Q8_1, x, b1, HL_QK_K), sizeof b1);
    for (int b = 0; b < HL_QK_K / HL_QK; b++) {
        float amax = 0.0f;
        int sum = 0;
        for (int j = 0; j < HL_QK; j++) {
            amax = fmaxf(amax, fabsf(x[b * HL_QK + j]));
            sum += b1[b].qs[j];
        }
        const float d = amax / 127.0f;
        CHECK_EQ(b1[b].d, hl_f32_to_f16(d));
        CHECK_NEAR(hl_f16_to_f32(b1[b].s), (double)d * sum, fabs((double)d * sum) * 1e-3 + 1e-6);
        for (int j = 0; j < HL_QK; j++) CHECK(fabs(b1[b].qs[j] - x[b * HL_QK + j] / d) <= 0.5001);
    }
    hl_block_q8_K bk;
    CHECK_EQ(hl_quantize(HL_TYPE_Q8_K, x, &bk, HL_QK_K), sizeof bk);
    float amax = 0.0f;
    for (int j = 0; j < HL_QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
    CHECK(bk.d == amax / 127.0f);
    for (int k = 0; k < HL_QK_K / 16; k++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += bk.qs[16 * k + j];
        CHECK_EQ(bk.bsums[k], s);
    }
    int hit127 = 0;
    for (int j = 0; j < HL_QK_K; j++) {
        CHECK(fabs(bk.qs[j] - x[j] / bk.d) <= 0.5001);
        hit127 |= bk.qs[j] == 127 || bk.qs[j] == -127;
    }
    CHECK(hit127);
}

TEST(quantize_rejects) {
    float x[32] = {0};
    unsigned char out[64];
    CHECK_EQ(hl_quantize(HL_TYPE_Q4_0, x, out, 16), 0);     /* partial block */
    CHECK_EQ(hl_quantize(HL_TYPE_Q4_K, x, out, 32), 0);     /* partial super-block */
    CHECK_EQ(hl_quantize(HL_TYPE_IQ2_XXS, x, out, 256), 0); /* no quantizer */
    CHECK_EQ(hl_quantize(HL_TYPE_I32, x, out, 4), 0);
    CHECK_EQ(hl_quantize((hl_type)4, x, out, 32), 0);
    CHECK_EQ(hl_quantize(HL_TYPE_F32, x, out, 4), 16);
}
