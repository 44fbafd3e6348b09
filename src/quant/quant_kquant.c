/* Reference quantizers for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), used
 * to write test files and by `create --quantize`. gguf-py has no K-quant
 * quantizer to match, so these aim at quality, checked by round-trip error.
 *
 * Each 256-element super-block is cut into sub-blocks (16 or 32 elements).
 * Step 1 fits each sub-block on its own: a scale (and for the asymmetric
 * types a min) chosen by a small search over candidate scales, each scored by
 * weighted least squares, then refined by alternating "round to the grid" and
 * "refit the scale". Step 2 quantizes the sub-block scales (and mins) to the
 * format's 4/6/8-bit integers relative to one f16 super-block scale. Step 3
 * rounds every element to the nearest level of the scale actually stored
 * (f16 d times the integer sub-scale), so the rounding of steps 1-2 is not
 * compounded. Weights w = x^2 + 4 mean(x^2) favour the large elements, which
 * matter most to a matmul, without ignoring the small ones. */
#include "quant/quant.h"

#include "quant/quant_impl.h"

#include <math.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define MAX_SUB 32 /* largest sub-block */

/* Nearest integer clamped to [lo, hi] (|lo|, |hi| < 2^22); NaN gives lo.
 * Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits
 * (ties to even, which these quantizers do not care about): several times
 * faster than a libm roundf call in these inner loops. */
static inline int nearest_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    const float t = v + 12582912.0f;
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    return (int)(int32_t)(u - 0x4B400000u);
}

static void make_weights(const float *x, float *w) {
    float s = 0.0f;
    for (int j = 0; j < HL_QK_K; j++) s += x[j] * x[j];
    const float sigma2 = s / HL_QK_K;
    for (int j = 0; j < HL_QK_K; j++) w[j] = sigma2 > 0.0f ? x[j] * x[j] + 4.0f * sigma2 : 1.0f;
}

/* ---- sub-block fits ---------------------------------------------------------- */

/* x ~ a * q + b with q in 0..nmax, b <= 0 (stored formats hold a non-negative
 * min m = -b). Least squares for fixed q; falls back to b = 0 when the best
 * unconstrained offset is positive. Returns the weighted squared error. */
static float solve_asym(const float *x, const float *w, const uint8_t *q, int n, float *a, float *b) {
    float sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int j = 0; j < n; j++) {
        sw += w[j];
        sq += w[j] * q[j];
        sqq += w[j] * q[j] * q[j];
        sx += w[j] * x[j];
        sqx += w[j] * q[j] * x[j];
    }
    const float det = sw * sqq - sq * sq;
    float aa = 0.0f, bb = 0.0f;
    if (det > 0.0f) {
        aa = (sw * sqx - sq * sx) / det;
        bb = (sqq * sx - sq * sqx) / det;
    }
    if (!(det > 0.0f) || bb > 0.0f) {
        bb = 0.0f;
        aa = sqq > 0.0f ? sqx / sqq : 0.0f;
    }
    if (aa < 0.0f) aa = 0.0f;
    float err = 0.0f;
    for (int j = 0; j < n; j++) {
        const float diff = aa * q[j] + bb - x[j];
        err += w[j] * diff * diff;
    }
    *a = aa;
    *b = bb;
    return err;
}

/* Best (scale, min) for one sub-block of an asymmetric format; *m >= 0. */
static float fit_asym(const float *x, const float *w, int n, int nmax, float *m) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) { /* every element equals lo <= 0: the min alone is exact */
        *m = -lo;
        return 0.0f;
    }
    uint8_t q[MAX_SUB];
    float best_a = (hi - lo) / nmax, best_b = lo, best_err = INFINITY;
    /* candidates stretch the [lo, hi] range over nmax-1 .. nmax+1 steps (0.2 apart:
     * finer spacing measured no better) */
    for (int k = 0; k <= 20; k += 2) {
        const float iscale = ((float)nmax - 1.0f + 0.1f * (float)k) / (hi - lo);
        for (int j = 0; j < n; j++) q[j] = (uint8_t)nearest_clamp((x[j] - lo) * iscale, 0, nmax);
        float a, b;
        const float err = solve_asym(x, w, q, n, &a, &b);
        if (a > 0.0f && err < best_err) {
            best_err = err;
            best_a = a;
            best_b = b;
        }
    }
    for (int it = 0; it < 3 && best_a > 0.0f; it++) {
        const float ia = 1.0f / best_a;
        for (int j = 0; j < n; j++) q[j] = (uint8_t)nearest_clamp((x[j] - best_b) * ia, 0, nmax);
        float a, b;
        const float err = solve_asym(x, w, q, n, &a, &b);
        if (!(a > 0.0f) || err >= best_err) break;
        best_err = err;
        best_a = a;
        best_b = b;
    }
    *m = -best_b;
    return best_a;
}

/* Best signed scale s for x ~ s * q, q in -nmax..nmax-1 (the extra negative
 * level means a negative s can serve the largest positive element better). */
static float fit_sym(const float *x, const float *w, int n, int nmax) {
    float xm = 0.0f, amax = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            xm = x[j];
        }
    }
    if (amax < 1e-30f) return 0.0f;
    float best_s = 0.0f, best_score = 0.0f; /* score = (sum wxq)^2 / sum wqq */
    for (int k = -10; k <= 10; k += 2) {
        for (int side = 0; side < 2; side++) {
            /* side 0 maps xm near -nmax, side 1 near nmax - 1 */
            const float iscale = side == 0 ? -((float)nmax + 0.1f * (float)k) / xm
                                           : ((float)nmax - 1.0f + 0.1f * (float)k) / xm;
            float sxq = 0.0f, sqq = 0.0f;
            for (int j = 0; j < n; j++) {
                const int q = nearest_clamp(x[j] * iscale, -nmax, nmax - 1);
                sxq += w[j] * x[j] * q;
                sqq += w[j] * q * q;
            }
            if (sqq > 0.0f && sxq * sxq / sqq > best_score) {
                best_score = sxq * sxq / sqq;
                best_s = sxq / sqq;
            }
        }
    }
    for (int it = 0; it < 3 && best_s != 0.0f; it++) {
        const float is = 1.0f / best_s;
        float sxq = 0.0f, sqq = 0.0f;
        for (int j = 0; j < n; j++) {
            const int q = nearest_clamp(x[j] * is, -nmax, nmax - 1);
            sxq += w[j] * x[j] * q;
            sqq += w[j] * q * q;
        }
        if (!(sqq > 0.0f) || !(sxq * sxq / sqq > best_score)) break;
        best_score = sxq * sxq / sqq;
        best_s = sxq / sqq;
    }
    return best_s;
}

/* ---- super-block scale quantization --------------------------------------------- */

/* Non-negative sub-scales v[0..n) to integers 0..levels with one f16 scale;
 * returns the stored f16 scale. */
static hl_f16 quantize_uscales(const float *v, int n, int levels, uint8_t *out) {
    float vmax = 0.0f;
    for (int j = 0; j < n; j++) vmax = v[j] > vmax ? v[j] : vmax;
    const float d = vmax / (float)levels;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; j++) out[j] = (uint8_t)nearest_clamp(v[j] * id, 0, levels);
    return hl_f32_to_f16(d);
}

/* Signed sub-scales to integers lo..hi (lo = -(hi+1)): the largest magnitude
 * maps to lo; returns the stored f16 scale. */
static hl_f16 quantize_sscales(const float *v, int n, int lo, int hi, int *out) {
    float vm = 0.0f, amax = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            vm = v[j];
        }
    }
    if (amax == 0.0f) {
        for (int j = 0; j < n; j++) out[j] = 0;
        return hl_f32_to_f16(0.0f);
    }
    const float iscale = (float)lo / vm;
    for (int j = 0; j < n; j++) out[j] = nearest_clamp(v[j] * iscale, lo, hi);
    return hl_f32_to_f16(1.0f / iscale);
}

/* ---- asymmetric formats: Q2_K, Q4_K, Q5_K --------------------------------------- */

/* Weighted error of a sub-block stored with step dl and min ml. */
static float asym_error(const float *x, const float *w, int n, int nmax, float dl, float ml) {
    const float idl = dl > 0.0f ? 1.0f / dl : 0.0f;
    float err = 0.0f;
    for (int j = 0; j < n; j++) {
        const int q = dl > 0.0f ? nearest_clamp((x[j] + ml) * idl, 0, nmax) : 0;
        const float diff = dl * (float)q - ml - x[j];
        err += w[j] * diff * diff;
    }
    return err;
}

/* Levels 0..nmax of every element, given the sub-block size, the stored
 * scales and mins; returns d and dmin as stored. */
static void quantize_asym_block(const float *x, int sub, int nmax, int levels, uint8_t *q, uint8_t *sc,
                                uint8_t *mn, hl_f16 *d16, hl_f16 *dmin16) {
    float w[HL_QK_K], scale[HL_QK_K / 16], mins[HL_QK_K / 16];
    const int nsub = HL_QK_K / sub;
    make_weights(x, w);
    for (int s = 0; s < nsub; s++) scale[s] = fit_asym(x + s * sub, w + s * sub, sub, nmax, &mins[s]);
    *d16 = quantize_uscales(scale, nsub, levels, sc);
    *dmin16 = quantize_uscales(mins, nsub, levels, mn);
    const float d = hl_f16_to_f32(*d16), dmin = hl_f16_to_f32(*dmin16);
    for (int s = 0; s < nsub; s++) {
        /* the rounded integer scale and min need not be the best pair for the
         * stored d and dmin: try the neighbours */
        const int sc0 = sc[s], mn0 = mn[s];
        float best = INFINITY;
        for (int a = sc0 - 1; a <= sc0 + 1; a++) {
            for (int b = mn0 - 1; b <= mn0 + 1; b++) {
                if (a < 0 || a > levels || b < 0 || b > levels) continue;
                const float e = asym_error(x + s * sub, w + s * sub, sub, nmax, d * (float)a, dmin * (float)b);
                if (e < best) {
                    best = e;
                    sc[s] = (uint8_t)a;
                    mn[s] = (uint8_t)b;
                }
            }
        }
        const float dl = d * (float)sc[s], ml = dmin * (float)mn[s];
        const float idl = dl > 0.0f ? 1.0f / dl : 0.0f;
        for (int j = 0; j < sub; j++)
            q[s * sub + j] = (uint8_t)(dl > 0.0f ? nearest_clamp((x[s * sub + j] + ml) * idl, 0, nmax) : 0);
    }
}

void hl_quantize_q2_K(const float *x, void *dst, int64_t nb) {
    hl_block_q2_K *y = dst;
    for (int64_t i = 0; i < nb; i++, x += HL_QK_K, y++) {
        uint8_t q[HL_QK_K], sc[16], mn[16];
        quantize_asym_block(x, 16, 3, 15, q, sc, mn, &y->d, &y->dmin);
        for (int s = 0; s < 16; s++) y->scales[s] = (uint8_t)(sc[s] | mn[s] << 4);
        /* element 128g + 32k + j lives in bits 2k of qs[32g + j] */
        memset(y->qs, 0, sizeof y->qs);
        for (int e = 0; e < HL_QK_K; e++) y->qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
    }
}

/* Inverse of hl_q4_K_get_scale_min: 8 six-bit scales and mins into 12 bytes. */
static void pack_scale_min_k4(const uint8_t *sc, const uint8_t *mn, uint8_t out[12]) {
    memset(out, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] |= sc[j] & 63;
            out[j + 4] |= mn[j] & 63;
        } else {
            out[j + 4] = (uint8_t)((sc[j] & 0x0F) | (mn[j] & 0x0F) << 4);
            out[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            out[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

void hl_quantize_q4_K(const float *x, void *dst, int64_t nb) {
    hl_block_q4_K *y = dst;
    for (int64_t i = 0; i < nb; i++, x += HL_QK_K, y++) {
        uint8_t q[HL_QK_K], sc[8], mn[8];
        quantize_asym_block(x, 32, 15, 63, q, sc, mn, &y->d, &y->dmin);
        pack_scale_min_k4(sc, mn, y->scales);
        /* element 64g + 32h + j: nibble h of qs[32g + j] */
        for (int g = 0; g < 4; g++)
            for (int j = 0; j < 32; j++) y->qs[32 * g + j] = (uint8_t)(q[64 * g + j] | q[64 * g + 32 + j] << 4);
    }
}

void hl_quantize_q5_K(const float *x, void *dst, int64_t nb) {
    hl_block_q5_K *y = dst;
    for (int64_t i = 0; i < nb; i++, x += HL_QK_K, y++) {
        uint8_t q[HL_QK_K], sc[8], mn[8];
        quantize_asym_block(x, 32, 31, 63, q, sc, mn, &y->d, &y->dmin);
        pack_scale_min_k4(sc, mn, y->scales);
        memset(y->qh, 0, sizeof y->qh);
        for (int g = 0; g < 4; g++)
            for (int j = 0; j < 32; j++)
                y->qs[32 * g + j] = (uint8_t)((q[64 * g + j] & 0x0F) | (q[64 * g + 32 + j] & 0x0F) << 4);
        /* 5th bit of element 32s + j: bit s of qh[j] */
        for (int e = 0; e < HL_QK_K; e++) y->qh[e % 32] |= (uint8_t)((q[e] >> 4) << (e / 32));
    }
}

/* ---- symmetric formats: Q3_K, Q6_K ------------------------------------------------ */

/* Weighted error of a sub-block stored with signed step dl. */
static float sym_error(const float *x, const float *w, int n, int nmax, float dl) {
    const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
    float err = 0.0f;
    for (int j = 0; j < n; j++) {
        const int q = dl != 0.0f ? nearest_clamp(x[j] * idl, -nmax, nmax - 1) : 0;
        const float diff = dl * (float)q - x[j];
        err += w[j] * diff * diff;
    }
    return err;
}

/* Signed levels -nmax..nmax-1 of every element with 16 sub-blocks of 16 and
 * integer sub-scales in lo..hi; returns d as stored. */
static hl_f16 quantize_sym_block(const float *x, int nmax, int lo, int hi, int *q, int *sc) {
    float w[HL_QK_K], scale[16];
    make_weights(x, w);
    for (int s = 0; s < 16; s++) scale[s] = fit_sym(x + 16 * s, w + 16 * s, 16, nmax);
    const hl_f16 d16 = quantize_sscales(scale, 16, lo, hi, sc);
    const float d = hl_f16_to_f32(d16);
    for (int s = 0; s < 16; s++) {
        /* the neighbours of the rounded integer scale may fit better */
        const int sc0 = sc[s];
        float best = INFINITY;
        for (int a = sc0 - 1; a <= sc0 + 1; a++) {
            if (a < lo || a > hi) continue;
            const float e = sym_error(x + 16 * s, w + 16 * s, 16, nmax, d * (float)a);
            if (e < best) {
                best = e;
                sc[s] = a;
            }
        }
        const float dl = d * (float)sc[s];
        const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
        for (int j = 0; j < 16; j++) q[16 * s + j] = dl != 0.0f ? nearest_clamp(x[16 * s + j] * idl, -nmax, nmax - 1) : 0;
    }
    return d16;
}

void hl_quantize_q3_K(const float *x, void *dst, int64_t nb) {
    hl_block_q3_K *y = dst;
    for (int64_t i = 0; i < nb; i++, x += HL_QK_K, y++) {
        int q[HL_QK_K], sc[16];
        y->d = quantize_sym_block(x, 4, -32, 31, q, sc);
        /* 6-bit scale i (biased by 32): low 4 bits in nibble i/8 of byte
         * i%8, high 2 bits at bit 2*(i/4) of byte 8 + i%4 */
        memset(y->scales, 0, sizeof y->scales);
        for (int s = 0; s < 16; s++) {
            const int u = sc[s] + 32;
            y->scales[s % 8] |= (uint8_t)((u & 0x0F) << (4 * (s / 8)));
            y->scales[8 + s % 4] |= (uint8_t)((u >> 4) << (2 * (s / 4)));
        }
        /* level u = q + 4 in 0..7: low 2 bits as Q2_K, bit 2 in hmask */
        memset(y->qs, 0, sizeof y->qs);
        memset(y->hmask, 0, sizeof y->hmask);
        for (int e = 0; e < HL_QK_K; e++) {
            const int u = q[e] + 4;
            y->qs[32 * (e / 128) + e % 32] |= (uint8_t)((u & 3) << (2 * ((e % 128) / 32)));
            y->hmask[e % 32] |= (uint8_t)((u >> 2) << (e / 32));
        }
    }
}

void hl_quantize_q6_K(const float *x, void *dst, int64_t nb) {
    hl_block_q6_K *y = dst;
    for (int64_t i = 0; i < nb; i++, x += HL_QK_K, y++) {
        int q[HL_QK_K], sc[16];
        y->d = quantize_sym_block(x, 32, -128, 127, q, sc);
        for (int s = 0; s < 16; s++) y->scales[s] = (int8_t)sc[s];
        memset(y->ql, 0, sizeof y->ql);
        memset(y->qh, 0, sizeof y->qh);
        for (int e = 0; e < HL_QK_K; e++) {
            const int u = q[e] + 32, g = e / 128, j = e % 128;
            y->ql[64 * g + (j & 63)] |= (uint8_t)((u & 0x0F) << (4 * (j / 64)));
            y->qh[32 * g + (j & 31)] |= (uint8_t)((u >> 4) << (2 * (j / 32)));
        }
    }
}
