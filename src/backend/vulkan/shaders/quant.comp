// Activations to the 8-bit formats the quantized matrix products take, as
// the CPU's activation converters do it (backend/cpu/act_scalar.c): per
// block, d = max|x| / 127 and q = round-half-even(x * (1/d)) clamped to
// +-127, every step bit-exact with the CPU (common.glsl's div_rn and
// round_even). One invocation per block.
//   ACT_Q8_0  blocks of 32, d used rounded to float16
//   ACT_Q8_1  the same, plus s = f16(d * sum(q)) per block (Q4_1 / Q5_1)
//   ACT_Q8_K  blocks of 256, d as float, plus the sum of each 16 q (K-quants)
// Bindings: 0 x (float, rows of ldx), 1 q (int8, rows of k), 2 scales:
// d [m][k / block], then the extras at m * (k / block): s [m][k / 32] (Q8_1)
// or the 16-sums [m][k / 256][16] (Q8_K), as floats (exact: |sum| <= 2032).
#version 450
#extension GL_EXT_shader_8bit_storage : require
#include "common.glsl"

#if defined(ACT_Q8_K)
const uint BLOCK = 256u;
#else
const uint BLOCK = 32u;
#endif

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Q { int8_t q[]; };
layout(std430, binding = 2) writeonly buffer D { float d[]; };
layout(push_constant) uniform P { uint k, m, ldx; } p;

void main() {
    uint nbr = p.k / BLOCK;
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= nbr * p.m) return;
    uint row = gid / nbr, b = gid % nbr;
    uint xo = row * p.ldx + b * BLOCK, qo = row * p.k + b * BLOCK;
    float amax = 0.0;
    for (uint j = 0u; j < BLOCK; j++) amax = max(amax, abs(x[xo + j]));
    float dv = div_rn(amax, 127.0);
    float id = dv == 0.0 ? 0.0 : div_rn(1.0, dv);
    int sum = 0;
    for (uint j = 0u; j < BLOCK; j++) {
        int v = int(clamp(round_even(x[xo + j] * id), -127.0, 127.0));
        q[qo + j] = int8_t(v);
        sum += v;
#if defined(ACT_Q8_K)
        if ((j & 15u) == 15u) {
            d[p.m * nbr + gid * 16u + j / 16u] = float(sum);
            sum = 0;
        }
#endif
    }
#if defined(ACT_Q8_K)
    d[gid] = dv;
#else
    float dr = f16_round(dv);
    d[gid] = dr;
#if defined(ACT_Q8_1)
    d[p.m * nbr + gid] = unpackHalf2x16(f32_to_f16_bits(dr * float(sum))).x;
#endif
#endif
}
