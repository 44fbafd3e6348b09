/* ATTN on the Vulkan device: the host's half of attn.comp and
 * attn_combine.comp (their headers hold the arithmetic). Per step and kind
 * of attention op (window, causal, head shape) the host cuts the batch into
 * tiles -- up to 16 query rows: consecutive batch tokens of one sequence
 * whose visible ranges overlap, times the query heads of one KV head -- and
 * lists the work: a tile whose positions span one split, or that is a
 * prefill tile, is one item that folds its splits itself; a decode tile (at
 * most 4 tokens) over several splits is one item per split, each writing
 * partials to a device buffer, and a combine entry per token. The choice
 * changes which work group computes what, never a row's arithmetic, so it
 * may depend on the batch: a token's output has the same bits either way.
 *
 * Fixed for every batch (a row's arithmetic depends on these only): splits
 * of HL_VK_ATTN_SPAN positions, key blocks of hl_vk_attn_block(hd)
 * positions (64, 32, 16 for head dims up to 64, 128, 256).
 *
 * Ownership: the plan's buffers are step buffers of the recorder
 * (hl_vk_rec_buffer), freed at its reset. */
#ifndef HL_BACKEND_VULKAN_VK_ATTN_H
#define HL_BACKEND_VULKAN_VK_ATTN_H

#include "backend/backend.h"
#include "backend/vulkan/vk_compute.h"

enum { HL_VK_ATTN_SPAN = 256 };

/* One kind of ATTN op's work for a step, shared by the layers that have it. */
typedef struct hl_vk_attn_plan {
    int32_t window, causal, n_head, n_head_kv, hdk, hdv; /* the key */
    hl_vk_buffer *meta;  /* token ranges, block tables, items, entries */
    hl_vk_buffer *part;  /* split partials (NULL: no split items) */
    uint32_t fold_at, n_fold;   /* items that fold their splits (words into meta, count) */
    uint32_t split_at, n_split; /* one-split items writing partials */
    uint32_t entry_at, n_entry; /* combine entries */
} hl_vk_attn_plan;

/* Positions per key block for heads of hd = max(hdk, hdv) dims (<= 256). */
int32_t hl_vk_attn_block(int32_t hd);

struct hl_vk_rec;
struct hl_vk_op_args;
/* Appends op's dispatches (ATTN) to the recorder (vk_ops.h). */
int hl_vk_attn_record(struct hl_vk_rec *r, const hl_op *op, const struct hl_vk_op_args *a, hl_err *err);

#endif
