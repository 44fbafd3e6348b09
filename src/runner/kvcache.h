/* KV-cache block bookkeeping: which blocks of the paged pool are in use, by
 * how many sequences, and which hold a known token prefix (prefix caching).
 *
 * The storage itself (K and V per layer) lives in model/kv.h; this module only
 * hands out block ids. A sequence owns a block table of ids. Blocks are
 * reference counted so that forked sequences (n > 1) and requests sharing a
 * prompt prefix share blocks. When a block is full, the runner "commits" it
 * under a hash chain key — hash(parent key, its token ids) — so a later
 * request whose prompt starts with the same tokens finds it with
 * hl_kvc_lookup and skips that prefill. Released blocks keep their contents
 * and key; they are reused least-recently-released first, cached ones after
 * never-cached ones, so the cache survives as long as memory allows.
 * Hash hits are verified against the stored token ids and parent key.
 * A sequence's last, partly filled block is kept too when it is released
 * ("partial": its first n_valid positions under a parent key), so the next
 * chat turn, which resends the history, reuses it through
 * hl_kvc_lookup_partial instead of recomputing up to a block of tokens. */
#ifndef HL_RUNNER_KVCACHE_H
#define HL_RUNNER_KVCACHE_H

#include "base/err.h"

#include <stdint.h>

typedef struct hl_kvc_block {
    int32_t ref;          /* sequences holding it; 0 = on the reuse list */
    int32_t prev, next;   /* reuse (LRU) list links, -1 = none */
    int32_t hnext;        /* hash bucket chain, -1 = none */
    uint8_t hashed;       /* committed under `key` (a full block) */
    uint8_t partial;      /* not full: its first n_valid positions are kept under `parent` */
    int32_t n_valid;      /* partial blocks: positions whose tokens and KV are valid */
    uint64_t key, parent; /* hash chain key and its parent's key */
} hl_kvc_block;

typedef struct hl_kvc_stats {
    uint64_t queries, hits;  /* prefix lookups and hits, in blocks */
    uint64_t evictions;      /* cached blocks reused for other content */
} hl_kvc_stats;

typedef struct hl_kvc {
    int32_t n_blocks, block_size;
    int32_t n_free;           /* blocks with ref == 0 (empty or cached) */
    int32_t lru_head, lru_tail;
    hl_kvc_block *blocks;     /* [n_blocks] */
    int32_t *tokens;          /* [n_blocks * block_size]: ids of committed blocks */
    int32_t *buckets;         /* [n_buckets] heads of hash chains */
    uint32_t n_buckets;       /* power of two */
    hl_kvc_stats stats;
} hl_kvc;

/* The key of the empty prefix, parent of every sequence's first block. */
#define HL_KVC_ROOT_KEY 0x9E3779B97F4A7C15ull

int hl_kvc_init(hl_kvc *c, int32_t n_blocks, int32_t block_size, hl_err *err);
void hl_kvc_free(hl_kvc *c);

/* A block for new content (ref = 1), or -1 when every block is in use. May
 * evict the least recently released cached block. */
int32_t hl_kvc_alloc(hl_kvc *c);
void hl_kvc_retain(hl_kvc *c, int32_t id);
/* Drops one reference; at zero the block joins the reuse list. */
void hl_kvc_release(hl_kvc *c, int32_t id);

/* Key of a full block of tokens following the prefix whose key is parent. */
uint64_t hl_kvc_key(uint64_t parent, const int32_t *tokens, int32_t block_size);
/* Registers a full block's contents; returns its key (to chain the next one).
 * If the same content is already cached in another block, this block stays
 * unregistered (the other copy serves future lookups). */
uint64_t hl_kvc_commit(hl_kvc *c, int32_t id, uint64_t parent, const int32_t *tokens);
/* A cached block holding exactly `tokens` after `parent`, retained for the
 * caller (ref + 1), or -1. */
int32_t hl_kvc_lookup(hl_kvc *c, uint64_t parent, const int32_t *tokens);
/* The cached block (full or partial) under `parent` whose first tokens match
 * the longest prefix (at most n < block_size) of `tokens`: retained, its match length
 * in *matched (0 and -1 when none). The caller copies the block's KV into a
 * block of its own and reuses only the matching positions (a sequence that
 * diverges inside a block still skips the tokens before the divergence).
 * Scans the blocks: O(n_blocks). */
/* Keeps a released sequence's partly filled last block (n valid positions,
 * 0 < n < block_size, after the prefix whose key is parent) for
 * hl_kvc_lookup_partial. Ignored for a block that is committed full. */
void hl_kvc_commit_partial(hl_kvc *c, int32_t id, uint64_t parent, const int32_t *tokens, int32_t n);
int32_t hl_kvc_lookup_partial(hl_kvc *c, uint64_t parent, const int32_t *tokens, int32_t n, int32_t *matched);

int32_t hl_kvc_n_used(const hl_kvc *c); /* blocks with ref > 0 */

#endif
