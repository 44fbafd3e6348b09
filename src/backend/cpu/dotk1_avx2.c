/* AVX2 batch-1 (m = 1) kernels for Q4_K, Q5_K and Q6_K weights with one Q8_K
 * activation row: the decode path, which streams every weight byte from
 * memory once per token and so must cost less per byte than DRAM delivers.
 * Everything is computed straight from the packed superblocks: the sub-block
 * scales are unpacked once per superblock into 16-bit lanes and broadcast per
 * chunk with an in-lane byte shuffle (no lane-crossing permutes), the Q4_K /
 * Q5_K mins and the Q6_K -32 offset come out of Q8_K's bsums, the integer
 * sums stay in one __m256i for the whole superblock, and the float work is
 * one convert + FMA (two with mins) per superblock. Rows go one at a time
 * (one stream from memory measured faster than 2-4 rows side by side, even
 * though those share the activation loads), and the next row is prefetched
 * while this one is computed. The G-row kernels prefetch too: a batched
 * decode step streams the weights from memory just as decode does, and
 * without it a step of 2 rows cost ~2x a step of 1 (DRAM latency).
 *
 * Batch invariance: for each output element, the i32 lanes (lane l holds the
 * products of bytes 4l..4l+3 of every 32-element chunk, times the chunk's
 * scale), the correction lanes madd(bsums, s16) and the float sequence are
 * exactly those of the unpacked path in dotk_avx2.c (k_pair), so m = 1 and
 * m > 1 give the same bits. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <stddef.h>

enum { K1_Q4, K1_Q5, K1_Q6 };

HL_INLINE __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* i16 element e of every 128-bit lane of v, where v holds each i16 twice
 * (unpacklo/hi_epi16(x, x)): one in-lane shuffle with an immediate, so no
 * shuffle-control constants compete for registers */
#define K1_PICK(v, e) _mm256_shuffle_epi32((v), 0x55 * (e))

HL_INLINE size_t k1_block_size(int kind) {
    return kind == K1_Q4 ? sizeof(hl_block_q4_K) : kind == K1_Q5 ? sizeof(hl_block_q5_K) : sizeof(hl_block_q6_K);
}

/* ---- G (1..4) activation rows at once: each weight chunk is decoded once
 * in registers and multiplied with every row; G = 1 is the decode kernel ---- */

/* chunk c of a Q4_K / Q5_K superblock (sub-blocks 2c, 2c+1, scales s0 and
 * s1 as i16 lanes) decoded once and multiplied with G activation rows; the
 * Q5_K fifth bit comes from qh (bit 2c -> bit 4 of lo, 2c+1 -> of hi) */
HL_INLINE void kg_chunk45(const int kind, const int G, const uint8_t *qs, __m256i qh, const int c,
                          const int8_t *const xq[4], __m256i s0, __m256i s1, __m256i isum[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i v = ld256(qs + 32 * c);
    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (kind == K1_Q5) {
        const __m256i b4 = _mm256_set1_epi8(0x10);
        __m256i hl = 2 * c <= 4 ? _mm256_slli_epi16(qh, 4 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 4);
        __m256i hh = 2 * c + 1 <= 4 ? _mm256_slli_epi16(qh, 3 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 3);
        lo = _mm256_or_si256(lo, _mm256_and_si256(hl, b4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(hh, b4));
    }
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) {
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld256(xq[i] + 64 * c)), s0);
        __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ld256(xq[i] + 64 * c + 32)), s1);
        isum[i] = _mm256_add_epi32(isum[i], _mm256_add_epi32(p0, p1));
    }
}

HL_INLINE void kg_q45(const int kind, const int G, const uint8_t *blk, const hl_block_q8_K *const xb[4],
                      __m256 acc[4]) {
    uint32_t a0 = hl_ld32(blk + 4), a1 = hl_ld32(blk + 8), a2 = hl_ld32(blk + 12);
    uint32_t sc_lo = a0 & 0x3f3f3f3fu, mn_lo = a1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (a2 & 0x0f0f0f0fu) | (((a0 >> 6) & 0x03030303u) << 4);
    uint32_t mn_hi = ((a2 >> 4) & 0x0f0f0f0fu) | (((a1 >> 6) & 0x03030303u) << 4);
    __m128i sm = _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
    __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    __m256i sc03 = _mm256_unpacklo_epi16(sc, sc), sc47 = _mm256_unpackhi_epi16(sc, sc);
    __m128i mn8 = _mm_unpackhi_epi64(sm, sm);
    __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
    const uint8_t *qs = blk + (kind == K1_Q4 ? 16 : 48);
    __m256i qh = kind == K1_Q5 ? ld256(blk + 16) : _mm256_setzero_si256();
    const int8_t *xq[4];
    __m256i isum[4];
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) {
        xq[i] = xb[i]->qs;
        isum[i] = _mm256_setzero_si256();
    }
    kg_chunk45(kind, G, qs, qh, 0, xq, K1_PICK(sc03, 0), K1_PICK(sc03, 1), isum);
    kg_chunk45(kind, G, qs, qh, 1, xq, K1_PICK(sc03, 2), K1_PICK(sc03, 3), isum);
    kg_chunk45(kind, G, qs, qh, 2, xq, K1_PICK(sc47, 0), K1_PICK(sc47, 1), isum);
    kg_chunk45(kind, G, qs, qh, 3, xq, K1_PICK(sc47, 2), K1_PICK(sc47, 3), isum);
    __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)hl_ld32(blk)));
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) {
        __m256i corr = _mm256_madd_epi16(ld256(xb[i]->bsums), mins16);
        __m128 dd = _mm_mul_ps(dw, _mm_set1_ps(xb[i]->d));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_broadcastss_ps(dd), acc[i]);
        acc[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_broadcastss_ps(_mm_movehdup_ps(dd)), acc[i]);
    }
}

HL_INLINE void kg_chunk6(const int G, const uint8_t *ql, __m256i qh, const int t, const int8_t *const xq[4],
                         const int xoff, __m256i scv, __m256i isum[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256i l = ld256(ql + 32 * (t & 1));
    __m256i nib = (t >> 1) ? _mm256_and_si256(_mm256_srli_epi16(l, 4), m4) : _mm256_and_si256(l, m4);
    __m256i hb = t < 2 ? _mm256_slli_epi16(qh, 4 - 2 * t) : t == 2 ? qh : _mm256_srli_epi16(qh, 2);
    __m256i q = _mm256_or_si256(nib, _mm256_and_si256(hb, m30));
#pragma GCC unroll 4
    for (int i = 0; i < G; i++)
        isum[i] = _mm256_add_epi32(isum[i],
                                   _mm256_madd_epi16(_mm256_maddubs_epi16(q, ld256(xq[i] + xoff + 32 * t)), scv));
}

HL_INLINE void kg_q6(const int G, const uint8_t *blk, const hl_block_q8_K *const xb[4], __m256 acc[4]) {
    const hl_block_q6_K *b = (const hl_block_q6_K *)blk;
    __m128i sv = _mm_loadu_si128((const __m128i *)b->scales);
    __m256i sc16 = _mm256_cvtepi8_epi16(sv);
    __m256i eo = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sv, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)));
    __m256i sa = _mm256_unpacklo_epi16(eo, eo), sb = _mm256_unpackhi_epi16(eo, eo);
    __m256i qh0 = ld256(b->qh), qh1 = ld256(b->qh + 32);
    const int8_t *xq[4];
    __m256i isum[4];
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) {
        xq[i] = xb[i]->qs;
        isum[i] = _mm256_setzero_si256();
    }
    kg_chunk6(G, b->ql, qh0, 0, xq, 0, K1_PICK(sa, 0), isum);
    kg_chunk6(G, b->ql, qh0, 1, xq, 0, K1_PICK(sa, 1), isum);
    kg_chunk6(G, b->ql, qh0, 2, xq, 0, K1_PICK(sa, 2), isum);
    kg_chunk6(G, b->ql, qh0, 3, xq, 0, K1_PICK(sa, 3), isum);
    kg_chunk6(G, b->ql + 64, qh1, 0, xq, 128, K1_PICK(sb, 0), isum);
    kg_chunk6(G, b->ql + 64, qh1, 1, xq, 128, K1_PICK(sb, 1), isum);
    kg_chunk6(G, b->ql + 64, qh1, 2, xq, 128, K1_PICK(sb, 2), isum);
    kg_chunk6(G, b->ql + 64, qh1, 3, xq, 128, K1_PICK(sb, 3), isum);
    const float dw = hl_h2f(hl_ld16(&b->d));
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) {
        __m256i corr = _mm256_madd_epi16(ld256(xb[i]->bsums), sc16);
        __m256i is = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(corr, 5));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(dw * xb[i]->d), acc[i]);
    }
}

/* Prefetch distance: the same place in the next row when rows are short
 * (one steady stream), else this far ahead in the row. */
#define K1_PF_ROW 1536

/* One weight row times G (<= 4) activation rows. */
HL_INLINE void kg_row(const int kind, const int G, int64_t k, const uint8_t *w, const uint8_t *x, size_t xs,
                      float *out, int64_t ldo) {
    const size_t wbs = k1_block_size(kind);
    const int64_t nb = k / HL_QK_K;
    __m256 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) acc[i] = _mm256_setzero_ps();
    const size_t pf = K1_PF_ROW; /* batched decode streams the weights from memory too: ask for them early */
    for (int64_t b = 0; b < nb; b++) {
        const hl_block_q8_K *xb[4];
        const uint8_t *wb = w + b * wbs;
        _mm_prefetch((const char *)wb + pf, _MM_HINT_T0);
        _mm_prefetch((const char *)wb + pf + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)wb + pf + 128, _MM_HINT_T0);
        if (kind == K1_Q6) _mm_prefetch((const char *)wb + pf + 192, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int i = 0; i < G; i++) xb[i] = (const hl_block_q8_K *)(x + i * xs) + b;
        if (kind == K1_Q6) kg_q6(G, wb, xb, acc);
        else kg_q45(kind, G, wb, xb, acc);
    }
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) out[i * ldo] = hl_hsum8(acc[i]);
}

#define KG_ENTRY(name, kind)                                                                                   \
    void name(int64_t k, const void *w, size_t ws, int64_t nw, const void *x, size_t xs, int g, float *out,     \
              int64_t ldo) {                                                                                   \
        for (int64_t j = 0; j < nw; j++) {                                                                     \
            const uint8_t *wr = (const uint8_t *)w + j * ws;                                                   \
            switch (g) {                                                                                       \
            case 1: kg_row(kind, 1, k, wr, x, xs, out + j, ldo); break;                                        \
            case 2: kg_row(kind, 2, k, wr, x, xs, out + j, ldo); break;                                        \
            case 3: kg_row(kind, 3, k, wr, x, xs, out + j, ldo); break;                                        \
            default: kg_row(kind, 4, k, wr, x, xs, out + j, ldo); break;                                       \
            }                                                                                                  \
        }                                                                                                      \
    }
KG_ENTRY(hl_avx2_kg_q4_K, K1_Q4)
KG_ENTRY(hl_avx2_kg_q5_K, K1_Q5)
KG_ENTRY(hl_avx2_kg_q6_K, K1_Q6)


HL_INLINE void k1_row(const int kind, int64_t k, const uint8_t *w, size_t ws, const uint8_t *x, float *out) {
    const size_t wbs = k1_block_size(kind);
    const int64_t nb = k / HL_QK_K;
    const size_t pf = ws <= 4 * K1_PF_ROW ? ws : K1_PF_ROW;
    __m256 acc[4] = {_mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const hl_block_q8_K *xb = (const hl_block_q8_K *)x + b;
        const uint8_t *wb = w + b * wbs;
        _mm_prefetch((const char *)wb + pf, _MM_HINT_T0);
        _mm_prefetch((const char *)wb + pf + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)wb + pf + 128, _MM_HINT_T0);
        if (kind == K1_Q6) _mm_prefetch((const char *)wb + pf + 192, _MM_HINT_T0);
        const hl_block_q8_K *xbs[4] = {xb};
        if (kind == K1_Q6) kg_q6(1, wb, xbs, acc);
        else kg_q45(kind, 1, wb, xbs, acc);
    }
    *out = hl_hsum8(acc[0]);
}

#define K1_ENTRY(name, kind)                                                                                  \
    void name(int64_t k, const void *w, size_t ws, int nw, const void *x, float *out) {                      \
        for (int j = 0; j < nw; j++) k1_row(kind, k, (const uint8_t *)w + j * ws, ws, x, out + j);            \
    }
K1_ENTRY(hl_avx2_k1_q4_K, K1_Q4)
K1_ENTRY(hl_avx2_k1_q5_K, K1_Q5)
K1_ENTRY(hl_avx2_k1_q6_K, K1_Q6)
