// The routed experts' gating (HL_OP_MOE, backend.h hl_moe_gating), one
// invocation per token, as the CPU's gate_token (backend/cpu/cpu_moe.c):
// the k largest router logits, largest first, ties to the lower expert; then
// gating 0 (softmax over all the logits, the k probabilities, renormalized
// to sum 1 when norm) or 1 (softmax over the k selected logits). The CPU
// sums in double; this in float (a few ulps apart).
// Out: for (token t, rank j), row r = t * k + j: idx[2r] = its expert,
// idx[2r + 1] = t (the activation row of moe_matmul), wt[r] = its weight.
// Bindings: 0 logits (rows of ne), 3 wt, 4 idx.
#version 450

layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer L { float lg[]; };
layout(std430, binding = 3) writeonly buffer W { float wt[]; };
layout(std430, binding = 4) writeonly buffer I { uint idx[]; };
layout(push_constant) uniform P { uint rows, ne, k, gating, norm; } p;

const uint MAXK = 32u; // vk_ops.c refuses more

void main() {
    uint t = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (t >= p.rows) return;
    const uint at = t * p.ne;
    uint sel[MAXK];
    for (uint j = 0u; j < p.k; j++) {
        int best = -1;
        for (uint e = 0u; e < p.ne; e++) {
            bool taken = false;
            for (uint i = 0u; i < j; i++) taken = taken || sel[i] == e;
            if (!taken && (best < 0 || lg[at + e] > lg[at + uint(best)])) best = int(e);
        }
        sel[j] = uint(best);
    }
    const float mx = lg[at + sel[0]];
    float sum = 0.0, ks = 0.0;
    if (p.gating == 1u) {
        for (uint j = 0u; j < p.k; j++) sum += exp(lg[at + sel[j]] - mx);
        ks = sum;
    } else {
        for (uint e = 0u; e < p.ne; e++) sum += exp(lg[at + e] - mx);
        for (uint j = 0u; j < p.k; j++) ks += exp(lg[at + sel[j]] - mx) / sum;
    }
    for (uint j = 0u; j < p.k; j++) {
        const uint r = t * p.k + j;
        float w = exp(lg[at + sel[j]] - mx);
        if (p.gating == 1u) w = w / sum;
        else {
            w = w / sum;
            if (p.norm != 0u) w = w / ks;
        }
        idx[2u * r] = sel[j];
        idx[2u * r + 1u] = t;
        wt[r] = w;
    }
}
