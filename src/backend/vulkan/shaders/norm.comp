// NORM (backend.h): per group of a row, RMS (x / sqrt(mean(x^2) + eps)) or
// LayerNorm ((x - mean) / sqrt(var + eps)), then * w (+ b); a weight as
// long as the group repeats per group, one as long as the row spans it.
// One work group of 64 per (row, group); sums by strided shares and a
// fixed tree, so a row's result never depends on the others.
// Bindings: 0 x (rows of ldx), 1 w, 2 b, 4 y (rows of ldy).
#version 450

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(std430, binding = 4) buffer Y { float y[]; };
// kind 0 rms, 1 layer; wmode/bmode 0 none, 1 per group, 2 per row
layout(push_constant) uniform P { uint n, group, rows, ldx, ldy, kind, wmode, bmode; float eps; } p;

shared float part[64];

float reduce(float v, uint tid) {
    part[tid] = v;
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    float r = part[0];
    barrier();
    return r;
}

void main() {
    uint groups = p.n / p.group;
    uint id = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (id >= groups * p.rows) return; // uniform across the group
    uint r = id / groups, g0 = (id % groups) * p.group, tid = gl_LocalInvocationID.x;
    uint xo = r * p.ldx + g0, yo = r * p.ldy + g0;
    float mean = 0.0;
    if (p.kind == 1u) {
        float s = 0.0;
        for (uint i = tid; i < p.group; i += 64u) s += x[xo + i];
        mean = reduce(s, tid) / float(p.group);
    }
    float ss = 0.0;
    for (uint i = tid; i < p.group; i += 64u) {
        float d = x[xo + i] - mean;
        ss += d * d;
    }
    float inv = 1.0 / sqrt(reduce(ss, tid) / float(p.group) + p.eps);
    for (uint i = tid; i < p.group; i += 64u) {
        float v = (x[xo + i] - mean) * inv;
        if (p.wmode != 0u) v *= w[p.wmode == 1u ? i : g0 + i];
        if (p.bmode != 0u) v += b[p.bmode == 1u ? i : g0 + i];
        y[yo + i] = v;
    }
}
