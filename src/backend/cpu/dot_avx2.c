/* AVX2 tile kernels for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0) and the float types (F32, F16, BF16). A tile is up to 2 weight rows x
 * 4 activation rows: each weight block is unpacked to 32 bytes once and
 * multiplied with the 4 activation blocks, so prefill reads weights once per 4
 * rows. Integer products use maddubs (u8 x s8 -> i16 pairs), then madd with
 * ones (-> i32); Q8_0 weights use |w| * sign(x, w), Q4_0 / Q5_0 take their
 * unsigned values and subtract offset * sum(x). Every output element
 * is accumulated in its own 8-lane float vector with the same operations
 * whatever the tile shape, so results do not depend on batch size. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <math.h>

enum { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };

HL_INLINE __m256i nibbles32(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* byte i = 0x10 if bit i of the 32-bit qh is set, else 0 */
HL_INLINE __m256i bits32(uint32_t qh) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                          3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
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

/* Unpacks one weight block to unsigned values (Q4_0: q, Q5_0: q with its
 * 5th bit, both still offset by 8 / 16) or signed ones (Q8_0), plus scale
 * and min. */
HL_INLINE __m256i unpack_w(int kind, const uint8_t *blk, float *d, float *m) {
    *d = hl_h2f(hl_ld16(blk));
    switch (kind) {
    case K_Q4_0: return nibbles32(blk + 2);
    case K_Q4_1: *m = hl_h2f(hl_ld16(blk + 2)); return nibbles32(blk + 4);
    case K_Q5_0: return _mm256_or_si256(nibbles32(blk + 6), bits32(hl_ld32(blk + 2)));
    case K_Q5_1: *m = hl_h2f(hl_ld16(blk + 2)); return _mm256_or_si256(nibbles32(blk + 8), bits32(hl_ld32(blk + 4)));
    default: return _mm256_loadu_si256((const __m256i *)(blk + 2));
    }
}

/* The 8 i32 lane sums (4 products each) of one weight block with one
 * activation block; xoff = offset * (lane sums of x) for the offset formats. */
HL_INLINE __m256i block_isum(int kind, __m256i wq, __m256i wa, __m256i xv, __m256i xoff) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (kind == K_Q8_0) return _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(xv, wq)), ones);
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xv), ones);
    return (kind == K_Q4_0 || kind == K_Q5_0) ? _mm256_sub_epi32(s, xoff) : s;
}

/* lane sums of x times the format's offset (8 for Q4_0, 16 for Q5_0) */
HL_INLINE __m256i x_offset(int kind, __m256i xv) {
    if (kind != K_Q4_0 && kind != K_Q5_0) return _mm256_setzero_si256();
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), xv), _mm256_set1_epi16(1));
    return _mm256_slli_epi32(s, kind == K_Q4_0 ? 3 : 4);
}

/* G (1 or 2) blocks starting at block b, for every pair of the tile. For
 * the formats with a min, the two f16 header halves (d, m) of the weight
 * and (d, s) of the activation are converted together and multiplied in one
 * go: lane 0 = dw * dx scales the integer sum, lane 1 = m * s is the min
 * term, accumulated in lane 1 of ms. */
HL_INLINE void legacy_step(const int kind, const int NW, const int NX, const int G, int64_t b, const uint8_t *w,
                           size_t ws, const uint8_t *x, size_t xs, __m256 acc[2][4], __m128 ms[2][4]) {
    const int has_min = kind == K_Q4_1 || kind == K_Q5_1;
    const size_t wbs = wblock_size(kind), xbs = has_min ? sizeof(hl_block_q8_1) : sizeof(hl_block_q8_0);
    const size_t xq_off = has_min ? 4 : 2;
    __m256i wq[2][2], wa[2][2];
    float dw[2][2], mw[2][2];
    __m128 hw[2][2];
#pragma GCC unroll 2
    for (int j = 0; j < NW; j++)
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            const uint8_t *wb = w + j * ws + (b + g) * wbs;
            wq[j][g] = unpack_w(kind, wb, &dw[j][g], &mw[j][g]);
            if (has_min) hw[j][g] = _mm_cvtph_ps(_mm_cvtsi32_si128((int)hl_ld32(wb)));
            wa[j][g] = kind == K_Q8_0 ? _mm256_sign_epi8(wq[j][g], wq[j][g]) : wq[j][g];
        }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) {
        __m256i xv[2], xo[2];
        float dx[2];
        __m128 hx[2];
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            const uint8_t *xb = x + i * xs + (b + g) * xbs;
            xv[g] = _mm256_loadu_si256((const __m256i *)(xb + xq_off));
            xo[g] = x_offset(kind, xv[g]);
            if (has_min) hx[g] = _mm_cvtph_ps(_mm_cvtsi32_si128((int)hl_ld32(xb)));
            else dx[g] = hl_h2f(hl_ld16(xb));
        }
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) {
            __m256 t;
            if (has_min) {
                __m128 p0 = _mm_mul_ps(hw[j][0], hx[0]);
                t = _mm256_mul_ps(_mm256_cvtepi32_ps(block_isum(kind, wq[j][0], wa[j][0], xv[0], xo[0])),
                                  _mm256_broadcastss_ps(p0));
                ms[j][i] = _mm_add_ps(ms[j][i], p0);
                if (G == 2) {
                    __m128 p1 = _mm_mul_ps(hw[j][1], hx[1]);
                    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_isum(kind, wq[j][1], wa[j][1], xv[1], xo[1])),
                                        _mm256_broadcastss_ps(p1), t);
                    ms[j][i] = _mm_add_ps(ms[j][i], p1);
                }
            } else {
                t = _mm256_mul_ps(_mm256_cvtepi32_ps(block_isum(kind, wq[j][0], wa[j][0], xv[0], xo[0])),
                                  _mm256_set1_ps(dw[j][0] * dx[0]));
                if (G == 2)
                    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_isum(kind, wq[j][1], wa[j][1], xv[1], xo[1])),
                                        _mm256_set1_ps(dw[j][1] * dx[1]), t);
            }
            acc[j][i] = _mm256_add_ps(acc[j][i], t);
        }
    }
}

/* Blocks are taken two at a time: t = f(b) * s(b) + f(b+1) * s(b+1), then
 * acc += t, which halves the dependency chain on acc at batch 1. The min
 * terms (Q4_1, Q5_1) go to a separate accumulator. The same sequence runs for
 * every (nw, nx), so a row's result never depends on the tile shape. */
HL_INLINE void legacy_tile(const int kind, const int NW, const int NX, int64_t k, const uint8_t *w, size_t ws,
                           const uint8_t *x, size_t xs, float *out, int64_t ldo) {
    __m256 acc[2][4];
    __m128 ms[2][4];
#pragma GCC unroll 2
    for (int j = 0; j < NW; j++)
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            acc[j][i] = _mm256_setzero_ps();
            ms[j][i] = _mm_setzero_ps();
        }
    const int64_t nb = k / HL_QK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) legacy_step(kind, NW, NX, 2, b, w, ws, x, xs, acc, ms);
    if (b < nb) legacy_step(kind, NW, NX, 1, b, w, ws, x, xs, acc, ms);
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
        for (int j = 0; j < NW; j++) {
            float m = 0.0f;
            if (kind == K_Q4_1 || kind == K_Q5_1) m = _mm_cvtss_f32(_mm_movehdup_ps(ms[j][i])); /* lane 1 */
            out[i * ldo + j] = hl_hsum8(acc[j][i]) + m;
        }
}

#define LEGACY_ENTRY(name, kind)                                                                                  \
    static void name(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,       \
                     int64_t ldo) {                                                                               \
        const uint8_t *W = w, *X = x;                                                                             \
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
    static const struct { hl_type t; hl_tile_fn f; } tiles[] = {
        {HL_TYPE_Q4_0, tile_q4_0}, {HL_TYPE_Q4_1, tile_q4_1}, {HL_TYPE_Q5_0, tile_q5_0}, {HL_TYPE_Q5_1, tile_q5_1},
        {HL_TYPE_Q8_0, tile_q8_0}, {HL_TYPE_F32, tile_f32},   {HL_TYPE_F16, tile_f16},   {HL_TYPE_BF16, tile_bf16},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        kt->tile[tiles[i].t] = tiles[i].f;
        kt->tile_nw[tiles[i].t] = 2;
        kt->tile_nx[tiles[i].t] = 4;
    }
}
