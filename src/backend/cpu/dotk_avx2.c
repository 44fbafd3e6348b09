/* AVX2 tile kernels for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) with Q8_K
 * activations. A 256-element weight superblock is unpacked once into unsigned
 * bytes plus per-16-element scale vectors (i16), then multiplied with up to 4
 * activation rows: maddubs (u8 x s8 -> i16 pairs), madd with the scales (->
 * i32), summed over the superblock in exact integers; offsets (-32 for Q6_K,
 * -4 for Q3_K) come out of Q8_K's bsums, mins likewise. Each output element
 * keeps its own 8-lane float accumulator, updated with the same operations
 * whatever the tile shape (batch invariance). */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <stdalign.h>
#include <stddef.h>

enum { K_Q2, K_Q3, K_Q4, K_Q5, K_Q6 };

typedef struct {
    alignas(32) uint8_t q[256];      /* element values, unsigned */
    alignas(32) int16_t scv[8][16]; /* chunk c: lanes 0-7 scale of group 2c, 8-15 of group 2c+1 */
    alignas(32) int16_t s16[16];    /* per 16-group: the scale (Q3/Q6 offset term) or the min (Q2/Q4/Q5) */
    float d, dmin;
} kunp;

HL_INLINE size_t kblock_size(int kind) {
    switch (kind) {
    case K_Q2: return sizeof(hl_block_q2_K);
    case K_Q3: return sizeof(hl_block_q3_K);
    case K_Q4: return sizeof(hl_block_q4_K);
    case K_Q5: return sizeof(hl_block_q5_K);
    default: return sizeof(hl_block_q6_K);
    }
}

HL_INLINE __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
HL_INLINE void st256(void *p, __m256i v) { _mm256_store_si256((__m256i *)p, v); }
/* bits (v >> s) & mask in every byte, for s < 8 */
HL_INLINE __m256i bfield(__m256i v, int s, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8((char)mask));
}

HL_INLINE void set_group_scales(kunp *u, const int sc[16]) {
    for (int c = 0; c < 8; c++)
        st256(u->scv[c], _mm256_set_m128i(_mm_set1_epi16((short)sc[2 * c + 1]), _mm_set1_epi16((short)sc[2 * c])));
}

/* scv from 16 per-group i16 scales: chunk c gets group 2c in its low
 * 128-bit lane and group 2c + 1 in its high lane, each repeated 8 times. */
HL_INLINE void set_group_scales_v(kunp *u, __m256i g16) {
    const __m256i lo = _mm256_permute2x128_si256(g16, g16, 0x00), hi = _mm256_permute2x128_si256(g16, g16, 0x11);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        const char a = (char)(4 * (c & 3)), b = (char)(4 * (c & 3) + 2);
        const __m256i ctl = _mm256_setr_epi8(a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a,
                                             a + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b,
                                             b + 1, b, b + 1);
        st256(u->scv[c], _mm256_shuffle_epi8(c < 4 ? lo : hi, ctl));
    }
}

/* Q4_K / Q5_K: the 12 packed bytes hold eight 6-bit scales and eight 6-bit
 * mins (sub-blocks of 32); returned as 16 i16 values per 16-element group
 * (each sub-block's value twice). Word arithmetic instead of byte loops. */
HL_INLINE void k4_scales_v(const uint8_t *q, __m256i *sc16, __m256i *mn16) {
    const uint32_t a = hl_ld32(q), b = hl_ld32(q + 4), c = hl_ld32(q + 8);
    const uint64_t sc = (uint64_t)(a & 0x3f3f3f3fu) |
                        (uint64_t)((c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u)) << 32;
    const uint64_t mn = (uint64_t)(b & 0x3f3f3f3fu) |
                        (uint64_t)(((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)) << 32;
    __m128i s = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc));
    __m128i m = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
    *sc16 = _mm256_set_m128i(_mm_unpackhi_epi16(s, s), _mm_unpacklo_epi16(s, s));
    *mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

HL_INLINE void unpack_k(int kind, const uint8_t *blk, kunp *u) {
    int sc[16];
    switch (kind) {
    case K_Q4:
    case K_Q5: {
        const uint8_t *scales = blk + 4, *qs = blk + (kind == K_Q4 ? 16 : 48);
        u->d = hl_h2f(hl_ld16(blk));
        u->dmin = hl_h2f(hl_ld16(blk + 2));
        __m256i sc16, mn16;
        k4_scales_v(scales, &sc16, &mn16);
        set_group_scales_v(u, sc16);
        st256(u->s16, mn16);
        __m256i qh = kind == K_Q5 ? ld256(blk + 16) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i v = ld256(qs + 32 * c);
            __m256i lo = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
            __m256i hi = bfield(v, 4, 0x0F);
            if (kind == K_Q5) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(bfield(qh, 2 * c, 1), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(bfield(qh, 2 * c + 1, 1), 4));
            }
            st256(u->q + 64 * c, lo);
            st256(u->q + 64 * c + 32, hi);
        }
        return;
    }
    case K_Q6: {
        const hl_block_q6_K *b = (const hl_block_q6_K *)blk;
        u->d = hl_h2f(hl_ld16(&b->d));
        const __m256i g16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        st256(u->s16, g16);
        set_group_scales_v(u, g16);
        for (int h = 0; h < 2; h++) {
            __m256i qh = ld256(b->qh + 32 * h);
            for (int t = 0; t < 4; t++) {
                __m256i ql = ld256(b->ql + 64 * h + 32 * (t & 1));
                __m256i nib = (t >> 1) ? bfield(ql, 4, 0x0F) : _mm256_and_si256(ql, _mm256_set1_epi8(0x0F));
                __m256i hi = _mm256_slli_epi16(bfield(qh, 2 * t, 3), 4);
                st256(u->q + 128 * h + 32 * t, _mm256_or_si256(nib, hi));
            }
        }
        return;
    }
    case K_Q3: {
        const hl_block_q3_K *b = (const hl_block_q3_K *)blk;
        u->d = hl_h2f(hl_ld16(&b->d));
        for (int g = 0; g < 16; g++) {
            int lo = g < 8 ? b->scales[g] & 0xF : b->scales[g - 8] >> 4;
            int hi = (b->scales[8 + (g & 3)] >> (2 * (g / 4))) & 3;
            sc[g] = u->s16[g] = (int16_t)((lo | (hi << 4)) - 32);
        }
        __m256i hm = ld256(b->hmask);
        for (int h = 0; h < 2; h++) {
            __m256i qs = ld256(b->qs + 32 * h);
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_or_si256(bfield(qs, 2 * j, 3), _mm256_slli_epi16(bfield(hm, 4 * h + j, 1), 2));
                st256(u->q + 128 * h + 32 * j, q);
            }
        }
        break;
    }
    default: { /* K_Q2 */
        const hl_block_q2_K *b = (const hl_block_q2_K *)blk;
        u->d = hl_h2f(hl_ld16(&b->d));
        u->dmin = hl_h2f(hl_ld16(&b->dmin));
        for (int g = 0; g < 16; g++) {
            sc[g] = b->scales[g] & 0xF;
            u->s16[g] = (int16_t)(b->scales[g] >> 4);
        }
        for (int h = 0; h < 2; h++) {
            __m256i qs = ld256(b->qs + 32 * h);
            for (int j = 0; j < 4; j++) st256(u->q + 128 * h + 32 * j, bfield(qs, 2 * j, 3));
        }
        break;
    }
    }
    set_group_scales(u, sc); /* Q2_K, Q3_K */
}

/* One unpacked weight superblock times one activation superblock, folded
 * into acc: the arithmetic every path shares. */
HL_INLINE __m256 k_pair(const int kind, const kunp *u, const hl_block_q8_K *xb, __m256i bs, __m256 acc) {
    __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        __m256i p = _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(u->q + 32 * c)), ld256(xb->qs + 32 * c));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_load_si256((const __m256i *)u->scv[c])));
    }
    __m256i corr = _mm256_madd_epi16(bs, _mm256_load_si256((const __m256i *)u->s16));
    if (kind == K_Q6) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));
    if (kind == K_Q3) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 2));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(u->d * xb->d), acc);
    if (kind == K_Q2 || kind == K_Q4 || kind == K_Q5)
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_set1_ps(u->dmin * xb->d), acc);
    return acc;
}

/* One unpacked weight row times G activation rows (G <= 8), all
 * superblocks: per 32-byte chunk the weight and scale vectors are loaded
 * once and reused by every activation row, so the multiply ports, not the
 * loads, bound the loop. Each output keeps the accumulator k_pair would give
 * it: the integer sums are exact, and the per-superblock float updates run in
 * the same order. */
HL_INLINE void k_row_x(const int kind, const int G, int64_t nb, const kunp *u, const uint8_t *x, size_t xs,
                       float *out, int64_t ldo) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const kunp *ub = &u[b];
        __m256i isum[8];
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) isum[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m256i wv = _mm256_load_si256((const __m256i *)(ub->q + 32 * c));
            const __m256i sv = _mm256_load_si256((const __m256i *)ub->scv[c]);
#pragma GCC unroll 8
            for (int i = 0; i < G; i++) {
                const hl_block_q8_K *xb = (const hl_block_q8_K *)(x + i * xs) + b;
                __m256i p = _mm256_maddubs_epi16(wv, ld256(xb->qs + 32 * c));
                isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p, sv));
                /* keep one running sum per row in a register: left alone, the
                 * compiler turns the sums into trees whose partials spill */
                __asm__("" : "+x"(isum[i]));
            }
        }
        const __m256i s16 = _mm256_load_si256((const __m256i *)ub->s16);
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) {
            const hl_block_q8_K *xb = (const hl_block_q8_K *)(x + i * xs) + b;
            __m256i corr = _mm256_madd_epi16(ld256(xb->bsums), s16);
            __m256i is = isum[i];
            if (kind == K_Q6) is = _mm256_sub_epi32(is, _mm256_slli_epi32(corr, 5));
            if (kind == K_Q3) is = _mm256_sub_epi32(is, _mm256_slli_epi32(corr, 2));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(ub->d * xb->d), acc[i]);
            if (kind == K_Q2 || kind == K_Q4 || kind == K_Q5)
                acc[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_set1_ps(ub->dmin * xb->d), acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) out[i * ldo] = hl_hsum8(acc[i]);
}

/* Batched path (m > 1): unpack a group of weight rows once into a stack
 * buffer, then, for every group of up to 8 activation rows, run each
 * unpacked row over the group; the unpack cost is paid once per weight row
 * and the activation group stays in L1/L2 while the rows pass over it. */
#define K_GEMM_UNITS 160 /* 160 superblocks x 576 bytes = 90 KiB of stack */
HL_INLINE int k_gemm(const int kind, int64_t k, const uint8_t *w, size_t ws, int64_t n, const uint8_t *x, size_t xs,
                     int64_t m, float *out, int64_t ldo) {
    const int64_t nb = k / HL_QK_K;
    if (nb > K_GEMM_UNITS) return 0; /* rows too long for the buffer: the caller tiles */
    kunp buf[K_GEMM_UNITS];
    const int64_t rows = K_GEMM_UNITS / nb;
    const size_t wbs = kblock_size(kind);
    for (int64_t j0 = 0; j0 < n; j0 += rows) {
        int64_t jn = n - j0 < rows ? n - j0 : rows;
        for (int64_t j = 0; j < jn; j++)
            for (int64_t b = 0; b < nb; b++) unpack_k(kind, w + (j0 + j) * ws + b * wbs, &buf[j * nb + b]);
        for (int64_t i = 0; i < m; i += 8) {
            const int g = m - i < 8 ? (int)(m - i) : 8;
            const uint8_t *xi = x + i * xs;
            for (int64_t j = 0; j < jn; j++) {
                const kunp *u = &buf[j * nb];
                float *o = out + i * ldo + j0 + j;
                switch (g) {
                case 1: k_row_x(kind, 1, nb, u, xi, xs, o, ldo); break;
                case 2: k_row_x(kind, 2, nb, u, xi, xs, o, ldo); break;
                case 3: k_row_x(kind, 3, nb, u, xi, xs, o, ldo); break;
                case 4: k_row_x(kind, 4, nb, u, xi, xs, o, ldo); break;
                case 5: k_row_x(kind, 5, nb, u, xi, xs, o, ldo); break;
                case 6: k_row_x(kind, 6, nb, u, xi, xs, o, ldo); break;
                case 7: k_row_x(kind, 7, nb, u, xi, xs, o, ldo); break;
                default: k_row_x(kind, 8, nb, u, xi, xs, o, ldo); break;
                }
            }
        }
    }
    return 1;
}

HL_INLINE void k_tile(const int kind, const int NW, const int NX, int64_t k, const uint8_t *w, size_t ws,
                      const uint8_t *x, size_t xs, float *out, int64_t ldo) {
    const size_t wbs = kblock_size(kind);
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int j = 0; j < NW; j++)
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) acc[j][i] = _mm256_setzero_ps();
    kunp u[2];
    const int64_t nb = k / HL_QK_K;
    for (int64_t b = 0; b < nb; b++) {
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) unpack_k(kind, w + j * ws + b * wbs, &u[j]);
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            const hl_block_q8_K *xb = (const hl_block_q8_K *)(x + i * xs) + b;
            __m256i bs = ld256(xb->bsums);
#pragma GCC unroll 2
            for (int j = 0; j < NW; j++) acc[j][i] = k_pair(kind, &u[j], xb, bs, acc[j][i]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) out[i * ldo + j] = hl_hsum8(acc[j][i]);
}

/* nx == 1 (decode) goes to the batch-1 kernels of dotk1_avx2.c where there is
 * one (same bits); otherwise the tile is cut into pairs of weight rows. */
#define K_ENTRY(name, kind, k1)                                                                                   \
    static void name(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,       \
                     int64_t ldo) {                                                                               \
        const uint8_t *W = w, *X = x;                                                                             \
        hl_k1_fn f1 = k1;                                                                                         \
        if (nx == 1 && f1) {                                                                                      \
            f1(k, W, ws, nw, X, o);                                                                               \
            return;                                                                                               \
        }                                                                                                         \
        for (int j = 0; j < nw; j += 2, W += 2 * ws, o += 2) {                                                    \
            switch ((nw - j >= 2) * 4 + nx - 1) {                                                                 \
            case 0: k_tile(kind, 1, 1, k, W, ws, X, xs, o, ldo); break;                                           \
            case 1: k_tile(kind, 1, 2, k, W, ws, X, xs, o, ldo); break;                                           \
            case 2: k_tile(kind, 1, 3, k, W, ws, X, xs, o, ldo); break;                                           \
            case 3: k_tile(kind, 1, 4, k, W, ws, X, xs, o, ldo); break;                                           \
            case 4: k_tile(kind, 2, 1, k, W, ws, X, xs, o, ldo); break;                                           \
            case 5: k_tile(kind, 2, 2, k, W, ws, X, xs, o, ldo); break;                                           \
            case 6: k_tile(kind, 2, 3, k, W, ws, X, xs, o, ldo); break;                                           \
            default: k_tile(kind, 2, 4, k, W, ws, X, xs, o, ldo); break;                                          \
            }                                                                                                     \
        }                                                                                                         \
    }
/* Small batches (m <= K_KG_MAX) decode each weight chunk in registers for
 * all rows (dotk1_avx2.c): no unpack buffer to write and read back. */
#ifndef K_KG_MAX
#define K_KG_MAX 8
#endif
#define K_GEMM_ENTRY(name, kind, kg)                                                                               \
    static int name(int64_t k, const void *w, size_t ws, int64_t n, const void *x, size_t xs, int64_t m, float *o,    \
                    int64_t ldo) {                                                                                 \
        hl_kg_fn fg = kg;                                                                                          \
        if (fg && m <= K_KG_MAX) {                                                                                 \
            /* weight rows in blocks of ~48 KiB, so groups after the first read them from L2 */                   \
            const int64_t rb = ws < 49152 ? (int64_t)(49152 / ws) : 1;                                             \
            for (int64_t j = 0; j < n; j += rb)                                                                    \
                for (int64_t i = 0; i < m; i += 4)                                                                 \
                    fg(k, (const uint8_t *)w + j * ws, ws, n - j < rb ? n - j : rb, (const uint8_t *)x + i * xs,   \
                       xs, m - i < 4 ? (int)(m - i) : 4, o + i * ldo + j, ldo);                                    \
            return 1;                                                                                              \
        }                                                                                                          \
        return k_gemm(kind, k, w, ws, n, x, xs, m, o, ldo);                                                        \
    }
K_GEMM_ENTRY(gemm_q2_K, K_Q2, NULL)
K_GEMM_ENTRY(gemm_q3_K, K_Q3, NULL)
K_GEMM_ENTRY(gemm_q4_K, K_Q4, hl_avx2_kg_q4_K)
K_GEMM_ENTRY(gemm_q5_K, K_Q5, hl_avx2_kg_q5_K)
K_GEMM_ENTRY(gemm_q6_K, K_Q6, hl_avx2_kg_q6_K)

K_ENTRY(tile_q2_K, K_Q2, NULL)
K_ENTRY(tile_q3_K, K_Q3, NULL)
K_ENTRY(tile_q4_K, K_Q4, hl_avx2_k1_q4_K)
K_ENTRY(tile_q5_K, K_Q5, hl_avx2_k1_q5_K)
K_ENTRY(tile_q6_K, K_Q6, hl_avx2_k1_q6_K)

void hl_avx2_init_kquants(hl_cpu_kernels *kt) {
    static const struct { hl_type t; hl_tile_fn f; hl_gemm_fn g; } tiles[] = {
        {HL_TYPE_Q2_K, tile_q2_K, gemm_q2_K}, {HL_TYPE_Q3_K, tile_q3_K, gemm_q3_K}, {HL_TYPE_Q4_K, tile_q4_K, gemm_q4_K},
        {HL_TYPE_Q5_K, tile_q5_K, gemm_q5_K}, {HL_TYPE_Q6_K, tile_q6_K, gemm_q6_K},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        kt->tile[tiles[i].t] = tiles[i].f;
        kt->gemm[tiles[i].t] = tiles[i].g;
        kt->tile_nw[tiles[i].t] = 8; /* pairs for k_tile, single rows for the batch-1 kernels */
        kt->tile_nx[tiles[i].t] = 4;
    }
}
