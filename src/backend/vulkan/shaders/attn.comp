// ATTN (backend.h) over the paged pool: out = softmax(scale * q.k, masked)
// . v for one query head of one token per work group of 64. The host gives
// each token its visible positions [start, end] (causal, window or
// bidirectional already decided) and where its sequence's block table
// starts in meta. Pass 1: each invocation scores a strided share of the
// positions, a tree takes the max; pass 2: chunks of 64 positions, each
// invocation scores one, then each sums exp(score - max) * v for the value
// dims it owns (d = tid + 64 j) in position order. Every sum has a fixed
// order, so a token's result does not depend on the rest of the batch.
// Attention sinks (gpt-oss; sinks != 0): head h's logit sink[h] joins the
// max and, as exp(sink - max) without a value, the denominator (last, as
// the reference adds it).
// Build defines: KV_F16 or KV_Q8_0.
// Bindings: 0 q (rows of ldq), 1 K pool layer, 2 V pool layer, 3 meta (uint), 4 out (rows of ldo),
// 5 sinks (float per query head).
// meta: [token][4] = {start, end, table offset, 0}, then the block tables.
#version 450
#extension GL_EXT_shader_8bit_storage : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
#if defined(KV_F16)
layout(std430, binding = 1) readonly buffer PK { uint pk[]; };
layout(std430, binding = 2) readonly buffer PV { uint pv[]; };
#else
layout(std430, binding = 1) readonly buffer PK { uint8_t pk[]; };
layout(std430, binding = 2) readonly buffer PV { uint8_t pv[]; };
#endif
layout(std430, binding = 3) readonly buffer M { uint meta[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) readonly buffer S { float sink[]; };
layout(push_constant) uniform P { uint rows, n_head, nkv, hdk, hdv, ldq, ldo, block_size; float scale, softcap; uint sinks; } p;

shared float sq[256];
shared float sc[64];
shared float red[64];

#if defined(KV_F16)
float kv_at(uint which, uint row, uint hd, uint i) { // element i of head row `row`
    uint e = row * hd + i;
    uint w = which == 0u ? pk[e >> 1] : pv[e >> 1];
    return unpackHalf2x16(w)[e & 1u];
}
#else
float kv_at(uint which, uint row, uint hd, uint i) {
    uint at = (row * (hd / 32u) + i / 32u) * 34u;
    uint lo = which == 0u ? uint(pk[at]) : uint(pv[at]), hi = which == 0u ? uint(pk[at + 1u]) : uint(pv[at + 1u]);
    uint b = which == 0u ? uint(pk[at + 2u + i % 32u]) : uint(pv[at + 2u + i % 32u]);
    return unpackHalf2x16(lo | (hi << 8)).x * float(int(b ^ 0x80u) - 128);
}
#endif

uint row_of(uint tbl, uint pos, uint kvh) {
    uint slot = meta[tbl + pos / p.block_size] * p.block_size + pos % p.block_size;
    return slot * p.nkv + kvh;
}

float score(uint tbl, uint pos, uint kvh) {
    uint row = row_of(tbl, pos, kvh);
    float s = 0.0;
    for (uint i = 0u; i < p.hdk; i++) s += sq[i] * kv_at(0u, row, p.hdk, i);
    s *= p.scale;
    if (p.softcap > 0.0) s = p.softcap * tanh_safe(s / p.softcap);
    return s;
}

void main() {
    uint id = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (id >= p.rows * p.n_head) return; // uniform across the group
    uint t = id / p.n_head, h = id % p.n_head, tid = gl_LocalInvocationID.x;
    uint kvh = h / (p.n_head / p.nkv);
    uint start = meta[4u * t], end = meta[4u * t + 1u], tbl = meta[4u * t + 2u];
    for (uint i = tid; i < p.hdk; i += 64u) sq[i] = q[t * p.ldq + h * p.hdk + i];
    barrier();
    float mx = -1.0 / 0.0;
    for (uint pos = start + tid; pos <= end; pos += 64u) mx = max(mx, score(tbl, pos, kvh));
    red[tid] = mx;
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    mx = red[0];
    if (p.sinks != 0u) mx = max(mx, sink[h]);
    float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
    float sum = 0.0;
    for (uint c = start; c <= end; c += 64u) {
        uint pos = c + tid;
        sc[tid] = pos <= end ? exp(score(tbl, pos, kvh) - mx) : 0.0;
        barrier();
        uint n = min(64u, end - c + 1u);
        for (uint j = 0u; j < n; j++) sum += sc[j];
        for (uint j = 0u; j < 4u; j++) {
            uint d = tid + 64u * j;
            if (d >= p.hdv) break;
            for (uint u = 0u; u < n; u++) acc[j] += sc[u] * kv_at(1u, row_of(tbl, c + u, kvh), p.hdv, d);
        }
        barrier();
    }
    if (p.sinks != 0u) sum += exp(sink[h] - mx);
    for (uint j = 0u; j < 4u; j++) {
        uint d = tid + 64u * j;
        if (d < p.hdv) o[t * p.ldo + h * p.hdv + d] = acc[j] / sum;
    }
}
