// ATTN's combine pass, after attn.comp's split items: for one query head of
// one token per work group of 64, folds the token's split partials (m, l,
// acc[hdv]) in split order into (M, L, O) and writes the normalized output,
// with the head's sink when there is one -- attn_fold.glsl's code, the same
// a work group of attn.comp runs when it folds its splits itself, so the
// output has the same bits either way. Each invocation owns the value dims
// d = tid + 64 j and repeats the row's scalar fold (identical in all).
// Bindings: 0 the partials, 3 meta (uint), 4 out (rows of ldo), 5 sinks (float per query head).
// meta at entries_at: [entry][4] = {token, splits, record of split 0 and
// head 0, records between splits}; a record is hdv + 2 floats: m, l, acc.
#version 450
#include "attn_fold.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float part[]; };
layout(std430, binding = 3) readonly buffer M { uint meta[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) readonly buffer S { float sink[]; };
layout(push_constant) uniform P { uint n_entries, entries_at, n_head, hdv, ldo, sinks; } p;

void main() {
    uint id = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (id >= p.n_entries * p.n_head) return;
    uint e = id / p.n_head, h = id % p.n_head, tid = gl_LocalInvocationID.x;
    uint at = p.entries_at + 4u * e;
    uint t = meta[at], ns = meta[at + 1u], rec0 = meta[at + 2u] + h, stride = meta[at + 3u];
    float O[4] = float[4](0.0, 0.0, 0.0, 0.0);
    float Mx = NEG_INF, Lx = 0.0;
    for (uint s = 0u; s < ns; s++) {
        uint base = (rec0 + s * stride) * (p.hdv + 2u);
        float m = part[base];
        if (m == NEG_INF) continue;
        float a, b;
        fold_factors(Mx, m, a, b);
        Lx = fold_sum(Lx, a, part[base + 1u], b);
        Mx = max(Mx, m);
        for (uint j = 0u; j < 4u; j++) {
            uint d = tid + 64u * j;
            if (d < p.hdv) O[j] = fold_sum(O[j], a, part[base + 2u + d], b);
        }
    }
    for (uint j = 0u; j < 4u; j++) {
        uint d = tid + 64u * j;
        if (d < p.hdv) o[t * p.ldo + h * p.hdv + d] = attn_final(O[j], Lx, Mx, p.sinks != 0u, p.sinks != 0u ? sink[h] : 0.0);
    }
}
