/* The row-wide exponential sum, sum of e^((w[i] - mx) * inv_t), with AVX2 and
 * FMA: the one loop of the sampler that touches every logit with real
 * arithmetic (log-probabilities, the top-p cut, temperature-only draws).
 * Compiled with -mavx2 -mfma (the Makefile's *_avx2.c rule) and called only
 * after a run-time CPU check; same reduction and polynomial as
 * hl_sample_expf4 in select.h, eight lanes at a time. */
#include "sample/select.h"

#include <immintrin.h>

static inline __m256 exp8(__m256 x) {
    /* maxps returns its second operand when the first is NaN: NaN -> -87 */
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_fnmadd_ps(r, _mm256_set1_ps(0.693145751953125f), x);
    f = _mm256_fnmadd_ps(r, _mm256_set1_ps(1.428606765330187e-06f), f);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(r), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}

double hl_sample_sum_exp_avx2(const float *w, int32_t n, float mx, float inv_t) {
    const __m256 vmx = _mm256_set1_ps(mx), vt = _mm256_set1_ps(inv_t);
    double total = 0.0;
    int32_t i = 0;
    while (i < n) {
        /* fold each 256-element block into a double: bounded rounding error */
        const int32_t end = n - i > 256 ? i + 256 : n;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (; i + 16 <= end; i += 16) {
            a0 = _mm256_add_ps(a0, exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(w + i), vmx), vt)));
            a1 = _mm256_add_ps(a1, exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(w + i + 8), vmx), vt)));
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_add_ps(a0, a1));
        for (int j = 0; j < 8; j++) total += lanes[j];
        for (; i < end; i++) total += hl_sample_expf((w[i] - mx) * inv_t);
    }
    return total;
}
