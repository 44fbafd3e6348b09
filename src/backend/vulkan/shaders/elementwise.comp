// The plan's elementwise ops over rows (backend.h): ADD y += x (x * cap
// when cap is not 0: a residual scale), GLU y = act(x) * x2, ACT y = act(x)
// (cap: the softcap or the scale factor), and a plain copy. One invocation per element.
// Bindings: 0 x (rows of ldx), 1 x2 (rows of ldx), 4 y (rows of ldy).
#version 450
#include "common.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X2 { float x2[]; };
layout(std430, binding = 4) buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, rows, ldx, ldy, mode, act; float cap; } p; // mode 0 add, 1 glu, 2 act, 3 copy

void main() {
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= p.n * p.rows) return;
    uint r = gid / p.n, i = gid % p.n, ix = r * p.ldx + i, iy = r * p.ldy + i;
    if (p.mode == 0u) y[iy] += p.cap != 0.0 ? x[ix] * p.cap : x[ix];
    else if (p.mode == 1u) y[iy] = act_fn(p.act, p.cap, x[ix]) * x2[ix];
    else if (p.mode == 2u) y[iy] = act_fn(p.act, p.cap, x[ix]);
    else y[iy] = x[ix];
}
