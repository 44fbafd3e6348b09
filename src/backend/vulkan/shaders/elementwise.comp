// The plan's elementwise ops over rows (backend.h): ADD y += x (x * cap
// when cap is not 0: a residual scale), GLU y = act(x) * x2 (act 5, the
// clamped SwiGLU of gpt-oss: g = min(x, limit), u = clamp(x2, -limit,
// limit), y = (u + 1) * g * sigmoid(alpha * g), as the CPU's cpu_glu), ACT
// y = act(x) (cap: the softcap or the scale factor), and a plain copy. Then
// the steps of HL_OP_MOE (vk_ops.c op_moe): EXPERT_BIAS y[r] += x[e * n ..]
// for row r's expert e = idx[2r] (binding 5), COMBINE y[t] = sum over ranks
// j < k of x2[t * k + j] * x[t * k + j] in rank order (the routed experts'
// weighted sum), GATED_ADD y[r] += sigmoid(x2[r]) * x[r] (the shared expert
// with its gate). One invocation per element.
// Bindings: 0 x (rows of ldx), 1 x2 (rows of ldx), 4 y (rows of ldy), 5 idx.
#version 450
#include "common.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X2 { float x2[]; };
layout(std430, binding = 4) buffer Y { float y[]; };
layout(std430, binding = 5) readonly buffer I { uint idx[]; };
// mode 0 add, 1 glu, 2 act, 3 copy, 4 expert bias, 5 combine, 6 gated add
layout(push_constant) uniform P { uint n, rows, ldx, ldy, mode, act; float cap, alpha, limit; uint k; } p;

void main() {
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= p.n * p.rows) return;
    uint r = gid / p.n, i = gid % p.n, ix = r * p.ldx + i, iy = r * p.ldy + i;
    if (p.mode == 0u) y[iy] += p.cap != 0.0 ? x[ix] * p.cap : x[ix];
    else if (p.mode == 1u && p.act == 5u) {
        precise float g = min(x[ix], p.limit), u = min(max(x2[ix], -p.limit), p.limit);
        precise float v = (u + 1.0) * (g / (1.0 + exp(-p.alpha * g)));
        y[iy] = v;
    } else if (p.mode == 1u) y[iy] = act_fn(p.act, p.cap, x[ix]) * x2[ix];
    else if (p.mode == 2u) y[iy] = act_fn(p.act, p.cap, x[ix]);
    else if (p.mode == 4u) y[iy] += x[idx[2u * r] * p.n + i];
    else if (p.mode == 5u) {
        precise float o = 0.0;
        for (uint j = 0u; j < p.k; j++) o += x2[r * p.k + j] * x[(r * p.k + j) * p.ldx + i];
        y[iy] = o;
    } else if (p.mode == 6u) {
        precise float gs = 1.0 / (1.0 + exp(-x2[r]));
        y[iy] += gs * x[ix];
    } else y[iy] = x[ix];
}
