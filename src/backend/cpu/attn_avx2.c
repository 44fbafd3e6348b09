/* AVX2 attention kernels over f16 K/V rows: the scores of several query heads
 * against a list of key rows, and the weighted sum of value rows for several
 * heads. Heads that share a KV head (grouped-query attention) are done
 * together so each key or value row is loaded and converted from f16 once
 * for all of them, and the value sum keeps its accumulators in registers
 * across positions instead of reading and writing the output per position.
 *
 * Bits: each score is computed exactly as vec_avx2.c's dot_f16 computes it
 * (two 8-lane FMA chains over 16-element steps, one 8-element step, the
 * fixed horizontal sum, a scalar tail), then multiplied by the scale; each
 * output element gets the same FMA sequence over positions as repeated
 * axpy_f16 calls. So grouping heads never changes a result. The Q8_0
 * variants serve the q8_0 KV cache. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <math.h>

HL_INLINE __m256 cvt8(const hl_f16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* up to 4 heads against one key row */
HL_INLINE void dots4(const int G, const hl_f16 *k, const float *q, int64_t qs, int32_t hd, float scale, float *s,
                     int64_t ss) {
    __m256 s0[4], s1[4];
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) s0[h] = s1[h] = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= hd; i += 16) {
        const __m256 k0 = cvt8(k + i), k1 = cvt8(k + i + 8);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) {
            s0[h] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + h * qs + i), s0[h]);
            s1[h] = _mm256_fmadd_ps(k1, _mm256_loadu_ps(q + h * qs + i + 8), s1[h]);
        }
    }
    if (i + 8 <= hd) {
        const __m256 k0 = cvt8(k + i);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) s0[h] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + h * qs + i), s0[h]);
        i += 8;
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) {
        float v = hl_hsum8(_mm256_add_ps(s0[h], s1[h]));
        for (int32_t t = i; t < hd; t++) v += hl_h2f(k[t]) * q[h * qs + t];
        s[h * ss] = v * scale;
    }
}

static void attn_scores_f16(const void *const *k, int32_t n, const float *q, int64_t qs, int32_t nq, int32_t hd,
                            float scale, float *s, int64_t ss) {
    for (int32_t h0 = 0; h0 < nq; h0 += 4) {
        const int g = nq - h0 < 4 ? nq - h0 : 4;
        const float *qh = q + h0 * qs;
        float *sh = s + h0 * ss;
        for (int32_t p = 0; p < n; p++) {
            switch (g) {
            case 1: dots4(1, k[p], qh, qs, hd, scale, sh + p, ss); break;
            case 2: dots4(2, k[p], qh, qs, hd, scale, sh + p, ss); break;
            case 3: dots4(3, k[p], qh, qs, hd, scale, sh + p, ss); break;
            default: dots4(4, k[p], qh, qs, hd, scale, sh + p, ss); break;
            }
        }
    }
}

/* 16 output elements (8 with C = 1) of up to 4 heads, all positions */
HL_INLINE void wsum4(const int G, const int C, const void *const *v, int32_t n, int32_t i, const float *w,
                     int64_t ws, float *out, int64_t os) {
    __m256 a[4][2];
#pragma GCC unroll 4
    for (int h = 0; h < G; h++)
#pragma GCC unroll 2
        for (int c = 0; c < C; c++) a[h][c] = _mm256_loadu_ps(out + h * os + i + 8 * c);
    for (int32_t p = 0; p < n; p++) {
        __m256 x[2];
#pragma GCC unroll 2
        for (int c = 0; c < C; c++) x[c] = cvt8((const hl_f16 *)v[p] + i + 8 * c);
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) {
            const __m256 wv = _mm256_broadcast_ss(w + h * ws + p);
#pragma GCC unroll 2
            for (int c = 0; c < C; c++) a[h][c] = _mm256_fmadd_ps(wv, x[c], a[h][c]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++)
#pragma GCC unroll 2
        for (int c = 0; c < C; c++) _mm256_storeu_ps(out + h * os + i + 8 * c, a[h][c]);
}

static void attn_wsum_f16(const void *const *v, int32_t n, const float *w, int64_t ws, int32_t nq, int32_t hd,
                          float *out, int64_t os) {
    for (int32_t h0 = 0; h0 < nq; h0 += 4) {
        const int g = nq - h0 < 4 ? nq - h0 : 4;
        const float *wh = w + h0 * ws;
        float *oh = out + h0 * os;
        int32_t i = 0;
        for (; i + 16 <= hd; i += 16) {
            switch (g) {
            case 1: wsum4(1, 2, v, n, i, wh, ws, oh, os); break;
            case 2: wsum4(2, 2, v, n, i, wh, ws, oh, os); break;
            case 3: wsum4(3, 2, v, n, i, wh, ws, oh, os); break;
            default: wsum4(4, 2, v, n, i, wh, ws, oh, os); break;
            }
        }
        for (; i + 8 <= hd; i += 8) {
            switch (g) {
            case 1: wsum4(1, 1, v, n, i, wh, ws, oh, os); break;
            case 2: wsum4(2, 1, v, n, i, wh, ws, oh, os); break;
            case 3: wsum4(3, 1, v, n, i, wh, ws, oh, os); break;
            default: wsum4(4, 1, v, n, i, wh, ws, oh, os); break;
            }
        }
        for (; i < hd; i++) /* the scalar tail of axpy_f16, position by position */
            for (int h = 0; h < g; h++)
                for (int32_t p = 0; p < n; p++) oh[h * os + i] = fmaf(wh[h * ws + p], hl_h2f(((const hl_f16 *)v[p])[i]), oh[h * os + i]);
    }
}

/* ---- Q8_0 rows (the q8_0 KV cache): 32-element blocks, f16 scale + int8 ----
 * Each block's int8 values are widened to floats and scaled once per row
 * for all heads; the same per-element operations whatever the grouping. */
HL_INLINE __m256 q8_8(const hl_block_q8_0 *b, int c, __m256 d) {
    __m128i v = _mm_loadl_epi64((const __m128i *)(b->qs + 8 * c));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d);
}

HL_INLINE void dots4_q8(const int G, const hl_block_q8_0 *k, const float *q, int64_t qs, int32_t hd, float scale,
                        float *s, int64_t ss) {
    __m256 s0[4], s1[4];
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) s0[h] = s1[h] = _mm256_setzero_ps();
    for (int32_t b = 0; b < hd / HL_QK; b++) {
        const __m256 d = _mm256_set1_ps(hl_h2f(hl_ld16(&k[b].d)));
        const __m256 k0 = q8_8(&k[b], 0, d), k1 = q8_8(&k[b], 1, d), k2 = q8_8(&k[b], 2, d), k3 = q8_8(&k[b], 3, d);
        const float *qb = q + b * HL_QK;
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) {
            s0[h] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(qb + h * qs), s0[h]);
            s1[h] = _mm256_fmadd_ps(k1, _mm256_loadu_ps(qb + h * qs + 8), s1[h]);
            s0[h] = _mm256_fmadd_ps(k2, _mm256_loadu_ps(qb + h * qs + 16), s0[h]);
            s1[h] = _mm256_fmadd_ps(k3, _mm256_loadu_ps(qb + h * qs + 24), s1[h]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) s[h * ss] = hl_hsum8(_mm256_add_ps(s0[h], s1[h])) * scale;
}

static void attn_scores_q8_0(const void *const *k, int32_t n, const float *q, int64_t qs, int32_t nq, int32_t hd,
                             float scale, float *s, int64_t ss) {
    for (int32_t h0 = 0; h0 < nq; h0 += 4) {
        const int g = nq - h0 < 4 ? nq - h0 : 4;
        const float *qh = q + h0 * qs;
        float *sh = s + h0 * ss;
        for (int32_t p = 0; p < n; p++) {
            const hl_block_q8_0 *kp = k[p];
            switch (g) {
            case 1: dots4_q8(1, kp, qh, qs, hd, scale, sh + p, ss); break;
            case 2: dots4_q8(2, kp, qh, qs, hd, scale, sh + p, ss); break;
            case 3: dots4_q8(3, kp, qh, qs, hd, scale, sh + p, ss); break;
            default: dots4_q8(4, kp, qh, qs, hd, scale, sh + p, ss); break;
            }
        }
    }
}

/* 16 output elements (half of block b) of up to 4 heads, all positions:
 * out += (w * d) * value, position by position */
HL_INLINE void wsum4_q8(const int G, const void *const *v, int32_t n, int32_t b, int half, const float *w, int64_t ws,
                        float *out, int64_t os) {
    const int32_t i = b * HL_QK + 16 * half;
    __m256 a[4][2];
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) {
        a[h][0] = _mm256_loadu_ps(out + h * os + i);
        a[h][1] = _mm256_loadu_ps(out + h * os + i + 8);
    }
    for (int32_t p = 0; p < n; p++) {
        const hl_block_q8_0 *blk = (const hl_block_q8_0 *)v[p] + b;
        const float d = hl_h2f(hl_ld16(&blk->d));
        __m128i raw = _mm_loadu_si128((const __m128i *)(blk->qs + 16 * half));
        const __m256 x0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw));
        const __m256 x1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw, 8)));
#pragma GCC unroll 4
        for (int h = 0; h < G; h++) {
            const __m256 c = _mm256_set1_ps(w[h * ws + p] * d);
            a[h][0] = _mm256_fmadd_ps(c, x0, a[h][0]);
            a[h][1] = _mm256_fmadd_ps(c, x1, a[h][1]);
        }
    }
#pragma GCC unroll 4
    for (int h = 0; h < G; h++) {
        _mm256_storeu_ps(out + h * os + i, a[h][0]);
        _mm256_storeu_ps(out + h * os + i + 8, a[h][1]);
    }
}

static void attn_wsum_q8_0(const void *const *v, int32_t n, const float *w, int64_t ws, int32_t nq, int32_t hd,
                           float *out, int64_t os) {
    for (int32_t h0 = 0; h0 < nq; h0 += 4) {
        const int g = nq - h0 < 4 ? nq - h0 : 4;
        for (int32_t b = 0; b < hd / HL_QK; b++)
            for (int half = 0; half < 2; half++) {
                switch (g) {
                case 1: wsum4_q8(1, v, n, b, half, w + h0 * ws, ws, out + h0 * os, os); break;
                case 2: wsum4_q8(2, v, n, b, half, w + h0 * ws, ws, out + h0 * os, os); break;
                case 3: wsum4_q8(3, v, n, b, half, w + h0 * ws, ws, out + h0 * os, os); break;
                default: wsum4_q8(4, v, n, b, half, w + h0 * ws, ws, out + h0 * os, os); break;
                }
            }
    }
}

void hl_avx2_init_attn(hl_cpu_kernels *kt) {
    kt->vec.attn_scores_f16 = attn_scores_f16;
    kt->vec.attn_wsum_f16 = attn_wsum_f16;
    kt->vec.attn_scores_q8_0 = attn_scores_q8_0;
    kt->vec.attn_wsum_q8_0 = attn_wsum_q8_0;
}
