// GATHER (backend.h) and any row copy: y[r] = x[idx[r]]. One invocation per element.
// Bindings: 0 x (rows of ldx), 1 idx (uint), 4 y (rows of ldy).
#version 450

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer I { uint idx[]; };
layout(std430, binding = 4) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, rows, ldx, ldy; } p;

void main() {
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= p.n * p.rows) return;
    uint r = gid / p.n, i = gid % p.n;
    y[r * p.ldy + i] = x[idx[r] * p.ldx + i];
}
