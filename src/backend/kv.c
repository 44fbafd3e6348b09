/* Paged KV storage: one allocation per layer for K and one for V, each
 * [n_blocks][block_size][n_head_kv][head row] with rows of head_dim elements
 * in F16 or Q8_0, zeroed at creation so a
 * never-written slot reads as zeros rather than garbage — or the same layout
 * in one region the caller owns (hl_kv_new_in: a GPU backend's mapped device
 * buffer, which its kernels address by offset). Metadata (which block belongs
 * to which sequence) is the runner's. */
#include "backend/kv.h"


#include "base/assert.h"

#include <stdlib.h>
#include <string.h>

#define HL_KV_MAX_BLOCK_SIZE 1024

struct hl_kv_cache {
    hl_kv_params p;
    size_t k_head, v_head; /* bytes of one head's row */
    size_t k_slot, v_slot; /* bytes per slot: n_head_kv rows */
    uint8_t **k;           /* [n_layer] -> [n_blocks][block_size][n_head_kv][k_head bytes] */
    uint8_t **v;           /* [n_layer] -> [n_blocks][block_size][n_head_kv][v_head bytes] */
    int borrowed;          /* the layers live in the caller's region (hl_kv_new_in) */
};

int hl_kv_type_from_name(const char *name) {
    if (!strcmp(name, "f16")) return HL_TYPE_F16;
    if (!strcmp(name, "q8_0")) return HL_TYPE_Q8_0;
    return -1;
}

int hl_kv_check_params(const hl_kv_params *p, hl_err *err) {
    if (p->type != HL_TYPE_F16 && p->type != HL_TYPE_Q8_0)
        return hl_err_set(err, HL_ENOTSUP, "KV cache type %s is not supported (use f16 or q8_0)", hl_type_name(p->type));
    if (p->n_layer <= 0 || p->n_head_kv <= 0 || p->head_dim_k <= 0 || p->head_dim_v <= 0)
        return hl_err_set(err, HL_EINVAL, "KV cache shape invalid (layers %d, kv heads %d, head dims %d/%d)",
                          p->n_layer, p->n_head_kv, p->head_dim_k, p->head_dim_v);
    if (p->type == HL_TYPE_Q8_0 && (p->head_dim_k % HL_QK || p->head_dim_v % HL_QK))
        return hl_err_set(err, HL_ENOTSUP,
                          "a q8_0 KV cache needs head dimensions that are multiples of 32 (this model: %d/%d); use f16",
                          p->head_dim_k, p->head_dim_v);
    int32_t bs = p->block_size ? p->block_size : HL_KV_DEFAULT_BLOCK_SIZE;
    if (bs <= 0 || bs > HL_KV_MAX_BLOCK_SIZE)
        return hl_err_set(err, HL_EINVAL, "KV block size %d out of range (1..%d)", bs, HL_KV_MAX_BLOCK_SIZE);
    if (p->n_blocks <= 0) return hl_err_set(err, HL_EINVAL, "KV cache needs at least one block (got %d)", p->n_blocks);
    return 0;
}

size_t hl_kv_block_bytes(const hl_kv_params *p) {
    int32_t bs = p->block_size ? p->block_size : HL_KV_DEFAULT_BLOCK_SIZE;
    return (size_t)p->n_layer * (size_t)bs * (size_t)p->n_head_kv *
           (hl_row_size(p->type, p->head_dim_k) + hl_row_size(p->type, p->head_dim_v));
}

void hl_kv_free(hl_kv_cache *kv) {
    if (!kv) return;
    for (int32_t l = 0; !kv->borrowed && l < kv->p.n_layer; l++) {
        if (kv->k) free(kv->k[l]);
        if (kv->v) free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

/* The pool's header: its shape and row sizes, and empty layer tables. */
static hl_kv_cache *kv_header(const hl_kv_params *p) {
    hl_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return NULL;
    kv->p = *p;
    if (!kv->p.block_size) kv->p.block_size = HL_KV_DEFAULT_BLOCK_SIZE;
    kv->k_head = hl_row_size(p->type, p->head_dim_k);
    kv->v_head = hl_row_size(p->type, p->head_dim_v);
    kv->k_slot = (size_t)p->n_head_kv * kv->k_head;
    kv->v_slot = (size_t)p->n_head_kv * kv->v_head;
    kv->k = calloc((size_t)p->n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)p->n_layer, sizeof *kv->v);
    return kv;
}

int hl_kv_new(hl_kv_cache **out, const hl_kv_params *p, hl_err *err) {
    *out = NULL;
    int rc = hl_kv_check_params(p, err);
    if (rc) return rc;
    hl_kv_cache *kv = kv_header(p);
    if (!kv) return hl_err_set(err, HL_ENOMEM, "out of memory allocating the KV cache");
    size_t slots = (size_t)p->n_blocks * (size_t)kv->p.block_size;
    int ok = kv->k && kv->v;
    for (int32_t l = 0; ok && l < p->n_layer; l++) {
        kv->k[l] = calloc(slots, kv->k_slot);
        kv->v[l] = calloc(slots, kv->v_slot);
        ok = kv->k[l] && kv->v[l];
    }
    if (!ok) {
        hl_kv_free(kv);
        return hl_err_set(err, HL_ENOMEM, "out of memory allocating the KV cache (%d blocks, %zu bytes)", p->n_blocks,
                          (size_t)p->n_blocks * hl_kv_block_bytes(p));
    }
    *out = kv;
    return 0;
}

const hl_kv_params *hl_kv_get_params(const hl_kv_cache *kv) { return &kv->p; }
int32_t hl_kv_n_blocks(const hl_kv_cache *kv) { return kv->p.n_blocks; }
int32_t hl_kv_block_size(const hl_kv_cache *kv) { return kv->p.block_size; }

void hl_kv_copy_block(hl_kv_cache *kv, int32_t dst, int32_t src) {
    HL_ASSERT(dst >= 0 && dst < kv->p.n_blocks && src >= 0 && src < kv->p.n_blocks);
    if (dst == src) return;
    size_t bs = (size_t)kv->p.block_size;
    for (int32_t l = 0; l < kv->p.n_layer; l++) {
        memcpy(kv->k[l] + (size_t)dst * bs * kv->k_slot, kv->k[l] + (size_t)src * bs * kv->k_slot,
               bs * kv->k_slot);
        memcpy(kv->v[l] + (size_t)dst * bs * kv->v_slot, kv->v[l] + (size_t)src * bs * kv->v_slot,
               bs * kv->v_slot);
    }
}

void *hl_kv_k_slot(hl_kv_cache *kv, int32_t layer, int32_t block, int32_t slot) {
    HL_ASSERT(layer >= 0 && layer < kv->p.n_layer && block >= 0 && block < kv->p.n_blocks && slot >= 0 &&
              slot < kv->p.block_size);
    return kv->k[layer] + ((size_t)block * (size_t)kv->p.block_size + (size_t)slot) * kv->k_slot;
}

void *hl_kv_v_slot(hl_kv_cache *kv, int32_t layer, int32_t block, int32_t slot) {
    HL_ASSERT(layer >= 0 && layer < kv->p.n_layer && block >= 0 && block < kv->p.n_blocks && slot >= 0 &&
              slot < kv->p.block_size);
    return kv->v[layer] + ((size_t)block * (size_t)kv->p.block_size + (size_t)slot) * kv->v_slot;
}

uint8_t *hl_kv_layer_k(hl_kv_cache *kv, int32_t layer) { return kv->k[layer]; }
uint8_t *hl_kv_layer_v(hl_kv_cache *kv, int32_t layer) { return kv->v[layer]; }
size_t hl_kv_head_bytes_k(const hl_kv_cache *kv) { return kv->k_head; }
size_t hl_kv_head_bytes_v(const hl_kv_cache *kv) { return kv->v_head; }

void hl_kv_clear_slots(hl_kv_cache *kv, int32_t block, int32_t slot0) {
    HL_ASSERT(block >= 0 && block < kv->p.n_blocks && slot0 >= 0);
    if (slot0 >= kv->p.block_size) return;
    size_t bs = (size_t)kv->p.block_size, n = bs - (size_t)slot0;
    for (int32_t l = 0; l < kv->p.n_layer; l++) {
        memset(kv->k[l] + ((size_t)block * bs + (size_t)slot0) * kv->k_slot, 0, n * kv->k_slot);
        memset(kv->v[l] + ((size_t)block * bs + (size_t)slot0) * kv->v_slot, 0, n * kv->v_slot);
    }
}

static size_t round_up(size_t n, size_t a) { return a > 1 ? (n + a - 1) / a * a : n; }

size_t hl_kv_region_bytes(const hl_kv_params *p, size_t align) {
    size_t bs = (size_t)(p->block_size ? p->block_size : HL_KV_DEFAULT_BLOCK_SIZE);
    size_t slots = (size_t)p->n_blocks * bs, nkv = (size_t)p->n_head_kv;
    size_t k = round_up(slots * nkv * hl_row_size(p->type, p->head_dim_k), align);
    size_t v = round_up(slots * nkv * hl_row_size(p->type, p->head_dim_v), align);
    return (size_t)p->n_layer * (k + v);
}

int hl_kv_new_in(hl_kv_cache **out, const hl_kv_params *p, void *mem, size_t bytes, size_t align, hl_err *err) {
    *out = NULL;
    int rc = hl_kv_check_params(p, err);
    if (rc) return rc;
    size_t need = hl_kv_region_bytes(p, align);
    if (bytes < need) return hl_err_set(err, HL_EINVAL, "a KV region of %zu bytes cannot hold this pool (%zu)", bytes, need);
    hl_kv_cache *kv = kv_header(p);
    if (!kv) return hl_err_set(err, HL_ENOMEM, "out of memory allocating the KV cache");
    kv->borrowed = 1;
    if (!kv->k || !kv->v) {
        hl_kv_free(kv);
        return hl_err_set(err, HL_ENOMEM, "out of memory allocating the KV cache");
    }
    size_t slots = (size_t)p->n_blocks * (size_t)kv->p.block_size;
    size_t kb = round_up(slots * kv->k_slot, align), vb = round_up(slots * kv->v_slot, align);
    uint8_t *at = mem;
    memset(mem, 0, need);
    for (int32_t l = 0; l < p->n_layer; l++, at += kb + vb) {
        kv->k[l] = at;
        kv->v[l] = at + kb;
    }
    *out = kv;
    return 0;
}
