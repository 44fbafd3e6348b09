/* Tests for the vector kernels of every SIMD level this CPU has, against
 * straightforward double-precision references written here (not the scalar
 * kernels), on odd lengths so vector tails are exercised. */
#include "harness.h"

#include "backend/cpu/cpu.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rs = 88172645463325252ull;
static float rndf(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;
}

static const int64_t lens[] = {1, 7, 8, 31, 64, 577, 1536};
#define N_LENS (sizeof lens / sizeof lens[0])

static void check_level(hl_simd lv) {
    const hl_vec_ops *v = hl_vec_ops_at(lv);
    const char *ln = hl_simd_name(lv);
    for (size_t li = 0; li < N_LENS; li++) {
        int64_t n = lens[li];
        float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
        float *o = malloc(sizeof(float) * (size_t)n), *w = malloc(sizeof(float) * (size_t)n);
        hl_f16 *h = malloc(sizeof(hl_f16) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            a[i] = rndf() * 3;
            b[i] = rndf() * 3;
            w[i] = rndf();
        }
        /* dot f32 */
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) ref += (double)a[i] * b[i], mag += fabs((double)a[i] * b[i]);
        float got = v->dot_f32(a, b, n);
        if (fabs(got - ref) > 1e-6 * mag + 1e-6) hl_test_fail(__FILE__, __LINE__, "%s dot_f32 n=%lld: %g vs %g", ln, (long long)n, got, ref);
        /* to_f16 must round exactly like the reference conversion */
        v->to_f16(h, a, n);
        int badh = 0;
        for (int64_t i = 0; i < n; i++) badh += h[i] != hl_f32_to_f16(a[i]);
        if (badh) hl_test_fail(__FILE__, __LINE__, "%s to_f16 n=%lld: %d mismatches", ln, (long long)n, badh);
        /* dot f16 */
        ref = mag = 0;
        for (int64_t i = 0; i < n; i++) ref += (double)hl_f16_to_f32(h[i]) * b[i], mag += fabs((double)a[i] * b[i]);
        got = v->dot_f16(h, b, n);
        if (fabs(got - ref) > 1e-6 * mag + 1e-6) hl_test_fail(__FILE__, __LINE__, "%s dot_f16 n=%lld: %g vs %g", ln, (long long)n, got, ref);
        /* axpy f16 */
        memcpy(o, b, sizeof(float) * (size_t)n);
        v->axpy_f16(o, h, 0.75f, n);
        for (int64_t i = 0; i < n; i++) CHECK_NEAR(o[i], b[i] + 0.75 * hl_f16_to_f32(h[i]), 1e-6 * (fabs(b[i]) + 3));
        /* rmsnorm, with and without weights */
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)a[i] * a[i];
        double sc = 1.0 / sqrt(ss / n + 1e-5);
        v->rmsnorm(o, a, w, n, 1e-5f);
        for (int64_t i = 0; i < n; i++) CHECK_NEAR(o[i], a[i] * sc * w[i], 2e-6 * fabs(a[i] * sc) + 1e-7);
        v->rmsnorm(o, a, NULL, n, 1e-5f);
        for (int64_t i = 0; i < n; i++) CHECK_NEAR(o[i], a[i] * sc, 2e-6 * fabs(a[i] * sc) + 1e-7);
        /* softmax, with a large offset to test stability */
        for (int64_t i = 0; i < n; i++) w[i] = o[i] = a[i] * 10 + 1000.0f;
        v->softmax(o, n);
        double mx = -1e30, sum = 0;
        for (int64_t i = 0; i < n; i++) mx = fmax(mx, w[i]);
        for (int64_t i = 0; i < n; i++) sum += exp(w[i] - mx);
        for (int64_t i = 0; i < n; i++) {
            double r = exp(w[i] - mx) / sum;
            if (fabs(o[i] - r) > 1e-5 * r + 1e-9) {
                hl_test_fail(__FILE__, __LINE__, "%s softmax n=%lld [%lld]: %g vs %g", ln, (long long)n, (long long)i, o[i], r);
                break;
            }
        }
        /* silu * up, gelu(tanh) * up, over a wide range of gate values */
        for (int64_t i = 0; i < n; i++) a[i] = rndf() * 12;
        v->silu_mul(o, a, b, n);
        for (int64_t i = 0; i < n; i++) {
            double g = a[i], r = g / (1 + exp(-g)) * b[i];
            if (fabs(o[i] - r) > 1e-5 * fabs(r) + 1e-6) {
                hl_test_fail(__FILE__, __LINE__, "%s silu n=%lld g=%g: %g vs %g", ln, (long long)n, g, o[i], r);
                break;
            }
        }
        v->gelu_mul(o, a, b, n);
        for (int64_t i = 0; i < n; i++) {
            double g = a[i], r = 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g))) * b[i];
            if (fabs(o[i] - r) > 1e-5 * fabs(r) + 1e-6) {
                hl_test_fail(__FILE__, __LINE__, "%s gelu n=%lld g=%g: %g vs %g", ln, (long long)n, g, o[i], r);
                break;
            }
        }
        /* add, scale: exact */
        memcpy(o, a, sizeof(float) * (size_t)n);
        v->add(o, b, n);
        for (int64_t i = 0; i < n; i++) CHECK(o[i] == a[i] + b[i]);
        v->scale(o, 0.3f, n);
        for (int64_t i = 0; i < n; i++) CHECK(o[i] == (a[i] + b[i]) * 0.3f);
        free(a); free(b); free(o); free(w); free(h);
    }
}

/* masked attention: -inf scores get exactly zero weight */
static void check_masked_softmax(hl_simd lv) {
    float x[11];
    for (int i = 0; i < 11; i++) x[i] = i % 3 == 0 ? -INFINITY : (float)i * 0.1f;
    hl_vec_ops_at(lv)->softmax(x, 11);
    double sum = 0;
    for (int i = 0; i < 11; i++) {
        if (i % 3 == 0) CHECK(x[i] == 0.0f);
        sum += x[i];
    }
    CHECK_NEAR(sum, 1.0, 1e-6);
}

/* The grouped attention kernels against a double-precision reference, and
 * bit for bit against the level's own dot_f16 / axpy_f16 one head at a time
 * (the forward pass relies on grouping never changing a result). Head
 * dimensions with 16-, 8- and scalar tails; 1..8 heads; scattered rows. */
static void check_attn(hl_simd lv) {
    const hl_vec_ops *v = hl_vec_ops_at(lv);
    const char *ln = hl_simd_name(lv);
    static const int32_t hds[] = {64, 128, 72, 13};
    static const int32_t ns[] = {1, 5, 37};
    for (size_t hi = 0; hi < 4; hi++)
        for (size_t ni = 0; ni < 3; ni++)
            for (int32_t nq = 1; nq <= 8; nq++) {
                const int32_t hd = hds[hi], n = ns[ni], pool = 3 * n + 1;
                hl_f16 *rows = malloc(sizeof(hl_f16) * (size_t)pool * hd);
                const hl_f16 **rp = malloc(sizeof *rp * (size_t)n);
                const void **vp = malloc(sizeof *vp * (size_t)n);
                float *q = malloc(sizeof(float) * (size_t)nq * hd), *w = malloc(sizeof(float) * (size_t)nq * n);
                float *s = malloc(sizeof(float) * (size_t)nq * 40), *o = malloc(sizeof(float) * (size_t)nq * hd);
                float *o1 = malloc(sizeof(float) * (size_t)hd);
                float tmp[1];
                for (int32_t i = 0; i < pool * hd; i++) {
                    tmp[0] = rndf() * 2;
                    v->to_f16(&rows[i], tmp, 1);
                }
                for (int32_t p = 0; p < n; p++) vp[p] = rp[p] = rows + (size_t)((p * 7) % pool) * hd; /* scattered */
                for (int32_t i = 0; i < nq * hd; i++) q[i] = rndf();
                for (int32_t i = 0; i < nq * n; i++) w[i] = rndf();
                for (int32_t i = 0; i < nq * hd; i++) o[i] = rndf();
                float *o0 = malloc(sizeof(float) * (size_t)nq * hd);
                memcpy(o0, o, sizeof(float) * (size_t)nq * hd);
                v->attn_scores_f16(vp, n, q, hd, nq, hd, 0.125f, s, 40);
                v->attn_wsum_f16(vp, n, w, n, nq, hd, o, hd);
                int bad = 0;
                for (int32_t h = 0; h < nq; h++) {
                    for (int32_t p = 0; p < n; p++) {
                        double ref = 0, mag = 0;
                        for (int32_t i = 0; i < hd; i++) {
                            double t = (double)hl_f16_to_f32(rp[p][i]) * q[h * hd + i];
                            ref += t, mag += fabs(t);
                        }
                        float one = v->dot_f16(rp[p], q + h * hd, hd) * 0.125f;
                        if ((fabs(s[h * 40 + p] - 0.125 * ref) > 1e-6 * mag + 1e-6 || s[h * 40 + p] != one) && bad++ < 3)
                            hl_test_fail(__FILE__, __LINE__, "%s attn_scores hd=%d n=%d nq=%d h=%d p=%d: %.9g (alone %.9g, ref %.9g)",
                                         ln, hd, n, nq, h, p, s[h * 40 + p], one, 0.125 * ref);
                    }
                    memcpy(o1, o0 + h * hd, sizeof(float) * (size_t)hd);
                    for (int32_t p = 0; p < n; p++) v->axpy_f16(o1, rp[p], w[h * n + p], hd);
                    for (int32_t i = 0; i < hd; i++) {
                        double ref = o0[h * hd + i], mag = fabs(ref);
                        for (int32_t p = 0; p < n; p++) {
                            double t = (double)w[h * n + p] * hl_f16_to_f32(rp[p][i]);
                            ref += t, mag += fabs(t);
                        }
                        if ((fabs(o[h * hd + i] - ref) > 1e-6 * mag + 1e-6 || o[h * hd + i] != o1[i]) && bad++ < 3)
                            hl_test_fail(__FILE__, __LINE__, "%s attn_wsum hd=%d n=%d nq=%d h=%d i=%d: %.9g (alone %.9g, ref %.9g)",
                                         ln, hd, n, nq, h, i, o[h * hd + i], o1[i], ref);
                    }
                }
                free(rows); free(rp); free(vp); free(q); free(w); free(s); free(o); free(o0); free(o1);
            }
}

/* Q8_0 rows (the q8_0 KV cache): against a double-precision reference over
 * the dequantized rows, and each head's result equal to the same head run
 * alone (grouping must not change bits). */
static void check_attn_q8(hl_simd lv) {
    const hl_vec_ops *v = hl_vec_ops_at(lv);
    const char *ln = hl_simd_name(lv);
    static const int32_t hds[] = {32, 64, 128};
    static const int32_t ns[] = {1, 6, 41};
    for (size_t hi = 0; hi < 3; hi++)
        for (size_t ni = 0; ni < 3; ni++)
            for (int32_t nq = 1; nq <= 6; nq++) {
                const int32_t hd = hds[hi], n = ns[ni], nb = hd / 32;
                hl_block_q8_0 *rows = malloc(sizeof(hl_block_q8_0) * (size_t)(n * nb));
                const void **vp = malloc(sizeof *vp * (size_t)n);
                float *q = malloc(sizeof(float) * (size_t)nq * hd), *w = malloc(sizeof(float) * (size_t)nq * n);
                float *s = malloc(sizeof(float) * (size_t)nq * 48), *s1 = malloc(sizeof(float) * 48);
                float *o = malloc(sizeof(float) * (size_t)nq * hd), *o0 = malloc(sizeof(float) * (size_t)nq * hd);
                float *o1 = malloc(sizeof(float) * (size_t)hd);
                float tmp[1];
                for (int32_t r = 0; r < n * nb; r++) {
                    tmp[0] = rndf() * 0.05f + 0.001f;
                    v->to_f16(&rows[r].d, tmp, 1);
                    for (int i = 0; i < 32; i++) rows[r].qs[i] = (int8_t)((int)(rndf() * 127));
                }
                for (int32_t p = 0; p < n; p++) vp[p] = rows + (size_t)(n - 1 - p) * nb; /* reversed order */
                for (int32_t i = 0; i < nq * hd; i++) q[i] = rndf(), o0[i] = o[i] = rndf();
                for (int32_t i = 0; i < nq * n; i++) w[i] = rndf();
                v->attn_scores_q8_0(vp, n, q, hd, nq, hd, 0.5f, s, 48);
                v->attn_wsum_q8_0(vp, n, w, n, nq, hd, o, hd);
                int bad = 0;
                for (int32_t h = 0; h < nq; h++) {
                    v->attn_scores_q8_0(vp, n, q + h * hd, hd, 1, hd, 0.5f, s1, 48);
                    memcpy(o1, o0 + h * hd, sizeof(float) * (size_t)hd);
                    v->attn_wsum_q8_0(vp, n, w + h * n, n, 1, hd, o1, hd);
                    for (int32_t p = 0; p < n; p++) {
                        const hl_block_q8_0 *b = vp[p];
                        double ref = 0, mag = 0;
                        for (int32_t i = 0; i < hd; i++) {
                            double t = (double)hl_f16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32] * q[h * hd + i];
                            ref += t, mag += fabs(t);
                        }
                        if ((fabs(s[h * 48 + p] - 0.5 * ref) > 1e-6 * mag + 1e-7 || s[h * 48 + p] != s1[p]) && bad++ < 3)
                            hl_test_fail(__FILE__, __LINE__, "%s attn_scores_q8_0 hd=%d n=%d nq=%d h=%d p=%d: %.9g (alone %.9g, ref %.9g)",
                                         ln, hd, n, nq, h, p, s[h * 48 + p], s1[p], 0.5 * ref);
                    }
                    for (int32_t i = 0; i < hd; i++) {
                        double ref = o0[h * hd + i], mag = fabs(ref);
                        for (int32_t p = 0; p < n; p++) {
                            const hl_block_q8_0 *b = vp[p];
                            double t = (double)w[h * n + p] * hl_f16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32];
                            ref += t, mag += fabs(t);
                        }
                        if ((fabs(o[h * hd + i] - ref) > 1e-6 * mag + 1e-7 || o[h * hd + i] != o1[i]) && bad++ < 3)
                            hl_test_fail(__FILE__, __LINE__, "%s attn_wsum_q8_0 hd=%d n=%d nq=%d h=%d i=%d: %.9g (alone %.9g, ref %.9g)",
                                         ln, hd, n, nq, h, i, o[h * hd + i], o1[i], ref);
                    }
                }
                free(rows); free(vp); free(q); free(w); free(s); free(s1); free(o); free(o0); free(o1);
            }
}

TEST(vec_scalar) {
    check_attn(HL_SIMD_SCALAR);
    check_attn_q8(HL_SIMD_SCALAR);
    check_level(HL_SIMD_SCALAR);
    check_masked_softmax(HL_SIMD_SCALAR);
}
TEST(vec_avx2) {
    if (!hl_cpu_simd_supported(HL_SIMD_AVX2)) {
        hl_test_skip("no AVX2");
        return;
    }
    check_level(HL_SIMD_AVX2);
    check_masked_softmax(HL_SIMD_AVX2);
    check_attn(HL_SIMD_AVX2);
    check_attn_q8(HL_SIMD_AVX2);
}
TEST(vec_public_entry_points) {
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {1, 1, 1, 1, 1};
    CHECK_NEAR(hl_vec_dot_f32(a, b, 5), 15, 1e-6);
    hl_vec_scale(a, 2, 5);
    CHECK_NEAR(a[4], 10, 0);
}
