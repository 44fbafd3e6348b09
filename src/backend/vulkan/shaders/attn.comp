// ATTN (backend.h) over the paged pool, FlashAttention-style: one work
// group of 64 attends a tile of up to 16 query rows (8 for heads over 128
// dims) -- consecutive tokens of one sequence (an item of the host's list,
// vk_attn.c) times the query heads of one KV head that share it (a slice of
// at most gh of them) -- over one split or over every split of the tile's
// positions.
//
// Positions are cut at fixed places, whatever the batch: splits of `span`
// positions (multiples of span), each visited in blocks of bk positions
// (multiples of bk; span is a multiple of bk). For every block the rows
// need: its positions' pool rows are looked up once, its K rows read and
// converted (f16 or q8_0 -> float) into shared memory once for the whole
// tile; each row scores the positions it may see (its [start, end] from
// the host: causal, window or bidirectional already decided; q pre-scaled;
// softcap) as one sequential
// fma chain over the head dims; then, per row, the online softmax: the
// block's max joins the row's running max m, corr = exp(m_old - m) scales
// the running sum l and accumulator, and exp(score - m) is added in
// position order; the block's V rows replace the K rows in shared memory
// and each output element (row, d) adds p * v in position order. A row adds
// only the positions it sees: a block or split it sees none of leaves it
// untouched, so the work the tile shares with other rows never changes a
// row's arithmetic. Blocks no row sees (windows) are skipped; causal tiles
// stop at their last position.
//
// At the end of a split (attn_fold.glsl): with `partial` set (the host's
// split items, one work group per split: decode's parallelism over a long
// context) each row writes its (m, l, acc) to aux for attn_combine.comp;
// otherwise the work group folds the split into the row's running state
// itself and, after the last, writes the normalized output (aux holds the
// sinks). Both fold the same partials in the same order with the same code,
// so a token's output has the same bits alone (decode), in any prefill
// chunk, at any place in a tile, with any other sequences in the batch.
//
// Build defines: KV_F16 or KV_Q8_0.
// Bindings: 0 q (rows of ldq), 1 K pool layer, 2 V pool layer, 3 meta (uint), 4 out (rows of ldo),
// 5 aux: the sinks (a float per query head; partial = 0) or the partials (partial = 1).
// meta: [token][4] = {start, end, table offset, 0}, the block tables, and at
// items_at the items: [item][24] = {tokens nt, first split, splits, partial
// record, lowest position, highest position, 0, 0, token[16]}; a row's
// record is record + i * n_head + h (token i of the item, head h), of hdv + 2
// floats: m, l, acc[hdv].
#version 450
#extension GL_EXT_shader_8bit_storage : require
#include "common.glsl"
#include "attn_fold.glsl"

#define WG 64u
#define R_MAX 16u  // rows of a tile (the host keeps rows * hdk <= Q_SH and rows * hdv <= WG * NE_MAX)
#define NE_MAX 32u // output elements per invocation
#define Q_SH 2048u
#define KV_SH 4160u // bk * (max(hdk, hdv) + 1)
#define P_SH 1024u  // rows * bk
#define ITEM_WORDS 24u
#define ITEM_TOKENS 8u

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
layout(std430, binding = 5) buffer X { float aux[]; };
layout(push_constant) uniform P {
    uint n_items, items_at, n_head, nkv, hdk, hdv, ldq, ldo, block_size, bk, gh, span;
    float scale, softcap;
    uint sinks, partial;
} p;

shared float q_s[Q_SH];   // [row][hdk], times scale
shared float kv_s[KV_SH]; // [position in block][ld]: K rows, then V rows
shared float p_s[P_SH];   // [row][bk]: scores, then their exponentials
shared uint lo_s[R_MAX], hi_s[R_MAX];
shared float m_s[R_MAX], l_s[R_MAX], corr_s[R_MAX];          // the split's online softmax
shared float mx_s[R_MAX], lx_s[R_MAX], fa_s[R_MAX], fb_s[R_MAX]; // the fold over splits
shared uint skip_s[R_MAX];
shared uint prow_s[64]; // the pool row (slot * nkv + kv head) of each position of the block

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

// [v0, v1): the positions kb + v0 .. kb + v1 - 1 of the block row r sees (empty: v0 >= v1)
uvec2 seen(uint r, uint kb) {
    return uvec2(max(lo_s[r], kb) - kb, hi_s[r] < kb ? 0u : min(hi_s[r] + 1u, kb + p.bk) - kb);
}

void main() {
    uint id = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint G = p.n_head / p.nkv, slices = (G + p.gh - 1u) / p.gh;
    if (id >= p.n_items * p.nkv * slices) return; // uniform across the group
    uint item = id / (p.nkv * slices), kvh = (id / slices) % p.nkv, slice = id % slices;
    uint at = p.items_at + item * ITEM_WORDS, tid = gl_LocalInvocationID.x;
    uint nt = meta[at], split0 = meta[at + 1u], count = meta[at + 2u], rec = meta[at + 3u];
    uint klo = meta[at + 4u], khi = meta[at + 5u];
    uint h0 = kvh * G + slice * p.gh, nh = min(p.gh, G - slice * p.gh), rows = nt * nh;
    uint tbl = meta[4u * meta[at + ITEM_TOKENS] + 2u]; // every token of an item is of one sequence
    uint ld = max(p.hdk, p.hdv) + 1u, bk = p.bk;
    // row r = token i = r / nh of the item, head h0 + r % nh
    if (tid < rows) {
        uint t = meta[at + ITEM_TOKENS + tid / nh];
        lo_s[tid] = meta[4u * t], hi_s[tid] = meta[4u * t + 1u];
        m_s[tid] = NEG_INF, l_s[tid] = 0.0, mx_s[tid] = NEG_INF, lx_s[tid] = 0.0;
    }
    for (uint i = tid; i < rows * p.hdk; i += WG) {
        uint r = i / p.hdk, t = meta[at + ITEM_TOKENS + r / nh];
        precise float x = q[t * p.ldq + (h0 + r % nh) * p.hdk + i % p.hdk] * p.scale;
        q_s[i] = x;
    }
    float acc[NE_MAX], out_[NE_MAX];
    for (uint k = 0u; k < NE_MAX; k++) acc[k] = 0.0, out_[k] = 0.0;
    // the (row, dim) of this invocation's k-th output element: i = tid + 64 k,
    // stepped without a division per element (as the K/V loads' (position, dim))
    const uint r0 = tid / p.hdv, d0 = tid % p.hdv, sr = WG / p.hdv, sd = WG % p.hdv;
    const uint jk0 = tid / p.hdk, dk0 = tid % p.hdk, sjk = WG / p.hdk, sdk = WG % p.hdk;
    const uint lbk = findLSB(bk); // bk is a power of two
    barrier();
    for (uint s = split0; s < split0 + count; s++) {
        uint b1 = min(s * p.span + p.span - 1u, khi);
        for (uint kb = max(s * p.span, klo - klo % bk); kb <= b1; kb += bk) {
            bool any = false; // windows can leave a block no row sees
            for (uint r = 0u; r < rows; r++) any = any || (lo_s[r] < kb + bk && hi_s[r] >= kb);
            if (!any) continue; // uniform: every invocation read the same
            // the pool rows of the positions the tile needs, [kb + a0, kb + a1)
            uint a0 = max(klo, kb) - kb, a1 = min(khi, kb + bk - 1u) - kb + 1u;
            if (tid >= a0 && tid < a1) prow_s[tid] = row_of(tbl, kb + tid, kvh);
            barrier();
            for (uint j = a0 + jk0, d = dk0; j < a1;) { // K rows
                kv_s[j * ld + d] = kv_at(0u, prow_s[j], p.hdk, d);
                d += sdk, j += sjk;
                if (d >= p.hdk) d -= p.hdk, j++;
            }
            barrier();
            for (uint i = tid; i < rows * bk; i += WG) {
                uint r = i >> lbk, j = i & (bk - 1u), pos = kb + j;
                if (pos < lo_s[r] || pos > hi_s[r]) continue;
                precise float sc = 0.0;
                for (uint d = 0u; d < p.hdk; d++) sc = fma(q_s[r * p.hdk + d], kv_s[j * ld + d], sc);
                if (p.softcap > 0.0) sc = p.softcap * tanh_safe(sc / p.softcap);
                p_s[i] = sc;
            }
            barrier();
            if (tid < rows) { // the row's online softmax over the positions it sees
                uint v0 = seen(tid, kb).x, v1 = seen(tid, kb).y;
                if (v0 < v1) {
                    float mb = NEG_INF;
                    for (uint j = v0; j < v1; j++) mb = max(mb, p_s[tid * bk + j]);
                    float m = m_s[tid];
                    precise float mn = max(m, mb);
                    precise float corr = m == NEG_INF ? 0.0 : exp(m - mn);
                    precise float sum = 0.0;
                    for (uint j = v0; j < v1; j++) {
                        precise float e = exp(p_s[tid * bk + j] - mn);
                        p_s[tid * bk + j] = e;
                        sum += e;
                    }
                    precise float l = l_s[tid] * corr + sum;
                    m_s[tid] = mn, l_s[tid] = l, corr_s[tid] = corr;
                }
            }
            for (uint j = a0 + r0, d = d0; j < a1;) { // V rows over the K rows (all scored)
                kv_s[j * ld + d] = kv_at(1u, prow_s[j], p.hdv, d);
                d += sd, j += sr;
                if (d >= p.hdv) d -= p.hdv, j++;
            }
            barrier();
            uint r = r0, d = d0;
            for (uint k = 0u; k < NE_MAX; k++) {
                if (r >= rows) break;
                uint v0 = seen(r, kb).x, v1 = seen(r, kb).y;
                if (v0 < v1) {
                    precise float x = acc[k] * corr_s[r];
                    for (uint j = v0; j < v1; j++) x = fma(p_s[r * bk + j], kv_s[j * ld + d], x);
                    acc[k] = x;
                }
                d += sd, r += sr;
                if (d >= p.hdv) d -= p.hdv, r++;
            }
            barrier();
        }
        // the split's partial: written for the combine pass, or folded here
        if (p.partial != 0u) {
            if (tid < rows) {
                uint rr = (rec + (tid / nh) * p.n_head + h0 + tid % nh) * (p.hdv + 2u);
                aux[rr] = m_s[tid], aux[rr + 1u] = l_s[tid];
            }
            for (uint k = 0u; k < NE_MAX; k++) {
                uint i = tid + WG * k;
                if (i >= rows * p.hdv) break;
                uint r = i / p.hdv;
                aux[(rec + (r / nh) * p.n_head + h0 + r % nh) * (p.hdv + 2u) + 2u + i % p.hdv] = acc[k];
            }
        } else {
            if (tid < rows) {
                float m = m_s[tid];
                skip_s[tid] = m == NEG_INF ? 1u : 0u;
                if (m != NEG_INF) {
                    float a, b;
                    fold_factors(mx_s[tid], m, a, b);
                    lx_s[tid] = fold_sum(lx_s[tid], a, l_s[tid], b);
                    mx_s[tid] = max(mx_s[tid], m);
                    fa_s[tid] = a, fb_s[tid] = b;
                }
            }
            barrier();
            for (uint k = 0u; k < NE_MAX; k++) {
                uint i = tid + WG * k;
                if (i >= rows * p.hdv) break;
                uint r = i / p.hdv;
                if (skip_s[r] == 0u) out_[k] = fold_sum(out_[k], fa_s[r], acc[k], fb_s[r]);
            }
        }
        for (uint k = 0u; k < NE_MAX; k++) acc[k] = 0.0;
        barrier();
        if (tid < rows) m_s[tid] = NEG_INF, l_s[tid] = 0.0;
        barrier();
    }
    if (p.partial != 0u) return;
    for (uint k = 0u; k < NE_MAX; k++) {
        uint i = tid + WG * k;
        if (i >= rows * p.hdv) break;
        uint r = i / p.hdv, t = meta[at + ITEM_TOKENS + r / nh], h = h0 + r % nh;
        o[t * p.ldo + h * p.hdv + i % p.hdv] = attn_final(out_[k], lx_s[r], mx_s[r], p.sinks != 0u, p.sinks != 0u ? aux[h] : 0.0);
    }
}
