/* Tests for the sampler chain (src/sample/sampler.c, select.c). The oracle is
 * a deliberately naive reference written here in double precision: full sorts,
 * explicit softmaxes, penalties recomputed from the raw history. Distributions
 * are compared with empirical frequencies over many seeded draws (a chi-square
 * bound, and no draw outside the reference support); truncation sets are
 * crafted so their boundaries are far from ties. */
#include "harness.h"

#include "sample/sample.h"
#include "sample/select.h"

#include <stdlib.h>

/* ---- naive reference ------------------------------------------------------ */

typedef struct { double v; int id; } ref_item;

static int ref_desc(const void *a, const void *b) {
    const ref_item *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->id - y->id;
}

/* Penalized + biased logits in double, from the raw history. */
static void ref_logits(const float *lg, int n, const hl_sampling_params *p, const int *hist, int nh, double *out) {
    for (int i = 0; i < n; i++) out[i] = lg[i];
    int from = p->repeat_last_n < 0 ? 0 : (nh > p->repeat_last_n ? nh - p->repeat_last_n : 0);
    if (p->repeat_last_n == 0) from = nh;
    int *cnt = calloc((size_t)n, sizeof *cnt);
    for (int i = from; i < nh; i++) cnt[hist[i]]++;
    for (int t = 0; t < n; t++) {
        if (!cnt[t]) continue;
        double v = out[t];
        v = v > 0 ? v / p->repeat_penalty : v * p->repeat_penalty;
        out[t] = v - cnt[t] * (double)p->frequency_penalty - (double)p->presence_penalty;
    }
    free(cnt);
    for (int i = 0; i < p->n_logit_bias; i++) {
        const hl_logit_bias *b = &p->logit_bias[i];
        out[b->token] = b->bias <= -100 ? -INFINITY : out[b->token] + b->bias;
    }
}

/* probabilities of the items it[0..m) (by their .v as logits, scaled by 1/t) */
static void ref_softmax(const ref_item *it, int m, double t, double *p) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < m; i++) mx = it[i].v > mx ? it[i].v : mx;
    for (int i = 0; i < m; i++) s += p[i] = exp((it[i].v - mx) / t);
    for (int i = 0; i < m; i++) p[i] /= s;
}

/* The full chain's sampling distribution into dist[n]. */
static void ref_dist(const float *lg, int n, const hl_sampling_params *p, const int *hist, int nh, double *dist) {
    double *l = malloc((size_t)n * sizeof *l), *pr = malloc((size_t)n * sizeof *pr);
    ref_item *it = malloc((size_t)n * sizeof *it), *tmp = malloc((size_t)n * sizeof *tmp);
    ref_logits(lg, n, p, hist, nh, l);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (l[i] > -INFINITY) it[m++] = (ref_item){l[i], i};
    qsort(it, (size_t)m, sizeof *it, ref_desc);
    for (int i = 0; i < n; i++) dist[i] = 0;
    if (p->temperature <= 0) {
        dist[it[0].id] = 1;
        goto done;
    }
    if (p->top_k > 0 && p->top_k < m) m = p->top_k;
    if (p->typical_p < 1 && m > 1) {
        ref_softmax(it, m, 1, pr);
        double H = 0;
        for (int i = 0; i < m; i++) H -= pr[i] * log(pr[i]);
        for (int i = 0; i < m; i++) tmp[i] = (ref_item){-fabs(-log(pr[i]) - H), i}; /* id = position */
        qsort(tmp, (size_t)m, sizeof *tmp, ref_desc);
        /* ties in the shifted score are broken by token id in the sampler */
        double cum = 0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            cum += pr[tmp[i].id];
            if (cum > p->typical_p) { keep = i + 1; break; }
        }
        ref_item *kept = malloc((size_t)keep * sizeof *kept);
        for (int i = 0; i < keep; i++) kept[i] = it[tmp[i].id];
        for (int i = 0; i < keep; i++) it[i] = kept[i];
        free(kept);
        m = keep;
        qsort(it, (size_t)m, sizeof *it, ref_desc);
    }
    if (p->top_p < 1 && m > 1) {
        ref_softmax(it, m, 1, pr);
        double cum = 0;
        for (int i = 0; i < m; i++) {
            cum += pr[i];
            if (cum >= p->top_p) { m = i + 1; break; }
        }
    }
    if (p->min_p > 0 && m > 1) {
        ref_softmax(it, m, 1, pr);
        int k = 0;
        while (k < m && pr[k] >= p->min_p * pr[0]) k++;
        m = k;
    }
    ref_softmax(it, m, p->temperature, pr);
    for (int i = 0; i < m; i++) dist[it[i].id] = pr[i];
done:
    free(l), free(pr), free(it), free(tmp);
}

/* Draws many tokens and compares frequencies with dist: no draw where the
 * reference probability is 0, and Pearson's chi-square within a bound far
 * beyond chance (df + 8 sqrt(2 df) + 10). */
static void check_distribution(hl_sampler *s, const float *lg, int n, const double *dist, int draws) {
    int *cnt = calloc((size_t)n, sizeof *cnt);
    for (int d = 0; d < draws; d++) {
        int32_t t = hl_sampler_sample(s, lg, NULL);
        CHECK(t >= 0 && t < n);
        if (t >= 0 && t < n) cnt[t]++;
    }
    double chi = 0;
    int df = -1, outside = 0;
    for (int i = 0; i < n; i++) {
        if (dist[i] == 0) {
            outside += cnt[i];
            continue;
        }
        double e = dist[i] * draws;
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
        df++;
    }
    CHECK_EQ(outside, 0);
    double bound = df + 8 * sqrt(2.0 * (df > 0 ? df : 1)) + 10;
    if (!(chi <= bound)) hl_test_fail(__FILE__, __LINE__, "chi-square %.1f > %.1f (df %d)", chi, bound, df);
    free(cnt);
}

static hl_sampling_params plain(float temp) {
    hl_sampling_params p = hl_sampling_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1;
    p.repeat_penalty = 1;
    p.has_seed = 1;
    p.seed = 42;
    return p;
}

static void run_chain(const hl_sampling_params *p, const float *lg, int n, int draws) {
    hl_sampler *s;
    hl_err err;
    CHECK_EQ(hl_sampler_new(&s, p, n, &err), 0);
    double *dist = malloc((size_t)n * sizeof *dist);
    ref_dist(lg, n, p, NULL, 0, dist);
    check_distribution(s, lg, n, dist, draws);
    free(dist);
    hl_sampler_free(s);
}

/* well-separated logits: 0.37 * i, shuffled positions so ids and order differ */
static void crafted(float *lg, int n) {
    for (int i = 0; i < n; i++) lg[(i * 7 + 3) % n] = 0.37f * (float)(i % 13) - 0.11f * (float)(i / 13);
}

/* ---- tests ------------------------------------------------------------------ */

TEST(defaults_are_ollamas) {
    hl_sampling_params p = hl_sampling_default_params();
    CHECK_NEAR(p.temperature, 0.8, 1e-7);
    CHECK_EQ(p.top_k, 40);
    CHECK_NEAR(p.top_p, 0.9, 1e-7);
    CHECK_NEAR(p.min_p, 0.0, 0);
    CHECK_NEAR(p.typical_p, 1.0, 0);
    CHECK_NEAR(p.repeat_penalty, 1.1, 1e-7);
    CHECK_EQ(p.repeat_last_n, 64);
    CHECK_EQ(p.has_seed, 0);
    hl_sampler *a, *b;
    CHECK_EQ(hl_sampler_new(&a, &p, 10, NULL), 0);
    CHECK_EQ(hl_sampler_new(&b, &p, 10, NULL), 0);
    CHECK(hl_sampler_seed(a) != hl_sampler_seed(b)); /* drawn, not fixed */
    hl_sampler_free(a);
    hl_sampler_free(b);
}

TEST(greedy_argmax_ties_lowest_id) {
    float lg[8] = {0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.0f, 2.0f, -INFINITY};
    hl_sampling_params p = plain(0);
    p.top_k = 3;
    p.top_p = 0.5f;
    hl_sampler *s;
    CHECK_EQ(hl_sampler_new(&s, &p, 8, NULL), 0);
    for (int i = 0; i < 5; i++) CHECK_EQ(hl_sampler_sample(s, lg, NULL), 1);
    hl_sampler_free(s);
    /* a ban moves it to the next tie */
    hl_logit_bias ban = {1, -100};
    p.logit_bias = &ban;
    p.n_logit_bias = 1;
    CHECK_EQ(hl_sampler_new(&s, &p, 8, NULL), 0);
    CHECK_EQ(hl_sampler_sample(s, lg, NULL), 3);
    hl_sampler_free(s);
    /* everything banned or NaN: falls back to the raw argmax, never fails */
    float bad[3] = {NAN, 1.0f, 3.0f};
    hl_logit_bias bans[2] = {{1, -100}, {2, -200}};
    p.logit_bias = bans;
    p.n_logit_bias = 2;
    CHECK_EQ(hl_sampler_new(&s, &p, 3, NULL), 0);
    hl_token_logprobs lp;
    CHECK_EQ(hl_sampler_sample(s, bad, &lp), 2);
    CHECK(isinf(lp.chosen.logprob) && lp.chosen.logprob < 0);
    hl_sampler_free(s);
}

TEST(temperature_only_matches_reference) {
    float lg[24];
    crafted(lg, 24);
    float temps[] = {0.5f, 1.0f, 1.7f};
    for (int i = 0; i < 3; i++) {
        hl_sampling_params p = plain(temps[i]);
        run_chain(&p, lg, 24, 40000);
    }
}

TEST(top_k_top_p_min_p_typical_match_reference) {
    float lg[40];
    crafted(lg, 40);
    struct { int k; float tp, mp, typ, t; } cfg[] = {
        {5, 1, 0, 1, 1.0f},     {12, 1, 0, 1, 0.7f},    {0, 0.5f, 0, 1, 1.0f},  {0, 0.9f, 0, 1, 1.3f},
        {0, 1, 0.3f, 1, 1.0f},  {0, 1, 0.05f, 1, 0.9f}, {0, 1, 0, 0.5f, 1.0f},  {0, 1, 0, 0.85f, 1.0f},
        {20, 0.8f, 0.1f, 1, 0.8f}, {30, 0.95f, 0.02f, 0.9f, 1.1f}, {40, 0.9f, 0, 1, 0.8f},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        hl_sampling_params p = plain(cfg[i].t);
        p.top_k = cfg[i].k;
        p.top_p = cfg[i].tp;
        p.min_p = cfg[i].mp;
        p.typical_p = cfg[i].typ;
        p.seed = 1000 + i;
        run_chain(&p, lg, 40, 30000);
    }
}

TEST(large_vocab_paths_match_reference) {
    /* 20k tokens: a head of 1200 distinct logits over a low tail, at high
     * temperature so every kept token is drawn often; exercises the heap
     * (k <= 1024) and quickselect (k > 1024) paths and the mass selection */
    const int n = 20000;
    float *lg = malloc((size_t)n * sizeof *lg);
    uint64_t x = 7;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        lg[i] = -30.0f + (float)((x >> 40) % 1000) * 1e-3f;
    }
    for (int j = 0; j < 1200; j++) lg[(j * 163 + 11) % n] = 10.0f + 0.002f * (float)j;
    struct { int k; float tp, mp; } cfg[] = {{200, 1, 0}, {1100, 1, 0}, {0, 0.3f, 0}, {0, 1, 0.998f}, {1100, 0.5f, 0}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        hl_sampling_params p = plain(cfg[i].mp > 0 ? 1.0f : 50.0f);
        p.top_k = cfg[i].k;
        p.top_p = cfg[i].tp;
        p.min_p = cfg[i].mp;
        run_chain(&p, lg, n, 12000);
    }
    free(lg);
}

TEST(seed_reproducible_and_sensitive) {
    float lg[64];
    crafted(lg, 64);
    hl_sampling_params p = plain(1.5f);
    hl_sampler *a, *b, *c;
    CHECK_EQ(hl_sampler_new(&a, &p, 64, NULL), 0);
    CHECK_EQ(hl_sampler_new(&b, &p, 64, NULL), 0);
    p.seed = 43;
    CHECK_EQ(hl_sampler_new(&c, &p, 64, NULL), 0);
    int32_t ta[200];
    int same = 1, differ = 0;
    for (int i = 0; i < 200; i++) {
        ta[i] = hl_sampler_sample(a, lg, NULL);
        int32_t tb = hl_sampler_sample(b, lg, NULL), tc = hl_sampler_sample(c, lg, NULL);
        same &= ta[i] == tb;
        differ += ta[i] != tc;
    }
    CHECK(same);
    CHECK(differ > 50);
    /* reset replays the stream */
    hl_sampler_reset(a);
    same = 1;
    for (int i = 0; i < 200; i++) same &= hl_sampler_sample(a, lg, NULL) == ta[i];
    CHECK(same);
    hl_sampler_free(a);
    hl_sampler_free(b);
    hl_sampler_free(c);
}

TEST(clones_diverge_deterministically_and_keep_history) {
    float lg[64];
    crafted(lg, 64);
    hl_sampling_params p = plain(1.5f);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 8;
    hl_sampler *s, *c1, *c2, *c1b;
    CHECK_EQ(hl_sampler_new(&s, &p, 64, NULL), 0);
    for (int i = 0; i < 5; i++) hl_sampler_accept(s, i);
    CHECK_EQ(hl_sampler_clone(s, 1, &c1, NULL), 0);
    CHECK_EQ(hl_sampler_clone(s, 2, &c2, NULL), 0);
    CHECK_EQ(hl_sampler_clone(s, 1, &c1b, NULL), 0);
    CHECK(hl_sampler_seed(c1) != hl_sampler_seed(c2));
    CHECK(hl_sampler_seed(c1) != hl_sampler_seed(s));
    CHECK(hl_sampler_seed(c1) == hl_sampler_seed(c1b));
    int d12 = 0, d1s = 0, same = 1;
    for (int i = 0; i < 200; i++) {
        int32_t a = hl_sampler_sample(c1, lg, NULL), b = hl_sampler_sample(c2, lg, NULL);
        int32_t z = hl_sampler_sample(s, lg, NULL), a2 = hl_sampler_sample(c1b, lg, NULL);
        d12 += a != b;
        d1s += a != z;
        same &= a == a2;
    }
    CHECK(d12 > 50 && d1s > 50 && same);
    hl_sampler_free(c1);
    hl_sampler_free(c1b);
    hl_sampler_free(c2);
    /* the clone's history penalizes like the parent's: compare logprobs */
    p.temperature = 0;
    p.n_top_logprobs = 20;
    hl_sampler *g;
    CHECK_EQ(hl_sampler_new(&g, &p, 64, NULL), 0);
    for (int i = 0; i < 5; i++) hl_sampler_accept(g, i * 3);
    CHECK_EQ(hl_sampler_clone(g, 7, &c1, NULL), 0);
    hl_token_logprobs la, lb;
    hl_sampler_sample(g, lg, &la);
    hl_sampler_sample(c1, lg, &lb);
    CHECK_EQ(la.n_top, lb.n_top);
    for (int i = 0; i < la.n_top; i++) {
        CHECK_EQ(la.top[i].token, lb.top[i].token);
        CHECK_NEAR(la.top[i].logprob, lb.top[i].logprob, 0);
    }
    hl_sampler_free(c1);
    hl_sampler_free(g);
    hl_sampler_free(s);
}

/* Checks lp against the log-softmax (double) of the reference penalized logits. */
static void check_logprobs(const hl_token_logprobs *lp, const float *lg, int n, const hl_sampling_params *p,
                           const int *hist, int nh, int expect_top) {
    double *l = malloc((size_t)n * sizeof *l);
    ref_logits(lg, n, p, hist, nh, l);
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++) s += exp(l[i] - mx);
    double lse = mx + log(s);
    ref_item *it = malloc((size_t)n * sizeof *it);
    for (int i = 0; i < n; i++) it[i] = (ref_item){l[i], i};
    qsort(it, (size_t)n, sizeof *it, ref_desc);
    CHECK_EQ(lp->n_top, expect_top);
    for (int i = 0; i < lp->n_top && i < n; i++) {
        CHECK_EQ(lp->top[i].token, it[i].id);
        CHECK_NEAR(lp->top[i].logprob, it[i].v - lse, 1e-4);
    }
    int t = lp->chosen.token;
    CHECK(t >= 0 && t < n);
    if (t >= 0 && t < n) CHECK_NEAR(lp->chosen.logprob, l[t] - lse, 1e-4);
    free(it);
    free(l);
}

TEST(penalties_with_known_counts) {
    float lg[32];
    for (int i = 0; i < 32; i++) lg[i] = (float)((i * 5) % 11) - 4.0f; /* positive and negative */
    int hist[] = {1, 2, 2, 3, 3, 3, 7, 8, 8, 9, 20, 20, 20, 20, 30, 5};
    int nh = (int)(sizeof hist / sizeof hist[0]);
    int windows[] = {6, 64, -1, 0};
    for (int w = 0; w < 4; w++) {
        hl_sampling_params p = plain(0);
        p.repeat_penalty = 1.3f;
        p.frequency_penalty = 0.4f;
        p.presence_penalty = 0.25f;
        p.repeat_last_n = windows[w];
        p.n_top_logprobs = 20;
        hl_sampler *s;
        CHECK_EQ(hl_sampler_new(&s, &p, 32, NULL), 0);
        hl_sampler_accept(s, -1); /* out of range: ignored */
        hl_sampler_accept(s, 32);
        for (int i = 0; i < nh; i++) hl_sampler_accept(s, hist[i]);
        hl_token_logprobs lp;
        hl_sampler_sample(s, lg, &lp);
        check_logprobs(&lp, lg, 32, &p, hist, nh, 20);
        hl_sampler_free(s);
    }
}

TEST(logit_bias_adds_and_bans) {
    float lg[16];
    for (int i = 0; i < 16; i++) lg[i] = (float)i * 0.3f;
    lg[5] = 1000.0f; /* overwhelming, but banned */
    hl_logit_bias b[] = {{5, -100}, {2, 3.5f}, {15, -1.25f}};
    hl_sampling_params p = plain(1.0f);
    p.logit_bias = b;
    p.n_logit_bias = 3;
    p.n_top_logprobs = 16;
    hl_sampler *s;
    CHECK_EQ(hl_sampler_new(&s, &p, 16, NULL), 0);
    hl_token_logprobs lp;
    hl_sampler_sample(s, lg, &lp);
    check_logprobs(&lp, lg, 16, &p, NULL, 0, 15); /* the banned one is not listed */
    for (int i = 0; i < 2000; i++) CHECK(hl_sampler_sample(s, lg, NULL) != 5);
    hl_sampler_free(s);
    double dist[16];
    ref_dist(lg, 16, &p, NULL, 0, dist);
    CHECK_EQ(hl_sampler_new(&s, &p, 16, NULL), 0);
    check_distribution(s, lg, 16, dist, 30000);
    hl_sampler_free(s);
}

TEST(logprobs_equal_log_softmax) {
    const int n = 3000;
    float *lg = malloc((size_t)n * sizeof *lg);
    uint64_t x = 99;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        lg[i] = (float)((x >> 33) % 100000) * 1e-4f * 12.0f - 6.0f;
    }
    int ks[] = {40, 0, 500};
    for (int j = 0; j < 3; j++) {
        hl_sampling_params p = plain(0.9f);
        p.top_k = ks[j];
        p.top_p = 0.9f;
        p.n_top_logprobs = 7;
        hl_sampler *s;
        CHECK_EQ(hl_sampler_new(&s, &p, n, NULL), 0);
        for (int r = 0; r < 20; r++) {
            hl_token_logprobs lp;
            hl_sampler_sample(s, lg, &lp);
            check_logprobs(&lp, lg, n, &p, NULL, 0, 7);
        }
        hl_sampler_free(s);
    }
    free(lg);
}

TEST(invalid_params_are_refused) {
    hl_sampler *s = NULL;
    hl_err err;
    hl_sampling_params p = hl_sampling_default_params();
    CHECK_EQ(hl_sampler_new(&s, &p, 0, &err), HL_EINVAL);
    p.temperature = NAN;
    CHECK_EQ(hl_sampler_new(&s, &p, 10, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "temperature") != NULL);
    p = hl_sampling_default_params();
    p.repeat_penalty = 0;
    CHECK_EQ(hl_sampler_new(&s, &p, 10, &err), HL_EINVAL);
    p = hl_sampling_default_params();
    p.n_top_logprobs = 21;
    CHECK_EQ(hl_sampler_new(&s, &p, 10, &err), HL_ERANGE);
    p = hl_sampling_default_params();
    hl_logit_bias b = {10, 1};
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    CHECK_EQ(hl_sampler_new(&s, &p, 10, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "10") != NULL);
    p = hl_sampling_default_params();
    p.repeat_last_n = -2;
    CHECK_EQ(hl_sampler_new(&s, &p, 10, &err), HL_EINVAL);
    CHECK(s == NULL);
}

/* ---- the selection routines directly, against full sorts ---------------------- */

static int cand_desc(const void *a, const void *b) {
    const hl_cand *x = a, *y = b;
    return hl_cand_before(x, y) ? -1 : hl_cand_before(y, x) ? 1 : 0;
}

TEST(selection_matches_full_sort) {
    uint64_t x = 5;
    for (int iter = 0; iter < 300; iter++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int n = iter % 10 == 0 ? 2048 + (int)((x >> 33) % 4000) : 1 + (int)((x >> 33) % 700); /* both mass paths */
        hl_cand *c = malloc((size_t)n * sizeof *c), *ref = malloc((size_t)n * sizeof *ref);
        float *raw = malloc((size_t)n * sizeof *raw);
        double tot = 0;
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            float v = (float)((x >> 33) % 23); /* many ties: ids must break them */
            raw[i] = (x >> 20) % 17 == 0 ? -INFINITY : v;
            c[i] = (hl_cand){v, v, (float)(v + 1), i};
            tot += v + 1;
        }
        for (int i = 0; i < n; i++) c[i].p = (float)(c[i].p / tot);
        memcpy(ref, c, (size_t)n * sizeof *c);
        qsort(ref, (size_t)n, sizeof *ref, cand_desc);
        int k = (int)((x >> 40) % (unsigned)(n + 1));
        hl_sample_select_top(c, n, k);
        hl_sample_sort(c, k);
        int ok = 1;
        for (int i = 0; i < k; i++) ok &= c[i].id == ref[i].id;
        CHECK(ok);
        /* mass selection: shortest sorted prefix reaching the target */
        double target = (double)((x >> 13) % 1000) / 1000.0;
        for (int strict = 0; strict < 2; strict++) {
            int want = n;
            double cum = 0;
            for (int i = 0; i < n; i++) {
                cum += ref[i].p;
                if (strict ? cum > target : cum >= target) { want = i + 1; break; }
            }
            int r = hl_sample_select_mass(c, n, target, strict);
            CHECK_EQ(r, want);
            hl_sample_sort(c, r);
            ok = 1;
            for (int i = 0; i < r && i < want; i++) ok &= c[i].id == ref[i].id;
            CHECK(ok);
        }
        /* the heap finds the top k of a raw row, skipping -inf */
        hl_cand *h = malloc((size_t)(k + 1) * sizeof *h);
        int m = hl_sample_heap_top(raw, n, k, h);
        int finite = 0;
        for (int i = 0; i < n; i++) finite += raw[i] > -INFINITY;
        CHECK_EQ(m, k < finite ? k : finite);
        for (int i = 0; i < n; i++) c[i] = (hl_cand){raw[i], raw[i], 0, i};
        qsort(c, (size_t)n, sizeof *c, cand_desc);
        ok = 1;
        for (int i = 0; i < m; i++) ok &= h[i].id == c[i].id;
        CHECK(ok);
        free(h), free(c), free(ref), free(raw);
    }
}

TEST(fast_exp_matches_libm) {
    double worst = 0;
    for (float x = -86.0f; x <= 87.0f; x += 0.01373f) {
        double rel = fabs((double)hl_sample_expf(x) - exp((double)x)) / exp((double)x);
        worst = rel > worst ? rel : worst;
    }
    CHECK(worst < 5e-7);
    CHECK(hl_sample_expf(-INFINITY) < 1e-37f);
    CHECK(hl_sample_expf(NAN) < 1e-37f);
    CHECK(hl_sample_expf(-1000.0f) < 1e-37f);
    CHECK_NEAR(hl_sample_expf(0.0f), 1.0, 1e-7);
}

TEST(large_nucleus_grouped_distribution) {
    /* a flat row: the nucleus holds thousands of tokens, so the histogram path
     * of the mass selection runs inside the sampler. Too many cells for a
     * per-token test: compare the mass of 16 groups (id mod 16) instead, and
     * require no draw outside the reference support. */
    const int n = 20000, draws = 8000, G = 16;
    float *lg = malloc((size_t)n * sizeof *lg);
    double *dist = malloc((size_t)n * sizeof *dist);
    uint64_t x = 3;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        lg[i] = (float)((x >> 40) % 100000) * 3e-5f + (float)(i % 16) * 0.05f;
    }
    float tps[] = {0.5f, 0.9f};
    for (int j = 0; j < 2; j++) {
        hl_sampling_params p = plain(1.0f);
        p.top_p = tps[j];
        p.min_p = j == 1 ? 0.2f : 0.0f;
        ref_dist(lg, n, &p, NULL, 0, dist);
        int support = 0;
        for (int i = 0; i < n; i++) support += dist[i] > 0;
        CHECK(support > 2048);
        hl_sampler *s;
        CHECK_EQ(hl_sampler_new(&s, &p, n, NULL), 0);
        double expect[16] = {0};
        int got[16] = {0}, outside = 0;
        for (int i = 0; i < n; i++) expect[i % G] += dist[i] * draws;
        for (int d = 0; d < draws; d++) {
            int32_t t = hl_sampler_sample(s, lg, NULL);
            got[t % G]++;
            outside += dist[t] == 0;
        }
        CHECK_EQ(outside, 0);
        double chi = 0;
        for (int g = 0; g < G; g++) chi += (got[g] - expect[g]) * (got[g] - expect[g]) / expect[g];
        if (!(chi < 15 + 8 * sqrt(30.0) + 10)) hl_test_fail(__FILE__, __LINE__, "chi-square %.1f (df 15)", chi);
        hl_sampler_free(s);
    }
    /* top_p 0 keeps only the most likely token */
    hl_sampling_params p = plain(1.0f);
    p.top_p = 0.0f;
    hl_sampler *s;
    CHECK_EQ(hl_sampler_new(&s, &p, n, NULL), 0);
    int32_t best = 0;
    for (int i = 1; i < n; i++) best = lg[i] > lg[best] ? i : best;
    for (int d = 0; d < 50; d++) CHECK_EQ(hl_sampler_sample(s, lg, NULL), best);
    hl_sampler_free(s);
    free(dist);
    free(lg);
}

TEST(sum_exp_variants_match_double) {
    const int n = 10007; /* not a multiple of any vector width */
    float *w = malloc((size_t)n * sizeof *w);
    uint64_t x = 11;
    double ref = 0;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        w[i] = (float)((x >> 40) % 100000) * 2e-4f - 15.0f;
    }
    w[5] = -INFINITY;
    w[77] = NAN; /* banned entries add nothing measurable */
    for (int i = 0; i < n; i++)
        if (w[i] > -INFINITY) ref += exp(((double)w[i] - 5.0) * 0.7);
    CHECK_NEAR(hl_sample_sum_exp(w, n, 5.0f, 0.7f) / ref, 1.0, 1e-6);
    if (hl_sample_have_avx2()) CHECK_NEAR(hl_sample_sum_exp_avx2(w, n, 5.0f, 0.7f) / ref, 1.0, 1e-6);
    else hl_test_skip("no AVX2+FMA here: only the portable sum checked");
    free(w);
}

/* ---- logits processors ------------------------------------------------------ */

typedef struct every_proc {
    hl_logits_proc base;
    int step;   /* allowed: ids that are multiples of step */
    int masks;
} every_proc;

static void every_mask(hl_logits_proc *self, float *logits, int32_t n) {
    every_proc *p = (every_proc *)self;
    p->masks++;
    for (int32_t i = 0; i < n; i++)
        if (i % p->step) logits[i] = -INFINITY;
}
static void every_accept(hl_logits_proc *self, int32_t token) { (void)self, (void)token; }
static hl_logits_proc *every_clone(const hl_logits_proc *self) { (void)self; return NULL; }
static void every_free(hl_logits_proc *self) { (void)self; }
static const hl_logits_proc_vt EVERY_VT = {every_mask, every_accept, every_clone, every_free};

/* The mask bans exactly like a logit bias of -100 on the same tokens: the
 * same draws from the same seed, the same logprobs (those of the masked
 * distribution), and the caller's row is never written. */
TEST(mask_bans_like_bias_and_logprobs_are_masked) {
    enum { N = 300, STEP = 7 };
    float lg[N], copy[N];
    uint64_t x = 5;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        lg[i] = (float)((x >> 33) % 100000) * 1e-4f * 8.0f - 4.0f;
    }
    memcpy(copy, lg, sizeof lg);
    hl_logit_bias ban[N];
    int32_t n_ban = 0;
    for (int i = 0; i < N; i++)
        if (i % STEP) ban[n_ban++] = (hl_logit_bias){i, -100.0f};
    /* the log-softmax over the allowed tokens, in double */
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < N; i += STEP) mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < N; i += STEP) z += exp((double)lg[i] - mx);
    const float temps[] = {0.0f, 0.8f, 1.0f, 1.0f, 0.7f};
    const int32_t ks[] = {0, 40, 0, 0, 0};
    const float tps[] = {1.0f, 0.9f, 1.0f, 0.95f, 1.0f}, mps[] = {0, 0, 0, 0, 0.05f};
    for (int c = 0; c < 5; c++) {
        hl_sampling_params p = plain(temps[c]);
        p.top_k = ks[c];
        p.top_p = tps[c];
        p.min_p = mps[c];
        p.has_seed = 1;
        p.seed = 77;
        p.n_top_logprobs = 5;
        hl_sampling_params pb = p;
        pb.logit_bias = ban;
        pb.n_logit_bias = n_ban;
        hl_sampler *a, *b;
        CHECK_EQ(hl_sampler_new(&a, &p, N, NULL), 0);
        CHECK_EQ(hl_sampler_new(&b, &pb, N, NULL), 0);
        every_proc proc = {.base = {.vt = &EVERY_VT}, .step = STEP};
        for (int r = 0; r < 200; r++) {
            hl_token_logprobs la, lb;
            int32_t ta = hl_sampler_sample_masked(a, lg, &proc.base, &la);
            int32_t tb = hl_sampler_sample(b, lg, &lb);
            CHECK_EQ(ta, tb);
            CHECK_EQ(ta % STEP, 0);
            CHECK(la.chosen.logprob == lb.chosen.logprob);
            CHECK_NEAR(la.chosen.logprob, (double)lg[ta] - mx - log(z), 1e-4);
            CHECK_EQ(la.n_top, 5);
            for (int i = 0; i < la.n_top; i++) {
                CHECK_EQ(la.top[i].token, lb.top[i].token);
                CHECK_EQ(la.top[i].token % STEP, 0);
            }
        }
        CHECK_EQ(proc.masks, 200);
        CHECK(memcmp(lg, copy, sizeof lg) == 0);
        /* NULL processor: plain sampling */
        hl_sampler_reset(a);
        hl_sampler *a2;
        CHECK_EQ(hl_sampler_new(&a2, &p, N, NULL), 0);
        for (int r = 0; r < 50; r++) CHECK_EQ(hl_sampler_sample_masked(a, lg, NULL, NULL), hl_sampler_sample(a2, lg, NULL));
        hl_sampler_free(a2);
        hl_sampler_free(a);
        hl_sampler_free(b);
    }
}
