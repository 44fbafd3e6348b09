/* Dequantization of the i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S,
 * IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS) and of MXFP4: the scalar oracle for those
 * formats, bit-identical to gguf-py's gguf.quants.dequantize.
 *
 * The lattice formats store, per group of 8 (or 4) elements, an index into a
 * fixed grid of magnitudes (quant_iq_tables.c), signs (explicit bits, or 7
 * bits completed to even parity through hl_iq_ksigns) and a small per-group
 * scale under one f16 super-block scale. Each function states gguf-py's
 * operation order and we keep it; as in quant_dequant.c, every product here
 * is of an f16 scale with small integers, so it is exact in f32 and the order
 * could not change a bit anyway, but a literal transcription is easier to
 * check. Contraction is off for clang; GCC does not contract in ISO C mode. */
#include "quant/quant.h"

#include "quant/quant_impl.h"

#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

static uint32_t ld_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint16_t ld_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* x = sign ? -v : v (gguf-py multiplies by -1.0f, which is exact) */
static inline float signed_by(float v, int negative) { return negative ? -v : v; }

/* ---- 4-bit non-linear formats ------------------------------------------------ */

/* x = d * (float)kv[q]; element j < 16 is the low nibble of qs[j], j + 16 the high. */
static void dq_iq4_nl(const hl_block_iq4_nl *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_f16_to_f32(b->d);
        for (int j = 0; j < HL_QK / 2; j++) {
            y[j] = d * (float)hl_iq4nl_values[b->qs[j] & 0x0F];
            y[j + HL_QK / 2] = d * (float)hl_iq4nl_values[b->qs[j] >> 4];
        }
    }
}

/* 8 sub-blocks of 32: ls = low nibble (ib even) or high nibble (ib odd) of
 * scales_l[ib / 2], plus bits 2ib..2ib+1 of scales_h as bits 4..5;
 * dl = d * (float)(ls - 32); x = dl * (float)kv[q]. Sub-block ib's nibbles
 * are qs[16ib .. 16ib + 15], ordered as in IQ4_NL. */
static void dq_iq4_xs(const hl_block_iq4_xs *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        const float d = hl_f16_to_f32(b->d);
        const unsigned sh = ld_u16(&b->scales_h);
        for (int ib = 0; ib < HL_QK_K / 32; ib++, y += 32) {
            const int ls = ((b->scales_l[ib / 2] >> (4 * (ib & 1))) & 0x0F) | (int)(((sh >> (2 * ib)) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            const uint8_t *q = b->qs + 16 * ib;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)hl_iq4nl_values[q[j] & 0x0F];
                y[j + 16] = dl * (float)hl_iq4nl_values[q[j] >> 4];
            }
        }
    }
}

/* x = 2^(e - 128) * (float)v[q] (v: e2m1 doubled), nibbles as in IQ4_NL. */
static void dq_mxfp4(const hl_block_mxfp4 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK) {
        const float d = hl_e8m0_half(b->e);
        for (int j = 0; j < HL_QK / 2; j++) {
            y[j] = d * (float)hl_mxfp4_values[b->qs[j] & 0x0F];
            y[j + HL_QK / 2] = d * (float)hl_mxfp4_values[b->qs[j] >> 4];
        }
    }
}

/* ---- 2-bit lattice formats --------------------------------------------------- */

/* 8 groups of 32, each two u32 words: a0's 4 bytes are grid indices of
 * elements 8l..8l+7; a1 holds 4 x 7 sign indices (bits 7l..) and the scale
 * (top 4 bits). db = (d * (0.5f + (float)s)) * 0.25f; x = (db * g) * sign. */
static void dq_iq2_xxs(const hl_block_iq2_xxs *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        const float d = hl_f16_to_f32(b->d);
        for (int ib = 0; ib < HL_QK_K / 32; ib++, y += 32) {
            const uint32_t a0 = ld_u32(&b->qs[4 * ib]), a1 = ld_u32(&b->qs[4 * ib + 2]);
            const float db = d * (0.5f + (float)(a1 >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++) {
                const uint8_t *g = hl_iq2xxs_grid[(a0 >> (8 * l)) & 0xFF];
                const uint8_t s = hl_iq_ksigns[(a1 >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++) y[8 * l + j] = signed_by(db * (float)g[j], (s >> j) & 1);
            }
        }
    }
}

/* 32 u16 words of 8 elements each: 9-bit grid index, 7-bit sign index.
 * Word k has the 4-bit scale of group k / 2 (low nibble of scales[k / 4]
 * for even k / 2, high for odd); db as IQ2_XXS. */
static void dq_iq2_xs(const hl_block_iq2_xs *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        const float d = hl_f16_to_f32(b->d);
        for (int k = 0; k < HL_QK_K / 8; k++, y += 8) {
            const int sc = (b->scales[k / 4] >> (4 * ((k / 2) & 1))) & 0x0F;
            const float db = d * (0.5f + (float)sc) * 0.25f;
            const unsigned q = ld_u16(&b->qs[k]);
            const uint8_t *g = hl_iq2xs_grid[q & 511];
            const uint8_t s = hl_iq_ksigns[q >> 9];
            for (int j = 0; j < 8; j++) y[j] = signed_by(db * (float)g[j], (s >> j) & 1);
        }
    }
}

/* 32 groups of 8: index k = qs[k] | 2 bits (2(k%4)) of qh[k / 4] << 8; signs
 * are explicit bits, byte 32 + k of qs; scale as IQ2_XS. */
static void dq_iq2_s(const hl_block_iq2_s *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        const float d = hl_f16_to_f32(b->d);
        const uint8_t *signs = b->qs + HL_QK_K / 8;
        for (int k = 0; k < HL_QK_K / 8; k++, y += 8) {
            const int sc = (b->scales[k / 4] >> (4 * ((k / 2) & 1))) & 0x0F;
            const float db = d * (0.5f + (float)sc) * 0.25f;
            const int idx = b->qs[k] | ((b->qh[k / 4] >> (2 * (k % 4))) & 3) << 8;
            const uint8_t *g = hl_iq2s_grid[idx];
            for (int j = 0; j < 8; j++) y[j] = signed_by(db * (float)g[j], (signs[k] >> j) & 1);
        }
    }
}

/* ---- 3-bit lattice formats --------------------------------------------------- */

/* 64 index bytes (4 elements each), then 8 u32 words, one per group of 32:
 * 4 x 7 sign indices and the 4-bit scale on top.
 * db = (d * (0.5f + (float)s)) * 0.5f; element 8l + j of group ib takes
 * component j % 4 of grid entry qs[8ib + 2l + j / 4]. */
static void dq_iq3_xxs(const hl_block_iq3_xxs *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        const float d = hl_f16_to_f32(b->d);
        const uint8_t *qs = b->qs, *sw = b->qs + HL_QK_K / 4;
        for (int ib = 0; ib < HL_QK_K / 32; ib++, y += 32) {
            const uint32_t a = ld_u32(sw + 4 * ib);
            const float db = d * (0.5f + (float)(a >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++) {
                const uint8_t s = hl_iq_ksigns[(a >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++) {
                    const uint8_t g = hl_iq3xxs_grid[qs[8 * ib + 2 * l + j / 4]][j % 4];
                    y[8 * l + j] = signed_by(db * (float)g, (s >> j) & 1);
                }
            }
        }
    }
}

/* 64 groups of 4: index k = qs[k] | bit k % 8 of qh[k / 8] << 8; element e
 * has the explicit sign bit e % 8 of signs[e / 8]; group of 32 ib has the
 * scale nibble (ib even: low) of scales[ib / 2]: db = d * (float)(1 + 2s). */
static void dq_iq3_s(const hl_block_iq3_s *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        const float d = hl_f16_to_f32(b->d);
        for (int k = 0; k < HL_QK_K / 4; k++) {
            const int ib = k / 8;
            const int sc = (b->scales[ib / 2] >> (4 * (ib & 1))) & 0x0F;
            const float db = d * (float)(1 + 2 * sc);
            const uint8_t *g = hl_iq3s_grid[b->qs[k] | ((b->qh[k / 8] >> (k % 8)) & 1) << 8];
            for (int c = 0; c < 4; c++) {
                const int e = 4 * k + c;
                y[e] = signed_by(db * (float)g[c], (b->signs[e / 8] >> (e % 8)) & 1);
            }
        }
    }
}

/* ---- 1-bit lattice formats --------------------------------------------------- */

#define IQ1_DELTA 0.125f

/* 8 groups of 32, one u16 qh each: bits 3l..3l+2 are the high bits of the
 * 11-bit grid index of sub-group l (low byte qs[4ib + l]); bits 12..14 the
 * scale, bit 15 the sign of delta. dl = d * (float)(2s + 1);
 * x = dl * (g + delta), g in {-1, 0, 1}. */
static void dq_iq1_s(const hl_block_iq1_s *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        const float d = hl_f16_to_f32(b->d);
        for (int ib = 0; ib < HL_QK_K / 32; ib++, y += 32) {
            const unsigned qh = ld_u16(&b->qh[ib]);
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
            for (int l = 0; l < 4; l++) {
                const int8_t *g = hl_iq1s_grid[b->qs[4 * ib + l] | ((qh >> (3 * l)) & 7) << 8];
                for (int j = 0; j < 8; j++) y[8 * l + j] = dl * ((float)g[j] + delta);
            }
        }
    }
}

/* The f16 super-block scale is the top nibbles of the 4 u16 scale words
 * (word 0 gives bits 0..3). Word w's bits 3t..3t+2 (t < 4) are the 3-bit
 * scale of 16-element half 4w + t: dl = d * (float)(2s + 1). Sub-group k of 8
 * (k < 32) has index qs[k] | (nibble k of qh, low first) & 7 << 8 and the
 * nibble's bit 3 as delta's sign; x = dl * (g + delta). */
static void dq_iq1_m(const hl_block_iq1_m *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += HL_QK_K) {
        uint16_t sc[4];
        for (int w = 0; w < 4; w++) sc[w] = ld_u16(b->scales + 2 * w);
        const hl_f16 dh = (hl_f16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
        const float d = hl_f16_to_f32(dh);
        for (int k = 0; k < HL_QK_K / 8; k++) {
            const int half = k / 2; /* 16-element unit */
            const int s = (sc[half / 4] >> (3 * (half % 4))) & 7;
            const float dl = d * (float)(2 * s + 1);
            const int nib = (b->qh[k / 2] >> (4 * (k & 1))) & 0x0F;
            const float delta = nib & 0x08 ? -IQ1_DELTA : IQ1_DELTA;
            const int8_t *g = hl_iq1s_grid[b->qs[k] | (nib & 7) << 8];
            for (int j = 0; j < 8; j++) y[8 * k + j] = dl * ((float)g[j] + delta);
        }
    }
}

int hl_dequantize_iq(int type, const void *src, float *dst, int64_t nb) {
    switch (type) {
    case HL_TYPE_IQ4_NL: dq_iq4_nl(src, dst, nb); return 1;
    case HL_TYPE_IQ4_XS: dq_iq4_xs(src, dst, nb); return 1;
    case HL_TYPE_MXFP4: dq_mxfp4(src, dst, nb); return 1;
    case HL_TYPE_IQ2_XXS: dq_iq2_xxs(src, dst, nb); return 1;
    case HL_TYPE_IQ2_XS: dq_iq2_xs(src, dst, nb); return 1;
    case HL_TYPE_IQ2_S: dq_iq2_s(src, dst, nb); return 1;
    case HL_TYPE_IQ3_XXS: dq_iq3_xxs(src, dst, nb); return 1;
    case HL_TYPE_IQ3_S: dq_iq3_s(src, dst, nb); return 1;
    case HL_TYPE_IQ1_S: dq_iq1_s(src, dst, nb); return 1;
    case HL_TYPE_IQ1_M: dq_iq1_m(src, dst, nb); return 1;
    default: return 0;
    }
}
