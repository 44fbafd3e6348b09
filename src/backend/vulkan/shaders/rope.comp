// ROPE (backend.h), in place: the first n_rot dims of every head of a row
// rotated by the token's angles. cos and sin come from the host, rounded
// to float from double angles as the reference computes them, [row][n_rot/2]
// pairs. style 0 NORM (x[2i], x[2i+1]), 1 NEOX (x[i], x[i + n_rot/2]).
// One invocation per (row, head, pair).
// Bindings: 0 cs (cos, sin pairs), 4 x (rows of ld).
#version 450

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer CS { vec2 cs[]; };
layout(std430, binding = 4) buffer X { float x[]; };
layout(push_constant) uniform P { uint rows, n_head, head_dim, half_rot, ld, style; } p;

void main() {
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= p.rows * p.n_head * p.half_rot) return;
    uint i = gid % p.half_rot, h = (gid / p.half_rot) % p.n_head, r = gid / (p.half_rot * p.n_head);
    uint base = r * p.ld + h * p.head_dim;
    uint i0 = p.style == 0u ? 2u * i : i, i1 = p.style == 0u ? 2u * i + 1u : i + p.half_rot;
    vec2 c = cs[r * p.half_rot + i];
    float x0 = x[base + i0], x1 = x[base + i1];
    precise float y0 = x0 * c.x - x1 * c.y;
    precise float y1 = x0 * c.y + x1 * c.x;
    x[base + i0] = y0;
    x[base + i1] = y1;
}
