/* Tests for prompt lookup (runner/ngram.c) and adaptive speculation's
 * arithmetic (runner/spec.c).
 *
 * The n-gram index is checked against a brute-force rescan written here
 * from the definition (for n from n_max down to n_min, the latest earlier
 * occurrence of the sequence's last n tokens, and what followed it): on
 * hand-made sequences with known answers, and as a property over random
 * sequences over small alphabets (many repeats, many hash-table hits and
 * probes) grown one token or several at a time, with the index fed
 * incrementally. The adaptive control is checked for its shape: long drafts
 * when acceptance is high and rows cheap, none (with probes) when acceptance
 * stays low, none without probes when the batch is large, and the online fit
 * of the step cost recovering a known a + b*m. */
#include "harness.h"

#include "runner/ngram.h"
#include "runner/spec.h"

#include <stdlib.h>

/* The definition: for n = n_max .. n_min (n <= len-1), the largest e in
 * [n, len-1] with tokens[e-n..e) == tokens[len-n..len), then tokens[e..]. */
static int32_t brute(const int32_t *t, int32_t len, int32_t n_min, int32_t n_max, int32_t *draft, int32_t max) {
    for (int32_t n = n_max; n >= n_min; n--) {
        if (n > len - 1) continue;
        for (int32_t e = len - 1; e >= n; e--) {
            if (memcmp(t + e - n, t + len - n, (size_t)n * sizeof *t)) continue;
            int32_t k = len - e < max ? len - e : max;
            memcpy(draft, t + e, (size_t)k * sizeof *t);
            return k;
        }
    }
    return 0;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

TEST(ngram_hand_made_sequences) {
    ngram_index *ix = NULL;
    CHECK_EQ(ngram_index_new(&ix, 1, 4, NULL), 0);
    int32_t d[8];
    /* a b c d x a b c -> the 3-gram "a b c" matched: "d x a b c" follows (up to 8) */
    const int32_t s1[] = {1, 2, 3, 4, 9, 1, 2, 3};
    int32_t n = ngram_index_propose(ix, s1, 8, d, 8);
    CHECK_EQ(n, 5);
    CHECK(n == 5 && d[0] == 4 && d[1] == 9 && d[2] == 1 && d[3] == 2 && d[4] == 3);
    /* the latest occurrence wins: 7 5 | 7 6 | 7 -> after the last earlier 7 comes 6 */
    ngram_index_free(ix);
    CHECK_EQ(ngram_index_new(&ix, 1, 4, NULL), 0);
    const int32_t s2[] = {7, 5, 7, 6, 7};
    n = ngram_index_propose(ix, s2, 5, d, 3);
    CHECK_EQ(n, 2);
    CHECK(d[0] == 6 && d[1] == 7);
    /* longest first: "1 2" seen twice with different continuations, "0 1 2" once */
    ngram_index_free(ix);
    CHECK_EQ(ngram_index_new(&ix, 1, 4, NULL), 0);
    const int32_t s3[] = {0, 1, 2, 5, 1, 2, 6, 0, 1, 2};
    n = ngram_index_propose(ix, s3, 10, d, 2);
    CHECK_EQ(n, 2);
    CHECK(d[0] == 5 && d[1] == 1);
    /* nothing repeats: no draft; one token: no draft */
    ngram_index_free(ix);
    CHECK_EQ(ngram_index_new(&ix, 1, 4, NULL), 0);
    const int32_t s4[] = {1, 2, 3, 4};
    CHECK_EQ(ngram_index_propose(ix, s4, 4, d, 8), 0);
    CHECK_EQ(ngram_index_propose(ix, s4, 1, d, 8), 0); /* shorter: rebuilt */
    /* a run of one token proposes more of it (the continuation overlaps the suffix) */
    const int32_t s5[] = {3, 3, 3, 3};
    n = ngram_index_propose(ix, s5, 4, d, 8);
    CHECK_EQ(n, 1); /* "3 3 3" last seen ending at 3: one token follows it */
    CHECK_EQ(d[0], 3);
    /* min 2: a single repeated token is not enough */
    ngram_index_free(ix);
    CHECK_EQ(ngram_index_new(&ix, 2, 3, NULL), 0);
    const int32_t s6[] = {4, 8, 5, 9, 4};
    CHECK_EQ(ngram_index_propose(ix, s6, 5, d, 8), 0);
    ngram_index_free(ix);
    CHECK(ngram_index_new(&ix, 0, 4, NULL) != 0);
    CHECK(ngram_index_new(&ix, 3, 2, NULL) != 0);
    CHECK(ngram_index_new(&ix, 1, NGRAM_MAX_N + 1, NULL) != 0);
}

/* The property: proposals of the incrementally fed index equal the rescan's
 * at every length, for several (n_min, n_max), alphabets and growth steps. */
TEST(ngram_index_equals_rescan_on_random_sequences) {
    enum { LEN = 1500 };
    static int32_t t[LEN];
    uint64_t seed = 0x1234567ull;
    const int32_t alphabets[] = {2, 3, 5, 17, 1000};
    const int32_t mins[] = {1, 1, 2, 3}, maxs[] = {4, 1, 4, NGRAM_MAX_N};
    int32_t mismatches = 0, proposals = 0;
    for (int a = 0; a < 5; a++) {
        for (int m = 0; m < 4; m++) {
            ngram_index *ix = NULL;
            CHECK_EQ(ngram_index_new(&ix, mins[m], maxs[m], NULL), 0);
            int32_t len = 0;
            while (len < LEN) {
                /* grow by 1..4 tokens, sometimes copying an earlier stretch (as
                 * a rewrite would), so long matches occur */
                int32_t grow = 1 + (int32_t)(rng_next(&seed) % 4);
                for (int32_t i = 0; i < grow && len < LEN; i++) {
                    if (len > 8 && rng_next(&seed) % 3 == 0) t[len] = t[rng_next(&seed) % (uint64_t)len];
                    else t[len] = (int32_t)(rng_next(&seed) % (uint64_t)alphabets[a]);
                    len++;
                }
                int32_t max = 1 + (int32_t)(rng_next(&seed) % 12);
                int32_t d1[16], d2[16];
                int32_t n1 = ngram_index_propose(ix, t, len, d1, max);
                int32_t n2 = brute(t, len, mins[m], maxs[m], d2, max);
                proposals += n2 > 0;
                if (n1 != n2 || memcmp(d1, d2, (size_t)n1 * sizeof *d1)) {
                    if (mismatches++ < 5)
                        hl_test_fail(__FILE__, __LINE__, "alphabet %d n %d..%d len %d: index %d tokens, rescan %d",
                                     alphabets[a], mins[m], maxs[m], len, n1, n2);
                }
            }
            ngram_index_free(ix);
        }
    }
    CHECK_EQ(mismatches, 0);
    CHECK(proposals > 1000); /* the property was exercised, not vacuous */
}

/* The same index serves a sequence replaced by another (a rebuild), and the
 * drafter keeps one index per choice. */
TEST(ngram_drafter_keeps_choices_apart) {
    hl_drafter dr;
    CHECK_EQ(ngram_drafter_new(&dr, 1, 4, 0, NULL), 0);
    const int32_t a[] = {1, 2, 3, 1, 2};  /* choice 0: proposes 3 1 2 */
    const int32_t b[] = {5, 6, 7, 5};     /* choice 3: proposes 6 7 5 */
    int32_t d[8];
    CHECK_EQ(dr.propose(dr.ctx, 0, a, 5, d, 8), 3);
    CHECK(d[0] == 3 && d[1] == 1 && d[2] == 2);
    CHECK_EQ(dr.propose(dr.ctx, 3, b, 4, d, 8), 3);
    CHECK(d[0] == 6 && d[1] == 7 && d[2] == 5);
    /* choice 0 again, grown: its own index (not b's) */
    const int32_t a2[] = {1, 2, 3, 1, 2, 3};
    CHECK_EQ(dr.propose(dr.ctx, 0, a2, 6, d, 2), 2);
    CHECK(d[0] == 1 && d[1] == 2);
    /* a different sequence for choice 0 (last indexed token changed): rebuilt */
    const int32_t c[] = {9, 8, 9, 4, 4, 4};
    CHECK_EQ(dr.propose(dr.ctx, 0, c, 6, d, 8), 1);
    CHECK_EQ(d[0], 4);
    dr.free(dr.ctx);
    CHECK(ngram_drafter_new(&dr, 2, 1, 0, NULL) != 0);
}

/* ---- adaptive control ------------------------------------------------------ */

static spec_seq with_history(int32_t drafted, int32_t accepted, int times) {
    spec_seq s = {0};
    for (int i = 0; i < times; i++) spec_seq_update(&s, drafted, accepted);
    return s;
}

TEST(spec_draft_length_follows_acceptance) {
    spec_cost c;
    spec_cost_init(&c, 0.5);
    spec_step one = {.rows = 1, .tokens = 1};
    /* drafts always accepted: long drafts */
    spec_seq hi = with_history(8, 8, 10);
    CHECK(spec_seq_alpha(&hi) > 0.95f);
    /* one draft a step, always accepted, is as good evidence per position: the
     * estimate is not held under 0.9 by the prior (counts decay per position) */
    spec_seq one_at_a_time = with_history(1, 1, 80);
    CHECK(spec_seq_alpha(&one_at_a_time) > 0.95f);
    int32_t k_hi = spec_choose(&c, &hi, &one, 16);
    CHECK(k_hi >= 6);
    /* half accepted: shorter */
    spec_seq mid = with_history(4, 2, 10);
    int32_t k_mid = spec_choose(&c, &mid, &one, 16);
    CHECK(k_mid >= 1 && k_mid < k_hi);
    /* always rejected at the first: off, with a short probe every SPEC_PROBE_EVERY steps */
    spec_seq lo = with_history(4, 0, 10);
    CHECK(spec_seq_alpha(&lo) < 0.3f);
    int probes = 0;
    for (int i = 0; i < 4 * SPEC_PROBE_EVERY; i++) {
        int32_t k = spec_choose(&c, &lo, &one, 16);
        CHECK(k == 0 || k == SPEC_PROBE_LEN);
        probes += k > 0;
    }
    CHECK_EQ(probes, 4);
    /* the same history with a draft model (a drafted token costs time): no probes,
     * since each would first feed the draft every token since it last ran */
    spec_seq lo_model = with_history(4, 0, 10);
    lo_model.cost = 0.05;
    for (int i = 0; i < 4 * SPEC_PROBE_EVERY; i++) CHECK_EQ(spec_choose(&c, &lo_model, &one, 16), 0);
    /* cheap rows (a GPU): even mediocre acceptance drafts more */
    spec_cost gpu;
    spec_cost_init(&gpu, 0.01);
    CHECK(spec_choose(&gpu, &mid, &one, 16) > k_mid);
    /* the expected extra tokens: alpha + ... + alpha^k */
    CHECK_NEAR(spec_extra(0.5, 3), 0.875, 1e-9);
    CHECK_NEAR(spec_extra(1.0, 5), 5, 1e-9);
    CHECK_NEAR(spec_extra(0.9, 0), 0, 1e-9);
}

TEST(spec_large_batch_turns_drafting_off_without_probes) {
    spec_cost c;
    spec_cost_init(&c, 0.5);
    spec_seq hi = with_history(8, 8, 10);
    /* one stream: drafts; a large batch at the same acceptance: rows are dear */
    spec_step one = {.rows = 1, .tokens = 1};
    CHECK(spec_choose(&c, &hi, &one, 8) > 0);
    spec_step big = {.rows = 64, .tokens = 64};
    spec_seq s = hi;
    for (int i = 0; i < 4 * SPEC_PROBE_EVERY; i++) CHECK_EQ(spec_choose(&c, &s, &big, 8), 0);
    /* the break-even moves with the cost of a row */
    int32_t off_cpu = 0, off_gpu = 0;
    spec_cost gpu;
    spec_cost_init(&gpu, 0.01);
    for (int32_t m = 1; m <= 512 && (!off_cpu || !off_gpu); m++) {
        spec_step st = {.rows = m, .tokens = m};
        spec_seq x = with_history(4, 3, 10); /* alpha ~ 0.7 */
        if (!off_cpu && spec_choose(&c, &x, &st, 8) == 0) off_cpu = m;
        x = with_history(4, 3, 10);
        if (!off_gpu && spec_choose(&gpu, &x, &st, 8) == 0) off_gpu = m;
    }
    CHECK(off_cpu > 0 && off_cpu <= 8);
    CHECK(off_gpu > 4 * off_cpu || off_gpu == 0);
    /* drafts placed in the step count against later sequences */
    spec_step st = {.rows = 2, .tokens = 2};
    spec_seq a = hi, b = hi;
    int32_t ka = spec_choose(&c, &a, &st, 8);
    spec_step_add(&st, &a, ka);
    int32_t kb = spec_choose(&c, &b, &st, 8);
    CHECK(kb <= ka);
}

TEST(spec_cost_fit_recovers_the_slope) {
    spec_cost c;
    spec_cost_init(&c, 0.5);
    CHECK_NEAR(spec_cost_ratio(&c), 0.5, 1e-12); /* no observations: the prior */
    /* steps of 1..9 rows costing 10 ms + 1 ms per row: b/a = 0.1 */
    for (int i = 0; i < 400; i++) {
        int32_t m = 1 + i % 9;
        spec_cost_observe(&c, m, 10e6 + 1e6 * m);
    }
    CHECK_NEAR(spec_cost_ratio(&c), 0.1, 1e-6);
    /* one row count only: no slope to see, the prior stays */
    spec_cost d;
    spec_cost_init(&d, 0.3);
    for (int i = 0; i < 400; i++) spec_cost_observe(&d, 1, 5e6);
    CHECK_NEAR(spec_cost_ratio(&d), 0.3, 1e-12);
}

/* A draft model's cost (spec.h): the prior until drafter calls are timed,
 * then their time over a step's fixed cost; a dear draft turns drafting
 * off even at high acceptance, and the measurement fades with the steps. */
TEST(spec_draft_cost_is_measured_and_fades) {
    spec_cost c;
    spec_cost_init(&c, 0.5);
    CHECK_NEAR(spec_cost_draft(&c, 0.3), 0.3, 1e-12);
    for (int i = 0; i < 4; i++) spec_cost_observe(&c, 1, 150e6); /* a = 150 / 1.5 = 100 ms */
    spec_cost_observe_draft(&c, 8, 800e6);                        /* 100 ms a token: 1 step cost */
    CHECK_NEAR(spec_cost_draft(&c, 0.3), (0.3 * 8 + 8.0) / 16, 1e-6);
    for (int i = 0; i < 10; i++) spec_cost_observe_draft(&c, 8, 800e6);
    double dear = spec_cost_draft(&c, 0.3);
    CHECK(dear > 0.9 && dear < 1.01);
    /* at that cost, drafts accepted 95% of the time still do not pay */
    spec_step one = {.rows = 1, .tokens = 1};
    spec_seq hi = with_history(8, 8, 10);
    hi.cost = dear;
    CHECK_EQ(spec_choose(&c, &hi, &one, 8), 0);
    hi.cost = 0.05; /* a cheap draft does */
    CHECK(spec_choose(&c, &hi, &one, 8) > 0);
    /* hundreds of steps later it is still dear (a retry would pay a long catch-up) */
    for (int i = 0; i < 300; i++) spec_cost_observe(&c, 1, 150e6);
    CHECK(spec_cost_draft(&c, 0.3) > 0.9);
    /* thousands of steps later the measurement has faded towards the prior */
    for (int i = 0; i < 6000; i++) spec_cost_observe(&c, 1, 150e6);
    CHECK(spec_cost_draft(&c, 0.3) < 0.35);
}
