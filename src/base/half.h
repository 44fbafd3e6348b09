/* IEEE half (f16) and bfloat16 conversions, portable and exact (round to
 * nearest even), header-only so kernels can inline them. SIMD code uses the
 * F16C instructions instead; these are the reference. */
#ifndef HL_BASE_HALF_H
#define HL_BASE_HALF_H

#include <stdint.h>
#include <string.h>

typedef uint16_t hl_f16;
typedef uint16_t hl_bf16;

static inline float hl_u32_as_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t hl_f32_as_u32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float hl_f16_to_f32(hl_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    if (exp == 0) {
        if (mant == 0) return hl_u32_as_f32(sign);
        /* subnormal: value = mant * 2^-24 */
        float f = (float)mant * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) return hl_u32_as_f32(sign | 0x7F800000u | (mant << 13));
    return hl_u32_as_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline hl_f16 hl_f32_to_f16(float f) {
    uint32_t x = hl_f32_as_u32(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7FFFFFFF;
    if (ax >= 0x7F800000u) /* inf or nan */
        return (hl_f16)(sign | 0x7C00 | (ax > 0x7F800000u ? 0x200 | ((ax >> 13) & 0x3FF) : 0));
    if (ax >= 0x477FF000u) return (hl_f16)(sign | 0x7C00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                 /* below the normal range */
        if (ax < 0x33000000u) return (hl_f16)sign;          /* < 2^-25 rounds to 0 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7FFFFF) | 0x800000;
        uint32_t shift = 126 - e; /* 14 .. 24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (hl_f16)(sign | q);
    }
    uint32_t q = ((ax - 0x38000000u) >> 13);
    uint32_t rem = ax & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (hl_f16)(sign | q);
}

static inline float hl_bf16_to_f32(hl_bf16 h) { return hl_u32_as_f32((uint32_t)h << 16); }

static inline hl_bf16 hl_f32_to_bf16(float f) {
    uint32_t x = hl_f32_as_u32(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000u) return (hl_bf16)((x >> 16) | 64); /* quiet nan */
    return (hl_bf16)((x + (0x7FFF + ((x >> 16) & 1))) >> 16);
}

#endif
