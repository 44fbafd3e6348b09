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

/* exp as 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 (ln 2 split in
 * two parts for exactness) and a degree-6 Taylor polynomial on |r| <= ln2 / 2
 * (relative error < 2e-7); inputs are clamped to the float range so no lane
 * overflows. */
HL_INLINE __m256 exp8(__m256 x) {
    /* below -87.3 (and -inf, e.g. masked attention scores) the result is exactly 0 */
    __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n: n in [-126, 127] after the clamp, so the biased exponent is valid */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
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
