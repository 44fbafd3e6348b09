/* Quantizers for IQ4_NL and IQ4_XS: 4-bit indices into the fixed non-linear
 * table hl_iq4nl_values (-127 .. 113) under a block scale.
 *
 * Our method (gguf-py has no quantizer for these formats to match): for a
 * block of 32 values, candidate scales map the value of largest magnitude to
 * either end of the table, stepped inwards a few times; for each candidate,
 * every value takes its nearest table entry, then the scale is refitted by
 * least squares (d = sum x*v / sum v*v) and the squared error measured. The
 * best candidate wins, its scale is rounded to f16 and the indices are taken
 * again against that rounded scale (what dequantization will use). IQ4_XS
 * does this per 32-element sub-block, then expresses the sub-block scales as
 * 6-bit multiples (ls - 32) of one f16 super-block scale, the largest one
 * mapped to -32, and re-picks the indices against each final scale. */
#include "quant/quant.h"

#include "quant/quant_impl.h"

#include <math.h>
#include <string.h>

/* Nearest-entry lookup at half-unit resolution: every midpoint between
 * neighbouring table entries is a multiple of 0.5, so all v in
 * [h/2 - 127, h/2 - 126.5) share one nearest entry (a value exactly on a
 * midpoint takes the upper one). Built once per hl_quantize call. */
#define NL_LUT 482
typedef struct { uint8_t idx[NL_LUT]; } nl_lut;

static void nl_lut_init(nl_lut *t) {
    for (int h = 0; h < NL_LUT; h++) {
        const float v = (float)h * 0.5f - 127.0f + 0.25f; /* inside the interval */
        int best = 0;
        for (int i = 1; i < 16; i++)
            if (fabsf(v - (float)hl_iq4nl_values[i]) < fabsf(v - (float)hl_iq4nl_values[best])) best = i;
        t->idx[h] = (uint8_t)best;
    }
}

static inline int nearest_nl(const nl_lut *t, float v) {
    v = v < -127.0f ? -127.0f : v > 113.5f ? 113.5f : v; /* also keeps the conversion defined */
    const int h = (int)(2.0f * v + 254.0f); /* >= 0, so truncation is floor */
    return t->idx[h >= NL_LUT ? NL_LUT - 1 : h];
}

/* Indices of x[0..31] against scale d (d == 0: any index, we take 0). */
static void pick_nl(const nl_lut *t, const float *x, float d, uint8_t q[32]) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) q[j] = d != 0.0f ? (uint8_t)nearest_nl(t, x[j] * id) : 0;
}

/* The best float scale for one block of 32 (see the top of the file). */
static float best_scale_nl(const nl_lut *lut, const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    if (amax == 0.0f) return 0.0f;
    float best_d = max / (float)hl_iq4nl_values[0], best_err = INFINITY;
    for (int t = 0; t < 16; t++) {
        /* t even: max -> -127 + 2(t/2) ..; t odd: max -> 113 - 2(t/2) .. */
        const float target = t % 2 == 0 ? (float)(hl_iq4nl_values[0] + t) : (float)(hl_iq4nl_values[15] - (t - 1));
        uint8_t q[32];
        pick_nl(lut, x, max / target, q);
        float sxv = 0, svv = 0;
        for (int j = 0; j < 32; j++) {
            const float v = (float)hl_iq4nl_values[q[j]];
            sxv += x[j] * v;
            svv += v * v;
        }
        if (svv == 0) continue;
        const float d = sxv / svv;
        float err = 0;
        for (int j = 0; j < 32; j++) {
            const float e = x[j] - d * (float)hl_iq4nl_values[q[j]];
            err += e * e;
        }
        if (err < best_err) best_err = err, best_d = d;
    }
    return best_d;
}

static void pack_nibbles(const uint8_t q[32], uint8_t qs[16]) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

void hl_quantize_iq4_nl(const float *x, void *dst, int64_t nb) {
    hl_block_iq4_nl *b = dst;
    nl_lut lut;
    nl_lut_init(&lut);
    for (int64_t i = 0; i < nb; i++, b++, x += 32) {
        const hl_f16 dh = hl_f32_to_f16(best_scale_nl(&lut, x));
        uint8_t q[32];
        pick_nl(&lut, x, hl_f16_to_f32(dh), q);
        memcpy(&b->d, &dh, sizeof dh);
        pack_nibbles(q, b->qs);
    }
}

void hl_quantize_iq4_xs(const float *x, void *dst, int64_t nb) {
    hl_block_iq4_xs *b = dst;
    nl_lut lut;
    nl_lut_init(&lut);
    for (int64_t i = 0; i < nb; i++, b++, x += HL_QK_K) {
        float s[8], smax = 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            s[ib] = best_scale_nl(&lut, x + 32 * ib);
            if (fabsf(s[ib]) > fabsf(smax)) smax = s[ib];
        }
        const hl_f16 dh = hl_f32_to_f16(smax / -32.0f);
        const float d = hl_f16_to_f32(dh);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t sh = 0;
        memset(b->scales_l, 0, sizeof b->scales_l);
        for (int ib = 0; ib < 8; ib++) {
            int ls = (int)lrintf(s[ib] * id) + 32;
            ls = ls < 0 ? 0 : ls > 63 ? 63 : ls;
            b->scales_l[ib / 2] |= (uint8_t)((ls & 0xF) << (4 * (ib & 1)));
            sh |= (uint16_t)((ls >> 4) << (2 * ib));
            uint8_t q[32];
            pick_nl(&lut, x + 32 * ib, d * (float)(ls - 32), q);
            pack_nibbles(q, b->qs + 16 * ib);
        }
        memcpy(&b->d, &dh, sizeof dh);
        memcpy(&b->scales_h, &sh, sizeof sh);
    }
}
