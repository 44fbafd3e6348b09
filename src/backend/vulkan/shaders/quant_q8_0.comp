// Activations to Q8_0 for the quantized matrix products, as the CPU's
// activation converter does it (backend/cpu/act_scalar.c): per block of
// 32, d = max|x| / 127 and q = round-half-even(x * (1/d)) clamped to
// +-127; d is used rounded to float16, as the CPU stores it. One
// invocation per block.
// Bindings: 0 x (float, rows of ldx), 1 q (int8, rows of k), 2 d (float, rows of k/32).
#version 450
#extension GL_EXT_shader_8bit_storage : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Q { int8_t q[]; };
layout(std430, binding = 2) writeonly buffer D { float d[]; };
layout(push_constant) uniform P { uint k, m, ldx; } p;

void main() {
    uint nbr = p.k / 32u;
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= nbr * p.m) return;
    uint row = gid / nbr, b = gid % nbr;
    uint xo = row * p.ldx + b * 32u, qo = row * p.k + b * 32u;
    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(x[xo + j]));
    float dv = div_rn(amax, 127.0);
    float id = dv == 0.0 ? 0.0 : div_rn(1.0, dv);
    for (uint j = 0u; j < 32u; j++) q[qo + j] = int8_t(int(clamp(round_even(x[xo + j] * id), -127.0, 127.0)));
    d[row * nbr + b] = f16_round(dv);
}
