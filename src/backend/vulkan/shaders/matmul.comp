// out[i][j] = sum_k w[j][k] x[i][k] (+ bias[j]) for m activation rows and
// n weight rows, one work group of 64 per weight row: each invocation sums
// a strided share of the units (blocks, or elements of float weights),
// then a fixed-order tree adds the shares, so a row's result never depends
// on m or on the other rows (batch invariance). Quantized weights take the
// 8-bit activations of quant.comp and sum each block in integers exactly as
// the CPU's scalar oracle does (backend/cpu/dot_scalar.c); float weights
// take float activations. Each block's value is the oracle's expression in
// its order (precise: never contracted into fma), so a one-block row is the
// oracle's to the bit. Block layouts: quant/quant.h. Devices with subgroup
// arithmetic run matvec.comp instead for the types it has (vk_compute.c).
// Build defines: one TYPE_* (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
// IQ4_NL IQ4_XS MXFP4; the last three: 16-value tables, as dot_scalar.c).
// Bindings: 0 w, 1 x (float) or q (int8), 2 activation scales (quant.comp's
// layout), 3 bias, 4 out (rows of ldo).
// With -DMOE (the routed experts, HL_OP_MOE): w holds n_expert slices of n
// rows, and output row s (of `slots`) is slice idx[2s] against activation
// row idx[2s + 1] (gathered; else row s itself) (binding 5; no bias), a
// work group per weight row and chunk of CHUNK output rows. Each row is summed exactly as a
// dense row is, so a token's rows do not depend on the rest of the batch.
#version 450
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_16bit_storage : require

#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#define FLOAT_W 1
#endif
#if defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q4_K) || defined(TYPE_Q5_K) || defined(TYPE_Q6_K)
#define K_QUANT 1
#endif

layout(local_size_x = 64) in;
#if defined(TYPE_F32)
layout(std430, binding = 0) readonly buffer W { float w[]; };
#elif defined(FLOAT_W)
layout(std430, binding = 0) readonly buffer W { uint16_t w[]; };
#else
layout(std430, binding = 0) readonly buffer W { uint8_t w[]; };
#endif
#if defined(FLOAT_W)
layout(std430, binding = 1) readonly buffer X { float x[]; };
#else
layout(std430, binding = 1) readonly buffer X { int8_t x[]; };
layout(std430, binding = 2) readonly buffer D { float xd[]; };
#endif
layout(std430, binding = 3) readonly buffer B { float bias[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
#if defined(MOE)
layout(std430, binding = 5) readonly buffer I { uint idx[]; };
layout(push_constant) uniform P { uint k, n, m, ldx, ldo, has_bias, slots, gathered; } p;
#else
layout(push_constant) uniform P { uint k, n, m, ldx, ldo, has_bias; } p;
#endif

shared float part[64];

#if !defined(FLOAT_W)
float w_half(uint at) { return unpackHalf2x16(uint(w[at]) | (uint(w[at + 1u]) << 8)).x; }
uint wb(uint at) { return uint(w[at]); }
int xa(uint at) { return int(x[at]); }
#endif

#if defined(TYPE_Q4_0)
const uint UNIT = 32u, WBYTES = 18u;
#elif defined(TYPE_Q4_1)
const uint UNIT = 32u, WBYTES = 20u;
#elif defined(TYPE_Q5_0)
const uint UNIT = 32u, WBYTES = 22u;
#elif defined(TYPE_Q5_1)
const uint UNIT = 32u, WBYTES = 24u;
#elif defined(TYPE_Q8_0)
const uint UNIT = 32u, WBYTES = 34u;
#elif defined(TYPE_Q2_K)
const uint UNIT = 256u, WBYTES = 84u;
#elif defined(TYPE_Q3_K)
const uint UNIT = 256u, WBYTES = 110u;
#elif defined(TYPE_Q4_K)
const uint UNIT = 256u, WBYTES = 144u;
#elif defined(TYPE_Q5_K)
const uint UNIT = 256u, WBYTES = 176u;
#elif defined(TYPE_Q6_K)
const uint UNIT = 256u, WBYTES = 210u;
#elif defined(TYPE_IQ4_NL)
const uint UNIT = 32u, WBYTES = 18u;
#elif defined(TYPE_MXFP4)
const uint UNIT = 32u, WBYTES = 17u;
#elif defined(TYPE_IQ4_XS)
const uint UNIT = 256u, WBYTES = 136u;
#else
const uint UNIT = 1u, WBYTES = 0u;
#endif

#if !defined(FLOAT_W)
// block u of activation row i: its scale, and (Q8_1) its s or (Q8_K) its 16-sums
float xscale(uint i, uint u) { return xd[i * (p.k / UNIT) + u]; }
float xextra(uint i, uint u) { return xd[p.m * (p.k / UNIT) + i * (p.k / UNIT) + u]; }
int xbsum(uint i, uint u, uint g) { return int(xd[p.m * (p.k / UNIT) + (i * (p.k / UNIT) + u) * 16u + g]); }

// Q5: the 32 high bits of a block, from 4 bytes at `at`
uint qh32(uint at) { return wb(at) | (wb(at + 1u) << 8) | (wb(at + 2u) << 16) | (wb(at + 3u) << 24); }

// the 6-bit scale and min of sub-block jj of a Q4_K / Q5_K block, from the 12 bytes at `at`
void k4_scale(uint at, uint jj, out int sc, out int mn) {
    if (jj < 4u) {
        sc = int(wb(at + jj) & 63u);
        mn = int(wb(at + jj + 4u) & 63u);
    } else {
        sc = int((wb(at + jj + 4u) & 15u) | ((wb(at + jj - 4u) >> 6) << 4));
        mn = int((wb(at + jj + 4u) >> 4) | ((wb(at + jj) >> 6) << 4));
    }
}
#endif

#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS)
const int NL_TAB[16] = int[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
#elif defined(TYPE_MXFP4)
const int NL_TAB[16] = int[16](0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12); // e2m1 values times 2
#endif
#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS) || defined(TYPE_MXFP4)
// sum over one 32-element block of NL_TAB[nibble] * a, nibbles as in Q4_0 (16 bytes at `at`)
int nl_isum(uint at, uint xo) {
    int s = 0;
    for (uint t = 0u; t < 16u; t++) {
        uint b = wb(at + t);
        s += NL_TAB[b & 15u] * xa(xo + t) + NL_TAB[b >> 4] * xa(xo + 16u + t);
    }
    return s;
}
#endif
#if defined(TYPE_MXFP4)
// the E8M0 scale halved (the table holds twice the e2m1 values): 2^(e - 128)
float e8m0_half(uint e) { return uintBitsToFloat(e < 2u ? 0x00200000u << e : (e - 1u) << 23); }
#endif

// one unit (a block, or an element of a float weight) of row j against activation row i
float dot_unit(uint j, uint i, uint u) {
#if defined(TYPE_F32)
    precise float v = w[j * p.k + u] * x[i * p.ldx + u];
    return v;
#elif defined(TYPE_F16)
    precise float v = unpackHalf2x16(uint(w[j * p.k + u])).x * x[i * p.ldx + u];
    return v;
#elif defined(TYPE_BF16)
    precise float v = uintBitsToFloat(uint(w[j * p.k + u]) << 16) * x[i * p.ldx + u];
    return v;
#else
    uint wo = (j * (p.k / UNIT) + u) * WBYTES, xo = i * p.k + u * UNIT;
#if defined(TYPE_Q8_0)
    int s = 0;
    for (uint t = 0u; t < 32u; t++) s += (int(wb(wo + 2u + t) ^ 0x80u) - 128) * xa(xo + t);
    precise float v = w_half(wo) * xscale(i, u) * float(s);
    return v;
#elif defined(TYPE_Q4_0)
    int s = 0;
    for (uint t = 0u; t < 16u; t++) {
        uint b = wb(wo + 2u + t);
        s += (int(b & 15u) - 8) * xa(xo + t) + (int(b >> 4) - 8) * xa(xo + 16u + t);
    }
    precise float v = w_half(wo) * xscale(i, u) * float(s);
    return v;
#elif defined(TYPE_Q4_1)
    int s = 0;
    for (uint t = 0u; t < 16u; t++) {
        uint b = wb(wo + 4u + t);
        s += int(b & 15u) * xa(xo + t) + int(b >> 4) * xa(xo + 16u + t);
    }
    precise float v = w_half(wo) * xscale(i, u) * float(s) + w_half(wo + 2u) * xextra(i, u);
    return v;
#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
#if defined(TYPE_Q5_0)
    uint hq = wo + 2u, lq = wo + 6u;
    const int off = 16;
#else
    uint hq = wo + 4u, lq = wo + 8u;
    const int off = 0;
#endif
    uint qh = qh32(hq);
    int s = 0;
    for (uint t = 0u; t < 16u; t++) {
        uint b = wb(lq + t);
        int q0 = int((b & 15u) | (((qh >> t) & 1u) << 4)), q1 = int((b >> 4) | (((qh >> (t + 16u)) & 1u) << 4));
        s += (q0 - off) * xa(xo + t) + (q1 - off) * xa(xo + 16u + t);
    }
#if defined(TYPE_Q5_0)
    precise float v = w_half(wo) * xscale(i, u) * float(s);
    return v;
#else
    precise float v = w_half(wo) * xscale(i, u) * float(s) + w_half(wo + 2u) * xextra(i, u);
    return v;
#endif
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
    int sumi = 0, summ = 0;
#if defined(TYPE_Q4_K)
    uint qs = wo + 16u;
#else
    uint qs = wo + 48u, qhs = wo + 16u;
#endif
    for (uint c = 0u; c < 4u; c++) {
        int s0 = 0, s1 = 0;
        for (uint l = 0u; l < 32u; l++) {
            uint b = wb(qs + 32u * c + l);
            uint q0 = b & 15u, q1 = b >> 4;
#if defined(TYPE_Q5_K)
            uint h = wb(qhs + l);
            q0 |= ((h >> (2u * c)) & 1u) << 4;
            q1 |= ((h >> (2u * c + 1u)) & 1u) << 4;
#endif
            s0 += int(q0) * xa(xo + 64u * c + l);
            s1 += int(q1) * xa(xo + 64u * c + 32u + l);
        }
        int sc0, mn0, sc1, mn1;
        k4_scale(wo + 4u, 2u * c, sc0, mn0);
        k4_scale(wo + 4u, 2u * c + 1u, sc1, mn1);
        sumi += s0 * sc0 + s1 * sc1;
    }
    for (uint jj = 0u; jj < 8u; jj++) {
        int sc, mn;
        k4_scale(wo + 4u, jj, sc, mn);
        summ += mn * (xbsum(i, u, 2u * jj) + xbsum(i, u, 2u * jj + 1u));
    }
    precise float v = xscale(i, u) * (w_half(wo) * float(sumi) - w_half(wo + 2u) * float(summ));
    return v;
#elif defined(TYPE_Q6_K)
    int sumi = 0;
    for (uint g = 0u; g < 16u; g++) {
        int gs = 0;
        for (uint e = 16u * g; e < 16u * g + 16u; e++) {
            uint h = e / 128u, t = (e / 32u) & 3u, l = e & 31u;
            uint lo = (wb(wo + 64u * h + l + 32u * (t & 1u)) >> (4u * (t >> 1))) & 15u;
            uint hi = (wb(wo + 128u + 32u * h + l) >> (2u * t)) & 3u;
            gs += int(lo | (hi << 4)) * xa(xo + e);
        }
        int sc = int(wb(wo + 192u + g) ^ 0x80u) - 128;
        sumi += sc * (gs - 32 * xbsum(i, u, g));
    }
    precise float v = xscale(i, u) * w_half(wo + 208u) * float(sumi);
    return v;
#elif defined(TYPE_Q3_K)
    int sumi = 0;
    for (uint g = 0u; g < 16u; g++) {
        int gs = 0;
        for (uint e = 16u * g; e < 16u * g + 16u; e++) {
            uint h = e / 128u, jj = (e / 32u) & 3u, l = e & 31u;
            uint q = (wb(wo + 32u + 32u * h + l) >> (2u * jj)) & 3u;
            q += ((wb(wo + l) >> (4u * h + jj)) & 1u) << 2;
            gs += int(q) * xa(xo + e);
        }
        uint lo = g < 8u ? wb(wo + 96u + g) & 15u : wb(wo + 96u + g - 8u) >> 4;
        uint hi = (wb(wo + 96u + 8u + (g & 3u)) >> (2u * (g / 4u))) & 3u;
        sumi += (int(lo | (hi << 4)) - 32) * (gs - 4 * xbsum(i, u, g));
    }
    precise float v = xscale(i, u) * w_half(wo + 108u) * float(sumi);
    return v;
#elif defined(TYPE_Q2_K)
    int sumi = 0, summ = 0;
    for (uint g = 0u; g < 16u; g++) {
        int gs = 0;
        for (uint e = 16u * g; e < 16u * g + 16u; e++) {
            uint h = e / 128u, jj = (e / 32u) & 3u, l = e & 31u;
            gs += int((wb(wo + 16u + 32u * h + l) >> (2u * jj)) & 3u) * xa(xo + e);
        }
        uint sc = wb(wo + g);
        sumi += int(sc & 15u) * gs;
        summ += int(sc >> 4) * xbsum(i, u, g);
    }
    precise float v = xscale(i, u) * (w_half(wo + 80u) * float(sumi) - w_half(wo + 82u) * float(summ));
    return v;
#elif defined(TYPE_IQ4_NL)
    precise float v = w_half(wo) * xscale(i, u) * float(nl_isum(wo + 2u, xo));
    return v;
#elif defined(TYPE_MXFP4)
    precise float v = e8m0_half(wb(wo)) * xscale(i, u) * float(nl_isum(wo + 1u, xo));
    return v;
#elif defined(TYPE_IQ4_XS)
    uint sh = wb(wo + 2u) | (wb(wo + 3u) << 8);
    int sumi = 0;
    for (uint ib = 0u; ib < 8u; ib++) {
        int ls = int(((wb(wo + 4u + ib / 2u) >> (4u * (ib & 1u))) & 15u) | (((sh >> (2u * ib)) & 3u) << 4));
        sumi += (ls - 32) * nl_isum(wo + 8u + 16u * ib, xo + 32u * ib);
    }
    precise float v = xscale(i, u) * w_half(wo) * float(sumi);
    return v;
#endif
#endif
}

#if defined(MOE)
const uint CHUNK = 8u; // output rows per work group: n x ceil(slots / CHUNK) groups
#endif

void main() {
    uint j = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
#if defined(MOE)
    const uint r0 = (j / p.n) * CHUNK, r1 = min(r0 + CHUNK, p.slots);
    j = j % p.n;
    if (r0 >= p.slots) return; // uniform across the group
#else
    if (j >= p.n) return; // uniform across the group
#endif
    uint tid = gl_LocalInvocationID.x;
    uint units = p.k / UNIT;
#if defined(MOE)
    for (uint r = r0; r < r1; r++) {
        const uint i = p.gathered != 0u ? idx[2u * r + 1u] : r, wj = idx[2u * r] * p.n + j;
#else
    for (uint i = 0u; i < p.m; i++) {
        const uint r = i, wj = j;
#endif
        float acc = 0.0;
        for (uint u = tid; u < units; u += 64u) acc += dot_unit(wj, i, u);
        part[tid] = acc;
        barrier();
        for (uint s = 32u; s > 0u; s >>= 1) {
            if (tid < s) part[tid] += part[tid + s];
            barrier();
        }
        if (tid == 0u) o[r * p.ldo + j] = part[0] + (p.has_bias != 0u ? bias[j] : 0.0);
        barrier();
    }
}
