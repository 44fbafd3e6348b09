/* Scalar vector kernels (the portable path and the reference for the AVX2
 * ones): dot products, f16 conversion, RMS norm, softmax, gated activations,
 * elementwise add and scale, and the tiled-attention kernels (cpu.h gives
 * their exact arithmetic; these follow it literally). Single-threaded; callers split the work. */
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

static void v_f16_to_f32(float *dst, const hl_f16 *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = hl_f16_to_f32(src[i]);
}

static void v_q8_0_to_f32(float *dst, const void *src, int64_t n) {
    const hl_block_q8_0 *b = src;
    for (int64_t i = 0; i < n; i++) dst[i] = hl_f16_to_f32(b[i / HL_QK].d) * (float)b[i / HL_QK].qs[i % HL_QK];
}

/* the fixed lane reduction of the attention kernels (cpu.h) */
static float lanes8(const float *a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

static void v_attn_kt(float *kt, const float *k, int32_t j0, int32_t j1, int32_t hd) {
    for (int32_t d = 0; d < hd; d++)
        for (int32_t j = j0; j < j1; j++) kt[(int64_t)d * HL_ATTN_BK + j] = k[(int64_t)j * hd + d];
}

static void v_attn_qk(float *s, const float *q, int32_t nr, const float *kt, int32_t j0, int32_t j1, int32_t hd) {
    for (int32_t r = 0; r < nr; r++)
        for (int32_t j = j0; j < j1; j++) {
            float x = 0.0f;
            for (int32_t d = 0; d < hd; d++) x = fmaf(q[(int64_t)r * hd + d], kt[(int64_t)d * HL_ATTN_BK + j], x);
            s[(int64_t)r * HL_ATTN_BK + j] = x;
        }
}

static void v_attn_softmax(float *s, int32_t nr, float *m, float *l, float *corr) {
    for (int32_t r = 0; r < nr; r++) {
        float *x = s + (int64_t)r * HL_ATTN_BK, mx = m[r];
        for (int32_t j = 0; j < HL_ATTN_BK; j++) mx = x[j] > mx ? x[j] : mx;
        float c = mx == -INFINITY ? 0.0f : expf(m[r] - mx), a[2][8] = {{0}}, t[8];
        for (int32_t j = 0; j < HL_ATTN_BK; j++) {
            x[j] = x[j] == -INFINITY ? 0.0f : expf(x[j] - mx);
            a[(j / 8) % 2][j % 8] += x[j];
        }
        for (int i = 0; i < 8; i++) t[i] = a[0][i] + a[1][i];
        l[r] = l[r] * c + lanes8(t);
        m[r] = mx;
        corr[r] = c;
    }
}

static void v_attn_pv(float *const *out, int32_t nr, const float *p, const float *corr, const float *v, int32_t j0,
                      int32_t j1, int32_t hd) {
    for (int32_t r = 0; r < nr; r++) {
        float *o = out[r];
        for (int32_t i = 0; i < hd; i++) {
            float x = o[i] * corr[r];
            for (int32_t j = j0; j < j1; j++) x = fmaf(p[(int64_t)r * HL_ATTN_BK + j], v[(int64_t)j * hd + i], x);
            o[i] = x;
        }
    }
}

void hl_vec_ops_init_scalar(hl_vec_ops *v) {
    v->f16_to_f32 = v_f16_to_f32;
    v->q8_0_to_f32 = v_q8_0_to_f32;
    v->attn_kt = v_attn_kt;
    v->attn_qk = v_attn_qk;
    v->attn_softmax = v_attn_softmax;
    v->attn_pv = v_attn_pv;
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
