/* AVX2 vector kernels (exp8 is in avx2_common.h). SiLU and the
 * tanh-GELU are both x * sigmoid(.) (0.5 (1 + tanh u) = 1 / (1 + e^-2u)).
 * Tails shorter than a vector go through the same vector code on a padded
 * copy, so every element gets the same arithmetic. RMS norm accumulates its
 * sum of squares in double, as the scalar reference does. */
#include "backend/cpu/avx2_common.h"
#include "backend/cpu/cpu_impl.h"

#include <math.h>

/* x / (1 + e^(-k x)) */
HL_INLINE __m256 xsigmoid8(__m256 x, __m256 kx) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), kx));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static float v_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hl_hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float v_dot_f16(const hl_f16 *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
    float s = hl_hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += hl_h2f(a[i]) * b[i];
    return s;
}

static void v_axpy_f16(float *y, const hl_f16 *x, float a, int64_t n) {
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, hl_h2f(x[i]), y[i]);
}

static void v_to_f16(hl_f16 *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = hl_f32_to_f16(src[i]);
}

static void v_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), b = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        s0 = _mm256_fmadd_pd(a, a, s0);
        s1 = _mm256_fmadd_pd(b, b, s1);
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    __m256 sv = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sv);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

static void v_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float mx = x[0];
    int64_t i = 0;
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        __m128 t = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        t = _mm_max_ps(t, _mm_movehl_ps(t, t));
        t = _mm_max_ss(t, _mm_movehdup_ps(t));
        mx = _mm_cvtss_f32(t);
    }
    for (; i < n; i++) mx = fmaxf(mx, x[i]);
    __m256 mv = _mm256_set1_ps(mx), sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        float tmp[8];
        int r = (int)(n - i);
        for (int t = 0; t < 8; t++) tmp[t] = t < r ? x[i + t] : -INFINITY;
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(tmp), mv));
        e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_loadu_ps(tmp), _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ));
        _mm256_storeu_ps(tmp, e);
        for (int t = 0; t < r; t++) x[i + t] = tmp[t];
        sum = _mm256_add_ps(sum, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hl_hsum8(sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= _mm256_cvtss_f32(inv);
}

/* out = g * sigmoid(k(g)) * up over n elements, tails through a padded copy. */
HL_INLINE void gated(float *out, const float *gate, const float *up, int64_t n, int gelu) {
    int64_t i = 0;
    const __m256 c1 = _mm256_set1_ps(2.0f * 0.7978845608028654f), c3 = _mm256_set1_ps(0.044715f);
    for (;;) {
        float gt[8], ut[8];
        const float *gp = gate + i, *upp = up + i;
        int r = n - i >= 8 ? 8 : (int)(n - i);
        if (r <= 0) break;
        if (r < 8) {
            for (int t = 0; t < 8; t++) gt[t] = t < r ? gate[i + t] : 0.0f, ut[t] = t < r ? up[i + t] : 0.0f;
            gp = gt;
            upp = ut;
        }
        __m256 g = _mm256_loadu_ps(gp), kx = g;
        if (gelu) kx = _mm256_mul_ps(c1, _mm256_fmadd_ps(_mm256_mul_ps(c3, g), _mm256_mul_ps(g, g), g));
        __m256 v = _mm256_mul_ps(xsigmoid8(g, kx), _mm256_loadu_ps(upp));
        if (r == 8)
            _mm256_storeu_ps(out + i, v);
        else {
            _mm256_storeu_ps(gt, v);
            for (int t = 0; t < r; t++) out[i + t] = gt[t];
        }
        i += r;
    }
}
static void v_silu_mul(float *out, const float *g, const float *u, int64_t n) { gated(out, g, u, n, 0); }
static void v_gelu_mul(float *out, const float *g, const float *u, int64_t n) { gated(out, g, u, n, 1); }

static void v_add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

static void v_scale(float *y, float s, int64_t n) {
    __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), sv));
    for (; i < n; i++) y[i] *= s;
}

void hl_avx2_init_vec(hl_cpu_kernels *kt) {
    hl_vec_ops *v = &kt->vec;
    v->dot_f32 = v_dot_f32;
    v->dot_f16 = v_dot_f16;
    v->axpy_f16 = v_axpy_f16;
    v->to_f16 = v_to_f16;
    v->rmsnorm = v_rmsnorm;
    v->softmax = v_softmax;
    v->silu_mul = v_silu_mul;
    v->gelu_mul = v_gelu_mul;
    v->add = v_add;
    v->scale = v_scale;
}
