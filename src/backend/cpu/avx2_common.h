/* Small AVX2 helpers shared by the *_avx2.c files (include only from files
 * compiled with the AVX2 flags). The horizontal sum has one fixed order so
 * every kernel reduces its lanes identically (batch invariance). */
#ifndef HL_BACKEND_CPU_AVX2_COMMON_H
#define HL_BACKEND_CPU_AVX2_COMMON_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define HL_INLINE static inline __attribute__((always_inline))

HL_INLINE float hl_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

HL_INLINE float hl_h2f(uint16_t h) { return _cvtsh_ss(h); }
HL_INLINE uint16_t hl_ld16(const void *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
HL_INLINE uint32_t hl_ld32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#endif
