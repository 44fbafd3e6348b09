// KV_STORE (backend.h): each token's K and V head rows into its pool slot,
// in the pool's type, byte for byte what the CPU writes: F16 by the CPU's
// rounding (f32_to_f16_bits), Q8_0 by the activation quantizer's rule
// (the same code as quant_q8_0.comp). slots[t] = block * block_size +
// offset, from the host. One invocation per (token, head, unit): a pair of
// F16 elements or a 32-element Q8_0 block; K units first, then V.
// Build defines: KV_F16 or KV_Q8_0.
// Bindings: 0 k (rows of ldk), 1 v (rows of ldv), 2 slots (uint), 3 K pool layer, 4 V pool layer.
#version 450
#extension GL_EXT_shader_8bit_storage : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer K { float k[]; };
layout(std430, binding = 1) readonly buffer V { float v[]; };
layout(std430, binding = 2) readonly buffer S { uint slots[]; };
#if defined(KV_F16)
layout(std430, binding = 3) writeonly buffer PK { uint pk[]; };
layout(std430, binding = 4) writeonly buffer PV { uint pv[]; };
#else
layout(std430, binding = 3) writeonly buffer PK { uint8_t pk[]; };
layout(std430, binding = 4) writeonly buffer PV { uint8_t pv[]; };
#endif
layout(push_constant) uniform P { uint rows, nkv, hdk, hdv, ldk, ldv; } p;

#if defined(KV_F16)
const uint UNIT = 2u;
#else
const uint UNIT = 32u;
#endif

void main() {
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint uk = p.hdk / UNIT, uv = p.hdv / UNIT, per = p.nkv * (uk + uv);
    if (gid >= p.rows * per) return;
    uint t = gid / per, r = gid % per;
    bool isk = r < p.nkv * uk;
    if (!isk) r -= p.nkv * uk;
    uint units = isk ? uk : uv, hd = isk ? p.hdk : p.hdv;
    uint h = r / units, u = r % units;
    uint src = t * (isk ? p.ldk : p.ldv) + h * hd + u * UNIT;
    uint row = slots[t] * p.nkv + h; // the head row's index in the layer
#if defined(KV_F16)
    float a = isk ? k[src] : v[src], b = isk ? k[src + 1u] : v[src + 1u];
    uint word = f32_to_f16_bits(a) | (f32_to_f16_bits(b) << 16);
    uint at = (row * hd + u * 2u) / 2u;
    if (isk) pk[at] = word;
    else pv[at] = word;
#else
    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(isk ? k[src + j] : v[src + j]));
    float dv = div_rn(amax, 127.0);
    float id = dv == 0.0 ? 0.0 : div_rn(1.0, dv);
    uint at = (row * units + u) * 34u, hb = f32_to_f16_bits(dv);
    if (isk) {
        pk[at] = uint8_t(hb & 255u);
        pk[at + 1u] = uint8_t(hb >> 8);
        for (uint j = 0u; j < 32u; j++) pk[at + 2u + j] = uint8_t(int(clamp(round_even(k[src + j] * id), -127.0, 127.0)));
    } else {
        pv[at] = uint8_t(hb & 255u);
        pv[at + 1u] = uint8_t(hb >> 8);
        for (uint j = 0u; j < 32u; j++) pv[at + 2u + j] = uint8_t(int(clamp(round_even(v[src + j] * id), -127.0, 127.0)));
    }
#endif
}
