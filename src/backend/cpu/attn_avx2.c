/* AVX2 kernels of the tiled attention (attn_tile.c drives them; cpu.h gives
 * their exact arithmetic): K/V rows to floats, the scores of query rows
 * against a block of keys, the online-softmax step, and the weighted sum of
 * value rows into the rows' accumulators.
 *
 * Bits: a score is eight FMA lanes over the head dimension followed by one
 * fixed reduction tree, whether it is reduced alone or eight at a time
 * (hadd_tree8 computes, per accumulator, exactly what lanes8 computes for
 * one), and the value sum is one multiply and then one FMA per key per
 * element, whatever the register blocking over rows and dimensions. So the
 * scalar kernels (vec_scalar.c) give the same scores and sums, and a row's
 * result never depends on which other rows share its tile; only exp differs
 * between the levels (exp8 here, expf there). */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <math.h>

static void f16_to_f32(float *dst, const hl_f16 *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = hl_h2f(src[i]);
}

static void q8_0_to_f32(float *dst, const void *src, int64_t n) {
    const hl_block_q8_0 *b = src;
    for (int64_t k = 0; k < n / HL_QK; k++) {
        const __m256 d = _mm256_set1_ps(hl_h2f(hl_ld16(&b[k].d)));
        for (int c = 0; c < 4; c++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(b[k].qs + 8 * c));
            _mm256_storeu_ps(dst + k * HL_QK + 8 * c, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
        }
    }
}

/* ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)) of one vector */
HL_INLINE float lanes8(__m256 a) {
    __m256 h = _mm256_hadd_ps(a, a);
    h = _mm256_hadd_ps(h, h);
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

/* lanes8 of eight accumulators at once: lane c of the result is lanes8(a[c]) */
HL_INLINE __m256 hadd_tree8(const __m256 *a) {
    __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 w = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u, w, 0x20), _mm256_permute2f128_ps(u, w, 0x31));
}

/* Query rows against keys [j0, j1): two rows x four keys per step (eight
 * accumulators, each query chunk loaded once for four key rows and each key
 * chunk once for two query rows), an odd last row eight keys per step. */
static void attn_qk(float *s, const float *q, int32_t nr, const float *k, int32_t j0, int32_t j1, int32_t hdp) {
    int32_t r = 0;
    for (; r + 2 <= nr; r += 2) {
        const float *q0 = q + (int64_t)r * hdp, *q1 = q0 + hdp;
        for (int32_t j = j0; j < j1; j += 4) {
            const float *kj = k + (int64_t)j * hdp;
            __m256 a[8];
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) a[c] = _mm256_setzero_ps();
            for (int32_t d = 0; d < hdp; d += 8) {
                const __m256 x0 = _mm256_loadu_ps(q0 + d), x1 = _mm256_loadu_ps(q1 + d);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    const __m256 kv = _mm256_loadu_ps(kj + (int64_t)c * hdp + d);
                    a[c] = _mm256_fmadd_ps(x0, kv, a[c]);
                    a[4 + c] = _mm256_fmadd_ps(x1, kv, a[4 + c]);
                }
            }
            const __m256 t = hadd_tree8(a);
            _mm_storeu_ps(s + (int64_t)r * HL_ATTN_BK + j, _mm256_castps256_ps128(t));
            _mm_storeu_ps(s + (int64_t)(r + 1) * HL_ATTN_BK + j, _mm256_extractf128_ps(t, 1));
        }
    }
    for (; r < nr; r++) {
        const float *qr = q + (int64_t)r * hdp;
        for (int32_t j = j0; j < j1; j += 8) {
            const float *kj = k + (int64_t)j * hdp;
            __m256 a[8];
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) a[c] = _mm256_setzero_ps();
            for (int32_t d = 0; d < hdp; d += 8) {
                const __m256 qv = _mm256_loadu_ps(qr + d);
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) a[c] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kj + (int64_t)c * hdp + d), a[c]);
            }
            _mm256_storeu_ps(s + (int64_t)r * HL_ATTN_BK + j, hadd_tree8(a));
        }
    }
}

/* G rows (up to 4) at once, so their independent chains overlap: max, the
 * correction, then exp and the two-accumulator sum. */
HL_INLINE void softmax_rows(const int G, float *s, float *m, float *l, float *corr) {
    __m256 vm[4], mv[4], s0[4], s1[4];
    float mx[4], c[4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        const float *x = s + (int64_t)g * HL_ATTN_BK;
        __m256 a = _mm256_max_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8));
        for (int32_t j = 16; j < HL_ATTN_BK; j += 16)
            a = _mm256_max_ps(a, _mm256_max_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(x + j + 8)));
        vm[g] = a;
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        __m128 t = _mm_max_ps(_mm256_castps256_ps128(vm[g]), _mm256_extractf128_ps(vm[g], 1));
        t = _mm_max_ps(t, _mm_movehl_ps(t, t));
        t = _mm_max_ss(t, _mm_movehdup_ps(t));
        mx[g] = _mm_cvtss_f32(t);
        mx[g] = m[g] > mx[g] ? m[g] : mx[g];
        /* NaN (-inf - -inf, nothing seen yet) and -inf both give exp8 = 0 */
        c[g] = _mm_cvtss_f32(_mm256_castps256_ps128(exp8(_mm256_set1_ps(m[g] - mx[g]))));
        mv[g] = _mm256_set1_ps(mx[g]);
        s0[g] = s1[g] = _mm256_setzero_ps();
    }
    for (int32_t j = 0; j < HL_ATTN_BK; j += 16)
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            float *x = s + (int64_t)g * HL_ATTN_BK + j;
            const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x), mv[g]));
            const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + 8), mv[g]));
            _mm256_storeu_ps(x, e0);
            _mm256_storeu_ps(x + 8, e1);
            s0[g] = _mm256_add_ps(s0[g], e0);
            s1[g] = _mm256_add_ps(s1[g], e1);
        }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        l[g] = l[g] * c[g] + lanes8(_mm256_add_ps(s0[g], s1[g]));
        m[g] = mx[g];
        corr[g] = c[g];
    }
}

static void attn_softmax(float *s, int32_t nr, float *m, float *l, float *corr) {
    for (int32_t r = 0; r < nr; r += 4) {
        float *x = s + (int64_t)r * HL_ATTN_BK;
        switch (nr - r) {
        case 1: softmax_rows(1, x, m + r, l + r, corr + r); break;
        case 2: softmax_rows(2, x, m + r, l + r, corr + r); break;
        case 3: softmax_rows(3, x, m + r, l + r, corr + r); break;
        default: softmax_rows(4, x, m + r, l + r, corr + r); break;
        }
    }
}

/* R rows (up to 6) x D vectors (up to 2) of output elements from i, over keys
 * [j0, j1): each value row chunk loaded once for the R rows. */
HL_INLINE void pv_tile(const int R, const int D, float *const *out, int32_t i, const float *p, const float *corr,
                       const float *v, int32_t j0, int32_t j1, int32_t hd) {
    __m256 a[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const __m256 c = _mm256_set1_ps(corr[r]);
#pragma GCC unroll 2
        for (int e = 0; e < D; e++) a[r][e] = _mm256_mul_ps(_mm256_loadu_ps(out[r] + i + 8 * e), c);
    }
    for (int32_t j = j0; j < j1; j++) {
        __m256 x[2];
#pragma GCC unroll 2
        for (int e = 0; e < D; e++) x[e] = _mm256_loadu_ps(v + (int64_t)j * hd + i + 8 * e);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const __m256 w = _mm256_broadcast_ss(p + (int64_t)r * HL_ATTN_BK + j);
#pragma GCC unroll 2
            for (int e = 0; e < D; e++) a[r][e] = _mm256_fmadd_ps(w, x[e], a[r][e]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int e = 0; e < D; e++) _mm256_storeu_ps(out[r] + i + 8 * e, a[r][e]);
}

#define PV_CASE(R)                                                                                                    \
    case R:                                                                                                           \
        if (D == 2) pv_tile(R, 2, out + r0, i, pr, corr + r0, v, j0, j1, hd);                                        \
        else pv_tile(R, 1, out + r0, i, pr, corr + r0, v, j0, j1, hd);                                               \
        break;

static void attn_pv(float *const *out, int32_t nr, const float *p, const float *corr, const float *v, int32_t j0,
                    int32_t j1, int32_t hd) {
    const int32_t hd8 = hd / 8 * 8;
    for (int32_t r0 = 0; r0 < nr; r0 += 6) {
        const int g = nr - r0 < 6 ? nr - r0 : 6;
        const float *pr = p + (int64_t)r0 * HL_ATTN_BK;
        for (int32_t i = 0; i < hd8;) {
            const int D = hd8 - i >= 16 ? 2 : 1;
            switch (g) {
                PV_CASE(1)
                PV_CASE(2)
                PV_CASE(3)
                PV_CASE(4)
                PV_CASE(5)
            default:
                if (D == 2) pv_tile(6, 2, out + r0, i, pr, corr + r0, v, j0, j1, hd);
                else pv_tile(6, 1, out + r0, i, pr, corr + r0, v, j0, j1, hd);
                break;
            }
            i += 8 * D;
        }
        for (int32_t r = r0; r < r0 + g; r++) /* the scalar tail, element by element as the lanes do it */
            for (int32_t i = hd8; i < hd; i++) {
                float x = out[r][i] * corr[r];
                for (int32_t j = j0; j < j1; j++) x = fmaf(p[(int64_t)r * HL_ATTN_BK + j], v[(int64_t)j * hd + i], x);
                out[r][i] = x;
            }
    }
}

void hl_avx2_init_attn(hl_cpu_kernels *kt) {
    kt->vec.f16_to_f32 = f16_to_f32;
    kt->vec.q8_0_to_f32 = q8_0_to_f32;
    kt->vec.attn_qk = attn_qk;
    kt->vec.attn_softmax = attn_softmax;
    kt->vec.attn_pv = attn_pv;
}
