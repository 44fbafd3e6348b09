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

/* The tiled-attention kernels (cpu.h): scores, the online-softmax step and
 * the value sum against double-precision references; and, since the tiled
 * attention relies on it for batch invariance, each row's scores and sums
 * bit for bit the same computed alone, over a sub-range of keys, or at the
 * scalar level (the two levels promise the same arithmetic outside exp).
 * Head dimensions with 16-, 8- and scalar tails; 1..13 rows. */
static void check_attn_tile(hl_simd lv) {
    const hl_vec_ops *v = hl_vec_ops_at(lv), *sc = hl_vec_ops_at(HL_SIMD_SCALAR);
    const char *ln = hl_simd_name(lv);
    enum { BK = HL_ATTN_BK, MR = 13 };
    static const int32_t hds[] = {8, 13, 64, 72, 128, 256};
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        const int32_t hd = hds[hi];
        float *q = malloc(sizeof(float) * MR * hd), *k = malloc(sizeof(float) * BK * hd);
        float *kt = malloc(sizeof(float) * BK * hd), *kt2 = malloc(sizeof(float) * BK * hd);
        float *vv = malloc(sizeof(float) * BK * hd), *s = malloc(sizeof(float) * MR * BK);
        float *s1 = malloc(sizeof(float) * MR * BK), *s2 = malloc(sizeof(float) * MR * BK);
        float *o = malloc(sizeof(float) * MR * hd), *o0 = malloc(sizeof(float) * MR * hd);
        float *o1 = malloc(sizeof(float) * MR * hd), *o2 = malloc(sizeof(float) * MR * hd);
        float m[MR], l[MR], corr[MR], m0[MR], l0[MR];
        float *op[MR], *op1[MR], *op2[MR];
        for (int32_t i = 0; i < MR * hd; i++) q[i] = rndf();
        for (int32_t i = 0; i < BK * hd; i++) k[i] = rndf() * 2, vv[i] = rndf() * 2;
        /* the transpose: all keys, and a sub-range leaving the rest alone */
        v->attn_kt(kt, k, 0, BK, hd);
        for (int32_t i = 0; i < BK * hd; i++) kt2[i] = -1.0f;
        v->attn_kt(kt2, k, 16, 40, hd);
        int bad = 0;
        for (int32_t d = 0; d < hd; d++)
            for (int32_t j = 0; j < BK; j++)
                if ((kt[d * BK + j] != k[j * hd + d] || kt2[d * BK + j] != (j >= 16 && j < 40 ? k[j * hd + d] : -1.0f)) &&
                    bad++ < 3)
                    hl_test_fail(__FILE__, __LINE__, "%s attn_kt hd=%d d=%d j=%d", ln, hd, d, j);
        for (int32_t nr = 1; nr <= MR; nr += 4) {
            /* scores */
            v->attn_qk(s, q, nr, kt, 0, BK, hd);
            sc->attn_qk(s2, q, nr, kt, 0, BK, hd);
            for (int32_t r = 0; r < nr; r++) {
                v->attn_qk(s1, q + (int64_t)r * hd, 1, kt, 8, 24, hd);
                for (int32_t j = 0; j < BK; j++) {
                    double ref = 0, mag = 0;
                    for (int32_t d = 0; d < hd; d++) {
                        double t = (double)q[r * hd + d] * k[j * hd + d];
                        ref += t, mag += fabs(t);
                    }
                    float x = s[r * BK + j];
                    if ((fabs(x - ref) > 1e-6 * mag + 1e-7 || x != s2[r * BK + j] || (j >= 8 && j < 24 && x != s1[j])) &&
                        bad++ < 3)
                        hl_test_fail(__FILE__, __LINE__, "%s attn_qk hd=%d nr=%d r=%d j=%d: %.9g (scalar %.9g, ref %.9g)", ln,
                                     hd, nr, r, j, x, s2[r * BK + j], ref);
                }
            }
            /* online softmax: rows with fresh state, a running state, masked keys, a fully masked block */
            for (int32_t r = 0; r < nr; r++) {
                m0[r] = r % 3 == 0 ? -INFINITY : rndf() * 2, l0[r] = m0[r] == -INFINITY ? 0.0f : 1 + rndf() * 0.5f;
                for (int32_t j = 0; j < BK; j++)
                    s[r * BK + j] = r == 2 || (j * 7 + r) % 5 == 0 ? -INFINITY : rndf() * 4;
                m[r] = m0[r], l[r] = l0[r];
            }
            memcpy(s1, s, sizeof(float) * (size_t)nr * BK);
            if (lv == HL_SIMD_AVX512) { /* the same bits as the AVX2 step (same exp, same sums) */
                float ma[MR], la[MR], ca[MR];
                memcpy(s2, s, sizeof(float) * (size_t)nr * BK);
                memcpy(ma, m, sizeof ma), memcpy(la, l, sizeof la);
                hl_vec_ops_at(HL_SIMD_AVX2)->attn_softmax(s2, nr, ma, la, ca);
                v->attn_softmax(s, nr, m, l, corr);
                CHECK(memcmp(s, s2, sizeof(float) * (size_t)nr * BK) == 0);
                CHECK(memcmp(l, la, sizeof(float) * (size_t)nr) == 0 && memcmp(corr, ca, sizeof(float) * (size_t)nr) == 0);
            } else
                v->attn_softmax(s, nr, m, l, corr);
            for (int32_t r = 0; r < nr; r++) {
                double mx = m0[r], sum = 0;
                for (int32_t j = 0; j < BK; j++) mx = s1[r * BK + j] > mx ? s1[r * BK + j] : mx;
                double c = mx == -INFINITY ? 0 : exp(m0[r] - mx);
                int ok = m[r] == (float)mx && fabs(corr[r] - c) <= 1e-6 * c;
                for (int32_t j = 0; j < BK; j++) {
                    double e = s1[r * BK + j] == -INFINITY ? 0 : exp(s1[r * BK + j] - mx);
                    sum += e;
                    ok &= fabs(s[r * BK + j] - e) <= 1e-6 * e + 1e-30 && (e != 0 || s[r * BK + j] == 0.0f);
                }
                double lr = l0[r] * c + sum;
                ok &= fabs(l[r] - lr) <= 2e-6 * lr + 1e-30;
                if (r == 2 && m0[r] != -INFINITY) ok &= corr[r] == 1.0f && l[r] == l0[r]; /* nothing seen: unchanged */
                if (!ok && bad++ < 3)
                    hl_test_fail(__FILE__, __LINE__, "%s attn_softmax nr=%d r=%d: m %.9g/%.9g corr %.9g/%.9g l %.9g/%.9g", ln,
                                 nr, r, m[r], mx, corr[r], c, l[r], lr);
            }
            /* value sums over keys [j0, j1), the weights from above (some exactly 0) */
            const int32_t j0 = 3, j1 = 61;
            for (int32_t i = 0; i < nr * hd; i++) o[i] = o0[i] = o1[i] = o2[i] = rndf();
            for (int32_t r = 0; r < nr; r++) op[r] = o + r * hd, op1[r] = o1 + r * hd, op2[r] = o2 + r * hd;
            v->attn_pv(op, nr, s, corr, vv, j0, j1, hd);
            sc->attn_pv(op2, nr, s, corr, vv, j0, j1, hd);
            for (int32_t r = 0; r < nr; r++) {
                v->attn_pv(op1 + r, 1, s + r * BK, corr + r, vv, j0, j1, hd);
                for (int32_t i = 0; i < hd; i++) {
                    double ref = (double)(o0[r * hd + i] * corr[r]), mag = fabs(ref);
                    for (int32_t j = j0; j < j1; j++) {
                        double t = (double)s[r * BK + j] * vv[j * hd + i];
                        ref += t, mag += fabs(t);
                    }
                    float x = o[r * hd + i];
                    if ((fabs(x - ref) > 1e-6 * mag + 1e-7 || x != o1[r * hd + i] || x != o2[r * hd + i]) && bad++ < 3)
                        hl_test_fail(__FILE__, __LINE__, "%s attn_pv hd=%d nr=%d r=%d i=%d: %.9g (alone %.9g, scalar %.9g, ref %.9g)",
                                     ln, hd, nr, r, i, x, o1[r * hd + i], o2[r * hd + i], ref);
                }
            }
        }
        free(q); free(k); free(kt); free(kt2); free(vv); free(s); free(s1); free(s2); free(o); free(o0); free(o1); free(o2);
    }
}

/* The online-softmax step where exp leaves the normal range: scores and
 * corrections down to 90 below the maximum (results subnormal near -87,
 * exactly 0 past -87.3), 1..21 rows (the AVX-512 step takes 16 rows per
 * vector of corrections). The AVX-512 step must give the AVX2 step's bits
 * (check_attn_tile holds the AVX2 step to a double-precision reference). */
static void check_softmax_extremes(hl_simd lv) {
    enum { BK = HL_ATTN_BK, MR = 21 };
    const hl_vec_ops *v = hl_vec_ops_at(lv), *a2 = hl_vec_ops_at(HL_SIMD_AVX2);
    float *s = malloc(sizeof(float) * MR * BK), *s2 = malloc(sizeof(float) * MR * BK);
    for (int32_t nr = 1; nr <= MR; nr += 5) {
        float m[MR], l[MR], c[MR], m2[MR], l2[MR], c2[MR];
        for (int32_t r = 0; r < nr; r++) {
            const float top = rndf() * 4;
            for (int32_t j = 0; j < BK; j++) s[r * BK + j] = top - (float)((j * 37 + r * 11) % BK) * (90.0f / BK) - rndf() * 0.01f;
            m[r] = r % 4 == 0 ? -INFINITY : top + 86.5f + (float)(r % 5) * 0.25f; /* corrections near exp's edge */
            l[r] = m[r] == -INFINITY ? 0.0f : 1.0f;
        }
        memcpy(s2, s, sizeof(float) * (size_t)nr * BK);
        memcpy(m2, m, sizeof m), memcpy(l2, l, sizeof l);
        v->attn_softmax(s, nr, m, l, c);
        a2->attn_softmax(s2, nr, m2, l2, c2);
        CHECK(memcmp(s, s2, sizeof(float) * (size_t)nr * BK) == 0);
        CHECK(memcmp(m, m2, sizeof(float) * (size_t)nr) == 0);
        CHECK(memcmp(l, l2, sizeof(float) * (size_t)nr) == 0 && memcmp(c, c2, sizeof(float) * (size_t)nr) == 0);
    }
    free(s);
    free(s2);
}

/* K/V rows to floats: f16 exactly, q8_0 as d * q */
static void check_kv_rows(hl_simd lv) {
    const hl_vec_ops *v = hl_vec_ops_at(lv);
    hl_f16 h[77];
    float x[77], f[77], tmp[1];
    for (int i = 0; i < 77; i++) x[i] = rndf() * 3;
    v->to_f16(h, x, 77);
    v->f16_to_f32(f, h, 77);
    for (int i = 0; i < 77; i++) CHECK(f[i] == hl_f16_to_f32(h[i]));
    hl_block_q8_0 b[4];
    for (int r = 0; r < 4; r++) {
        tmp[0] = rndf() * 0.05f + 0.001f;
        v->to_f16(&b[r].d, tmp, 1);
        for (int i = 0; i < 32; i++) b[r].qs[i] = (int8_t)((int)(rndf() * 127));
    }
    float g[128];
    v->q8_0_to_f32(g, b, 128);
    for (int i = 0; i < 128; i++) CHECK(g[i] == hl_f16_to_f32(b[i / 32].d) * (float)b[i / 32].qs[i % 32]);
}

TEST(vec_scalar) {
    check_attn_tile(HL_SIMD_SCALAR);
    check_kv_rows(HL_SIMD_SCALAR);
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
    check_attn_tile(HL_SIMD_AVX2);
    check_kv_rows(HL_SIMD_AVX2);
}
TEST(vec_avx512) {
    if (!hl_cpu_simd_supported(HL_SIMD_AVX512)) {
        hl_test_skip("no AVX-512");
        return;
    }
    check_level(HL_SIMD_AVX512);
    check_attn_tile(HL_SIMD_AVX512);
    check_softmax_extremes(HL_SIMD_AVX512);
    check_kv_rows(HL_SIMD_AVX512);
}
TEST(vec_public_entry_points) {
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {1, 1, 1, 1, 1};
    CHECK_NEAR(hl_vec_dot_f32(a, b, 5), 15, 1e-6);
    hl_vec_scale(a, 2, 5);
    CHECK_NEAR(a[4], 10, 0);
}
