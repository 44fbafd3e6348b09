/* AVX-512 VNNI kernels for Q4_K and Q6_K weights with Q8_K activations, for
 * 1 to 8 activation rows at once (decode, batched decode, speculative
 * verification) and, in groups of 8, for prefill. Laid over the AVX2 table
 * in the HL_SIMD_AVX512 one.
 *
 * Why: the AVX2 kernels (dotk1_avx2.c) already decode each weight chunk once
 * for up to 4 rows, but every row still costs maddubs + madd + add per 32
 * bytes. Here one zmm holds a whole 64-byte activation piece: for Q4_K the
 * low and high nibbles of a 32-byte chunk side by side (they meet activation
 * bytes 64c..64c+63, contiguous), for Q6_K two neighbouring 32-element
 * chunks; the per-row work is one vpmaddubsw and one vpdpwssd (the i16 pair
 * sums times the i16 sub-block scales, added into i32) per 64 weights. On the
 * Sapphire-Rapids-class host, weights in cache, one thread: 4 rows 225 -> 160
 * us, 8 rows 450 -> 275 us on a 1536 x 1536 Q4_K matrix (1 row: the same 70
 * us; the gain is the uops around the multiplies). Up to 8 rows share one sweep; larger batches go in
 * groups of at most 8 over blocks of weight rows that stay in L2.
 *
 * The end of a superblock (fold the zmm sum to eight lanes, bsums
 * correction, i32 -> f32, the two fmas with the row's scales) is done for two
 * rows at once in one zmm (row 2p in the low half, 2p + 1 in the high), which
 * halves its uops per row: one thread, 1024 x 1536 weights in L2, 5 rows
 * 4.4 -> 3.75 ns and 8 rows 4.1 -> 3.3 ns per row and superblock. What is left
 * per row is the 8 multiplies per superblock (see docs/performance.md for why
 * vpdpbusd and AMX do not remove them under this lane contract).
 *
 * Bits: vpdpwssd adds p[2l] * s[2l] + p[2l+1] * s[2l+1] to lane l, which is
 * what madd(p, s) then add computed; the low and high 256-bit halves of the
 * zmm sums are added into the same eight i32 lanes the AVX2 kernels hold at
 * the end of a superblock, and integer sums are exact, so the per-superblock
 * i32 vector, the bsums corrections and the float sequence after them are
 * those of dotk1_avx2.c / dotk_avx2.c: every level with AVX gives the same
 * bits for every m, thread split and tile shape. Pairing two rows in a zmm
 * changes no lane's arithmetic: each half runs the one-row sequence (the
 * weight scale times the row's d rounded once, then fma, then fnmadd). */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <stddef.h>

enum { Z_Q4, Z_Q6 };

#define Z_GMAX 8 /* activation rows per weight pass */
#define Z_GPAIR (Z_GMAX / 2) /* their float accumulators, two rows per zmm */

HL_INLINE __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
HL_INLINE __m512i ld512(const void *p) { return _mm512_loadu_si512(p); }

/* dword lanes of d picked by a compile-time index: [a x4, b x4, c x4, e x4] */
HL_INLINE __m512i pick4(__m512i d, int a, int b, int c, int e) {
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(a, a, a, a, b, b, b, b, c, c, c, c, e, e, e, e), d);
}

/* eight i32 lanes: the two 256-bit halves of a zmm sum added */
HL_INLINE __m256i fold(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

/* the same for two rows at once: [fold(a) | fold(b)] */
HL_INLINE __m512i fold2(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44), _mm512_shuffle_i64x2(a, b, 0xEE));
}

/* [p x 32 bytes | q x 32 bytes] */
HL_INLINE __m512i pair256(const void *p, const void *q) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(ld256(p)), ld256(q), 1);
}

/* [a->d x 8 | b->d x 8]: the activation scales of two rows */
HL_INLINE __m512 pair_d(const hl_block_q8_K *a, const hl_block_q8_K *b) {
    /* (insertf64x4 rather than insertf32x8: AVX512F only, as the dispatch checks F/BW/VL/VNNI, not DQ) */
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_broadcast_ss(&a->d))),
                                               _mm256_castps_pd(_mm256_broadcast_ss(&b->d)), 1));
}

HL_INLINE void zq4(const int G, const uint8_t *blk, const hl_block_q8_K *const xb[Z_GMAX], __m512 acc[Z_GPAIR]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i sh = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    uint32_t a0 = hl_ld32(blk + 4), a1 = hl_ld32(blk + 8), a2 = hl_ld32(blk + 12);
    uint32_t sc_lo = a0 & 0x3f3f3f3fu, mn_lo = a1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (a2 & 0x0f0f0f0fu) | (((a0 >> 6) & 0x03030303u) << 4);
    uint32_t mn_hi = ((a2 >> 4) & 0x0f0f0f0fu) | (((a1 >> 6) & 0x03030303u) << 4);
    __m128i sm = _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
    __m128i s16 = _mm_cvtepu8_epi16(sm); /* the eight sub-block scales */
    /* dword e = scale e in both i16 halves */
    __m512i sd = _mm512_castsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(s16, s16), _mm_unpacklo_epi16(s16, s16)));
    __m128i mn8 = _mm_unpackhi_epi64(sm, sm);
    __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
    const uint8_t *qs = blk + 16;
    __m512i isum[Z_GMAX];
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) isum[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        /* low half: low nibbles (sub-block 2c), high half: high nibbles (2c + 1) */
        __m512i v = _mm512_broadcast_i64x4(ld256(qs + 32 * c));
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(v, sh), m4);
        __m512i s = pick4(sd, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1);
#pragma GCC unroll 8
        for (int i = 0; i < G; i++)
            isum[i] = _mm512_dpwssd_epi32(isum[i], _mm512_maddubs_epi16(q, ld512(xb[i]->qs + 64 * c)), s);
    }
    __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)hl_ld32(blk)));
    /* rows two at a time, one zmm for both: row 2p in the low half, 2p + 1 in the high */
    const __m512i mins2 = _mm512_broadcast_i64x4(mins16);
    const __m512 dw2 = _mm512_broadcastss_ps(dw), dm2 = _mm512_broadcastss_ps(_mm_movehdup_ps(dw));
#pragma GCC unroll 4
    for (int i = 0; i + 1 < G; i += 2) {
        __m512i corr = _mm512_madd_epi16(pair256(xb[i]->bsums, xb[i + 1]->bsums), mins2);
        __m512 dx = pair_d(xb[i], xb[i + 1]);
        __m512 a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(fold2(isum[i], isum[i + 1])), _mm512_mul_ps(dw2, dx), acc[i / 2]);
        acc[i / 2] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(corr), _mm512_mul_ps(dm2, dx), a);
    }
    if (G & 1) { /* the odd row alone, in the low half */
        const int i = G - 1;
        __m256i corr = _mm256_madd_epi16(ld256(xb[i]->bsums), mins16);
        __m128 dd = _mm_mul_ps(dw, _mm_set1_ps(xb[i]->d));
        __m256 a = _mm512_castps512_ps256(acc[i / 2]);
        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold(isum[i])), _mm256_broadcastss_ps(dd), a);
        a = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_broadcastss_ps(_mm_movehdup_ps(dd)), a);
        acc[i / 2] = _mm512_castps256_ps512(a);
    }
}

HL_INLINE void zq6(const int G, const uint8_t *blk, const hl_block_q8_K *const xb[Z_GMAX], __m512 acc[Z_GPAIR]) {
    const hl_block_q6_K *b = (const hl_block_q6_K *)blk;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* per-half shifts of the qh bits into bits 4-5: chunks t = 0, 1 take qh << 4, << 2; t = 2, 3 qh, qh >> 2 */
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m512i d = _mm512_cvtepu16_epi32(sc16);
    __m512i sd = _mm512_or_si512(d, _mm512_slli_epi32(d, 16)); /* dword g = scale g in both i16 halves */
    __m512i isum[Z_GMAX];
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) isum[i] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512i l = ld512(b->ql + 64 * h);
        __m512i qh = _mm512_broadcast_i64x4(ld256(b->qh + 32 * h));
        /* chunks 0, 1 of this half (elements 0-63), then 2, 3 (64-127) */
        __m512i qa = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m30));
        __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                     _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m30));
        const int g = 8 * h;
        __m512i sa = pick4(sd, g, g + 1, g + 2, g + 3), sb = pick4(sd, g + 4, g + 5, g + 6, g + 7);
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) {
            const int8_t *xq = xb[i]->qs + 128 * h;
            isum[i] = _mm512_dpwssd_epi32(isum[i], _mm512_maddubs_epi16(qa, ld512(xq)), sa);
            isum[i] = _mm512_dpwssd_epi32(isum[i], _mm512_maddubs_epi16(qb, ld512(xq + 64)), sb);
        }
    }
    const float dw = hl_h2f(hl_ld16(&b->d));
    /* rows two at a time, as in zq4 */
    const __m512i sc2 = _mm512_broadcast_i64x4(sc16);
    const __m512 dw2 = _mm512_set1_ps(dw);
#pragma GCC unroll 4
    for (int i = 0; i + 1 < G; i += 2) {
        __m512i corr = _mm512_madd_epi16(pair256(xb[i]->bsums, xb[i + 1]->bsums), sc2);
        __m512i is = _mm512_sub_epi32(fold2(isum[i], isum[i + 1]), _mm512_slli_epi32(corr, 5));
        acc[i / 2] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw2, pair_d(xb[i], xb[i + 1])), acc[i / 2]);
    }
    if (G & 1) {
        const int i = G - 1;
        __m256i corr = _mm256_madd_epi16(ld256(xb[i]->bsums), sc16);
        __m256i is = _mm256_sub_epi32(fold(isum[i]), _mm256_slli_epi32(corr, 5));
        __m256 a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(dw * xb[i]->d), _mm512_castps512_ps256(acc[i / 2]));
        acc[i / 2] = _mm512_castps256_ps512(a);
    }
}

/* Prefetch distance for one streamed row (decode), as in dotk1_avx2.c. */
#define Z_PF_ROW 1536
/* ... and for 2-8 rows: at least this far ahead. A row of k = 1536 is 864
 * (Q4_K) or 1260 (Q6_K) bytes, so "the next weight row" was only ~6
 * superblocks ahead, ~110 ns of 5-row work: too close for DRAM on a busy
 * host (bench_forward -t 1 -k 4: 167 -> 155 ms per step). The one-row path
 * keeps its distance (it is bound by bandwidth, and 4 KiB did not change it). */
#define Z_PF_MULTI 4096

/* One weight row times G activation rows xs bytes apart. */
HL_INLINE void zrow(const int kind, const int G, int64_t k, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                    float *out, int64_t ldo) {
    const size_t wbs = kind == Z_Q4 ? sizeof(hl_block_q4_K) : sizeof(hl_block_q6_K);
    const int64_t nb = k / HL_QK_K;
    size_t pf = ws <= 4 * Z_PF_ROW ? ws : Z_PF_ROW; /* the same place in a later row, or further in this one */
    if (G > 1) pf = ws <= 4 * Z_PF_ROW ? ws * ((Z_PF_MULTI + ws - 1) / ws) : Z_PF_MULTI;
    __m512 acc[Z_GPAIR];
#pragma GCC unroll 4
    for (int p = 0; p < (G + 1) / 2; p++) acc[p] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *wb = w + b * wbs;
        { /* the weights stream from memory (a single sweep for m <= 8 rows): ask for them early, or a
           * step of 4 rows waits on DRAM latency and costs 2x a step of 2 */
            _mm_prefetch((const char *)wb + pf, _MM_HINT_T0);
            _mm_prefetch((const char *)wb + pf + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)wb + pf + 128, _MM_HINT_T0);
            if (kind == Z_Q6) _mm_prefetch((const char *)wb + pf + 192, _MM_HINT_T0);
        }
        const hl_block_q8_K *xb[Z_GMAX];
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) xb[i] = (const hl_block_q8_K *)(x + i * xs) + b;
        if (kind == Z_Q6) zq6(G, wb, xb, acc);
        else zq4(G, wb, xb, acc);
    }
#pragma GCC unroll 8
    for (int i = 0; i < G; i++)
        out[i * ldo] = hl_hsum8(i & 1 ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i / 2]), 1))
                                      : _mm512_castps512_ps256(acc[i / 2]));
}

/* nw weight rows times g (1..8) activation rows */
HL_INLINE void zrows(const int kind, int64_t k, const uint8_t *w, size_t ws, int64_t nw, const uint8_t *x, size_t xs,
                     int g, float *out, int64_t ldo) {
    for (int64_t j = 0; j < nw; j++) {
        const uint8_t *wr = w + j * ws;
        switch (g) {
        case 1: zrow(kind, 1, k, wr, ws, x, xs, out + j, ldo); break;
        case 2: zrow(kind, 2, k, wr, ws, x, xs, out + j, ldo); break;
        case 3: zrow(kind, 3, k, wr, ws, x, xs, out + j, ldo); break;
        case 4: zrow(kind, 4, k, wr, ws, x, xs, out + j, ldo); break;
        case 5: zrow(kind, 5, k, wr, ws, x, xs, out + j, ldo); break;
        case 6: zrow(kind, 6, k, wr, ws, x, xs, out + j, ldo); break;
        case 7: zrow(kind, 7, k, wr, ws, x, xs, out + j, ldo); break;
        default: zrow(kind, 8, k, wr, ws, x, xs, out + j, ldo); break;
        }
    }
}

/* Row groups of m: as even as possible, at most Z_GMAX each (m = 9 is 5 + 4,
 * not 8 + 1, so no group pays a weight pass for one row). */
HL_INLINE int group_size(int64_t m) {
    int64_t ng = (m + Z_GMAX - 1) / Z_GMAX;
    return (int)((m + ng - 1) / ng);
}

HL_INLINE void zgemm(const int kind, int64_t k, const uint8_t *w, size_t ws, int64_t n, const uint8_t *x, size_t xs,
                     int64_t m, float *out, int64_t ldo) {
    const int gs = group_size(m);
    if (m <= gs) { /* one group: a single sweep over the weights */
        zrows(kind, k, w, ws, n, x, xs, (int)m, out, ldo);
        return;
    }
    /* weight rows in blocks of ~48 KiB, so groups after the first read them from L2 */
    const int64_t rb = ws < 49152 ? (int64_t)(49152 / ws) : 1;
    for (int64_t j = 0; j < n; j += rb)
        for (int64_t i = 0; i < m; i += gs)
            zrows(kind, k, w + j * ws, ws, n - j < rb ? n - j : rb, x + i * xs, xs, m - i < gs ? (int)(m - i) : gs,
                  out + i * ldo + j, ldo);
}

#define Z_ENTRIES(tile, gemm, kind)                                                                               \
    static void tile(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,       \
                     int64_t ldo) {                                                                               \
        zrows(kind, k, w, ws, nw, x, xs, nx, o, ldo);                                                             \
    }                                                                                                             \
    static int gemm(int64_t k, const void *w, size_t ws, int64_t n, const void *x, size_t xs, int64_t m, float *o,  \
                    int64_t ldo) {                                                                                \
        zgemm(kind, k, w, ws, n, x, xs, m, o, ldo);                                                               \
        return 1;                                                                                                 \
    }
Z_ENTRIES(tile_q4_K, gemm_q4_K, Z_Q4)
Z_ENTRIES(tile_q6_K, gemm_q6_K, Z_Q6)

void hl_avx512_init_kquants(hl_cpu_kernels *kt) {
    kt->tile[HL_TYPE_Q4_K] = tile_q4_K;
    kt->gemm[HL_TYPE_Q4_K] = gemm_q4_K;
    kt->tile[HL_TYPE_Q6_K] = tile_q6_K;
    kt->gemm[HL_TYPE_Q6_K] = gemm_q6_K;
    /* tile_nw / tile_nx stay the AVX2 ones (8 x 4); the tile takes any nw and nx <= 8 */
}
