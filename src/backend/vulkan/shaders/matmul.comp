// out[i][j] = sum_k w[j][k] x[i][k] (+ bias[j]) for m activation rows and
// n weight rows, one work group of 64 per weight row: each invocation sums
// a strided share of the blocks, then a fixed-order tree adds the shares,
// so a row's result never depends on m or on the other rows (batch
// invariance). Quantized weights take Q8_0 activations (quant_q8_0.comp)
// and sum each block in integers, as the CPU's scalar oracle does; float
// weights take float activations.
// Build defines: TYPE_F32, TYPE_F16, TYPE_Q8_0 or TYPE_Q4_0.
// Bindings: 0 w, 1 x (float) or q (int8), 2 d (float scales of q), 3 bias, 4 out (rows of ldo).
#version 450
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 64) in;
#if defined(TYPE_F32)
layout(std430, binding = 0) readonly buffer W { float w[]; };
#elif defined(TYPE_F16)
layout(std430, binding = 0) readonly buffer W { uint16_t w[]; };
#else
layout(std430, binding = 0) readonly buffer W { uint8_t w[]; };
#endif
#if defined(TYPE_F32) || defined(TYPE_F16)
layout(std430, binding = 1) readonly buffer X { float x[]; };
#else
layout(std430, binding = 1) readonly buffer X { int8_t x[]; };
layout(std430, binding = 2) readonly buffer D { float xd[]; };
#endif
layout(std430, binding = 3) readonly buffer B { float bias[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint k, n, m, ldx, ldo, has_bias; } p;

shared float part[64];

float w_half(uint at) { return unpackHalf2x16(uint(w[at]) | (uint(w[at + 1u]) << 8)).x; }

// one block (or element) of row j against activation row i
float dot_unit(uint j, uint i, uint u) {
#if defined(TYPE_F32)
    return w[j * p.k + u] * x[i * p.ldx + u];
#elif defined(TYPE_F16)
    return unpackHalf2x16(uint(w[j * p.k + u])).x * x[i * p.ldx + u];
#elif defined(TYPE_Q8_0)
    uint wo = (j * (p.k / 32u) + u) * 34u, xo = i * p.k + u * 32u;
    int s = 0;
    for (uint t = 0u; t < 32u; t++) s += (int(uint(w[wo + 2u + t]) ^ 0x80u) - 128) * int(x[xo + t]);
    return w_half(wo) * xd[i * (p.k / 32u) + u] * float(s);
#elif defined(TYPE_Q4_0)
    uint wo = (j * (p.k / 32u) + u) * 18u, xo = i * p.k + u * 32u;
    int s = 0;
    for (uint t = 0u; t < 16u; t++) {
        uint b = uint(w[wo + 2u + t]);
        s += (int(b & 15u) - 8) * int(x[xo + t]) + (int(b >> 4) - 8) * int(x[xo + 16u + t]);
    }
    return w_half(wo) * xd[i * (p.k / 32u) + u] * float(s);
#endif
}

void main() {
    uint j = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (j >= p.n) return; // uniform across the group
    uint tid = gl_LocalInvocationID.x;
#if defined(TYPE_F32) || defined(TYPE_F16)
    uint units = p.k;
#else
    uint units = p.k / 32u;
#endif
    for (uint i = 0u; i < p.m; i++) {
        float acc = 0.0;
        for (uint u = tid; u < units; u += 64u) acc += dot_unit(j, i, u);
        part[tid] = acc;
        barrier();
        for (uint s = 32u; s > 0u; s >>= 1) {
            if (tid < s) part[tid] += part[tid + s];
            barrier();
        }
        if (tid == 0u) o[i * p.ldo + j] = part[0] + (p.has_bias != 0u ? bias[j] : 0.0);
        barrier();
    }
}
