/* What every backend shares: the names of ops and buffers (for messages and
 * test output) and the host-memory KV storage used by the CPU and reference
 * backends. */
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

int hl_host_kv_new(const hl_kv_params *p, hl_kv_cache **out, hl_err *err) { return hl_kv_new(out, p, err); }

void hl_host_kv_truncate(hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep) {
    int32_t bs = hl_kv_block_size(kv);
    if (n_keep < 0) n_keep = 0;
    for (int32_t i = n_keep / bs; i < n_blocks; i++) {
        int32_t first = i == n_keep / bs ? n_keep % bs : 0;
        hl_kv_clear_slots(kv, blocks[i], first);
    }
}
