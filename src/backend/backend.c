/* What every backend shares: the names of ops and buffers (for messages and
 * test output), the well-formedness of ops that carry many tensors (MOE),
 * and the host-memory KV storage used by the CPU and reference backends. */
#include "backend/backend.h"

const char *hl_op_name(hl_op_kind k) {
    static const char *const names[HL_OP_COUNT] = {"embed", "norm", "matmul", "rope", "kv_store", "attn",
                                                   "glu",   "act",  "add",    "gather", "moe"};
    return k >= 0 && k < HL_OP_COUNT ? names[k] : "?";
}

const char *hl_buf_name(hl_buf_id b) {
    static const char *const names[HL_BUF_COUNT] = {"none",    "x",       "attn_in", "q",        "k",        "v",
                                                    "attn",    "attn_out", "ffn_in", "gate",     "up",       "ffn_act",
                                                    "ffn_out", "out_in",  "out_norm", "logits"};
    return b >= 0 && b < HL_BUF_COUNT ? names[b] : "?";
}

const char *hl_moe_op_malformed(const hl_op *op) {
    const int32_t ne = op->p.moe.n_expert, k = op->p.moe.n_expert_used;
    const hl_tensor *r = op->p.moe.router, *g = op->p.moe.gate_exps, *u = op->p.moe.up_exps, *d = op->p.moe.down_exps;
    if (ne <= 0 || k <= 0 || k > ne) return "an MoE op whose expert counts are out of range";
    if (!r || !g || !u || !d) return "an MoE op without its router or expert tensors";
    const int64_t F = op->p.moe.n_ff_exp, E = op->n_in;
    if (op->n_out != E || r->ne0 != E || r->ne1 != ne || g->ne0 != E || g->ne1 != F || u->ne0 != E || u->ne1 != F ||
        d->ne0 != F || d->ne1 != E || g->ne2 != ne || u->ne2 != ne || d->ne2 != ne)
        return "MoE tensors whose shapes do not match the op";
    const hl_tensor *bs[4] = {op->p.moe.router_b, op->p.moe.gate_exps_b, op->p.moe.up_exps_b, op->p.moe.down_exps_b};
    const int64_t bn[4] = {ne, F * ne, F * ne, E * ne};
    for (int i = 0; i < 4; i++)
        if (bs[i] && (bs[i]->type != HL_TYPE_F32 || bs[i]->ne0 * (bs[i]->ne1 > 0 ? bs[i]->ne1 : 1) != bn[i]))
            return "an MoE bias that is not F32 of the expected length";
    if (op->p.moe.n_ff_shexp > 0) {
        const hl_tensor *sg = op->p.moe.gate_shexp, *su = op->p.moe.up_shexp, *sd = op->p.moe.down_shexp;
        const int64_t S = op->p.moe.n_ff_shexp;
        if (!sg || !su || !sd || sg->ne0 != E || sg->ne1 != S || su->ne0 != E || su->ne1 != S || sd->ne0 != S ||
            sd->ne1 != E)
            return "a shared expert whose tensors do not match the op";
        const hl_tensor *gt = op->p.moe.shexp_gate;
        if (gt && (gt->type != HL_TYPE_F32 || gt->ne0 != E)) return "a shared-expert gate that is not F32 [n_embd]";
    }
    if (op->p.moe.act == HL_ACT_SWIGLU_CLAMP && !(op->p.moe.limit > 0)) return "a clamped SwiGLU whose limit is not positive";
    if (op->p.moe.act != HL_ACT_SILU && op->p.moe.act != HL_ACT_GELU && op->p.moe.act != HL_ACT_SWIGLU_CLAMP)
        return "an MoE activation it lacks";
    if (op->p.moe.gating != HL_MOE_SOFTMAX_TOPK && op->p.moe.gating != HL_MOE_TOPK_SOFTMAX) return "an MoE gating it lacks";
    return NULL;
}

int hl_host_kv_new(const hl_kv_params *p, hl_kv_cache **out, hl_err *err) { return hl_kv_new(out, p, err); }

void hl_host_kv_truncate(hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep) {
    int32_t bs = hl_kv_block_size(kv);
    if (n_keep < 0) n_keep = 0;
    for (int32_t i = n_keep / bs; i < n_blocks; i++) {
        int32_t first = i == n_keep / bs ? n_keep % bs : 0;
        hl_kv_clear_slots(kv, blocks[i], first);
    }
}
