/* AVX2 activation quantization (f32 -> Q8_0 / Q8_1 / Q8_K). Performs exactly
 * the float operations of act_scalar.c (max |x|, d = amax / 127, id = 1 / d,
 * round-half-even(x * id)) so both produce identical bytes; sums for Q8_1's s
 * and Q8_K's bsums are exact integers. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

/* max |x| over n floats (n a multiple of 32) */
HL_INLINE float amax_n(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 floats * id, rounded, packed to 32 int8 in element order */
HL_INLINE __m256i quant32(const float *x, __m256 id) {
    __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i v = _mm256_packs_epi16(ab, cd);
    /* the packs interleave 128-bit lanes: restore element order */
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void act_q8_0(const float *x, void *vy, int64_t k) {
    hl_block_q8_0 *y = vy;
    for (int64_t b = 0; b < k / HL_QK; b++, x += HL_QK) {
        float d = amax_n(x, HL_QK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = hl_f32_to_f16(d);
        _mm256_storeu_si256((__m256i *)y[b].qs, quant32(x, _mm256_set1_ps(id)));
    }
}

HL_INLINE int hsum_i8(__m256i q) {
    __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static void act_q8_1(const float *x, void *vy, int64_t k) {
    hl_block_q8_1 *y = vy;
    for (int64_t b = 0; b < k / HL_QK; b++, x += HL_QK) {
        float d = amax_n(x, HL_QK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256i q = quant32(x, _mm256_set1_ps(id));
        _mm256_storeu_si256((__m256i *)y[b].qs, q);
        y[b].d = hl_f32_to_f16(d);
        y[b].s = hl_f32_to_f16(hl_f16_to_f32(y[b].d) * (float)hsum_i8(q));
    }
}

static void act_q8_K(const float *x, void *vy, int64_t k) {
    hl_block_q8_K *y = vy;
    for (int64_t b = 0; b < k / HL_QK_K; b++, x += HL_QK_K) {
        float d = amax_n(x, HL_QK_K) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = d;
        __m256 idv = _mm256_set1_ps(id);
        for (int c = 0; c < 8; c++) {
            __m256i q = quant32(x + 32 * c, idv);
            _mm256_storeu_si256((__m256i *)(y[b].qs + 32 * c), q);
            /* sums of 16: bytes -> pairs (i16) -> i32 of 4, then pack pairs of those */
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); /* 8 sums of 4 */
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            __m128i t = _mm_hadd_epi32(lo, hi); /* sums of 8: [0-7,8-15 | 16-23,24-31] */
            t = _mm_hadd_epi32(t, t);           /* sums of 16 */
            y[b].bsums[2 * c] = (int16_t)_mm_extract_epi32(t, 0);
            y[b].bsums[2 * c + 1] = (int16_t)_mm_extract_epi32(t, 1);
        }
    }
}

void hl_avx2_init_act(hl_cpu_kernels *kt) {
    kt->act[HL_TYPE_Q8_0] = act_q8_0;
    kt->act[HL_TYPE_Q8_1] = act_q8_1;
    kt->act[HL_TYPE_Q8_K] = act_q8_K;
}
