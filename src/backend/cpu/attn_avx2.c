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

/* 8x8 blocks of key rows transposed with unpack/shuffle/permute (a data
 * movement only), the dimension tail element by element. */
static void attn_kt(float *kt, const float *k, int32_t j0, int32_t j1, int32_t hd) {
    const int32_t hd8 = hd / 8 * 8;
    for (int32_t j = j0; j < j1; j += 8) {
        const float *kj = k + (int64_t)j * hd;
        for (int32_t d = 0; d < hd8; d += 8) {
            __m256 r[8], t[8];
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) r[c] = _mm256_loadu_ps(kj + (int64_t)c * hd + d);
            t[0] = _mm256_unpacklo_ps(r[0], r[1]), t[1] = _mm256_unpackhi_ps(r[0], r[1]);
            t[2] = _mm256_unpacklo_ps(r[2], r[3]), t[3] = _mm256_unpackhi_ps(r[2], r[3]);
            t[4] = _mm256_unpacklo_ps(r[4], r[5]), t[5] = _mm256_unpackhi_ps(r[4], r[5]);
            t[6] = _mm256_unpacklo_ps(r[6], r[7]), t[7] = _mm256_unpackhi_ps(r[6], r[7]);
            r[0] = _mm256_shuffle_ps(t[0], t[2], 0x44), r[1] = _mm256_shuffle_ps(t[0], t[2], 0xEE);
            r[2] = _mm256_shuffle_ps(t[1], t[3], 0x44), r[3] = _mm256_shuffle_ps(t[1], t[3], 0xEE);
            r[4] = _mm256_shuffle_ps(t[4], t[6], 0x44), r[5] = _mm256_shuffle_ps(t[4], t[6], 0xEE);
            r[6] = _mm256_shuffle_ps(t[5], t[7], 0x44), r[7] = _mm256_shuffle_ps(t[5], t[7], 0xEE);
            float *o = kt + (int64_t)d * HL_ATTN_BK + j;
            _mm256_storeu_ps(o + 0 * HL_ATTN_BK, _mm256_permute2f128_ps(r[0], r[4], 0x20));
            _mm256_storeu_ps(o + 1 * HL_ATTN_BK, _mm256_permute2f128_ps(r[1], r[5], 0x20));
            _mm256_storeu_ps(o + 2 * HL_ATTN_BK, _mm256_permute2f128_ps(r[2], r[6], 0x20));
            _mm256_storeu_ps(o + 3 * HL_ATTN_BK, _mm256_permute2f128_ps(r[3], r[7], 0x20));
            _mm256_storeu_ps(o + 4 * HL_ATTN_BK, _mm256_permute2f128_ps(r[0], r[4], 0x31));
            _mm256_storeu_ps(o + 5 * HL_ATTN_BK, _mm256_permute2f128_ps(r[1], r[5], 0x31));
            _mm256_storeu_ps(o + 6 * HL_ATTN_BK, _mm256_permute2f128_ps(r[2], r[6], 0x31));
            _mm256_storeu_ps(o + 7 * HL_ATTN_BK, _mm256_permute2f128_ps(r[3], r[7], 0x31));
        }
        for (int32_t d = hd8; d < hd; d++)
            for (int c = 0; c < 8; c++) kt[(int64_t)d * HL_ATTN_BK + j + c] = kj[(int64_t)c * hd + d];
    }
}

/* R rows (up to 6) x J vectors of 8 keys (up to 2): one fma per dimension
 * into each score, the key vectors loaded once for the R rows. */
HL_INLINE void qk_tile(const int R, const int J, float *s, const float *q, int32_t hd, const float *kt, int32_t j) {
    __m256 a[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int e = 0; e < J; e++) a[r][e] = _mm256_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        __m256 x[2];
#pragma GCC unroll 2
        for (int e = 0; e < J; e++) x[e] = _mm256_loadu_ps(kt + (int64_t)d * HL_ATTN_BK + j + 8 * e);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const __m256 w = _mm256_broadcast_ss(q + (int64_t)r * hd + d);
#pragma GCC unroll 2
            for (int e = 0; e < J; e++) a[r][e] = _mm256_fmadd_ps(w, x[e], a[r][e]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int e = 0; e < J; e++) _mm256_storeu_ps(s + (int64_t)r * HL_ATTN_BK + j + 8 * e, a[r][e]);
}

#define QK_CASE(R)                                                                                                    \
    case R:                                                                                                           \
        if (J == 2) qk_tile(R, 2, sr, qr, hd, kt, j);                                                                \
        else qk_tile(R, 1, sr, qr, hd, kt, j);                                                                       \
        break;

static void attn_qk(float *s, const float *q, int32_t nr, const float *kt, int32_t j0, int32_t j1, int32_t hd) {
    for (int32_t r0 = 0; r0 < nr; r0 += 6) {
        const int g = nr - r0 < 6 ? nr - r0 : 6;
        float *sr = s + (int64_t)r0 * HL_ATTN_BK;
        const float *qr = q + (int64_t)r0 * hd;
        for (int32_t j = j0; j < j1;) {
            const int J = j1 - j >= 16 ? 2 : 1;
            switch (g) {
                QK_CASE(1)
                QK_CASE(2)
                QK_CASE(3)
                QK_CASE(4)
                QK_CASE(5)
            default:
                if (J == 2) qk_tile(6, 2, sr, qr, hd, kt, j);
                else qk_tile(6, 1, sr, qr, hd, kt, j);
                break;
            }
            j += 8 * J;
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
    kt->vec.attn_kt = attn_kt;
    kt->vec.attn_qk = attn_qk;
    kt->vec.attn_softmax = attn_softmax;
    kt->vec.attn_pv = attn_pv;
}
