/* Reference quantizers for the plain float types and the 32-element legacy
 * formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), plus the activation formats Q8_1 and
 * Q8_K that the CPU kernels multiply against. Where gguf-py implements a
 * quantizer (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) the bytes are identical
 * to gguf.quants.quantize: same choice of scale, same float32 operation order,
 * same rounding (truncation after adding 0.5 or 8.5 for the 4/5-bit formats,
 * round-half-away-from-zero for the 8-bit ones). The K-quants are in
 * quant_kquant.c, IQ4_NL / IQ4_XS in quant_iq4.c; hl_quantize, the dispatcher,
 * is at the bottom. */
#include "quant/quant.h"

#include "quant/quant_impl.h"

#include <math.h>
#include <string.h>

#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* trunc(v) clamped to [0, hi]. NaN (from inf inputs) maps to 0 instead of the
 * undefined float-to-int conversion. */
static inline int trunc_clamp(float v, int hi) {
    const float t = truncf(v);
    if (!(t >= 0.0f)) return 0;
    if (t >= (float)hi) return hi;
    return (int)t;
}

/* roundf(v) clamped to int8's symmetric range. */
static inline int round_i8(float v) {
    const float r = roundf(v);
    if (!(r == r)) return 0;
    if (r > 127.0f) return 127;
    if (r < -127.0f) return -127;
    return (int)r;
}

/* The element of largest magnitude, with its sign; the first one on ties, as
 * numpy's argmax picks it. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static float absmax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    return amax;
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *mn = lo;
    *mx = hi;
}

/* d = max / -8 (max: the signed element of largest magnitude, so it maps to
 * q = 0, the extra negative level); q = trunc(x * (1/d) + 8.5) in 0..15. */
static void q_q4_0(const float *x, hl_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK, y++) {
        const float d = signed_absmax(x, HL_QK) / -8.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        y->d = hl_f32_to_f16(d);
        for (int j = 0; j < HL_QK / 2; j++) {
            const int q0 = trunc_clamp(x[j] * id + 8.5f, 15);
            const int q1 = trunc_clamp(x[j + HL_QK / 2] * id + 8.5f, 15);
            y->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* d = (max - min) / 15, m = min; q = trunc((x - min) * (1/d) + 0.5). */
static void q_q4_1(const float *x, hl_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK, y++) {
        float mn, mx;
        minmax(x, HL_QK, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        y->d = hl_f32_to_f16(d);
        y->m = hl_f32_to_f16(mn);
        for (int j = 0; j < HL_QK / 2; j++) {
            const int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 15);
            const int q1 = trunc_clamp((x[j + HL_QK / 2] - mn) * id + 0.5f, 15);
            y->qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Packs 32 five-bit values: low nibbles as Q4, bit 4 of element j into bit j
 * of the little-endian u32 qh. */
static void pack_q5(const uint8_t q[HL_QK], uint8_t qs[HL_QK / 2], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < HL_QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + HL_QK / 2] & 0x0F) << 4);
    for (int j = 0; j < HL_QK; j++) h |= (uint32_t)(q[j] >> 4) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

/* d = max / -16; q = trunc(x * (1/d) + 16.5) in 0..31. */
static void q_q5_0(const float *x, hl_block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK, y++) {
        const float d = signed_absmax(x, HL_QK) / -16.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        uint8_t q[HL_QK];
        for (int j = 0; j < HL_QK; j++) q[j] = (uint8_t)trunc_clamp(x[j] * id + 16.5f, 31);
        y->d = hl_f32_to_f16(d);
        pack_q5(q, y->qs, y->qh);
    }
}

/* d = (max - min) / 31, m = min; q = trunc((x - min) * (1/d) + 0.5). */
static void q_q5_1(const float *x, hl_block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK, y++) {
        float mn, mx;
        minmax(x, HL_QK, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        uint8_t q[HL_QK];
        for (int j = 0; j < HL_QK; j++) q[j] = (uint8_t)trunc_clamp((x[j] - mn) * id + 0.5f, 31);
        y->d = hl_f32_to_f16(d);
        y->m = hl_f32_to_f16(mn);
        pack_q5(q, y->qs, y->qh);
    }
}

/* d = max|x| / 127; q = roundf(x * (1/d)) (half away from zero). */
static void q_q8_0(const float *x, hl_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK, y++) {
        const float d = absmax(x, HL_QK) / 127.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        y->d = hl_f32_to_f16(d);
        for (int j = 0; j < HL_QK; j++) y->qs[j] = (int8_t)round_i8(x[j] * id);
    }
}

/* As Q8_0, plus s = d * sum(q) with the unrounded f32 d, stored as f16 (the
 * kernels use it to fold the Q4_1/Q5_1 min into one multiply per block). */
static void q_q8_1(const float *x, hl_block_q8_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK, y++) {
        const float d = absmax(x, HL_QK) / 127.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        int sum = 0;
        for (int j = 0; j < HL_QK; j++) {
            const int q = round_i8(x[j] * id);
            y->qs[j] = (int8_t)q;
            sum += q;
        }
        y->d = hl_f32_to_f16(d);
        y->s = hl_f32_to_f16(d * (float)sum);
    }
}

/* Activations for the K-quant kernels: f32 d = max|x| / 127, q = roundf(x/d)
 * as for Q8_0, and bsums[k] = sum of q over elements 16k..16k+15. */
static void q_q8_K(const float *x, hl_block_q8_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HL_QK_K, y++) {
        const float d = absmax(x, HL_QK_K) / 127.0f;
        const float id = d == 0.0f ? 0.0f : 1.0f / d;
        y->d = d;
        for (int j = 0; j < HL_QK_K; j++) y->qs[j] = (int8_t)round_i8(x[j] * id);
        for (int k = 0; k < HL_QK_K / 16; k++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y->qs[16 * k + j];
            y->bsums[k] = (int16_t)s;
        }
    }
}

size_t hl_quantize(hl_type type, const float *src, void *dst, int64_t n) {
    const hl_type_traits *t = hl_type_get((int)type);
    if (!t || !t->quantizable || n < 0 || n % t->blck != 0) return 0;
    const int64_t nb = n / t->blck;
    uint8_t *out = dst;
    switch (type) {
    case HL_TYPE_F32: memmove(dst, src, (size_t)n * sizeof(float)); break;
    case HL_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            const hl_f16 h = hl_f32_to_f16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        break;
    case HL_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            const hl_bf16 h = hl_f32_to_bf16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        break;
    case HL_TYPE_Q4_0: q_q4_0(src, dst, nb); break;
    case HL_TYPE_Q4_1: q_q4_1(src, dst, nb); break;
    case HL_TYPE_Q5_0: q_q5_0(src, dst, nb); break;
    case HL_TYPE_Q5_1: q_q5_1(src, dst, nb); break;
    case HL_TYPE_Q8_0: q_q8_0(src, dst, nb); break;
    case HL_TYPE_Q8_1: q_q8_1(src, dst, nb); break;
    case HL_TYPE_Q8_K: q_q8_K(src, dst, nb); break;
    case HL_TYPE_Q2_K: hl_quantize_q2_K(src, dst, nb); break;
    case HL_TYPE_Q3_K: hl_quantize_q3_K(src, dst, nb); break;
    case HL_TYPE_Q4_K: hl_quantize_q4_K(src, dst, nb); break;
    case HL_TYPE_Q5_K: hl_quantize_q5_K(src, dst, nb); break;
    case HL_TYPE_Q6_K: hl_quantize_q6_K(src, dst, nb); break;
    case HL_TYPE_IQ4_NL: hl_quantize_iq4_nl(src, dst, nb); break;
    case HL_TYPE_IQ4_XS: hl_quantize_iq4_xs(src, dst, nb); break;
    default: return 0; /* cannot happen: quantizable types are listed above */
    }
    return (size_t)nb * t->size;
}
