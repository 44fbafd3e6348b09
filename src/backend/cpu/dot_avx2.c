/* AVX2 tile kernels for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0) and the float types (F32, F16, BF16). A tile is up to 2 weight rows x
 * 4 activation rows: each pair of weight blocks is unpacked once and
 * multiplied with the 4 activation rows, so prefill reads weights once per 4
 * rows. Integer products use maddubs (u8 x s8 -> i16 pairs), then madd with
 * ones (-> i32); Q8_0 weights use |w| * sign(x, w), Q4_0 / Q5_0 take their
 * unsigned values and subtract offset * sum(x). Batches (m > 1) take the
 * gemm path below, which expands the activations once and reuses each
 * decoded weight pair for up to 8 rows; the tile serves m = 1. Every output element is
 * accumulated in its own 8-lane float vector with the same operations
 * whatever the tile shape, so results do not depend on batch size. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <math.h>

enum { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };

/* batch-1 weight prefetch distance, bytes ahead in the row (measured best of
 * 512 / 1024 / 2048 on large matrices streamed from DRAM) */
#define LEGACY_PF 2048

/* Blocks are processed in pairs with the two blocks side by side: the low
 * 128-bit lane holds block b, the high lane block b + 1. One vector "lo"
 * carries elements 0-15 of both blocks, "hi" elements 16-31, so the i32
 * lane sums 0-3 belong to block b and 4-7 to block b + 1, and a single
 * convert + FMA with the scale vector [s_b x4 | s_b+1 x4] serves both. A
 * missing second block (odd block count) is all zeros. */
HL_INLINE __m256i ld2x16(const uint8_t *p0, const uint8_t *p1) {
    __m128i a = _mm_loadu_si128((const __m128i *)p0);
    if (!p1) return _mm256_zextsi128_si256(a);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), _mm_loadu_si128((const __m128i *)p1), 1);
}

/* the f16 header words of two blocks (d or d,m / d,s) as floats [h0.0, h0.1, h1.0, h1.1] */
HL_INLINE __m128 headers(const uint8_t *b0, const uint8_t *b1, int two_halves) {
    uint32_t h0 = two_halves ? hl_ld32(b0) : hl_ld16(b0);
    uint32_t h1 = b1 ? (two_halves ? hl_ld32(b1) : hl_ld16(b1)) : 0;
    return _mm_cvtph_ps(_mm_set_epi32(0, 0, (int)h1, (int)h0));
}

/* byte i of each lane = 0x10 if the matching bit of the two qh words is set */
HL_INLINE void qh_bits(uint32_t qh0, uint32_t qh1, __m256i *lo, __m256i *hi) {
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i ctl_lo = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5,
                                            5, 5, 5, 5, 5, 5);
    const __m256i ctl_hi = _mm256_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7,
                                            7, 7, 7, 7, 7, 7);
    __m256i v = _mm256_set1_epi64x((long long)(((uint64_t)qh1 << 32) | qh0));
    __m256i a = _mm256_shuffle_epi8(v, ctl_lo), b = _mm256_shuffle_epi8(v, ctl_hi);
    *lo = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(a, bit), bit), _mm256_set1_epi8(0x10));
    *hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit), _mm256_set1_epi8(0x10));
}

typedef struct {
    __m256i lo, hi; /* values: unsigned (Q4/Q5 kinds) or signed (Q8_0) */
    __m256i alo, ahi; /* Q8_0: |values| */
    __m128 h;       /* [d0, m0, d1, m1] (m = 0 without a min) */
} wpair;

HL_INLINE void unpack_pair(int kind, const uint8_t *b0, const uint8_t *b1, wpair *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const int has_min = kind == K_Q4_1 || kind == K_Q5_1;
    u->h = headers(b0, b1, has_min);
    if (kind == K_Q8_0) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(b0 + 2));
        __m256i v1 = b1 ? _mm256_loadu_si256((const __m256i *)(b1 + 2)) : _mm256_setzero_si256();
        u->lo = _mm256_permute2x128_si256(v0, v1, 0x20);
        u->hi = _mm256_permute2x128_si256(v0, v1, 0x31);
        u->alo = _mm256_sign_epi8(u->lo, u->lo);
        u->ahi = _mm256_sign_epi8(u->hi, u->hi);
        return;
    }
    const size_t qs_off = kind == K_Q4_0 ? 2 : kind == K_Q4_1 ? 4 : kind == K_Q5_0 ? 6 : 8;
    __m256i v = ld2x16(b0 + qs_off, b1 ? b1 + qs_off : NULL);
    u->lo = _mm256_and_si256(v, m4);
    u->hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (kind == K_Q5_0 || kind == K_Q5_1) {
        const size_t qh_off = kind == K_Q5_0 ? 2 : 4;
        __m256i bl, bh;
        qh_bits(hl_ld32(b0 + qh_off), b1 ? hl_ld32(b1 + qh_off) : 0, &bl, &bh);
        u->lo = _mm256_or_si256(u->lo, bl);
        u->hi = _mm256_or_si256(u->hi, bh);
    }
}

typedef struct {
    __m256i lo, hi, off; /* off: offset * lane sums of x (Q4_0: 8, Q5_0: 16) */
    __m128 h;            /* [dx0, sx0, dx1, sx1] (s = 0 for Q8_0 activations) */
} xpair;

HL_INLINE void load_xpair(int kind, const uint8_t *x0, const uint8_t *x1, xpair *v) {
    const int has_min = kind == K_Q4_1 || kind == K_Q5_1;
    const size_t q = has_min ? 4 : 2;
    v->h = headers(x0, x1, has_min);
    v->lo = ld2x16(x0 + q, x1 ? x1 + q : NULL);
    v->hi = ld2x16(x0 + q + 16, x1 ? x1 + q + 16 : NULL);
    v->off = _mm256_setzero_si256();
    if (kind == K_Q4_0 || kind == K_Q5_0) {
        const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
        __m256i s = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(one8, v->lo), one16),
                                     _mm256_madd_epi16(_mm256_maddubs_epi16(one8, v->hi), one16));
        v->off = _mm256_slli_epi32(s, kind == K_Q4_0 ? 3 : 4);
    }
}

/* acc += (integer sums of the block pair) * [s_b x4 | s_b+1 x4]; for the
 * formats with a min, the m * s products ride along in lanes 1 and 3. */
HL_INLINE __m256 pair_fma(int kind, const wpair *u, const xpair *v, __m256 acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i isum;
    if (kind == K_Q8_0) {
        isum = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u->alo, _mm256_sign_epi8(v->lo, u->lo)), ones),
                                _mm256_madd_epi16(_mm256_maddubs_epi16(u->ahi, _mm256_sign_epi8(v->hi, u->hi)), ones));
    } else {
        /* |pair sums| <= 2 * 31 * 127, so two of them still fit an i16 */
        isum = _mm256_madd_epi16(
            _mm256_add_epi16(_mm256_maddubs_epi16(u->lo, v->lo), _mm256_maddubs_epi16(u->hi, v->hi)), ones);
        if (kind == K_Q4_0 || kind == K_Q5_0) isum = _mm256_sub_epi32(isum, v->off);
    }
    __m128 p = _mm_mul_ps(u->h, v->h);
    __m256 scale = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(p), _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
    if (kind == K_Q4_1 || kind == K_Q5_1) /* one add on acc's dependency chain, not an FMA and an add */
        return _mm256_add_ps(acc, _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale,
                                                  _mm256_zextps128_ps256(_mm_blend_ps(_mm_setzero_ps(), p, 0xA))));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
}

HL_INLINE size_t wblock_size(int kind) {
    switch (kind) {
    case K_Q4_0: return sizeof(hl_block_q4_0);
    case K_Q4_1: return sizeof(hl_block_q4_1);
    case K_Q5_0: return sizeof(hl_block_q5_0);
    case K_Q5_1: return sizeof(hl_block_q5_1);
    default: return sizeof(hl_block_q8_0);
    }
}

/* G (1 or 2) blocks starting at block b, for every pair of the tile. */
HL_INLINE void legacy_step(const int kind, const int NW, const int NX, const int G, int64_t b, const uint8_t *w,
                           size_t ws, const uint8_t *x, size_t xs, __m256 acc[2][4]) {
    const int has_min = kind == K_Q4_1 || kind == K_Q5_1;
    const size_t wbs = wblock_size(kind), xbs = has_min ? sizeof(hl_block_q8_1) : sizeof(hl_block_q8_0);
    wpair u[2];
#pragma GCC unroll 2
    for (int j = 0; j < NW; j++) {
        const uint8_t *wb = w + j * ws + b * wbs;
        if (NX == 1) { /* decode streams the weights from memory: ask for them early */
            _mm_prefetch((const char *)wb + LEGACY_PF, _MM_HINT_T0);
            if (kind == K_Q8_0) _mm_prefetch((const char *)wb + LEGACY_PF + 64, _MM_HINT_T0);
        }
        unpack_pair(kind, wb, G == 2 ? wb + wbs : NULL, &u[j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) {
        const uint8_t *xb = x + i * xs + b * xbs;
        xpair v;
        load_xpair(kind, xb, G == 2 ? xb + xbs : NULL, &v);
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) acc[j][i] = pair_fma(kind, &u[j], &v, acc[j][i]);
    }
}

/* The same sequence of steps runs for every (nw, nx), so a row's result
 * never depends on the tile shape, the batch size or the thread split. */
HL_INLINE void legacy_tile(const int kind, const int NW, const int NX, int64_t k, const uint8_t *w, size_t ws,
                           const uint8_t *x, size_t xs, float *out, int64_t ldo) {
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int j = 0; j < NW; j++)
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) acc[j][i] = _mm256_setzero_ps();
    const int64_t nb = k / HL_QK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) legacy_step(kind, NW, NX, 2, b, w, ws, x, xs, acc);
    if (b < nb) legacy_step(kind, NW, NX, 1, b, w, ws, x, xs, acc);
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) out[i * ldo + j] = hl_hsum8(acc[j][i]);
}

#define LEGACY_ENTRY(name, kind)                                                                                  \
    static void name(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,       \
                     int64_t ldo) {                                                                               \
        const uint8_t *W = w, *X = x;                                                                             \
        if (nx == 1) { /* one row at a time: a single stream from memory was faster than two */               \
            for (int j = 0; j < nw; j++) legacy_tile(kind, 1, 1, k, W + j * ws, ws, X, xs, o + j, ldo);           \
            return;                                                                                               \
        }                                                                                                         \
        switch ((nw - 1) * 4 + nx - 1) {                                                                          \
        case 0: legacy_tile(kind, 1, 1, k, W, ws, X, xs, o, ldo); break;                                          \
        case 1: legacy_tile(kind, 1, 2, k, W, ws, X, xs, o, ldo); break;                                          \
        case 2: legacy_tile(kind, 1, 3, k, W, ws, X, xs, o, ldo); break;                                          \
        case 3: legacy_tile(kind, 1, 4, k, W, ws, X, xs, o, ldo); break;                                          \
        case 4: legacy_tile(kind, 2, 1, k, W, ws, X, xs, o, ldo); break;                                          \
        case 5: legacy_tile(kind, 2, 2, k, W, ws, X, xs, o, ldo); break;                                          \
        case 6: legacy_tile(kind, 2, 3, k, W, ws, X, xs, o, ldo); break;                                          \
        default: legacy_tile(kind, 2, 4, k, W, ws, X, xs, o, ldo); break;                                         \
        }                                                                                                         \
    }
LEGACY_ENTRY(tile_q4_0, K_Q4_0)
LEGACY_ENTRY(tile_q4_1, K_Q4_1)
LEGACY_ENTRY(tile_q5_0, K_Q5_0)
LEGACY_ENTRY(tile_q5_1, K_Q5_1)
LEGACY_ENTRY(tile_q8_0, K_Q8_0)

/* ---- batched path (m > 1): activations expanded once, weight rows swept ----
 * Each activation block pair is expanded once per call into the vectors
 * pair_fma would build for it (lo, hi, the offset term, and its scales
 * already spread over the lanes), then every weight row of the slice decodes
 * each block pair once and multiplies it with up to 8 expanded rows. Per
 * element the integer sums, the two products (d_w * d_x and m_w * s_x) and the
 * float sequence are those of pair_fma, so results match the tile bit for bit. */
typedef struct {
    __m256i lo, hi, off; /* off: as in xpair (zero unless Q4_0 / Q5_0) */
    __m256 s8;           /* [dx0 x4 | dx1 x4] */
    __m256 m8;           /* [0, sx0, 0, sx1, 0, 0, 0, 0] */
} xexp;

#define LEGACY_XBUF (96 * 1024) /* bytes of expanded activations per call, on the stack */

HL_INLINE void expand_x(const int kind, const uint8_t *x, int64_t nb, xexp *e) {
    const int has_min = kind == K_Q4_1 || kind == K_Q5_1;
    const size_t xbs = has_min ? sizeof(hl_block_q8_1) : sizeof(hl_block_q8_0);
    const __m256i idx = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    for (int64_t b = 0, p = 0; b < nb; b += 2, p++) {
        xpair v;
        load_xpair(kind, x + b * xbs, b + 1 < nb ? x + (b + 1) * xbs : NULL, &v);
        e[p].lo = v.lo;
        e[p].hi = v.hi;
        e[p].off = v.off;
        e[p].s8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v.h), idx);
        e[p].m8 = _mm256_zextps128_ps256(_mm_blend_ps(_mm_setzero_ps(), v.h, 0xA));
    }
}

HL_INLINE void legacy_row_x(const int kind, const int G, int64_t nb, const uint8_t *w, const xexp *e, int64_t np,
                            float *out, int64_t ldo) {
    const int has_min = kind == K_Q4_1 || kind == K_Q5_1;
    const size_t wbs = wblock_size(kind);
    const __m256i idx = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0, p = 0; b < nb; b += 2, p++) {
        wpair u;
        /* the weights of a small batch stream from memory: ask for them early */
        _mm_prefetch((const char *)w + b * wbs + LEGACY_PF, _MM_HINT_T0);
        if (kind == K_Q8_0) _mm_prefetch((const char *)w + b * wbs + LEGACY_PF + 64, _MM_HINT_T0);
        unpack_pair(kind, w + b * wbs, b + 1 < nb ? w + (b + 1) * wbs : NULL, &u);
        const __m256 ws8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(u.h), idx);
        const __m256 wm8 = _mm256_zextps128_ps256(_mm_blend_ps(_mm_setzero_ps(), u.h, 0xA));
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) {
            const xexp *v = &e[i * np + p];
            __m256i isum;
            if (kind == K_Q8_0) {
                isum = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(u.alo, _mm256_sign_epi8(v->lo, u.lo)), ones),
                    _mm256_madd_epi16(_mm256_maddubs_epi16(u.ahi, _mm256_sign_epi8(v->hi, u.hi)), ones));
            } else {
                isum = _mm256_madd_epi16(
                    _mm256_add_epi16(_mm256_maddubs_epi16(u.lo, v->lo), _mm256_maddubs_epi16(u.hi, v->hi)), ones);
                if (kind == K_Q4_0 || kind == K_Q5_0) isum = _mm256_sub_epi32(isum, v->off);
            }
            const __m256 scale = _mm256_mul_ps(ws8, v->s8);
            if (has_min)
                acc[i] = _mm256_add_ps(acc[i], _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, _mm256_mul_ps(wm8, v->m8)));
            else
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) out[i * ldo] = hl_hsum8(acc[i]);
}

HL_INLINE int legacy_gemm(const int kind, int64_t k, const uint8_t *w, size_t ws, int64_t n, const uint8_t *x,
                          size_t xs, int64_t m, float *out, int64_t ldo) {
    const int64_t nb = k / HL_QK, np = (nb + 1) / 2;
    const int64_t per_row = np * (int64_t)sizeof(xexp);
    int64_t gmax = LEGACY_XBUF / per_row;
    if (gmax < 1) return 0; /* rows too long for the buffer: the caller tiles */
    if (gmax > 8) gmax = 8;
    xexp e[LEGACY_XBUF / sizeof(xexp)];
    for (int64_t i0 = 0; i0 < m; i0 += gmax) {
        const int g = (int)(m - i0 < gmax ? m - i0 : gmax);
        for (int i = 0; i < g; i++) expand_x(kind, x + (i0 + i) * xs, nb, e + i * np);
        for (int64_t j = 0; j < n; j++) {
            const uint8_t *wr = w + j * ws;
            float *o = out + i0 * ldo + j;
            switch (g) {
            case 1: legacy_row_x(kind, 1, nb, wr, e, np, o, ldo); break;
            case 2: legacy_row_x(kind, 2, nb, wr, e, np, o, ldo); break;
            case 3: legacy_row_x(kind, 3, nb, wr, e, np, o, ldo); break;
            case 4: legacy_row_x(kind, 4, nb, wr, e, np, o, ldo); break;
            case 5: legacy_row_x(kind, 5, nb, wr, e, np, o, ldo); break;
            case 6: legacy_row_x(kind, 6, nb, wr, e, np, o, ldo); break;
            case 7: legacy_row_x(kind, 7, nb, wr, e, np, o, ldo); break;
            default: legacy_row_x(kind, 8, nb, wr, e, np, o, ldo); break;
            }
        }
    }
    return 1;
}

#define LEGACY_GEMM_ENTRY(name, kind)                                                                             \
    static int name(int64_t k, const void *w, size_t ws, int64_t n, const void *x, size_t xs, int64_t m, float *o,   \
                    int64_t ldo) {                                                                                \
        return legacy_gemm(kind, k, w, ws, n, x, xs, m, o, ldo);                                                  \
    }
LEGACY_GEMM_ENTRY(gemm_q4_0, K_Q4_0)
LEGACY_GEMM_ENTRY(gemm_q4_1, K_Q4_1)
LEGACY_GEMM_ENTRY(gemm_q5_0, K_Q5_0)
LEGACY_GEMM_ENTRY(gemm_q5_1, K_Q5_1)
LEGACY_GEMM_ENTRY(gemm_q8_0, K_Q8_0)

/* ---- float weights x f32 activations ---- */
enum { K_F32, K_F16, K_BF16 };

HL_INLINE __m256 load_w8(int kind, const uint8_t *row, int64_t l) {
    switch (kind) {
    case K_F32: return _mm256_loadu_ps((const float *)row + l);
    case K_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + l)));
    default:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + l))), 16));
    }
}

HL_INLINE float load_w1(int kind, const uint8_t *row, int64_t l) {
    switch (kind) {
    case K_F32: return ((const float *)row)[l];
    case K_F16: return hl_h2f(hl_ld16((const uint16_t *)row + l));
    default: return hl_bf16_to_f32(hl_ld16((const uint16_t *)row + l));
    }
}

HL_INLINE void float_tile(const int kind, const int NW, const int NX, int64_t k, const uint8_t *w, size_t ws,
                          const uint8_t *x, size_t xs, float *out, int64_t ldo) {
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int j = 0; j < NW; j++)
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) acc[j][i] = _mm256_setzero_ps();
    int64_t l = 0;
    for (; l + 8 <= k; l += 8) {
        __m256 wv[2];
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) wv[j] = load_w8(kind, w + j * ws, l);
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            __m256 xv = _mm256_loadu_ps((const float *)(x + i * xs) + l);
#pragma GCC unroll 2
            for (int j = 0; j < NW; j++) acc[j][i] = _mm256_fmadd_ps(wv[j], xv, acc[j][i]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) {
            float s = hl_hsum8(acc[j][i]);
            for (int64_t t = l; t < k; t++) s += load_w1(kind, w + j * ws, t) * ((const float *)(x + i * xs))[t];
            out[i * ldo + j] = s;
        }
}

#define FLOAT_ENTRY(name, kind)                                                                                   \
    static void name(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,       \
                     int64_t ldo) {                                                                               \
        const uint8_t *W = w, *X = x;                                                                             \
        switch ((nw - 1) * 4 + nx - 1) {                                                                          \
        case 0: float_tile(kind, 1, 1, k, W, ws, X, xs, o, ldo); break;                                           \
        case 1: float_tile(kind, 1, 2, k, W, ws, X, xs, o, ldo); break;                                           \
        case 2: float_tile(kind, 1, 3, k, W, ws, X, xs, o, ldo); break;                                           \
        case 3: float_tile(kind, 1, 4, k, W, ws, X, xs, o, ldo); break;                                           \
        case 4: float_tile(kind, 2, 1, k, W, ws, X, xs, o, ldo); break;                                           \
        case 5: float_tile(kind, 2, 2, k, W, ws, X, xs, o, ldo); break;                                           \
        case 6: float_tile(kind, 2, 3, k, W, ws, X, xs, o, ldo); break;                                           \
        default: float_tile(kind, 2, 4, k, W, ws, X, xs, o, ldo); break;                                          \
        }                                                                                                         \
    }
FLOAT_ENTRY(tile_f32, K_F32)
FLOAT_ENTRY(tile_f16, K_F16)
FLOAT_ENTRY(tile_bf16, K_BF16)

void hl_avx2_init_legacy(hl_cpu_kernels *kt) {
    static const struct { hl_type t; hl_tile_fn f; hl_gemm_fn g; } tiles[] = {
        {HL_TYPE_Q4_0, tile_q4_0, gemm_q4_0}, {HL_TYPE_Q4_1, tile_q4_1, gemm_q4_1}, {HL_TYPE_Q5_0, tile_q5_0, gemm_q5_0},
        {HL_TYPE_Q5_1, tile_q5_1, gemm_q5_1}, {HL_TYPE_Q8_0, tile_q8_0, gemm_q8_0}, {HL_TYPE_F32, tile_f32, NULL},
        {HL_TYPE_F16, tile_f16, NULL},        {HL_TYPE_BF16, tile_bf16, NULL},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        kt->tile[tiles[i].t] = tiles[i].f;
        kt->gemm[tiles[i].t] = tiles[i].g;
        kt->tile_nw[tiles[i].t] = 2;
        kt->tile_nx[tiles[i].t] = 4;
    }
}
