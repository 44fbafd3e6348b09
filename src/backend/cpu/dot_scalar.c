/* Scalar dot products of one weight row with one converted activation row,
 * for every weight type: integer sums of quantized values times the block
 * scales, exactly as the formats define them. These are the oracle the SIMD
 * kernels are tested against, and the fallback on CPUs without AVX2. Each
 * block's integer sum is formed first and scaled once, as SIMD does. The
 * lattice i-quants (IQ1_S..IQ3_S) have no integer kernel: their rows are
 * dequantized a super-block at a time and dotted with f32 activations. */
#include "backend/cpu/cpu_impl.h"

#include "quant/quant_impl.h"

#include <string.h>

#define F16(h) hl_f16_to_f32(h)

static float dot_f32(int64_t k, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    float s = 0.0f;
    for (int64_t i = 0; i < k; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int64_t k, const void *vw, const void *vx) {
    const hl_f16 *w = vw;
    const float *x = vx;
    float s = 0.0f;
    for (int64_t i = 0; i < k; i++) s += hl_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_bf16(int64_t k, const void *vw, const void *vx) {
    const hl_bf16 *w = vw;
    const float *x = vx;
    float s = 0.0f;
    for (int64_t i = 0; i < k; i++) s += hl_bf16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_q4_0(int64_t k, const void *vw, const void *vx) {
    const hl_block_q4_0 *w = vw;
    const hl_block_q8_0 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++) {
        int isum = 0;
        for (int j = 0; j < 16; j++)
            isum += ((w[b].qs[j] & 0xF) - 8) * x[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        s += F16(w[b].d) * F16(x[b].d) * (float)isum;
    }
    return s;
}

static float dot_q4_1(int64_t k, const void *vw, const void *vx) {
    const hl_block_q4_1 *w = vw;
    const hl_block_q8_1 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) isum += (w[b].qs[j] & 0xF) * x[b].qs[j] + (w[b].qs[j] >> 4) * x[b].qs[j + 16];
        s += F16(w[b].d) * F16(x[b].d) * (float)isum + F16(w[b].m) * F16(x[b].s);
    }
    return s;
}

static int hl_q5_isum(const uint8_t *qs, const uint8_t *qh4, const int8_t *a, int offset) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    int isum = 0;
    for (int j = 0; j < 16; j++) {
        int q0 = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
        int q1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        isum += (q0 - offset) * a[j] + (q1 - offset) * a[j + 16];
    }
    return isum;
}

static float dot_q5_0(int64_t k, const void *vw, const void *vx) {
    const hl_block_q5_0 *w = vw;
    const hl_block_q8_0 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++)
        s += F16(w[b].d) * F16(x[b].d) * (float)hl_q5_isum(w[b].qs, w[b].qh, x[b].qs, 16);
    return s;
}

static float dot_q5_1(int64_t k, const void *vw, const void *vx) {
    const hl_block_q5_1 *w = vw;
    const hl_block_q8_1 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++)
        s += F16(w[b].d) * F16(x[b].d) * (float)hl_q5_isum(w[b].qs, w[b].qh, x[b].qs, 0) + F16(w[b].m) * F16(x[b].s);
    return s;
}

static float dot_q8_0(int64_t k, const void *vw, const void *vx) {
    const hl_block_q8_0 *w = vw;
    const hl_block_q8_0 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++) {
        int isum = 0;
        for (int j = 0; j < HL_QK; j++) isum += w[b].qs[j] * x[b].qs[j];
        s += F16(w[b].d) * F16(x[b].d) * (float)isum;
    }
    return s;
}

/* The 6-bit scales and mins of Q4_K / Q5_K: 8 of each packed in 12 bytes. */
static void hl_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            mn[j] = q[j + 4] & 63;
        } else {
            sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }
}

static float dot_q4_K(int64_t k, const void *vw, const void *vx) {
    const hl_block_q4_K *w = vw;
    const hl_block_q8_K *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        uint8_t sc[8], mn[8];
        hl_k4_scales(w[b].scales, sc, mn);
        const uint8_t *q = w[b].qs;
        const int8_t *a = x[b].qs;
        int sumi = 0, summ = 0;
        for (int c = 0; c < 4; c++, q += 32, a += 64) {
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 0xF) * a[l];
                s1 += (q[l] >> 4) * a[l + 32];
            }
            sumi += s0 * sc[2 * c] + s1 * sc[2 * c + 1];
        }
        for (int j = 0; j < 8; j++) summ += mn[j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        s += x[b].d * (F16(w[b].d) * (float)sumi - F16(w[b].dmin) * (float)summ);
    }
    return s;
}

static float dot_q5_K(int64_t k, const void *vw, const void *vx) {
    const hl_block_q5_K *w = vw;
    const hl_block_q8_K *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        uint8_t sc[8], mn[8];
        hl_k4_scales(w[b].scales, sc, mn);
        const uint8_t *q = w[b].qs, *qh = w[b].qh;
        const int8_t *a = x[b].qs;
        int sumi = 0, summ = 0;
        for (int c = 0; c < 4; c++, q += 32, a += 64) {
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                int q0 = (q[l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4);
                int q1 = (q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
                s0 += q0 * a[l];
                s1 += q1 * a[l + 32];
            }
            sumi += s0 * sc[2 * c] + s1 * sc[2 * c + 1];
        }
        for (int j = 0; j < 8; j++) summ += mn[j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        s += x[b].d * (F16(w[b].d) * (float)sumi - F16(w[b].dmin) * (float)summ);
    }
    return s;
}

/* Q6_K: element e = 128h + 32t + l (h half, t quarter, l < 32) has low 4 bits
 * in ql[64h + l + 32(t&1)] (nibble t>>1), high 2 bits in qh[32h + l] (bits
 * 2t), and scale scales[8h + 2t + l/16] = its 16-element group, e / 16. */
static float dot_q6_K(int64_t k, const void *vw, const void *vx) {
    const hl_block_q6_K *w = vw;
    const hl_block_q8_K *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        int g16[16] = {0};
        for (int e = 0; e < HL_QK_K; e++) {
            int h = e / 128, t = (e / 32) & 3, l = e & 31;
            int lo = w[b].ql[64 * h + l + 32 * (t & 1)] >> (4 * (t >> 1)) & 0xF;
            int hi = (w[b].qh[32 * h + l] >> (2 * t)) & 3;
            g16[e / 16] += (lo | (hi << 4)) * x[b].qs[e];
        }
        int sumi = 0;
        for (int g = 0; g < 16; g++) sumi += w[b].scales[g] * (g16[g] - 32 * x[b].bsums[g]);
        s += x[b].d * F16(w[b].d) * (float)sumi;
    }
    return s;
}

/* Q3_K: element e = 128h + 32j + l has its 2 low bits in qs[32h + l] (bits
 * 2j), its high bit in hmask[l] (bit 4h + j); a set bit means +0, a clear
 * one -4. Its 6-bit scale (minus 32) is that of group e / 16. */
static float dot_q3_K(int64_t k, const void *vw, const void *vx) {
    const hl_block_q3_K *w = vw;
    const hl_block_q8_K *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        const uint8_t *sc = w[b].scales;
        int g16[16] = {0};
        for (int e = 0; e < HL_QK_K; e++) {
            int h = e / 128, j = (e / 32) & 3, l = e & 31;
            int q = (w[b].qs[32 * h + l] >> (2 * j)) & 3;
            q += ((w[b].hmask[l] >> (4 * h + j)) & 1) << 2;
            g16[e / 16] += q * x[b].qs[e];
        }
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int lo = g < 8 ? sc[g] & 0xF : sc[g - 8] >> 4;
            int hi = (sc[8 + (g & 3)] >> (2 * (g / 4))) & 3;
            sumi += ((lo | (hi << 4)) - 32) * (g16[g] - 4 * x[b].bsums[g]);
        }
        s += x[b].d * F16(w[b].d) * (float)sumi;
    }
    return s;
}

/* Q2_K: element e = 128h + 32j + l has 2 bits in qs[32h + l] (bits 2j);
 * group e / 16 has scale scales[g] & 15 and min scales[g] >> 4. */
static float dot_q2_K(int64_t k, const void *vw, const void *vx) {
    const hl_block_q2_K *w = vw;
    const hl_block_q8_K *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        int g16[16] = {0};
        for (int e = 0; e < HL_QK_K; e++) {
            int h = e / 128, j = (e / 32) & 3, l = e & 31;
            g16[e / 16] += ((w[b].qs[32 * h + l] >> (2 * j)) & 3) * x[b].qs[e];
        }
        int sumi = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            sumi += (w[b].scales[g] & 0xF) * g16[g];
            summ += (w[b].scales[g] >> 4) * x[b].bsums[g];
        }
        s += x[b].d * (F16(w[b].d) * (float)sumi - F16(w[b].dmin) * (float)summ);
    }
    return s;
}

/* ---- IQ4_NL, MXFP4 (x Q8_0) and IQ4_XS (x Q8_K): 16-value tables ---- */

/* sum over one 32-element block of tab[nibble] * a (nibbles as in Q4_0) */
static int hl_nl_isum(const int8_t *tab, const uint8_t *qs, const int8_t *a) {
    int isum = 0;
    for (int j = 0; j < 16; j++) isum += tab[qs[j] & 0xF] * a[j] + tab[qs[j] >> 4] * a[j + 16];
    return isum;
}

static float dot_iq4_nl(int64_t k, const void *vw, const void *vx) {
    const hl_block_iq4_nl *w = vw;
    const hl_block_q8_0 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++)
        s += F16(w[b].d) * F16(x[b].d) * (float)hl_nl_isum(hl_iq4nl_values, w[b].qs, x[b].qs);
    return s;
}

static float dot_mxfp4(int64_t k, const void *vw, const void *vx) {
    const hl_block_mxfp4 *w = vw;
    const hl_block_q8_0 *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK; b++)
        s += hl_e8m0_half(w[b].e) * F16(x[b].d) * (float)hl_nl_isum(hl_mxfp4_values, w[b].qs, x[b].qs);
    return s;
}

/* IQ4_XS: 8 sub-blocks of 32, each its own 6-bit scale (minus 32) */
static float dot_iq4_xs(int64_t k, const void *vw, const void *vx) {
    const hl_block_iq4_xs *w = vw;
    const hl_block_q8_K *x = vx;
    float s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        uint16_t sh;
        memcpy(&sh, &w[b].scales_h, 2);
        int sumi = 0;
        for (int ib = 0; ib < 8; ib++) {
            int ls = ((w[b].scales_l[ib / 2] >> (4 * (ib & 1))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
            sumi += (ls - 32) * hl_nl_isum(hl_iq4nl_values, w[b].qs + 16 * ib, x[b].qs + 32 * ib);
        }
        s += x[b].d * F16(w[b].d) * (float)sumi;
    }
    return s;
}

/* ---- the other i-quants: dequantize a super-block, then an f32 dot ----
 * Slow but exact to the format (hl_dequantize is the oracle), for files
 * whose few tensors use them; no SIMD kernel exists for these. */
static float hl_dot_dequant(hl_type t, int64_t k, const void *vw, const float *x) {
    const size_t bs = hl_type_get(t)->size;
    float tmp[HL_QK_K], s = 0.0f;
    for (int64_t b = 0; b < k / HL_QK_K; b++) {
        hl_dequantize(t, (const char *)vw + b * bs, tmp, HL_QK_K);
        for (int i = 0; i < HL_QK_K; i++) s += tmp[i] * x[b * HL_QK_K + i];
    }
    return s;
}

#define HL_DOT_DEQUANT(name, type) \
    static float name(int64_t k, const void *w, const void *x) { return hl_dot_dequant(type, k, w, x); }
HL_DOT_DEQUANT(dot_iq2_xxs, HL_TYPE_IQ2_XXS)
HL_DOT_DEQUANT(dot_iq2_xs, HL_TYPE_IQ2_XS)
HL_DOT_DEQUANT(dot_iq2_s, HL_TYPE_IQ2_S)
HL_DOT_DEQUANT(dot_iq3_xxs, HL_TYPE_IQ3_XXS)
HL_DOT_DEQUANT(dot_iq3_s, HL_TYPE_IQ3_S)
HL_DOT_DEQUANT(dot_iq1_s, HL_TYPE_IQ1_S)
HL_DOT_DEQUANT(dot_iq1_m, HL_TYPE_IQ1_M)

hl_dot_fn hl_dot_scalar_for(hl_type wtype) {
    switch (wtype) {
    case HL_TYPE_F32: return dot_f32;
    case HL_TYPE_F16: return dot_f16;
    case HL_TYPE_BF16: return dot_bf16;
    case HL_TYPE_Q4_0: return dot_q4_0;
    case HL_TYPE_Q4_1: return dot_q4_1;
    case HL_TYPE_Q5_0: return dot_q5_0;
    case HL_TYPE_Q5_1: return dot_q5_1;
    case HL_TYPE_Q8_0: return dot_q8_0;
    case HL_TYPE_Q2_K: return dot_q2_K;
    case HL_TYPE_Q3_K: return dot_q3_K;
    case HL_TYPE_Q4_K: return dot_q4_K;
    case HL_TYPE_Q5_K: return dot_q5_K;
    case HL_TYPE_Q6_K: return dot_q6_K;
    case HL_TYPE_IQ4_NL: return dot_iq4_nl;
    case HL_TYPE_IQ4_XS: return dot_iq4_xs;
    case HL_TYPE_MXFP4: return dot_mxfp4;
    case HL_TYPE_IQ2_XXS: return dot_iq2_xxs;
    case HL_TYPE_IQ2_XS: return dot_iq2_xs;
    case HL_TYPE_IQ2_S: return dot_iq2_s;
    case HL_TYPE_IQ3_XXS: return dot_iq3_xxs;
    case HL_TYPE_IQ3_S: return dot_iq3_s;
    case HL_TYPE_IQ1_S: return dot_iq1_s;
    case HL_TYPE_IQ1_M: return dot_iq1_m;
    default: return NULL;
    }
}
