/* AVX-512 kernels of the tiled attention: the scores, the online-softmax
 * step and the value sum of attn_avx2.c at twice the width, for CPUs that
 * have AVX-512 (the HL_SIMD_AVX512 table is the AVX2 one with these on top).
 * They keep cpu.h's arithmetic exactly: a score is one fma chain over the
 * head dimension, an output element one multiply then one fma per key, the
 * softmax sum sixteen lanes (one zmm) then the same fixed tree, and exp16 is
 * exp8 (avx2_common.h) operation for operation, so every level with AVX
 * gives the same bits and the scalar one differs only in exp. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <math.h>

/* exp8's steps, sixteen lanes at a time (the power of two by scalef) */
HL_INLINE __m512 exp16(__m512 x) {
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    /* p * 2^n in one instruction: n is a whole number in [-126, 127], so
     * scalef's product is exp8's p * (float)2^n, rounded the same way */
    return _mm512_maskz_scalef_ps(keep, p, n);
}

/* ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)) of one 8-lane vector, as attn_avx2.c */
HL_INLINE float lanes8(__m256 a) {
    __m256 h = _mm256_hadd_ps(a, a);
    h = _mm256_hadd_ps(h, h);
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

/* R rows (up to 8) x J vectors of 16 keys (up to 2) */
HL_INLINE void qk_tile(const int R, const int J, float *s, const float *q, int32_t hd, const float *kt, int32_t j) {
    __m512 a[8][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int e = 0; e < J; e++) a[r][e] = _mm512_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        __m512 x[2];
#pragma GCC unroll 2
        for (int e = 0; e < J; e++) x[e] = _mm512_loadu_ps(kt + (int64_t)d * HL_ATTN_BK + j + 16 * e);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 w = _mm512_set1_ps(q[(int64_t)r * hd + d]);
#pragma GCC unroll 2
            for (int e = 0; e < J; e++) a[r][e] = _mm512_fmadd_ps(w, x[e], a[r][e]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int e = 0; e < J; e++) _mm512_storeu_ps(s + (int64_t)r * HL_ATTN_BK + j + 16 * e, a[r][e]);
}

/* the last 8 keys of a range, 8 lanes */
HL_INLINE void qk_tile8(const int R, float *s, const float *q, int32_t hd, const float *kt, int32_t j) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) a[r] = _mm256_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        const __m256 x = _mm256_loadu_ps(kt + (int64_t)d * HL_ATTN_BK + j);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) a[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + (int64_t)r * hd + d), x, a[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) _mm256_storeu_ps(s + (int64_t)r * HL_ATTN_BK + j, a[r]);
}

#define QK_CASE(R)                                                                                                    \
    case R:                                                                                                           \
        if (w == 32) qk_tile(R, 2, sr, qr, hd, kt, j);                                                               \
        else if (w == 16) qk_tile(R, 1, sr, qr, hd, kt, j);                                                          \
        else qk_tile8(R, sr, qr, hd, kt, j);                                                                         \
        break;

static void attn_qk(float *s, const float *q, int32_t nr, const float *kt, int32_t j0, int32_t j1, int32_t hd) {
    for (int32_t r0 = 0; r0 < nr; r0 += 8) {
        const int g = nr - r0 < 8 ? nr - r0 : 8;
        float *sr = s + (int64_t)r0 * HL_ATTN_BK;
        const float *qr = q + (int64_t)r0 * hd;
        for (int32_t j = j0; j < j1;) {
            const int w = j1 - j >= 32 ? 32 : j1 - j >= 16 ? 16 : 8;
            switch (g) {
                QK_CASE(1)
                QK_CASE(2)
                QK_CASE(3)
                QK_CASE(4)
                QK_CASE(5)
                QK_CASE(6)
                QK_CASE(7)
            default:
                if (w == 32) qk_tile(8, 2, sr, qr, hd, kt, j);
                else if (w == 16) qk_tile(8, 1, sr, qr, hd, kt, j);
                else qk_tile8(8, sr, qr, hd, kt, j);
                break;
            }
            j += w;
        }
    }
}

/* G rows (up to 4) at once, their new maxima mx and corrections c given:
 * exp and the 16-lane sum. */
HL_INLINE void softmax_rows(const int G, float *s, const float *mx, const float *c, float *m, float *l) {
    __m512 sum[4], mv[4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) sum[g] = _mm512_setzero_ps(), mv[g] = _mm512_set1_ps(mx[g]);
#pragma GCC unroll 4
    for (int32_t j = 0; j < HL_ATTN_BK; j += 16)
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            float *x = s + (int64_t)g * HL_ATTN_BK + j;
            const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x), mv[g]));
            _mm512_storeu_ps(x, e);
            sum[g] = _mm512_add_ps(sum[g], e);
        }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        const __m256 t = _mm256_add_ps(_mm512_castps512_ps256(sum[g]),
                                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sum[g]), 1)));
        l[g] = l[g] * c[g] + lanes8(t);
        m[g] = mx[g];
    }
}

/* Up to 16 rows at a time: each row's new maximum, then the corrections of
 * all of them in one exp16 (lane r: exp(m[r] - mx[r]), what a broadcast
 * would give it), then the rows' exponentials four at a time. */
static void attn_softmax(float *s, int32_t nr, float *m, float *l, float *corr) {
    for (int32_t r0 = 0; r0 < nr; r0 += 16) {
        const int32_t n = nr - r0 < 16 ? nr - r0 : 16;
        const __mmask16 k = (__mmask16)((1u << n) - 1);
        float mx[16];
        for (int32_t g = 0; g < n; g++) {
            const float *x = s + (int64_t)(r0 + g) * HL_ATTN_BK;
            __m512 a = _mm512_max_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16));
            for (int32_t j = 32; j < HL_ATTN_BK; j += 32)
                a = _mm512_max_ps(a, _mm512_max_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(x + j + 16)));
            const float t = _mm512_reduce_max_ps(a); /* a max is exact in any order */
            mx[g] = m[r0 + g] > t ? m[r0 + g] : t;
        }
        /* NaN (-inf - -inf, nothing seen yet) and -inf both give 0 */
        const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, m + r0), _mm512_maskz_loadu_ps(k, mx));
        _mm512_mask_storeu_ps(corr + r0, k, exp16(d));
        for (int32_t g = 0; g < n; g += 4) {
            float *x = s + (int64_t)(r0 + g) * HL_ATTN_BK;
            const int32_t r = r0 + g;
            switch (n - g) {
            case 1: softmax_rows(1, x, mx + g, corr + r, m + r, l + r); break;
            case 2: softmax_rows(2, x, mx + g, corr + r, m + r, l + r); break;
            case 3: softmax_rows(3, x, mx + g, corr + r, m + r, l + r); break;
            default: softmax_rows(4, x, mx + g, corr + r, m + r, l + r); break;
            }
        }
    }
}

/* R rows (up to 8) x D vectors of 16 output elements (up to 2) from i */
HL_INLINE void pv_tile(const int R, const int D, float *const *out, int32_t i, const float *p, const float *corr,
                       const float *v, int32_t j0, int32_t j1, int32_t hd) {
    __m512 a[8][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const __m512 c = _mm512_set1_ps(corr[r]);
#pragma GCC unroll 2
        for (int e = 0; e < D; e++) a[r][e] = _mm512_mul_ps(_mm512_loadu_ps(out[r] + i + 16 * e), c);
    }
    for (int32_t j = j0; j < j1; j++) {
        __m512 x[2];
#pragma GCC unroll 2
        for (int e = 0; e < D; e++) x[e] = _mm512_loadu_ps(v + (int64_t)j * hd + i + 16 * e);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 w = _mm512_set1_ps(p[(int64_t)r * HL_ATTN_BK + j]);
#pragma GCC unroll 2
            for (int e = 0; e < D; e++) a[r][e] = _mm512_fmadd_ps(w, x[e], a[r][e]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int e = 0; e < D; e++) _mm512_storeu_ps(out[r] + i + 16 * e, a[r][e]);
}

#define PV_CASE(R)                                                                                                    \
    case R:                                                                                                           \
        if (D == 2) pv_tile(R, 2, out + r0, i, pr, corr + r0, v, j0, j1, hd);                                        \
        else pv_tile(R, 1, out + r0, i, pr, corr + r0, v, j0, j1, hd);                                               \
        break;

static void attn_pv(float *const *out, int32_t nr, const float *p, const float *corr, const float *v, int32_t j0,
                    int32_t j1, int32_t hd) {
    const int32_t hd16 = hd / 16 * 16;
    for (int32_t r0 = 0; r0 < nr; r0 += 8) {
        const int g = nr - r0 < 8 ? nr - r0 : 8;
        const float *pr = p + (int64_t)r0 * HL_ATTN_BK;
        for (int32_t i = 0; i < hd16;) {
            const int D = hd16 - i >= 32 ? 2 : 1;
            switch (g) {
                PV_CASE(1)
                PV_CASE(2)
                PV_CASE(3)
                PV_CASE(4)
                PV_CASE(5)
                PV_CASE(6)
                PV_CASE(7)
            default:
                if (D == 2) pv_tile(8, 2, out + r0, i, pr, corr + r0, v, j0, j1, hd);
                else pv_tile(8, 1, out + r0, i, pr, corr + r0, v, j0, j1, hd);
                break;
            }
            i += 16 * D;
        }
        for (int32_t r = r0; r < r0 + g; r++) /* the tail, element by element as the lanes do it */
            for (int32_t i = hd16; i < hd; i++) {
                float x = out[r][i] * corr[r];
                for (int32_t j = j0; j < j1; j++) x = fmaf(p[(int64_t)r * HL_ATTN_BK + j], v[(int64_t)j * hd + i], x);
                out[r][i] = x;
            }
    }
}

void hl_avx512_init_attn(hl_cpu_kernels *kt) {
    kt->vec.attn_qk = attn_qk;
    kt->vec.attn_softmax = attn_softmax;
    kt->vec.attn_pv = attn_pv;
}
