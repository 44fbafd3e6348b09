/* KV-cache block bookkeeping: reference counts, the reuse (LRU) list and the
 * prefix-cache hash table. */
#include "runner/kvcache.h"
#include "base/assert.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static void lru_unlink(hl_kvc *c, int32_t id) {
    hl_kvc_block *b = &c->blocks[id];
    if (b->prev >= 0) c->blocks[b->prev].next = b->next; else c->lru_head = b->next;
    if (b->next >= 0) c->blocks[b->next].prev = b->prev; else c->lru_tail = b->prev;
    b->prev = b->next = -1;
    c->n_free--;
}

static void lru_push_head(hl_kvc *c, int32_t id) {
    hl_kvc_block *b = &c->blocks[id];
    b->prev = -1;
    b->next = c->lru_head;
    if (c->lru_head >= 0) c->blocks[c->lru_head].prev = id; else c->lru_tail = id;
    c->lru_head = id;
    c->n_free++;
}

static void lru_push_tail(hl_kvc *c, int32_t id) {
    hl_kvc_block *b = &c->blocks[id];
    b->next = -1;
    b->prev = c->lru_tail;
    if (c->lru_tail >= 0) c->blocks[c->lru_tail].next = id; else c->lru_head = id;
    c->lru_tail = id;
    c->n_free++;
}

int hl_kvc_init(hl_kvc *c, int32_t n_blocks, int32_t block_size, hl_err *err) {
    memset(c, 0, sizeof *c);
    if (n_blocks <= 0 || block_size <= 0)
        return hl_err_set(err, HL_EINVAL, "kv cache needs at least one block (got %d blocks of %d)", n_blocks, block_size);
    c->n_blocks = n_blocks;
    c->block_size = block_size;
    c->n_buckets = 1;
    while (c->n_buckets < (uint32_t)n_blocks * 2) c->n_buckets <<= 1;
    c->blocks = calloc((size_t)n_blocks, sizeof *c->blocks);
    c->tokens = calloc((size_t)n_blocks * (size_t)block_size, sizeof *c->tokens);
    c->buckets = malloc(c->n_buckets * sizeof *c->buckets);
    if (!c->blocks || !c->tokens || !c->buckets) {
        hl_kvc_free(c);
        return hl_err_set(err, HL_ENOMEM, "out of memory for kv cache bookkeeping (%d blocks)", n_blocks);
    }
    for (uint32_t i = 0; i < c->n_buckets; i++) c->buckets[i] = -1;
    c->lru_head = c->lru_tail = -1;
    for (int32_t i = 0; i < n_blocks; i++) {
        c->blocks[i].hnext = -1;
        lru_push_tail(c, i);
    }
    return HL_OK;
}

void hl_kvc_free(hl_kvc *c) {
    free(c->blocks);
    free(c->tokens);
    free(c->buckets);
    memset(c, 0, sizeof *c);
}

static void unhash(hl_kvc *c, int32_t id) {
    hl_kvc_block *b = &c->blocks[id];
    if (!b->hashed) return;
    int32_t *p = &c->buckets[b->key & (c->n_buckets - 1)];
    while (*p >= 0 && *p != id) p = &c->blocks[*p].hnext;
    HL_ASSERT(*p == id);
    *p = b->hnext;
    b->hnext = -1;
    b->hashed = 0;
}

int32_t hl_kvc_alloc(hl_kvc *c) {
    int32_t id = c->lru_head;
    if (id < 0) return -1;
    lru_unlink(c, id);
    hl_kvc_block *b = &c->blocks[id];
    if (b->hashed) {
        unhash(c, id);
        c->stats.evictions++;
    }
    if (b->partial) {
        b->partial = 0;
        c->stats.evictions++;
    }
    b->ref = 1;
    return id;
}

void hl_kvc_retain(hl_kvc *c, int32_t id) {
    HL_ASSERT(id >= 0 && id < c->n_blocks);
    hl_kvc_block *b = &c->blocks[id];
    if (b->ref == 0) lru_unlink(c, id);
    b->ref++;
}

void hl_kvc_release(hl_kvc *c, int32_t id) {
    HL_ASSERT(id >= 0 && id < c->n_blocks && c->blocks[id].ref > 0);
    hl_kvc_block *b = &c->blocks[id];
    if (--b->ref > 0) return;
    /* cached blocks are kept as long as possible (most recent at the tail);
     * blocks with nothing worth keeping are reused first */
    if (b->hashed || b->partial) lru_push_tail(c, id);
    else lru_push_head(c, id);
}

uint64_t hl_kvc_key(uint64_t parent, const int32_t *tokens, int32_t block_size) {
    return XXH3_64bits_withSeed(tokens, (size_t)block_size * sizeof *tokens, parent);
}

static int32_t find(const hl_kvc *c, uint64_t key, uint64_t parent, const int32_t *tokens) {
    for (int32_t id = c->buckets[key & (c->n_buckets - 1)]; id >= 0; id = c->blocks[id].hnext) {
        const hl_kvc_block *b = &c->blocks[id];
        if (b->key == key && b->parent == parent &&
            memcmp(&c->tokens[(size_t)id * (size_t)c->block_size], tokens, (size_t)c->block_size * sizeof *tokens) == 0)
            return id;
    }
    return -1;
}

uint64_t hl_kvc_commit(hl_kvc *c, int32_t id, uint64_t parent, const int32_t *tokens) {
    HL_ASSERT(id >= 0 && id < c->n_blocks);
    uint64_t key = hl_kvc_key(parent, tokens, c->block_size);
    hl_kvc_block *b = &c->blocks[id];
    if (b->hashed) {
        if (b->key == key && b->parent == parent) return key;
        unhash(c, id);
    }
    if (find(c, key, parent, tokens) >= 0) return key;
    memcpy(&c->tokens[(size_t)id * (size_t)c->block_size], tokens, (size_t)c->block_size * sizeof *tokens);
    b->key = key;
    b->parent = parent;
    b->hashed = 1;
    b->partial = 0;
    int32_t *head = &c->buckets[key & (c->n_buckets - 1)];
    b->hnext = *head;
    *head = id;
    return key;
}

int32_t hl_kvc_lookup(hl_kvc *c, uint64_t parent, const int32_t *tokens) {
    c->stats.queries++;
    int32_t id = find(c, hl_kvc_key(parent, tokens, c->block_size), parent, tokens);
    if (id < 0) return -1;
    c->stats.hits++;
    hl_kvc_retain(c, id);
    return id;
}

void hl_kvc_commit_partial(hl_kvc *c, int32_t id, uint64_t parent, const int32_t *tokens, int32_t n) {
    HL_ASSERT(id >= 0 && id < c->n_blocks);
    hl_kvc_block *b = &c->blocks[id];
    if (b->hashed || n <= 0 || n >= c->block_size) return;
    memcpy(&c->tokens[(size_t)id * (size_t)c->block_size], tokens, (size_t)n * sizeof *tokens);
    b->parent = parent;
    b->n_valid = n;
    b->partial = 1;
}

int32_t hl_kvc_lookup_partial(hl_kvc *c, uint64_t parent, const int32_t *tokens, int32_t n, int32_t *matched) {
    *matched = 0;
    if (n <= 0) return -1;
    if (n > c->block_size - 1) n = c->block_size - 1;
    c->stats.queries++;
    int32_t best = -1, best_len = 0;
    for (int32_t id = 0; id < c->n_blocks; id++) {
        const hl_kvc_block *b = &c->blocks[id];
        if (!(b->hashed || b->partial) || b->parent != parent) continue;
        const int32_t *bt = &c->tokens[(size_t)id * (size_t)c->block_size];
        const int32_t lim = b->hashed || b->n_valid > n ? n : b->n_valid;
        int32_t l = 0;
        while (l < lim && bt[l] == tokens[l]) l++;
        if (l > best_len) best_len = l, best = id;
    }
    if (best < 0) return -1;
    c->stats.hits++;
    hl_kvc_retain(c, best);
    *matched = best_len;
    return best;
}

int32_t hl_kvc_n_used(const hl_kvc *c) { return c->n_blocks - c->n_free; }
