/* Dequantization to f32 of the legacy and K-quant block formats (the
 * i-quants and MXFP4 are in quant_iquant.c): the scalar oracle.
 * Results are bit-identical to gguf-py (gguf.quants.dequantize), which
 * computes in float32 numpy, one rounding per operation; each function below
 * states the operation order it reproduces. Why that order is safe to keep in
 * SIMD kernels too: an f16 scale (11 significant bits) times the small
 * integers of a block (sub-scale <= 8 bits, quant <= 6 bits) is exact in f32,
 * so (d * sc) * q, d * (sc * q) and a fused multiply-add all round only once,
 * at the final add of the min, and agree. Q8_K's f32 d is the exception:
 * x = q * d rounds, but it is a single operation. We still keep gguf-py's
 * order and disable contraction (GCC does not contract in ISO C mode; clang
 * needs the pragma) so this file stays a literal transcription. */
#include "quant/quant.h"

#include "quant/quant_impl.h"
#include "base/err.h"

#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* ---- legacy 32-element blocks --------------------------------------------- */

/* x = d * (float)(q - 8) */
static void dq_q4_0(const hl_block_q4_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d);
        for (int j = 0; j < HL_QK / 2; j++) {
            y[j] = d * (float)((b->qs[j] & 0x0F) - 8);
            y[j + HL_QK / 2] = d * (float)((b->qs[j] >> 4) - 8);
        }
    }
}

/* x = (d * q) + m */
static void dq_q4_1(const hl_block_q4_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d), m = hl_f16_to_f32(b->m);
        for (int j = 0; j < HL_QK / 2; j++) {
            const float p0 = d * (float)(b->qs[j] & 0x0F);
            const float p1 = d * (float)(b->qs[j] >> 4);
            y[j] = p0 + m;
            y[j + HL_QK / 2] = p1 + m;
        }
    }
}

static uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* 5-bit value of element j: low nibble from qs, bit j of the LE u32 qh. */
static inline int q5_at(const uint8_t *qs, uint32_t qh, int j) {
    const int lo = j < HL_QK / 2 ? (qs[j] & 0x0F) : (qs[j - HL_QK / 2] >> 4);
    return lo | (int)((qh >> j) & 1) << 4;
}

/* x = d * (float)(q - 16) */
static void dq_q5_0(const hl_block_q5_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d);
        const uint32_t qh = load_u32le(b->qh);
        for (int j = 0; j < HL_QK; j++) y[j] = d * (float)(q5_at(b->qs, qh, j) - 16);
    }
}

/* x = (d * q) + m */
static void dq_q5_1(const hl_block_q5_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d), m = hl_f16_to_f32(b->m);
        const uint32_t qh = load_u32le(b->qh);
        for (int j = 0; j < HL_QK; j++) {
            const float p = d * (float)q5_at(b->qs, qh, j);
            y[j] = p + m;
        }
    }
}

/* x = (float)q * d */
static void dq_q8_0(const hl_block_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d);
        for (int j = 0; j < HL_QK; j++) y[j] = (float)b->qs[j] * d;
    }
}

/* x = (float)q * d; s (the block sum) is only for kernels */
static void dq_q8_1(const hl_block_q8_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d);
        for (int j = 0; j < HL_QK; j++) y[j] = (float)b->qs[j] * d;
    }
}

/* ---- K-quants: 256-element super-blocks ------------------------------------ */

/* 16 sub-blocks of 16. scales[s]: low nibble scale, high nibble min.
 * dl = d * sc; ml = dmin * m; x = (dl * q) - ml.
 * qs: element 128*g + 32*k + j is bits 2k..2k+1 of qs[32*g + j]. */
static void dq_q2_K(const hl_block_q2_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        const float d = hl_f16_to_f32(b->d), dmin = hl_f16_to_f32(b->dmin);
        for (int e = 0; e < HL_QK_K; e += 16) {
            const int s = e / 16;
            const float dl = d * (float)(b->scales[s] & 0x0F);
            const float ml = dmin * (float)(b->scales[s] >> 4);
            const int g = e / 128, k = (e % 128) / 32, j0 = e % 32;
            for (int j = 0; j < 16; j++) {
                const int q = (b->qs[32 * g + j0 + j] >> (2 * k)) & 3;
                const float p = dl * (float)q;
                y[e + j] = p - ml;
            }
        }
    }
}

/* The 16 signed 6-bit scales of Q3_K: low 4 bits of scale i are nibble (i/8)
 * of byte i%8; the high 2 bits are bits 2*(i/4).. of byte 8 + i%4. */
static void q3_K_scales(const uint8_t *sc, int8_t out[16]) {
    for (int i = 0; i < 16; i++) {
        const int lo = i < 8 ? (sc[i] & 0x0F) : (sc[i - 8] >> 4);
        const int hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* 16 sub-blocks of 16. dl = d * (float)scale; x = dl * (float)q with
 * q = low2 - 4 * (1 - hbit) in -4..3. low2 as in Q2_K; hbit of element
 * 32*k + j is bit k of hmask[j]. */
static void dq_q3_K(const hl_block_q3_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        const float d = hl_f16_to_f32(b->d);
        int8_t sc[16];
        q3_K_scales(b->scales, sc);
        for (int e = 0; e < HL_QK_K; e += 16) {
            const float dl = d * (float)sc[e / 16];
            const int g = e / 128, k = (e % 128) / 32, j0 = e % 32;
            for (int j = 0; j < 16; j++) {
                const int lo = (b->qs[32 * g + j0 + j] >> (2 * k)) & 3;
                const int hb = (b->hmask[j0 + j] >> (e / 32)) & 1;
                y[e + j] = dl * (float)(lo - ((hb ^ 1) << 2));
            }
        }
    }
}

/* Sub-block j's 6-bit scale and min from the 12 packed bytes: j < 4 in the
 * low 6 bits of bytes j and j+4; j >= 4 split between byte j+4 (low 4 bits of
 * each) and the top 2 bits of bytes j-4 and j. */
void hl_q4_K_get_scale_min(const uint8_t *sc, int j, uint8_t *s, uint8_t *m) {
    if (j < 4) {
        *s = sc[j] & 63;
        *m = sc[j + 4] & 63;
    } else {
        *s = (uint8_t)((sc[j + 4] & 0x0F) | ((sc[j - 4] >> 6) << 4));
        *m = (uint8_t)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
    }
}

/* 8 sub-blocks of 32. d1 = d * sc; m1 = dmin * m; x = (d1 * q) - m1.
 * qs: element 64*g + j is the low nibble of qs[32*g + j], 64*g + 32 + j the
 * high nibble. */
static void dq_q4_K(const hl_block_q4_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        const float d = hl_f16_to_f32(b->d), dmin = hl_f16_to_f32(b->dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            hl_q4_K_get_scale_min(b->scales, s, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = b->qs + 32 * (s / 2);
            const int sh = 4 * (s & 1);
            for (int j = 0; j < 32; j++) {
                const float p = d1 * (float)((q[j] >> sh) & 0x0F);
                y[32 * s + j] = p - m1;
            }
        }
    }
}

/* As Q4_K, with a 5th bit: element 32*s + j takes bit s of qh[j]. */
static void dq_q5_K(const hl_block_q5_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        const float d = hl_f16_to_f32(b->d), dmin = hl_f16_to_f32(b->dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            hl_q4_K_get_scale_min(b->scales, s, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = b->qs + 32 * (s / 2);
            const int sh = 4 * (s & 1);
            for (int j = 0; j < 32; j++) {
                const int v = ((q[j] >> sh) & 0x0F) | ((b->qh[j] >> s) & 1) << 4;
                const float p = d1 * (float)v;
                y[32 * s + j] = p - m1;
            }
        }
    }
}

/* 16 sub-blocks of 16, int8 scales. d1 = d * (float)scale; x = d1 * (q - 32).
 * Element 128*g + 64*h + j (j < 64): low 4 bits are nibble h of
 * ql[64*g + j]; element 128*g + 32*k + j (j < 32): high 2 bits are bits
 * 2k..2k+1 of qh[32*g + j]. */
static void dq_q6_K(const hl_block_q6_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        const float d = hl_f16_to_f32(b->d);
        for (int e = 0; e < HL_QK_K; e += 16) {
            const float d1 = d * (float)b->scales[e / 16];
            const int g = e / 128, r = e % 128;
            for (int j = r; j < r + 16; j++) {
                const int lo = (b->ql[64 * g + (j & 63)] >> (4 * (j / 64))) & 0x0F;
                const int hi = (b->qh[32 * g + (j & 31)] >> (2 * (j / 32))) & 3;
                y[128 * g + j] = d1 * (float)((lo | hi << 4) - 32);
            }
        }
    }
}

/* x = (float)q * d (gguf-py has no Q8_K; this is GGML's definition) */
static void dq_q8_K(const hl_block_q8_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        for (int j = 0; j < HL_QK_K; j++) y[j] = (float)b->qs[j] * b->d;
    }
}

/* ---- plain number types ------------------------------------------------------ */

int hl_dequantize(hl_type type, const void *src, float *dst, int64_t n) {
    const hl_type_traits *t = hl_type_get((int)type);
    if (!t || !t->supported) return HL_ENOTSUP;
    if (n < 0 || n % t->blck != 0) return HL_EINVAL;
    const int64_t nb = n / t->blck;
    const uint8_t *p = src;
    switch (type) {
    case HL_TYPE_F32: memmove(dst, src, (size_t)n * sizeof(float)); break;
    case HL_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            hl_f16 h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = hl_f16_to_f32(h);
        }
        break;
    case HL_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            hl_bf16 h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = hl_bf16_to_f32(h);
        }
        break;
    case HL_TYPE_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case HL_TYPE_I8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
        break;
    case HL_TYPE_I16:
        for (int64_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = (float)v;
        }
        break;
    case HL_TYPE_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case HL_TYPE_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case HL_TYPE_Q4_0: dq_q4_0(src, dst, nb); break;
    case HL_TYPE_Q4_1: dq_q4_1(src, dst, nb); break;
    case HL_TYPE_Q5_0: dq_q5_0(src, dst, nb); break;
    case HL_TYPE_Q5_1: dq_q5_1(src, dst, nb); break;
    case HL_TYPE_Q8_0: dq_q8_0(src, dst, nb); break;
    case HL_TYPE_Q8_1: dq_q8_1(src, dst, nb); break;
    case HL_TYPE_Q2_K: dq_q2_K(src, dst, nb); break;
    case HL_TYPE_Q3_K: dq_q3_K(src, dst, nb); break;
    case HL_TYPE_Q4_K: dq_q4_K(src, dst, nb); break;
    case HL_TYPE_Q5_K: dq_q5_K(src, dst, nb); break;
    case HL_TYPE_Q6_K: dq_q6_K(src, dst, nb); break;
    case HL_TYPE_Q8_K: dq_q8_K(src, dst, nb); break;
    default:
        if (!hl_dequantize_iq(type, src, dst, nb)) return HL_ENOTSUP; /* cannot happen: supported types are listed */
        break;
    }
    return 0;
}
