/* Scalar conversion of f32 activations to the 8-bit formats the quantized dot
 * products consume (Q8_0, Q8_1, Q8_K). Scale d = max|x| / 127 and q =
 * round-half-even(x / d) (as x * (1/d)), so every q fits in [-127, 127]: the
 * AVX2 maddubs trick (|a| * sign(b)) can then never saturate. The AVX2
 * versions perform the same float operations in the same order and produce
 * the same bytes, which keeps SIMD and scalar results comparable tightly. */
#include "backend/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* round-half-even to int8; a non-finite input (a NaN from a corrupt model)
 * gives a defined value instead of an undefined conversion */
static inline int8_t q8_round(float v) {
    float r = nearbyintf(v);
    if (r != r) return 0;
    return r > 127.0f ? 127 : r < -127.0f ? -127 : (int8_t)r;
}

/* Scale of one block; *id is its inverse (0 for an all-zero block). */
static float hl_act_scale(const float *x, int n, float *id) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f;
    *id = d != 0.0f ? 1.0f / d : 0.0f;
    return d;
}

void hl_act_q8_0_scalar(const float *x, void *vy, int64_t k) {
    hl_block_q8_0 *y = vy;
    for (int64_t b = 0; b < k / HL_QK; b++, x += HL_QK) {
        float id, d = hl_act_scale(x, HL_QK, &id);
        y[b].d = hl_f32_to_f16(d);
        for (int i = 0; i < HL_QK; i++) y[b].qs[i] = q8_round(x[i] * id);
    }
}

void hl_act_q8_1_scalar(const float *x, void *vy, int64_t k) {
    hl_block_q8_1 *y = vy;
    for (int64_t b = 0; b < k / HL_QK; b++, x += HL_QK) {
        float id, d = hl_act_scale(x, HL_QK, &id);
        int sum = 0;
        for (int i = 0; i < HL_QK; i++) {
            y[b].qs[i] = q8_round(x[i] * id);
            sum += y[b].qs[i];
        }
        y[b].d = hl_f32_to_f16(d);
        /* s uses the stored (rounded) d so that s == d * sum(qs) as the dot product assumes */
        y[b].s = hl_f32_to_f16(hl_f16_to_f32(y[b].d) * (float)sum);
    }
}

void hl_act_q8_K_scalar(const float *x, void *vy, int64_t k) {
    hl_block_q8_K *y = vy;
    for (int64_t b = 0; b < k / HL_QK_K; b++, x += HL_QK_K) {
        float id, d = hl_act_scale(x, HL_QK_K, &id);
        y[b].d = d;
        for (int g = 0; g < HL_QK_K / 16; g++) {
            int sum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) {
                y[b].qs[i] = q8_round(x[i] * id);
                sum += y[b].qs[i];
            }
            y[b].bsums[g] = (int16_t)sum;
        }
    }
}

void hl_act_f32_copy(const float *x, void *y, int64_t k) { memcpy(y, x, (size_t)k * sizeof(float)); }
