/* Tests for the KV block bookkeeping: allocation, reference counts, reuse
 * order, prefix-cache hits with verification, eviction. */
#include "harness.h"

#include "runner/kvcache.h"

TEST(kvc_alloc_until_full_then_release) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 4, 16, NULL), 0);
    int32_t ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = hl_kvc_alloc(&c);
        CHECK(ids[i] >= 0);
    }
    CHECK_EQ(hl_kvc_alloc(&c), -1);
    CHECK_EQ(hl_kvc_n_used(&c), 4);
    hl_kvc_retain(&c, ids[1]);
    hl_kvc_release(&c, ids[1]);
    CHECK_EQ(hl_kvc_n_used(&c), 4); /* still referenced once */
    hl_kvc_release(&c, ids[1]);
    CHECK_EQ(hl_kvc_n_used(&c), 3);
    CHECK_EQ(hl_kvc_alloc(&c), ids[1]);
    hl_kvc_free(&c);
}

TEST(kvc_prefix_hit_requires_same_tokens_and_parent) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 8, 4, NULL), 0);
    int32_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, b2[4] = {5, 6, 7, 9};
    int32_t x = hl_kvc_alloc(&c), y = hl_kvc_alloc(&c);
    uint64_t ka = hl_kvc_commit(&c, x, HL_KVC_ROOT_KEY, a);
    uint64_t kb = hl_kvc_commit(&c, y, ka, b);
    CHECK(ka != kb);
    hl_kvc_release(&c, x);
    hl_kvc_release(&c, y);
    /* same prefix: both blocks found again, in order */
    CHECK_EQ(hl_kvc_lookup(&c, HL_KVC_ROOT_KEY, a), x);
    CHECK_EQ(hl_kvc_lookup(&c, ka, b), y);
    /* different tokens or different parent: miss */
    CHECK_EQ(hl_kvc_lookup(&c, ka, b2), -1);
    CHECK_EQ(hl_kvc_lookup(&c, HL_KVC_ROOT_KEY, b), -1);
    CHECK_EQ(c.stats.queries, 4);
    CHECK_EQ(c.stats.hits, 2);
    hl_kvc_free(&c);
}

TEST(kvc_uncached_blocks_are_reused_before_cached_ones) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 3, 2, NULL), 0);
    int32_t t[2] = {7, 7};
    int32_t cached = hl_kvc_alloc(&c), plain = hl_kvc_alloc(&c), third = hl_kvc_alloc(&c);
    hl_kvc_commit(&c, cached, HL_KVC_ROOT_KEY, t);
    hl_kvc_release(&c, cached);
    hl_kvc_release(&c, plain);
    CHECK_EQ(hl_kvc_alloc(&c), plain);   /* the empty block goes first */
    CHECK_EQ(hl_kvc_alloc(&c), cached);  /* then the cached one is evicted */
    CHECK_EQ(c.stats.evictions, 1);
    CHECK_EQ(hl_kvc_lookup(&c, HL_KVC_ROOT_KEY, t), -1);
    (void)third;
    hl_kvc_free(&c);
}

TEST(kvc_lru_evicts_least_recently_released) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 3, 1, NULL), 0);
    int32_t t0 = 10, t1 = 11, t2 = 12;
    int32_t b0 = hl_kvc_alloc(&c), b1 = hl_kvc_alloc(&c), b2 = hl_kvc_alloc(&c);
    hl_kvc_commit(&c, b0, HL_KVC_ROOT_KEY, &t0);
    hl_kvc_commit(&c, b1, HL_KVC_ROOT_KEY, &t1);
    hl_kvc_commit(&c, b2, HL_KVC_ROOT_KEY, &t2);
    hl_kvc_release(&c, b1);
    hl_kvc_release(&c, b0);
    hl_kvc_release(&c, b2);
    /* a hit on b1 moves it out of the list; releasing it makes it most recent */
    CHECK_EQ(hl_kvc_lookup(&c, HL_KVC_ROOT_KEY, &t1), b1);
    hl_kvc_release(&c, b1);
    CHECK_EQ(hl_kvc_alloc(&c), b0);
    CHECK_EQ(hl_kvc_alloc(&c), b2);
    CHECK_EQ(hl_kvc_alloc(&c), b1);
    hl_kvc_free(&c);
}

TEST(kvc_duplicate_commit_keeps_one_copy) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 4, 2, NULL), 0);
    int32_t t[2] = {3, 4};
    int32_t a = hl_kvc_alloc(&c), b = hl_kvc_alloc(&c);
    hl_kvc_commit(&c, a, HL_KVC_ROOT_KEY, t);
    hl_kvc_commit(&c, b, HL_KVC_ROOT_KEY, t);
    CHECK_EQ(hl_kvc_lookup(&c, HL_KVC_ROOT_KEY, t), a);
    CHECK(!c.blocks[b].hashed);
    hl_kvc_free(&c);
}

TEST(kvc_partial_lookup_longest_match_under_parent) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 8, 4, NULL), 0);
    int32_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, b2[4] = {5, 6, 9, 9}, other[4] = {5, 6, 7, 8};
    int32_t x = hl_kvc_alloc(&c), y = hl_kvc_alloc(&c), y2 = hl_kvc_alloc(&c), z = hl_kvc_alloc(&c);
    uint64_t ka = hl_kvc_commit(&c, x, HL_KVC_ROOT_KEY, a);
    hl_kvc_commit(&c, y, ka, b);
    hl_kvc_commit(&c, y2, ka, b2);
    hl_kvc_commit(&c, z, 12345, other); /* same tokens, another parent: never a candidate */
    hl_kvc_release(&c, x);
    hl_kvc_release(&c, y);
    hl_kvc_release(&c, y2);
    hl_kvc_release(&c, z);
    int32_t m = -1;
    int32_t want[3] = {5, 6, 7};
    CHECK_EQ(hl_kvc_lookup_partial(&c, ka, want, 3, &m), y); /* y matches 3, y2 only 2 */
    CHECK_EQ(m, 3);
    CHECK_EQ(hl_kvc_n_used(&c), 1); /* the candidate is retained */
    hl_kvc_release(&c, y);
    int32_t want2[3] = {5, 6, 1};
    int32_t got = hl_kvc_lookup_partial(&c, ka, want2, 3, &m);
    CHECK(got == y || got == y2);
    CHECK_EQ(m, 2);
    hl_kvc_release(&c, got);
    int32_t none[3] = {9, 9, 9};
    CHECK_EQ(hl_kvc_lookup_partial(&c, ka, none, 3, &m), -1);
    CHECK_EQ(m, 0);
    CHECK_EQ(hl_kvc_lookup_partial(&c, 777, want, 3, &m), -1); /* unknown parent */
    /* never a whole block: n is capped at block_size - 1 */
    int32_t whole[4] = {5, 6, 7, 8};
    CHECK_EQ(hl_kvc_lookup_partial(&c, ka, whole, 4, &m), y);
    CHECK_EQ(m, 3);
    hl_kvc_release(&c, y);
    CHECK_EQ(hl_kvc_n_used(&c), 0);
    hl_kvc_free(&c);
}

TEST(kvc_partial_tail_kept_and_limited_to_valid_positions) {
    hl_kvc c;
    CHECK_EQ(hl_kvc_init(&c, 4, 8, NULL), 0);
    int32_t t[8] = {1, 2, 3, 9, 9, 9, 9, 9};
    int32_t x = hl_kvc_alloc(&c), y = hl_kvc_alloc(&c);
    hl_kvc_commit_partial(&c, x, HL_KVC_ROOT_KEY, t, 3); /* positions 0..2 valid */
    hl_kvc_release(&c, y);                               /* never cached: reused first */
    hl_kvc_release(&c, x);
    CHECK_EQ(hl_kvc_alloc(&c), y);
    int32_t m = 0, want[7] = {1, 2, 3, 9, 9, 9, 9};
    CHECK_EQ(hl_kvc_lookup_partial(&c, HL_KVC_ROOT_KEY, want, 7, &m), x);
    CHECK_EQ(m, 3); /* never past the valid positions, though the next tokens agree */
    hl_kvc_release(&c, x);
    /* committing the block full later supersedes the partial entry */
    int32_t full[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    hl_kvc_retain(&c, x);
    hl_kvc_commit(&c, x, HL_KVC_ROOT_KEY, full);
    hl_kvc_release(&c, x);
    int32_t want2[7] = {1, 2, 3, 4, 5, 6, 0};
    CHECK_EQ(hl_kvc_lookup_partial(&c, HL_KVC_ROOT_KEY, want2, 7, &m), x);
    CHECK_EQ(m, 6);
    hl_kvc_release(&c, x);
    /* once reused for other content the entry is gone */
    while (hl_kvc_alloc(&c) >= 0) {}
    CHECK_EQ(hl_kvc_lookup_partial(&c, HL_KVC_ROOT_KEY, want2, 7, &m), -1);
    hl_kvc_free(&c);
}
