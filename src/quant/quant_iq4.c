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

/* Index of the table entry nearest to v (ties: the lower entry). */
static int nearest_nl(float v) {
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < (float)hl_iq4nl_values[mid]) hi = mid;
        else lo = mid;
    }
    return v - (float)hl_iq4nl_values[lo] <= (float)hl_iq4nl_values[hi] - v ? lo : hi;
}

/* Indices of x[0..31] against scale d (d == 0: any index, we take 0). */
static void pick_nl(const float *x, float d, uint8_t q[32]) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) q[j] = d != 0.0f ? (uint8_t)nearest_nl(x[j] * id) : 0;
}

/* The best float scale for one block of 32 (see the top of the file). */
static float best_scale_nl(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    if (amax == 0.0f) return 0.0f;
    float best_d = max / (float)hl_iq4nl_values[0], best_err = INFINITY;
    for (int t = 0; t < 16; t++) {
        /* t even: max -> -127 + 2(t/2) ..; t odd: max -> 113 - 2(t/2) .. */
        const float target = t % 2 == 0 ? (float)(hl_iq4nl_values[0] + t) : (float)(hl_iq4nl_values[15] - (t - 1));
        uint8_t q[32];
        pick_nl(x, max / target, q);
        double sxv = 0, svv = 0;
        for (int j = 0; j < 32; j++) {
            const double v = hl_iq4nl_values[q[j]];
            sxv += (double)x[j] * v;
            svv += v * v;
        }
        if (svv == 0) continue;
        const float d = (float)(sxv / svv);
        double err = 0;
        for (int j = 0; j < 32; j++) {
            const double e = (double)x[j] - (double)d * hl_iq4nl_values[q[j]];
            err += e * e;
        }
        if (err < best_err) best_err = (float)err, best_d = d;
    }
    return best_d;
}

static void pack_nibbles(const uint8_t q[32], uint8_t qs[16]) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

void hl_quantize_iq4_nl(const float *x, void *dst, int64_t nb) {
    hl_block_iq4_nl *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += 32) {
        const hl_f16 dh = hl_f32_to_f16(best_scale_nl(x));
        uint8_t q[32];
        pick_nl(x, hl_f16_to_f32(dh), q);
        memcpy(&b->d, &dh, sizeof dh);
        pack_nibbles(q, b->qs);
    }
}

void hl_quantize_iq4_xs(const float *x, void *dst, int64_t nb) {
    hl_block_iq4_xs *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += HL_QK_K) {
        float s[8], smax = 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            s[ib] = best_scale_nl(x + 32 * ib);
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
            pick_nl(x + 32 * ib, d * (float)(ls - 32), q);
            pack_nibbles(q, b->qs + 16 * ib);
        }
        memcpy(&b->d, &dh, sizeof dh);
        memcpy(&b->scales_h, &sh, sizeof sh);
    }
}
