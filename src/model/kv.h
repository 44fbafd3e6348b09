/* KV storage: the paged key/value pool the forward pass reads and writes.
 *
 * The pool is a fixed number of blocks, each holding `block_size` token slots
 * for every layer, allocated once. Per layer, K is laid out as
 * [n_blocks][block_size][n_head_kv][head_dim_k] and V as
 * [n_blocks][block_size][n_head_kv][head_dim_v], element type F16. Position p
 * of a sequence lives in block table[p / block_size], slot p % block_size; the
 * forward pass addresses the pool only through the block tables passed in each
 * hl_batch.
 *
 * This file owns STORAGE only. Which block belongs to whom (free lists,
 * refcounts, prefix hashing, eviction) is metadata kept by the runner
 * (src/runner/kvcache.c): the storage never knows about sequences. The pool is
 * not internally synchronised: the engine thread that runs forward passes is
 * its only writer. */
#ifndef HL_MODEL_KV_H
#define HL_MODEL_KV_H

#include "base/err.h"
#include "base/half.h"
#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

#define HL_KV_DEFAULT_BLOCK_SIZE 16

typedef struct hl_kv_cache hl_kv_cache;

typedef struct hl_kv_params {
    int32_t n_layer;
    int32_t n_head_kv;
    int32_t head_dim_k;
    int32_t head_dim_v;
    int32_t n_blocks;   /* blocks in the pool (shared by all sequences) */
    int32_t block_size; /* token slots per block; 0 = HL_KV_DEFAULT_BLOCK_SIZE */
    hl_type type;       /* HL_TYPE_F16 (only type supported for now) */
} hl_kv_params;

/* ---- lifecycle ---- */
/* Allocates the whole pool (zeroed). Use hl_model_kv_params() (model.h) to fill
 * the shape from a loaded model. */
int hl_kv_new(hl_kv_cache **out, const hl_kv_params *p, hl_err *err);
void hl_kv_free(hl_kv_cache *kv);
/* Bytes one block occupies across all layers (K and V): size a pool from a
 * memory budget as budget / hl_kv_block_bytes(). */
size_t hl_kv_block_bytes(const hl_kv_params *p);

/* ---- shape ---- */
const hl_kv_params *hl_kv_get_params(const hl_kv_cache *kv);
int32_t hl_kv_n_blocks(const hl_kv_cache *kv);
int32_t hl_kv_block_size(const hl_kv_cache *kv);

/* ---- block operations (for the runner) ---- */
/* Copies every layer's K and V of block src into block dst (copy-on-write when
 * a forked sequence appends to a shared, partially filled block). */
void hl_kv_copy_block(hl_kv_cache *kv, int32_t dst, int32_t src);

/* ---- raw access (the forward pass and tests) ---- */
/* Start of K (resp. V) of one slot: n_head_kv * head_dim elements, head-major. */
hl_f16 *hl_kv_k_slot(hl_kv_cache *kv, int32_t layer, int32_t block, int32_t slot);
hl_f16 *hl_kv_v_slot(hl_kv_cache *kv, int32_t layer, int32_t block, int32_t slot);

#endif
