/* Speculative decoding end to end in the engine, with the real proposer
 * (prompt lookup, runner/ngram.c) and adaptive control (runner/spec.c), on
 * stories260K and SmolLM2:
 *
 * - lossless greedy: the text with drafts is byte-identical to the text
 *   without, one stream and 16 concurrent streams (different prompts, so
 *   different draft lengths side by side in the same steps), and drafts were
 *   really accepted (the test cannot pass vacuously);
 * - seeded sampling: the same seed gives the same tokens with and without;
 * - the sampled distribution: at temperature 1 with Ollama's chain
 *   (penalties, top-k, top-p), the token at a fixed generated position over
 *   many requests with disjoint seeds, speculation on vs off, compared by a
 *   chi-square test of homogeneity at significance 0.001 (and the same test
 *   must tell temperature 1 from temperature 0.7 apart, so it has power);
 * - cancellation mid-draft: what was emitted is a prefix of the reference,
 *   every block goes back, and the blocks the cancelled sequence left in the
 *   prefix cache give the reference continuation to the next request.
 *
 * Acceptance after 0..k of k drafts and rejected drafts never reaching the
 * prefix cache are test_sched_drafts.c's (a drafter right for exactly j). */
#include "harness.h"
#include "rig.h"

#include "runner/ngram.h"

#include <stdlib.h>

enum { MAXTOK = 512, NSTREAM = 16 };

static const int32_t ONCE[] = {1, 403, 407, 261, 378}; /* BOS + "Once upon a time" (stories260K) */

typedef struct result {
    int32_t tokens[MAXTOK];
    int32_t n;
    char text[8192];
    size_t n_text;
    hl_choice_stats st;
    int done, error;
} result;

static hl_engine *make_engine(const hl_loaded *lm, int fixed) {
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.n_blocks = 1024;
    p.max_seqs = NSTREAM;
    p.spec_fixed = fixed;
    hl_engine *e = NULL;
    hl_err err = {0};
    if (hl_engine_new(&e, lm, &p, &err)) hl_test_fail(__FILE__, __LINE__, "engine: %s", err.msg);
    return e;
}

static hl_request req_of(const int32_t *prompt, size_t n, int32_t num_predict, int drafts) {
    hl_request r = rig_greedy_req(prompt, n, num_predict);
    if (drafts && ngram_drafter_new(&r.drafter, NGRAM_DEFAULT_MIN, NGRAM_DEFAULT_MAX, 0, NULL))
        hl_test_fail(__FILE__, __LINE__, "drafter");
    return r;
}

static void take(hl_handle *h, result *o) {
    hl_event ev;
    while (!o->done && !o->error && hl_handle_wait(h, &ev, 60000)) {
        if (ev.type == HL_EVENT_ERROR) o->error = 1;
        if (ev.type == HL_EVENT_TOKEN && o->n < MAXTOK) o->tokens[o->n++] = ev.token;
        if (o->n_text + ev.n_text < sizeof o->text) {
            memcpy(o->text + o->n_text, ev.text, ev.n_text);
            o->n_text += ev.n_text;
        }
        if (ev.type == HL_EVENT_DONE) {
            o->st = ev.stats;
            o->done = 1;
        }
    }
}

/* Runs n requests at once (all submitted, then read); 0 on success. */
static int run_all(hl_engine *e, hl_request *rs, result *out, int n) {
    hl_handle *h[NSTREAM * 4];
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        hl_err err = {0};
        if (hl_engine_submit(e, &rs[i], NULL, NULL, &h[i], &err)) {
            hl_test_fail(__FILE__, __LINE__, "submit: %s", err.msg);
            if (rs[i].drafter.free) rs[i].drafter.free(rs[i].drafter.ctx);
            for (int j = 0; j < i; j++) hl_handle_release(h[j]);
            return -1;
        }
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        take(h[i], &out[i]);
        bad |= out[i].error || !out[i].done;
        hl_handle_release(h[i]);
    }
    return bad ? -1 : 0;
}

static int same(const result *a, const result *b) {
    return a->n == b->n && !memcmp(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n) && a->n_text == b->n_text &&
           !memcmp(a->text, b->text, a->n_text);
}

/* Prompt i of a set: a distinct opening, then a repeated phrase (so lookup
 * finds matches at different points in different streams). */
static int32_t make_prompt(const hl_loaded *lm, int i, int32_t *out, int32_t cap) {
    static const char *const OPEN[] = {"Once upon a time", "One day", "The cat sat", "Lily and Tom",
                                       "There was a dog", "A little girl", "The sun was hot", "Ben had a ball"};
    char text[512];
    snprintf(text, sizeof text, "%s. %s. The boy said hello. The boy said hello. %s", OPEN[i % 8],
             i >= 8 ? "It was a big day" : "She was happy", i % 3 == 0 ? "The" : "He");
    int32_t *ids = NULL;
    size_t n = 0;
    hl_err err = {0};
    if (hl_loaded_tokenize_prompt(lm, text, &ids, &n, &err)) {
        hl_test_fail(__FILE__, __LINE__, "tokenize: %s", err.msg);
        return 0;
    }
    if ((int32_t)n > cap) n = (size_t)cap;
    memcpy(out, ids, n * sizeof *ids);
    free(ids);
    return (int32_t)n;
}

/* Greedy text with drafts (the real proposer; adaptive control, or fixed:
 * always the whole limit) equals the text without, alone and 16 at once;
 * returns the drafted/accepted totals. */
static void check_lossless(const hl_loaded *lm, int fixed, int32_t num_predict, uint64_t *drafted, uint64_t *accepted) {
    static int32_t prompts[NSTREAM][128];
    int32_t n_prompt[NSTREAM];
    for (int i = 0; i < NSTREAM; i++) n_prompt[i] = make_prompt(lm, i, prompts[i], 128);
    static result plain[NSTREAM], spec[NSTREAM], alone;
    hl_request rs[NSTREAM];
    hl_engine *e = make_engine(lm, fixed);
    if (!e) return;
    /* references: no drafts, all together (results are batch-invariant,
     * engine.h; the lone stream below checks one of them alone too) */
    for (int i = 0; i < NSTREAM; i++) rs[i] = req_of(prompts[i], (size_t)n_prompt[i], num_predict, 0);
    CHECK_EQ(run_all(e, rs, plain, NSTREAM), 0);
    /* one stream with drafts */
    rs[0] = req_of(prompts[0], (size_t)n_prompt[0], num_predict, 1);
    CHECK_EQ(run_all(e, rs, &alone, 1), 0);
    CHECK(same(&alone, &plain[0]));
    /* 16 streams with drafts, together */
    for (int i = 0; i < NSTREAM; i++) rs[i] = req_of(prompts[i], (size_t)n_prompt[i], num_predict, 1);
    CHECK_EQ(run_all(e, rs, spec, NSTREAM), 0);
    int diff = 0;
    for (int i = 0; i < NSTREAM; i++) diff += !same(&spec[i], &plain[i]);
    CHECK_EQ(diff, 0);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    *drafted = m.draft_tokens;
    *accepted = m.draft_accepted;
    /* per-choice stats add up to the engine's counters */
    uint64_t d = (uint64_t)alone.st.draft_tokens, a = (uint64_t)alone.st.draft_accepted;
    for (int i = 0; i < NSTREAM; i++) d += (uint64_t)spec[i].st.draft_tokens, a += (uint64_t)spec[i].st.draft_accepted;
    CHECK_EQ(d, m.draft_tokens);
    CHECK_EQ(a, m.draft_accepted);
    CHECK_EQ(m.blocks_used, 0);
    hl_engine_free(e);
}

TEST(spec_lossless_greedy_stories) {
    hl_loaded *lm = rig_load_stories();
    if (!lm) return;
    /* fixed: drafts every step, so many are accepted and many rejected */
    uint64_t d = 0, a = 0;
    check_lossless(lm, 1, 200, &d, &a);
    if (a <= 200 || a >= d)
        hl_test_fail(__FILE__, __LINE__, "%llu of %llu drafts accepted", (unsigned long long)a, (unsigned long long)d);
    /* adaptive: stories260K's weights sit in cache, so rows are dear and it
     * drafts little; whatever it drafts, the text is the same */
    check_lossless(lm, 0, 200, &d, &a);
    printf("     stories260K adaptive: %llu of %llu drafts accepted\n", (unsigned long long)a, (unsigned long long)d);
    hl_loaded_free(lm);
}

TEST(spec_lossless_greedy_smollm2) {
    const char *path = hl_test_model("smollm2-135m-instruct-q4_1.gguf");
    if (!path) return;
    hl_loaded *lm = NULL;
    hl_err err = {0};
    if (hl_loaded_open(&lm, path, &err)) {
        hl_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
        return;
    }
    uint64_t d = 0, a = 0;
    /* fixed drafting (every step, the whole limit): deterministic, so the
     * acceptance check does not depend on this machine's timings */
    check_lossless(lm, 1, 40, &d, &a);
    printf("     SmolLM2 fixed: %llu of %llu drafts accepted\n", (unsigned long long)a, (unsigned long long)d);
    CHECK(a > 0 && a < d);
    hl_loaded_free(lm);
}

/* With a seed, the same tokens with drafts as without. */
TEST(spec_seeded_sampling_same_tokens) {
    hl_loaded *lm = rig_load_stories();
    if (!lm) return;
    hl_engine *e = make_engine(lm, 0);
    static result a[8], b[8];
    hl_request rs[8];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 8; i++) {
            rs[i] = req_of(ONCE, 5, 120, pass);
            rs[i].sampling = hl_sampling_default_params();
            rs[i].sampling.temperature = 0.7f;
            rs[i].sampling.has_seed = 1;
            rs[i].sampling.seed = 1000 + (uint64_t)i;
        }
        CHECK_EQ(run_all(e, rs, pass ? b : a, 8), 0);
    }
    int diff = 0;
    for (int i = 0; i < 8; i++) diff += !same(&a[i], &b[i]);
    CHECK_EQ(diff, 0);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* ---- the distribution at a position: chi-square ------------------------------ */

enum { NSAMP = 3000, POS = 6, VOCAB_MAX = 1024 };

/* Counts of the token at generated position POS over NSAMP requests with
 * seeds seed0, seed0+1, ...; drafts: prompt lookup, up to 4 every step. */
static int sample_counts(hl_engine *e, const int32_t *prompt, int32_t n_prompt, int drafts, float temperature,
                         uint64_t seed0, int32_t *counts, int32_t n_vocab) {
    memset(counts, 0, sizeof(int32_t) * (size_t)n_vocab);
    static result out[NSTREAM];
    hl_request rs[NSTREAM];
    for (int done = 0; done < NSAMP; done += NSTREAM) {
        for (int i = 0; i < NSTREAM; i++) {
            rs[i] = req_of(prompt, (size_t)n_prompt, POS + 1, drafts);
            rs[i].sampling = hl_sampling_default_params(); /* penalties, top-k 40, top-p 0.9 */
            rs[i].sampling.temperature = temperature;
            rs[i].sampling.has_seed = 1;
            rs[i].sampling.seed = seed0 + (uint64_t)(done + i);
            rs[i].ignore_eos = 1;
            if (drafts) rs[i].drafter.max_draft = 4;
        }
        if (run_all(e, rs, out, NSTREAM)) return -1;
        for (int i = 0; i < NSTREAM; i++)
            if (out[i].n > POS && out[i].tokens[POS] < n_vocab) counts[out[i].tokens[POS]]++;
    }
    return 0;
}

/* Pearson's chi-square test of homogeneity of two count vectors (equal
 * totals), pooling tokens whose expected count is below 5. Returns the
 * statistic; *df the degrees of freedom. */
static double chi2_two(const int32_t *a, const int32_t *b, int32_t n, int32_t *df) {
    double ta = 0, tb = 0;
    for (int32_t i = 0; i < n; i++) ta += a[i], tb += b[i];
    double stat = 0, pa = 0, pb = 0;
    int32_t cells = 0;
    for (int32_t i = 0; i <= n; i++) {
        double x = i < n ? a[i] : pa, y = i < n ? b[i] : pb;
        double tot = x + y;
        if (tot == 0) continue;
        double ea = tot * ta / (ta + tb), eb = tot * tb / (ta + tb);
        if (i < n && (ea < 5 || eb < 5)) {
            pa += x;
            pb += y;
            continue;
        }
        if (i == n && (ea < 5 || eb < 5)) break; /* the pooled rest too small to count */
        stat += (x - ea) * (x - ea) / ea + (y - eb) * (y - eb) / eb;
        cells++;
    }
    *df = cells - 1;
    return stat;
}

/* The chi-square critical value at significance 0.001 (Wilson-Hilferty;
 * within 1% of the exact quantile for df >= 3). */
static double chi2_crit_001(int32_t df) {
    const double z = 3.090232; /* the standard normal's 0.999 quantile */
    double k = df;
    double c = 1 - 2 / (9 * k) + z * sqrt(2 / (9 * k));
    return k * c * c * c;
}

TEST(spec_sampled_distribution_matches_chi_square) {
    hl_loaded *lm = rig_load_stories();
    if (!lm) return;
    hl_engine *e = make_engine(lm, 1); /* drafts at every step: the most verification */
    int32_t n_vocab = e ? (int32_t)hl_model_hparams(lm->model)->n_vocab : 0;
    if (!e || n_vocab > VOCAB_MAX) {
        CHECK(e && n_vocab <= VOCAB_MAX);
        hl_engine_free(e);
        hl_loaded_free(lm);
        return;
    }
    static int32_t off[VOCAB_MAX], on[VOCAB_MAX], cold[VOCAB_MAX];
    /* a repetitive prompt, so lookup drafts are often right and often wrong */
    int32_t *p = NULL;
    size_t np = 0;
    hl_err err = {0};
    CHECK_EQ(hl_loaded_tokenize_prompt(lm, "Once upon a time there was a little girl. Once upon a time there was a "
                                           "little boy. Once upon a time there was a", &p, &np, &err), 0);
    CHECK_EQ(sample_counts(e, p, (int32_t)np, 0, 1.0f, 1, off, n_vocab), 0);
    hl_engine_metrics m0, m1;
    hl_engine_get_metrics(e, &m0);
    CHECK_EQ(sample_counts(e, p, (int32_t)np, 1, 1.0f, 1000001, on, n_vocab), 0); /* disjoint seeds */
    hl_engine_get_metrics(e, &m1);
    uint64_t drafted = m1.draft_tokens - m0.draft_tokens, accepted = m1.draft_accepted - m0.draft_accepted;
    CHECK(drafted > NSAMP);       /* verification really ran at the positions up to POS */
    CHECK(accepted > NSAMP / 10); /* and accepted some: rejections and acceptances both */
    CHECK(accepted < drafted);
    int32_t df = 0;
    double stat = chi2_two(off, on, n_vocab, &df);
    CHECK(df >= 3);
    if (!(stat < chi2_crit_001(df)))
        hl_test_fail(__FILE__, __LINE__, "chi-square %.1f >= %.1f (df %d, p < 0.001): speculation changed the distribution",
                     stat, chi2_crit_001(df), df);
    /* power: the same test tells a cooler distribution apart */
    CHECK_EQ(sample_counts(e, p, (int32_t)np, 0, 0.7f, 2000001, cold, n_vocab), 0);
    int32_t df2 = 0;
    double stat2 = chi2_two(off, cold, n_vocab, &df2);
    if (!(stat2 > chi2_crit_001(df2)))
        hl_test_fail(__FILE__, __LINE__, "the test cannot tell temperature 0.7 from 1 (chi-square %.1f, df %d)", stat2, df2);
    printf("     drafted %llu accepted %llu; chi-square %.1f (df %d, critical %.1f); vs temperature 0.7: %.1f (df %d)\n",
           (unsigned long long)drafted, (unsigned long long)accepted, stat, df, chi2_crit_001(df), stat2, df2);
    free(p);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* ---- cancellation mid-draft ------------------------------------------------- */

TEST(spec_cancel_mid_draft_loses_nothing) {
    hl_loaded *lm = rig_load_stories();
    if (!lm) return;
    hl_engine *e = make_engine(lm, 1);
    static result ref, cut, rest;
    hl_request r = req_of(ONCE, 5, 200, 0);
    CHECK_EQ(run_all(e, &r, &ref, 1), 0);
    CHECK(ref.n >= 100);
    /* the same request with drafts, cancelled once it has 40 tokens (drafts
     * are in flight every step: the engine drafts up to its limit) */
    r = req_of(ONCE, 5, 200, 1);
    hl_handle *h = NULL;
    hl_err err = {0};
    memset(&cut, 0, sizeof cut);
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, &err), 0);
    hl_event ev;
    int cancelled = 0;
    while (h && hl_handle_wait(h, &ev, 60000)) {
        if (ev.type == HL_EVENT_TOKEN && cut.n < MAXTOK) cut.tokens[cut.n++] = ev.token;
        if (ev.type == HL_EVENT_DONE) {
            cut.st = ev.stats;
            break;
        }
        if (cut.n >= 40 && !cancelled) {
            hl_handle_cancel(h);
            cancelled = 1;
        }
    }
    if (h) hl_handle_release(h);
    CHECK_STREQ(cut.st.done_reason, "cancel");
    CHECK(cut.n >= 40 && cut.n < ref.n);
    CHECK(!memcmp(cut.tokens, ref.tokens, sizeof(int32_t) * (size_t)cut.n)); /* a prefix of the reference */
    CHECK(cut.st.draft_tokens > 0);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK_EQ(m.blocks_used, 0); /* every block back, drafts' included */
    /* the next request continues from what was emitted: the cancelled
     * sequence's cached blocks must hold exactly those tokens */
    static int32_t again[5 + MAXTOK];
    memcpy(again, ONCE, sizeof ONCE);
    memcpy(again + 5, cut.tokens, sizeof(int32_t) * (size_t)cut.n);
    r = req_of(again, (size_t)(5 + cut.n), ref.n - cut.n, 1);
    CHECK_EQ(run_all(e, &r, &rest, 1), 0);
    CHECK(rest.st.prompt_cached > 0);
    CHECK_EQ(rest.n, ref.n - cut.n);
    CHECK(!memcmp(rest.tokens, ref.tokens + cut.n, sizeof(int32_t) * (size_t)rest.n));
    hl_engine_free(e);
    hl_loaded_free(lm);
}
