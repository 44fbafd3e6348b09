/* Scalar vector kernels (the portable path and the reference for the AVX2
 * ones): dot products, f16 conversion, RMS norm, softmax, gated activations,
 * elementwise add and scale. Single-threaded; callers split the work. */
#include "backend/cpu/cpu_impl.h"

#include <math.h>

static float v_dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float v_dot_f16(const hl_f16 *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += hl_f16_to_f32(a[i]) * b[i];
    return s;
}

static void v_axpy_f16(float *y, const hl_f16 *x, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * hl_f16_to_f32(x[i]);
}

static void v_to_f16(hl_f16 *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = hl_f32_to_f16(src[i]);
}

static void v_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0; /* double: n can be large and the mean must not lose the small terms */
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

static void v_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = fmaxf(mx, x[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static void v_silu_mul(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void v_gelu_mul(float *out, const float *gate, const float *up, int64_t n) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = 0.5f * g * (1.0f + tanhf(c * (g + 0.044715f * g * g * g))) * up[i];
    }
}

static void v_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void v_scale(float *y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}

static void v_attn_scores_f16(const void *const *k, int32_t n, const float *q, int64_t qs, int32_t nq, int32_t hd,
                              float scale, float *s, int64_t ss) {
    for (int32_t h = 0; h < nq; h++)
        for (int32_t p = 0; p < n; p++) s[h * ss + p] = v_dot_f16(k[p], q + h * qs, hd) * scale;
}

static void v_attn_wsum_f16(const void *const *v, int32_t n, const float *w, int64_t ws, int32_t nq, int32_t hd,
                            float *out, int64_t os) {
    for (int32_t h = 0; h < nq; h++)
        for (int32_t p = 0; p < n; p++) v_axpy_f16(out + h * os, v[p], w[h * ws + p], hd);
}

static void v_attn_scores_q8_0(const void *const *k, int32_t n, const float *q, int64_t qs, int32_t nq, int32_t hd,
                               float scale, float *s, int64_t ss) {
    for (int32_t h = 0; h < nq; h++)
        for (int32_t p = 0; p < n; p++) {
            const hl_block_q8_0 *b = k[p];
            float acc = 0.0f;
            for (int32_t i = 0; i < hd; i++) acc += hl_f16_to_f32(b[i / HL_QK].d) * b[i / HL_QK].qs[i % HL_QK] * q[h * qs + i];
            s[h * ss + p] = acc * scale;
        }
}

static void v_attn_wsum_q8_0(const void *const *v, int32_t n, const float *w, int64_t ws, int32_t nq, int32_t hd,
                             float *out, int64_t os) {
    for (int32_t h = 0; h < nq; h++)
        for (int32_t p = 0; p < n; p++) {
            const hl_block_q8_0 *b = v[p];
            for (int32_t i = 0; i < hd; i++)
                out[h * os + i] += w[h * ws + p] * hl_f16_to_f32(b[i / HL_QK].d) * b[i / HL_QK].qs[i % HL_QK];
        }
}

void hl_vec_ops_init_scalar(hl_vec_ops *v) {
    v->attn_scores_q8_0 = v_attn_scores_q8_0;
    v->attn_wsum_q8_0 = v_attn_wsum_q8_0;
    v->attn_scores_f16 = v_attn_scores_f16;
    v->attn_wsum_f16 = v_attn_wsum_f16;
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
