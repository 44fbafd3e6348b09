/* KV storage: the paged key/value pool the forward pass reads and writes.
 *
 * The pool is a fixed number of blocks, each holding `block_size` token slots
 * for every layer, allocated once. Per layer, K is laid out as
 * [n_blocks][block_size][n_head_kv][head_dim_k] and V as
 * [n_blocks][block_size][n_head_kv][head_dim_v], element type F16 or Q8_0
 * (each head's row then head_dim / 32 blocks of 34 bytes: half the memory,
 * so twice the tokens in the same budget). Position p
 * of a sequence lives in block table[p / block_size], slot p % block_size; the
 * forward pass addresses the pool only through the block tables passed in each
 * hl_batch.
 *
 * This file owns STORAGE only. Which block belongs to whom (free lists,
 * refcounts, prefix hashing, eviction) is metadata kept by the runner
 * (src/runner/kvcache.c): the storage never knows about sequences. Backends
 * that keep KV in host memory (cpu, ref) use this storage; hl_backend_ops
 * kv_* is how everything above model/ reaches it. The pool is
 * not internally synchronised: the engine thread that runs forward passes is
 * its only writer. */
#ifndef HL_BACKEND_KV_H
#define HL_BACKEND_KV_H

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
    hl_type type;       /* HL_TYPE_F16 or HL_TYPE_Q8_0 (head dims multiples of 32) */
} hl_kv_params;

/* ---- lifecycle ---- */
/* Checks a shape and type without allocating (what hl_kv_new would refuse). */
int hl_kv_check_params(const hl_kv_params *p, hl_err *err);
/* Allocates the whole pool (zeroed). Use hl_model_kv_params() (model.h) to fill
 * the shape from a loaded model. */
int hl_kv_new(hl_kv_cache **out, const hl_kv_params *p, hl_err *err);
void hl_kv_free(hl_kv_cache *kv);
/* The same pool in one region the caller owns and frees after it (a device
 * buffer mapped into the host): layer l's K, then its V, each starting at a
 * multiple of align bytes from mem. Zeroes the region. */
size_t hl_kv_region_bytes(const hl_kv_params *p, size_t align);
int hl_kv_new_in(hl_kv_cache **out, const hl_kv_params *p, void *mem, size_t bytes, size_t align, hl_err *err);
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
/* Start of K (resp. V) of one slot: n_head_kv rows of head_dim elements in
 * the cache's type, head-major, hl_kv_head_bytes_k/v() apart. */
void *hl_kv_k_slot(hl_kv_cache *kv, int32_t layer, int32_t block, int32_t slot);
void *hl_kv_v_slot(hl_kv_cache *kv, int32_t layer, int32_t block, int32_t slot);
size_t hl_kv_head_bytes_k(const hl_kv_cache *kv);
size_t hl_kv_head_bytes_v(const hl_kv_cache *kv);
/* Per-layer base of K (resp. V): [n_blocks][block_size][n_head_kv] rows. */
uint8_t *hl_kv_layer_k(hl_kv_cache *kv, int32_t layer);
uint8_t *hl_kv_layer_v(hl_kv_cache *kv, int32_t layer);
/* Zeroes slots [slot0, block_size) of block `block` in every layer. */
void hl_kv_clear_slots(hl_kv_cache *kv, int32_t block, int32_t slot0);
/* "f16" / "q8_0" -> type; -1 for anything else. */
int hl_kv_type_from_name(const char *name);

#endif
