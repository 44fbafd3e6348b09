/* AVX2 tile kernels for the table formats: IQ4_NL and MXFP4 (32-element
 * blocks, Q8_0 activations) and IQ4_XS (256-element super-blocks of eight
 * 32-element sub-blocks with 6-bit scales, Q8_K activations). A weight
 * nibble is turned into its signed value by one byte shuffle through the
 * format's 16-entry table (hl_iq4nl_values / hl_mxfp4_values), then the
 * products are integer: maddubs(|w|, sign(x, w)) (u8 x s8 -> i16 pairs; a pair
 * is at most 2 * 127 * 127, which fits) and madd (-> i32). A tile is one
 * weight row x up to 4 activation rows, the weight blocks decoded once for
 * the rows; each output element has its own 8-lane float accumulator, updated
 * with the same operations whatever the tile shape, so results do not depend
 * on the batch size or the thread split. The scalar oracle (dot_scalar.c)
 * forms the same integer sums per block; only the float accumulation order
 * differs. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include "quant/quant_impl.h"

enum { K_IQ4_NL, K_MXFP4 };

HL_INLINE __m256i ld2x16(const uint8_t *p0, const uint8_t *p1) {
    __m128i a = _mm_loadu_si128((const __m128i *)p0);
    if (!p1) return _mm256_zextsi128_si256(a);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), _mm_loadu_si128((const __m128i *)p1), 1);
}

HL_INLINE __m256i table_of(const int8_t *tab) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)tab));
}

/* sum of w * x over i8 vectors, as 8 i32 lanes (lane pairs: adjacent products) */
HL_INLINE __m256i dot_i8(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)),
                             _mm256_set1_epi16(1));
}

/* ---- IQ4_NL / MXFP4: block pairs side by side, as dot_avx2.c's legacy path ----
 * The low 128-bit lane holds block b, the high lane block b + 1: "lo" has
 * elements 0-15 of both, "hi" elements 16-31, so i32 lanes 0-3 sum block b
 * and 4-7 block b + 1, and one FMA with [s_b x4 | s_b+1 x4] serves both. A
 * missing second block (odd count) has zero activations and scale, so its
 * lanes add nothing (its weight lanes hold tab[0], multiplied by 0). */
/* batch-1 weight prefetch distance, bytes ahead in the row (as dot_avx2.c) */
#define IQ_PF 2048

typedef struct {
    __m256i lo, hi;
    __m128 d; /* [d_b, d_b+1, 0, 0] */
} nlpair;

/* the two weight scales as floats: f16 (IQ4_NL) or e8m0 halved (MXFP4, 2^(e - 128)) */
HL_INLINE __m128 nl_scales(const int kind, const uint8_t *b0, const uint8_t *b1) {
    if (kind == K_MXFP4) return _mm_setr_ps(hl_e8m0_half(b0[0]), b1 ? hl_e8m0_half(b1[0]) : 0.0f, 0.0f, 0.0f);
    return _mm_cvtph_ps(_mm_setr_epi32((int)(hl_ld16(b0) | (uint32_t)(b1 ? hl_ld16(b1) : 0) << 16), 0, 0, 0));
}

HL_INLINE void nl_unpack(const int kind, const uint8_t *b0, const uint8_t *b1, __m256i tab, nlpair *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const size_t off = kind == K_MXFP4 ? 1 : 2; /* qs after the e8m0 byte / the f16 d */
    __m256i v = ld2x16(b0 + off, b1 ? b1 + off : NULL);
    u->lo = _mm256_shuffle_epi8(tab, _mm256_and_si256(v, m4));
    u->hi = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
    u->d = nl_scales(kind, b0, b1);
}

HL_INLINE __m256 nl_step(const nlpair *u, const uint8_t *x0, const uint8_t *x1, __m256 acc) {
    const __m256i xlo = ld2x16(x0 + 2, x1 ? x1 + 2 : NULL), xhi = ld2x16(x0 + 18, x1 ? x1 + 18 : NULL);
    const __m256i isum = _mm256_add_epi32(dot_i8(u->lo, xlo), dot_i8(u->hi, xhi));
    const __m128 dx = _mm_cvtph_ps(_mm_setr_epi32((int)(hl_ld16(x0) | (uint32_t)(x1 ? hl_ld16(x1) : 0) << 16), 0, 0, 0));
    const __m256 scale = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(u->d, dx)),
                                                  _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
}

HL_INLINE void nl_tile(const int kind, const int NX, int64_t k, const uint8_t *w, const uint8_t *x, size_t xs,
                       float *out, int64_t ldo) {
    const size_t wbs = kind == K_MXFP4 ? sizeof(hl_block_mxfp4) : sizeof(hl_block_iq4_nl);
    const size_t xbs = sizeof(hl_block_q8_0);
    const __m256i tab = table_of(kind == K_MXFP4 ? hl_mxfp4_values : hl_iq4nl_values);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) acc[i] = _mm256_setzero_ps();
    const int64_t nb = k / HL_QK;
    for (int64_t b = 0; b < nb; b += 2) {
        const int two = b + 1 < nb;
        const uint8_t *wb = w + b * wbs;
        if (NX == 1) _mm_prefetch((const char *)wb + IQ_PF, _MM_HINT_T0); /* decode streams weights */
        nlpair u;
        nl_unpack(kind, wb, two ? wb + wbs : NULL, tab, &u);
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            const uint8_t *xb = x + i * xs + b * xbs;
            acc[i] = nl_step(&u, xb, two ? xb + xbs : NULL, acc[i]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) out[i * ldo] = hl_hsum8(acc[i]);
}

/* Batches (m > 1): each activation block pair is expanded once per call
 * (both 16-byte halves of both blocks and their f16 scales as floats), then
 * every weight row decodes each block pair once and multiplies it with up to
 * 8 expanded rows. The per-element operations are nl_step's, so the bits are
 * the tile's (and batch 1's). */
typedef struct {
    __m256i lo, hi;
    __m128 dx; /* [dx_b, dx_b+1, 0, 0] */
} nlxexp;

#define NL_XBUF (96 * 1024) /* bytes of expanded activations per call, on the stack */

HL_INLINE void nl_row_x(const int kind, const int G, int64_t nb, const uint8_t *w, __m256i tab, const nlxexp *e,
                        int64_t np, float *out, int64_t ldo) {
    const size_t wbs = kind == K_MXFP4 ? sizeof(hl_block_mxfp4) : sizeof(hl_block_iq4_nl);
    const __m256i idx = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0, p = 0; b < nb; b += 2, p++) {
        nlpair u;
        nl_unpack(kind, w + b * wbs, b + 1 < nb ? w + (b + 1) * wbs : NULL, tab, &u);
#pragma GCC unroll 8
        for (int i = 0; i < G; i++) {
            const nlxexp *v = &e[i * np + p];
            const __m256i isum = _mm256_add_epi32(dot_i8(u.lo, v->lo), dot_i8(u.hi, v->hi));
            const __m256 scale = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(u.d, v->dx)), idx);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < G; i++) out[i * ldo] = hl_hsum8(acc[i]);
}

HL_INLINE int nl_gemm(const int kind, int64_t k, const uint8_t *w, size_t ws, int64_t n, const uint8_t *x, size_t xs,
                      int64_t m, float *out, int64_t ldo) {
    const int64_t nb = k / HL_QK, np = (nb + 1) / 2;
    int64_t gmax = NL_XBUF / (np * (int64_t)sizeof(nlxexp));
    if (gmax < 1) return 0; /* rows too long for the buffer: the caller tiles */
    if (gmax > 8) gmax = 8;
    const __m256i tab = table_of(kind == K_MXFP4 ? hl_mxfp4_values : hl_iq4nl_values);
    nlxexp e[NL_XBUF / sizeof(nlxexp)];
    const size_t xbs = sizeof(hl_block_q8_0);
    for (int64_t i0 = 0; i0 < m; i0 += gmax) {
        const int g = (int)(m - i0 < gmax ? m - i0 : gmax);
        for (int i = 0; i < g; i++) {
            const uint8_t *xr = x + (i0 + i) * xs;
            for (int64_t b = 0, p = 0; b < nb; b += 2, p++) {
                const uint8_t *x0 = xr + b * xbs, *x1 = b + 1 < nb ? x0 + xbs : NULL;
                nlxexp *v = &e[i * np + p];
                v->lo = ld2x16(x0 + 2, x1 ? x1 + 2 : NULL);
                v->hi = ld2x16(x0 + 18, x1 ? x1 + 18 : NULL);
                v->dx = _mm_cvtph_ps(_mm_setr_epi32((int)(hl_ld16(x0) | (uint32_t)(x1 ? hl_ld16(x1) : 0) << 16), 0, 0, 0));
            }
        }
        for (int64_t j = 0; j < n; j++) {
            const uint8_t *wr = w + j * ws;
            float *o = out + i0 * ldo + j;
            switch (g) {
            case 1: nl_row_x(kind, 1, nb, wr, tab, e, np, o, ldo); break;
            case 2: nl_row_x(kind, 2, nb, wr, tab, e, np, o, ldo); break;
            case 3: nl_row_x(kind, 3, nb, wr, tab, e, np, o, ldo); break;
            case 4: nl_row_x(kind, 4, nb, wr, tab, e, np, o, ldo); break;
            case 5: nl_row_x(kind, 5, nb, wr, tab, e, np, o, ldo); break;
            case 6: nl_row_x(kind, 6, nb, wr, tab, e, np, o, ldo); break;
            case 7: nl_row_x(kind, 7, nb, wr, tab, e, np, o, ldo); break;
            default: nl_row_x(kind, 8, nb, wr, tab, e, np, o, ldo); break;
            }
        }
    }
    return 1;
}

static int gemm_iq4_nl(int64_t k, const void *w, size_t ws, int64_t n, const void *x, size_t xs, int64_t m,
                       float *o, int64_t ldo) {
    return nl_gemm(K_IQ4_NL, k, w, ws, n, x, xs, m, o, ldo);
}

static int gemm_mxfp4(int64_t k, const void *w, size_t ws, int64_t n, const void *x, size_t xs, int64_t m, float *o,
                      int64_t ldo) {
    return nl_gemm(K_MXFP4, k, w, ws, n, x, xs, m, o, ldo);
}

/* ---- IQ4_XS ----
 * A super-block's sub-blocks 2p and 2p + 1 come from one 32-byte load of
 * qs: after the table shuffle, lane 0 of "lo" / "hi" holds sub-block 2p's
 * elements 0-15 / 16-31 and lane 1 sub-block 2p + 1's, so a lane permute
 * gives each sub-block's 32 values in element order, matching 32 contiguous
 * Q8_K activations. Sub-block sums times their scales (madd with the scale
 * in i16) add up in i32 over the super-block (|sum| < 2^24: exact), then one
 * FMA per super-block with d_w * d_x, the oracle's grouping. */
typedef struct {
    __m256i v[8];  /* sub-block values in element order */
    __m256i sc[8]; /* its scale - 32, in every i16 */
    float d;
} xsunp;

HL_INLINE void xs_unpack(const hl_block_iq4_xs *b, __m256i tab, xsunp *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const unsigned sh = hl_ld16(&b->scales_h);
    const uint32_t sl = hl_ld32(b->scales_l);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * p));
        const __m256i lo = _mm256_shuffle_epi8(tab, _mm256_and_si256(q, m4));
        const __m256i hi = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
        u->v[2 * p] = _mm256_permute2x128_si256(lo, hi, 0x20);
        u->v[2 * p + 1] = _mm256_permute2x128_si256(lo, hi, 0x31);
    }
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ib++) {
        const int ls = (int)((sl >> (4 * ib)) & 0xF) | (int)(((sh >> (2 * ib)) & 3) << 4);
        u->sc[ib] = _mm256_set1_epi16((short)(ls - 32));
    }
    u->d = hl_h2f(hl_ld16(&b->d));
}

HL_INLINE __m256 xs_step(const xsunp *u, const hl_block_q8_K *x, __m256 acc) {
    __m256i sum = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ib++) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * ib));
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(u->v[ib], u->v[ib]), _mm256_sign_epi8(a, u->v[ib]));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p16, u->sc[ib]));
    }
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(x->d * u->d), acc);
}

/* Batch 1 (decode): the same sums, decoded and multiplied in one pass with no
 * unpacked copy, the weights prefetched ahead. Per super-block the i32 lane
 * sums and the FMA are those of xs_step, so the bits are the tile's. */
HL_INLINE float xs_row1(int64_t k, const hl_block_iq4_xs *wb, const hl_block_q8_K *xb) {
    const __m256i tab = table_of(hl_iq4nl_values), m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / HL_QK_K; b++, wb++, xb++) {
        _mm_prefetch((const char *)wb + IQ_PF, _MM_HINT_T0);
        _mm_prefetch((const char *)wb + IQ_PF + 64, _MM_HINT_T0);
        const unsigned sh = hl_ld16(&wb->scales_h);
        const uint32_t sl = hl_ld32(wb->scales_l);
        __m256i sum = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * p));
            const __m256i lo = _mm256_shuffle_epi8(tab, _mm256_and_si256(q, m4));
            const __m256i hi = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
            const __m256i w0 = _mm256_permute2x128_si256(lo, hi, 0x20), w1 = _mm256_permute2x128_si256(lo, hi, 0x31);
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * p));
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * p + 32));
            const int ib = 2 * p;
            const int ls0 = (int)((sl >> (4 * ib)) & 0xF) | (int)(((sh >> (2 * ib)) & 3) << 4);
            const int ls1 = (int)((sl >> (4 * ib + 4)) & 0xF) | (int)(((sh >> (2 * ib + 2)) & 3) << 4);
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(a0, w0));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(w1, w1), _mm256_sign_epi8(a1, w1));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p0, _mm256_set1_epi16((short)(ls0 - 32))));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)(ls1 - 32))));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(xb->d * hl_h2f(hl_ld16(&wb->d))), acc);
    }
    return hl_hsum8(acc);
}

HL_INLINE void xs_tile(const int NX, int64_t k, const uint8_t *w, const uint8_t *x, size_t xs, float *out,
                       int64_t ldo) {
    const __m256i tab = table_of(hl_iq4nl_values);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) acc[i] = _mm256_setzero_ps();
    const hl_block_iq4_xs *wb = (const hl_block_iq4_xs *)(const void *)w;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        xsunp u;
        xs_unpack(wb + b, tab, &u);
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++)
            acc[i] = xs_step(&u, (const hl_block_q8_K *)(const void *)(x + i * xs) + b, acc[i]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) out[i * ldo] = hl_hsum8(acc[i]);
}

/* ---- entries: nw == 1 (one weight row per tile), nx 1..4 ---- */

static void tile_iq4_nl(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,
                        int64_t ldo) {
    (void)ws, (void)nw;
    switch (nx) {
    case 1: nl_tile(K_IQ4_NL, 1, k, w, x, xs, o, ldo); break;
    case 2: nl_tile(K_IQ4_NL, 2, k, w, x, xs, o, ldo); break;
    case 3: nl_tile(K_IQ4_NL, 3, k, w, x, xs, o, ldo); break;
    default: nl_tile(K_IQ4_NL, 4, k, w, x, xs, o, ldo); break;
    }
}

static void tile_mxfp4(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,
                       int64_t ldo) {
    (void)ws, (void)nw;
    switch (nx) {
    case 1: nl_tile(K_MXFP4, 1, k, w, x, xs, o, ldo); break;
    case 2: nl_tile(K_MXFP4, 2, k, w, x, xs, o, ldo); break;
    case 3: nl_tile(K_MXFP4, 3, k, w, x, xs, o, ldo); break;
    default: nl_tile(K_MXFP4, 4, k, w, x, xs, o, ldo); break;
    }
}

static void tile_iq4_xs(int64_t k, const void *w, size_t ws, int nw, const void *x, size_t xs, int nx, float *o,
                        int64_t ldo) {
    (void)ws, (void)nw;
    switch (nx) {
    case 1: o[0] = xs_row1(k, w, x); break;
    case 2: xs_tile(2, k, w, x, xs, o, ldo); break;
    case 3: xs_tile(3, k, w, x, xs, o, ldo); break;
    default: xs_tile(4, k, w, x, xs, o, ldo); break;
    }
}

void hl_avx2_init_iquants(hl_cpu_kernels *kt) {
    static const struct { hl_type t; hl_tile_fn f; hl_gemm_fn g; } tiles[] = {
        {HL_TYPE_IQ4_NL, tile_iq4_nl, gemm_iq4_nl},
        {HL_TYPE_MXFP4, tile_mxfp4, gemm_mxfp4},
        {HL_TYPE_IQ4_XS, tile_iq4_xs, NULL},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        kt->tile[tiles[i].t] = tiles[i].f;
        kt->gemm[tiles[i].t] = tiles[i].g;
        kt->tile_nw[tiles[i].t] = 1;
        kt->tile_nx[tiles[i].t] = 4;
    }
}
