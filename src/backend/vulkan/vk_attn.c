/* ATTN as dispatches (vk_attn.h): the step's plan for one kind of attention
 * op -- each token's visible range checked against its block table, the
 * tiles, the items and combine entries, written into one mapped step buffer
 * -- and the two or three dispatches over it (attn.comp's folding items,
 * its split items, attn_combine.comp). The numbers here must agree with the
 * shaders' shared-memory arrays (attn.comp: Q_SH, KV_SH, P_SH, NE_MAX,
 * R_MAX) and item layout (ITEM_WORDS, ITEM_TOKENS). */
#include "backend/vulkan/vk_attn.h"

#include "backend/vulkan/vk_ops.h"

#include <stdlib.h>
#include <string.h>

enum {
    ITEM_WORDS = 24, ITEM_TOKENS = 8, ENTRY_WORDS = 4, /* attn.comp's item and attn_combine.comp's entry */
    SPLIT_TOKENS = 4,   /* tiles of at most this many tokens over several splits get a work group per split */
    SHARED_BYTES = (2048 + 4160 + 1024 + 10 * 16 + 64) * 4, /* attn.comp's shared arrays */
};
static const uint64_t PART_BUDGET = 64ull << 20; /* bytes of split partials per plan; past it tiles fold themselves */

int32_t hl_vk_attn_block(int32_t hd) { return hd <= 64 ? 64 : hd <= 128 ? 32 : 16; }

/* Rows of a tile: rows * hdk <= Q_SH, rows * hdv <= 64 * NE_MAX, rows * block <= P_SH. */
static int32_t tile_rows(int32_t hdk, int32_t hdv) { return (hdk > hdv ? hdk : hdv) <= 128 ? 16 : 8; }

typedef struct tile {
    int32_t t0, nt;      /* batch tokens t0 .. t0 + nt - 1, of one sequence */
    int32_t lo, hi;      /* the union of their visible ranges (one interval) */
    int64_t rec;         /* first partial record (split tiles), else -1 */
} tile;

/* The token's visible positions [start, end], every block of them checked. */
static int token_range(const hl_op *op, const hl_batch *b, const hl_kv_cache *kv, int32_t t, int32_t *start,
                       int32_t *end, hl_err *err) {
    const hl_batch_token *bt = &b->tokens[t];
    const int32_t w = op->p.attn.window, bs = hl_kv_block_size(kv);
    int32_t s = w > 0 && bt->pos >= w ? bt->pos - w + 1 : 0, e = bt->pos;
    if (!op->p.attn.causal)
        for (int32_t u = 0; u < b->n_tokens; u++)
            if (b->tokens[u].seq == bt->seq && b->tokens[u].pos > e) e = b->tokens[u].pos;
    uint32_t slot;
    int rc = 0;
    for (int32_t p = s - s % bs; p <= e && !rc; p += bs) rc = hl_vk_kv_slot(b, kv, bt->seq, p < s ? s : p, &slot, err);
    if (!rc) rc = hl_vk_kv_slot(b, kv, bt->seq, e, &slot, err);
    *start = s, *end = e;
    return rc;
}

/* The plan: meta = [token][4] {start, end, table offset, 0}, the block
 * tables, the folding items, the split items, the combine entries. */
static int plan_build(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_vk_attn_plan *pl, hl_err *err) {
    const hl_batch *b = a->batch;
    const hl_kv_cache *kv = a->kv->kv;
    const int32_t T = b->n_tokens, nh = op->p.attn.n_head, G = nh / op->p.attn.n_head_kv;
    const int32_t R = tile_rows(op->p.attn.head_dim_k, op->p.attn.head_dim_v), per_tile = R / (G < R ? G : R);
    const uint64_t rec_bytes = ((uint64_t)op->p.attn.head_dim_v + 2) * 4;
    int32_t *range = malloc((size_t)T * 2 * sizeof *range);
    tile *tl = malloc((size_t)T * sizeof *tl);
    uint32_t *tbl_at = calloc((size_t)(b->n_seqs ? b->n_seqs : 1), sizeof *tbl_at);
    int rc = !range || !tl || !tbl_at ? hl_err_set(err, HL_ENOMEM, "out of memory") : 0;
    for (int32_t t = 0; t < T && !rc; t++) rc = token_range(op, b, kv, t, &range[2 * t], &range[2 * t + 1], err);
    /* tiles: consecutive batch tokens of one sequence whose ranges overlap
     * or touch (so the union has no position nobody's table entry was checked for) */
    int32_t n_tiles = 0;
    for (int32_t t = 0; t < T && !rc; t++) {
        const int32_t s = range[2 * t], e = range[2 * t + 1];
        tile *c = n_tiles ? &tl[n_tiles - 1] : NULL;
        if (c && b->tokens[c->t0].seq == b->tokens[t].seq && c->t0 + c->nt == t && c->nt < per_tile && s <= c->hi + 1 &&
            e + 1 >= c->lo) {
            c->nt++;
            c->lo = s < c->lo ? s : c->lo, c->hi = e > c->hi ? e : c->hi;
        } else
            tl[n_tiles++] = (tile){t, 1, s, e, -1};
    }
    /* which tiles get a work group per split */
    uint64_t records = 0;
    uint32_t n_fold = 0, n_split = 0, n_entry = 0;
    for (int32_t i = 0; i < n_tiles && !rc; i++) {
        tile *c = &tl[i];
        const uint64_t ns = (uint64_t)(c->hi / HL_VK_ATTN_SPAN - c->lo / HL_VK_ATTN_SPAN + 1), add = ns * (uint64_t)c->nt * nh;
        if (ns > 1 && c->nt <= SPLIT_TOKENS && (records + add) * rec_bytes <= PART_BUDGET) {
            c->rec = (int64_t)records;
            records += add, n_split += (uint32_t)ns, n_entry += (uint32_t)c->nt;
        } else
            n_fold++;
    }
    size_t words = 4 * (size_t)T + ITEM_WORDS * ((size_t)n_fold + n_split) + ENTRY_WORDS * (size_t)n_entry;
    for (int32_t s = 0; s < b->n_seqs; s++) words += (size_t)b->seqs[s].n_blocks;
    if (!rc && words > UINT32_MAX / 4) rc = hl_err_set(err, HL_ERANGE, "backend vulkan: attention metadata for %d tokens is too large", T);
    if (!rc) rc = hl_vk_rec_buffer(r, words * 4, 0, &pl->meta, err);
    if (!rc && records) rc = hl_vk_rec_buffer(r, (size_t)(records * rec_bytes), 1, &pl->part, err);
    if (!rc) {
        uint32_t *m = pl->meta->map;
        memset(m, 0, words * 4);
        size_t at = 4 * (size_t)T;
        for (int32_t s = 0; s < b->n_seqs; s++) {
            tbl_at[s] = (uint32_t)at;
            for (int32_t i = 0; i < b->seqs[s].n_blocks; i++) m[at++] = (uint32_t)b->seqs[s].blocks[i];
        }
        for (int32_t t = 0; t < T; t++)
            m[4 * t] = (uint32_t)range[2 * t], m[4 * t + 1] = (uint32_t)range[2 * t + 1], m[4 * t + 2] = tbl_at[b->tokens[t].seq];
        pl->fold_at = (uint32_t)at, pl->n_fold = n_fold;
        pl->split_at = pl->fold_at + ITEM_WORDS * n_fold, pl->n_split = n_split;
        pl->entry_at = pl->split_at + ITEM_WORDS * n_split, pl->n_entry = n_entry;
        uint32_t *fold = m + pl->fold_at, *split = m + pl->split_at, *entry = m + pl->entry_at;
        for (int32_t i = 0; i < n_tiles; i++) {
            const tile *c = &tl[i];
            const uint32_t s0 = (uint32_t)(c->lo / HL_VK_ATTN_SPAN), ns = (uint32_t)(c->hi / HL_VK_ATTN_SPAN) + 1 - s0;
            uint32_t item[ITEM_WORDS] = {(uint32_t)c->nt, s0, ns, 0, (uint32_t)c->lo, (uint32_t)c->hi};
            for (int32_t j = 0; j < c->nt; j++) item[ITEM_TOKENS + j] = (uint32_t)(c->t0 + j);
            if (c->rec < 0) {
                memcpy(fold, item, sizeof item);
                fold += ITEM_WORDS;
                continue;
            }
            const uint32_t stride = (uint32_t)c->nt * (uint32_t)nh;
            for (uint32_t k = 0; k < ns; k++) { /* one item per split */
                item[1] = s0 + k, item[2] = 1, item[3] = (uint32_t)c->rec + k * stride;
                memcpy(split, item, sizeof item);
                split += ITEM_WORDS;
            }
            for (int32_t j = 0; j < c->nt; j++) {
                entry[0] = (uint32_t)(c->t0 + j), entry[1] = ns, entry[2] = (uint32_t)c->rec + (uint32_t)j * (uint32_t)nh;
                entry[3] = stride;
                entry += ENTRY_WORDS;
            }
        }
    }
    free(range), free(tl), free(tbl_at);
    return rc;
}

/* The plan for op's kind in this step, built at its first layer. */
static int plan_of(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_vk_attn_plan *out, hl_err *err) {
    const hl_vk_attn_plan key = {op->p.attn.window, op->p.attn.causal != 0, op->p.attn.n_head, op->p.attn.n_head_kv,
                                 op->p.attn.head_dim_k, op->p.attn.head_dim_v};
    for (int i = 0; i < r->n_attn; i++) {
        const hl_vk_attn_plan *p = &r->attn[i];
        if (p->window == key.window && p->causal == key.causal && p->n_head == key.n_head &&
            p->n_head_kv == key.n_head_kv && p->hdk == key.hdk && p->hdv == key.hdv)
            return *out = *p, 0;
    }
    *out = key;
    int rc = plan_build(r, op, a, out, err);
    if (!rc && r->n_attn < (int)(sizeof r->attn / sizeof r->attn[0])) r->attn[r->n_attn++] = *out;
    return rc;
}

int hl_vk_attn_record(hl_vk_rec *r, const hl_op *op, const hl_vk_op_args *a, hl_err *err) {
    const hl_batch *batch = a->batch;
    const hl_kv_params *kp = hl_kv_get_params(a->kv->kv);
    if (batch->n_tokens == 0) return 0;
    const int32_t nh = op->p.attn.n_head, nkv = op->p.attn.n_head_kv, hdk = op->p.attn.head_dim_k, hdv = op->p.attn.head_dim_v;
    if (nkv <= 0 || nh % nkv || kp->n_head_kv != nkv)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: attention heads %d/%d do not match the pool's %d", nh, nkv,
                          kp->n_head_kv);
    if (hdk <= 0 || hdv <= 0 || hdk > 256 || hdv > 256)
        return hl_err_set(err, HL_ENOTSUP, "backend vulkan: attention heads of %d/%d (at most 256)", hdk, hdv);
    if (r->k->d->inst->devices[r->k->d->index].max_shared_bytes < SHARED_BYTES)
        return hl_err_set(err, HL_ENOTSUP, "backend vulkan: attention needs %d bytes of shared memory, the device has %u",
                          SHARED_BYTES, r->k->d->inst->devices[r->k->d->index].max_shared_bytes);
    const hl_vk_buffer *sinks = op->p.attn.sinks && op->p.attn.sinks->data ? a->ext[0] : NULL;
    if (op->p.attn.sinks && op->p.attn.sinks->data && !sinks)
        return hl_err_set(err, HL_EINVAL, "backend vulkan: %s is not on the device", op->p.attn.sinks->name);
    hl_vk_attn_plan pl;
    int rc = plan_of(r, op, a, &pl, err);
    if (rc) return rc;
    const int32_t G = nh / nkv, R = tile_rows(hdk, hdv), gh = G < R ? G : R;
    const uint64_t per_item = (uint64_t)nkv * (uint64_t)((G + gh - 1) / gh);
    if ((pl.n_fold + (uint64_t)pl.n_split) * per_item > UINT32_MAX || (uint64_t)pl.n_entry * nh > UINT32_MAX)
        return hl_err_set(err, HL_ERANGE, "backend vulkan: attention over %d tokens needs too many work groups",
                          batch->n_tokens);
    struct {
        uint32_t n_items, items_at, n_head, nkv, hdk, hdv, ldq, ldo, block_size, bk, gh, span;
        float scale, softcap;
        uint32_t sinks, partial;
    } p = {0, 0, (uint32_t)nh, (uint32_t)nkv, (uint32_t)hdk, (uint32_t)hdv, (uint32_t)op->n_in, (uint32_t)op->n_out,
           (uint32_t)hl_kv_block_size(a->kv->kv), (uint32_t)hl_vk_attn_block(hdk > hdv ? hdk : hdv), (uint32_t)gh,
           HL_VK_ATTN_SPAN, op->p.attn.scale, op->p.attn.softcap, sinks != NULL, 0};
    VkDeviceSize off[HL_VK_BINDINGS] = {0};
    hl_vk_kv_layer_offsets(a->kv, op->layer, &off[1], &off[2]);
    const hl_vk_kernel_id kern = kp->type == HL_TYPE_Q8_0 ? HL_VK_K_attn_q8_0 : HL_VK_K_attn_f16;
    if (pl.n_fold) {
        p.n_items = pl.n_fold, p.items_at = pl.fold_at, p.partial = 0;
        const hl_vk_buffer *bb[HL_VK_BINDINGS] = {a->buf[op->in], &a->kv->buf, &a->kv->buf, pl.meta, a->buf[op->out], sinks};
        if ((rc = hl_vk_rec_dispatch(r, kern, bb, off, &p, sizeof p, (uint32_t)(pl.n_fold * per_item), err))) return rc;
    }
    if (pl.n_split) {
        p.n_items = pl.n_split, p.items_at = pl.split_at, p.partial = 1;
        const hl_vk_buffer *bb[HL_VK_BINDINGS] = {a->buf[op->in], &a->kv->buf, &a->kv->buf, pl.meta, a->buf[op->out], pl.part};
        if ((rc = hl_vk_rec_dispatch(r, kern, bb, off, &p, sizeof p, (uint32_t)(pl.n_split * per_item), err))) return rc;
        struct { uint32_t n_entries, entries_at, n_head, hdv, ldo, sinks; } cp = {
            pl.n_entry, pl.entry_at, (uint32_t)nh, (uint32_t)hdv, (uint32_t)op->n_out, sinks != NULL};
        const hl_vk_buffer *cb[HL_VK_BINDINGS] = {pl.part, NULL, NULL, pl.meta, a->buf[op->out], sinks};
        rc = hl_vk_rec_dispatch(r, HL_VK_K_attn_combine, cb, NULL, &cp, sizeof cp, (uint32_t)(pl.n_entry * (uint64_t)nh), err);
    }
    return rc;
}
