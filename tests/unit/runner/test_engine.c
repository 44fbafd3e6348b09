/* Tests for the continuous-batching engine on the real stories260K model:
 * outputs under concurrency equal the same request run alone (batch
 * invariance), prefix-cache hits, preemption under a tiny KV pool losing
 * nothing, cancellation releasing blocks, forks (n > 1), the queue limit, stop
 * strings, and agreement with llama.cpp's greedy reference ids. */
#include "harness.h"
#include "rig.h"

#include "runner/engine.h"

#include <math.h>
#include <stdlib.h>

/* BOS + "Once upon a time", and llama.cpp's 40 greedy ids after it
 * (../shared/models/stories260K-llamacpp-reference.txt). */
static const int32_t ONCE[] = {1, 403, 407, 261, 378};
static const int32_t ONCE_GREEDY[40] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396,
                                         267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
                                         328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426};

typedef struct outcome {
    int32_t tokens[4][512];
    int32_t n[4];
    char text[4][4096];
    size_t n_text[4];
    hl_choice_stats stats[4];
    int done[4];
    int error;
} outcome;

static hl_loaded *load(void) { return rig_load_stories(); }

static hl_request greedy_req(const int32_t *prompt, size_t n, int32_t num_predict) {
    return rig_greedy_req(prompt, n, num_predict);
}

static void collect(hl_handle *h, outcome *o) {
    hl_event ev;
    while (hl_handle_wait(h, &ev, 60000)) {
        if (ev.type == HL_EVENT_ERROR) {
            o->error = 1;
            continue;
        }
        int i = ev.index;
        if (i < 0 || i >= 4) continue;
        if (ev.type == HL_EVENT_TOKEN && o->n[i] < 512) o->tokens[i][o->n[i]++] = ev.token;
        if (o->n_text[i] + ev.n_text < sizeof o->text[i]) {
            memcpy(o->text[i] + o->n_text[i], ev.text, ev.n_text);
            o->n_text[i] += ev.n_text;
        }
        if (ev.type == HL_EVENT_DONE) {
            o->stats[i] = ev.stats;
            o->done[i] = 1;
        }
    }
}

static int run_one(hl_engine *e, const hl_request *r, outcome *o) {
    hl_handle *h;
    hl_err err = {0};
    memset(o, 0, sizeof *o);
    if (hl_engine_submit(e, r, NULL, NULL, &h, &err) != 0) return err.code ? err.code : -1;
    collect(h, o);
    hl_handle_release(h);
    return 0;
}


TEST(engine_matches_llamacpp_greedy) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    outcome *o = calloc(1, sizeof *o);
    hl_request r = greedy_req(ONCE, 5, 40);
    CHECK_EQ(run_one(e, &r, o), 0);
    CHECK_EQ(o->n[0], 40);
    for (int i = 0; i < 40 && i < o->n[0]; i++) CHECK_EQ(o->tokens[0][i], ONCE_GREEDY[i]);
    CHECK_STREQ(o->stats[0].done_reason, "length");
    CHECK_EQ(o->stats[0].gen_tokens, 40);
    CHECK(strncmp(o->text[0], ", there was a little girl named Lily.", 37) == 0);
    free(o);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* 12 different prompts at once, then each alone: identical tokens. */
TEST(engine_concurrent_equals_alone) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.step_tokens = 64; /* force chunked prefill beside decodes */
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    enum { N = 12 };
    int32_t prompts[N][40];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = 5 + (size_t)(i * 3 % 31);
        prompts[i][0] = 1;
        for (size_t k = 1; k < lens[i]; k++) prompts[i][k] = 260 + (int32_t)((i * 37 + (int)k * 11) % 240);
    }
    outcome *alone = calloc(N, sizeof *alone), *together = calloc(N, sizeof *together);
    hl_handle *hs[N];
    for (int i = 0; i < N; i++) {
        hl_request r = greedy_req(prompts[i], lens[i], 48);
        CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &hs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        collect(hs[i], &together[i]);
        hl_handle_release(hs[i]);
    }
    for (int i = 0; i < N; i++) {
        hl_request r = greedy_req(prompts[i], lens[i], 48);
        CHECK_EQ(run_one(e, &r, &alone[i]), 0);
        CHECK_EQ(together[i].n[0], alone[i].n[0]);
        CHECK(memcmp(together[i].tokens[0], alone[i].tokens[0], sizeof(int32_t) * (size_t)alone[i].n[0]) == 0);
    }
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK_EQ(m.running, 0);
    CHECK_EQ(m.queued, 0);
    free(alone);
    free(together);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

TEST(engine_prefix_cache_hit) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    int32_t prompt[70];
    prompt[0] = 1;
    for (int k = 1; k < 70; k++) prompt[k] = 300 + k;
    outcome *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    hl_request r = greedy_req(prompt, 70, 20);
    CHECK_EQ(run_one(e, &r, a), 0);
    CHECK_EQ(a->stats[0].prompt_cached, 0);
    CHECK_EQ(run_one(e, &r, b), 0);
    /* 4 full blocks of 16, then 5 positions copied out of the fifth cached
     * block (which also holds a's first generated tokens): all but the last */
    CHECK_EQ(b->stats[0].prompt_cached, 69);
    CHECK(memcmp(a->tokens[0], b->tokens[0], sizeof(int32_t) * 20) == 0);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK(m.prefix_hits >= 4);
    free(a);
    free(b);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* A prompt that diverges from a cached one inside a block reuses the
 * positions before the divergence (copied into its own block), and its output
 * equals the same request on an engine with nothing cached. */
TEST(engine_prefix_cache_partial_block) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e, *fresh;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    CHECK_EQ(hl_engine_new(&fresh, lm, &p, NULL), 0);
    int32_t pa[70], pb[70];
    pa[0] = pb[0] = 1;
    for (int k = 1; k < 70; k++) pa[k] = pb[k] = 300 + k;
    for (int k = 60; k < 70; k++) pb[k] = 400 + k; /* diverges at 60, inside block 3 (48..63) */
    outcome *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
    hl_request ra = greedy_req(pa, 70, 8), rb = greedy_req(pb, 70, 20);
    CHECK_EQ(run_one(e, &ra, a), 0);
    CHECK_EQ(run_one(e, &rb, b), 0);
    CHECK_EQ(b->stats[0].prompt_cached, 60); /* 3 whole blocks + 12 positions of the fourth */
    CHECK_EQ(run_one(fresh, &rb, c), 0);
    CHECK_EQ(c->stats[0].prompt_cached, 0);
    CHECK(memcmp(b->tokens[0], c->tokens[0], sizeof(int32_t) * 20) == 0);
    free(a);
    free(b);
    free(c);
    hl_engine_free(e);
    hl_engine_free(fresh);
    hl_loaded_free(lm);
}

/* The next turn of a chat resends the history: the previous request's
 * partly filled last block is reused too (everything it computed), and the
 * answer equals the same request on an engine with nothing cached. */
TEST(engine_prefix_cache_reuses_last_turn_tail) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e, *fresh;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    CHECK_EQ(hl_engine_new(&fresh, lm, &p, NULL), 0);
    int32_t turn1[40], turn2[60];
    turn1[0] = 1;
    for (int k = 1; k < 40; k++) turn1[k] = 300 + k;
    outcome *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
    hl_request r1 = greedy_req(turn1, 40, 10);
    CHECK_EQ(run_one(e, &r1, a), 0);
    CHECK_EQ(a->n[0], 10);
    /* history: the prompt, the answer, then 10 new tokens */
    memcpy(turn2, turn1, sizeof turn1);
    memcpy(turn2 + 40, a->tokens[0], 10 * sizeof(int32_t));
    for (int k = 50; k < 60; k++) turn2[k] = 200 + k;
    hl_request r2 = greedy_req(turn2, 60, 12);
    CHECK_EQ(run_one(e, &r2, b), 0);
    /* turn 1 computed 49 positions (its last answer token was never fed
     * back): 3 whole blocks + 1 position of the kept tail */
    CHECK_EQ(b->stats[0].prompt_cached, 49);
    CHECK_EQ(run_one(fresh, &r2, c), 0);
    CHECK(memcmp(b->tokens[0], c->tokens[0], sizeof(int32_t) * 12) == 0);
    free(a);
    free(b);
    free(c);
    hl_engine_free(e);
    hl_engine_free(fresh);
    hl_loaded_free(lm);
}

TEST(engine_preemption_loses_nothing) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e, *big;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.n_blocks = 10; /* 160 token slots for 4 sequences of ~90 tokens */
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    hl_engine_params pb = hl_engine_default_params();
    use_threads(&pb, 2);
    CHECK_EQ(hl_engine_new(&big, lm, &pb, NULL), 0);
    enum { N = 4 };
    int32_t prompts[N][12];
    hl_handle *hs[N];
    outcome *tiny = calloc(N, sizeof *tiny), *ref = calloc(N, sizeof *ref);
    for (int i = 0; i < N; i++) {
        prompts[i][0] = 1;
        for (int k = 1; k < 12; k++) prompts[i][k] = 270 + i * 20 + k;
        hl_request r = greedy_req(prompts[i], 12, 80);
        CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &hs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        collect(hs[i], &tiny[i]);
        hl_handle_release(hs[i]);
        hl_request r = greedy_req(prompts[i], 12, 80);
        CHECK_EQ(run_one(big, &r, &ref[i]), 0);
        CHECK_EQ(tiny[i].n[0], ref[i].n[0]);
        CHECK(memcmp(tiny[i].tokens[0], ref[i].tokens[0], sizeof(int32_t) * (size_t)ref[i].n[0]) == 0);
        CHECK_STREQ(tiny[i].text[0], ref[i].text[0]);
    }
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK(m.preemptions > 0);
    CHECK_EQ(m.running, 0);
    free(tiny);
    free(ref);
    hl_engine_free(e);
    hl_engine_free(big);
    hl_loaded_free(lm);
}

TEST(engine_cancel_releases_blocks) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.prefix_cache = 0;
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    hl_request r = greedy_req(ONCE, 5, -1);
    hl_handle *h;
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, NULL), 0);
    hl_event ev;
    int tokens = 0;
    while (tokens < 5 && hl_handle_wait(h, &ev, 60000))
        if (ev.type == HL_EVENT_TOKEN) tokens++;
    hl_handle_cancel(h);
    const char *reason = NULL;
    while (hl_handle_wait(h, &ev, 60000))
        if (ev.type == HL_EVENT_DONE) reason = ev.stats.done_reason;
    CHECK_STREQ(reason, "cancel");
    hl_handle_release(h);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK_EQ(m.blocks_used, 0);
    CHECK_EQ(m.running, 0);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

TEST(engine_forks_share_prompt) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    outcome *o = calloc(1, sizeof *o), *o2 = calloc(1, sizeof *o2);
    /* greedy: every choice is the reference continuation */
    hl_request r = greedy_req(ONCE, 5, 30);
    r.n_choices = 3;
    CHECK_EQ(run_one(e, &r, o), 0);
    for (int c = 0; c < 3; c++) {
        CHECK(o->done[c]);
        CHECK_EQ(o->n[c], 30);
        CHECK(memcmp(o->tokens[c], ONCE_GREEDY, sizeof(int32_t) * 30) == 0);
    }
    /* sampled with a seed: choices differ from each other, and replay exactly */
    r.sampling.temperature = 1.0f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.has_seed = 1;
    r.sampling.seed = 1234;
    memset(o, 0, sizeof *o);
    CHECK_EQ(run_one(e, &r, o), 0);
    CHECK_EQ(run_one(e, &r, o2), 0);
    int differ = 0;
    for (int c = 0; c < 3; c++) {
        CHECK_EQ(o->n[c], o2->n[c]);
        CHECK(memcmp(o->tokens[c], o2->tokens[c], sizeof(int32_t) * (size_t)o->n[c]) == 0);
        if (c && (o->n[c] != o->n[0] || memcmp(o->tokens[c], o->tokens[0], sizeof(int32_t) * (size_t)o->n[0]))) differ++;
    }
    CHECK(differ >= 1);
    free(o);
    free(o2);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

TEST(engine_queue_limit_says_busy) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 1);
    p.max_seqs = 1;
    p.max_queue = 2;
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    hl_handle *hs[8] = {0};
    int busy = 0, ok = 0;
    for (int i = 0; i < 8; i++) {
        hl_request r = greedy_req(ONCE, 5, 200);
        hl_err err = {0};
        int rc = hl_engine_submit(e, &r, NULL, NULL, &hs[i], &err);
        if (rc == HL_EBUSY) busy++;
        else if (rc == 0) ok++;
    }
    CHECK(busy >= 1);
    CHECK(ok >= 2);
    for (int i = 0; i < 8; i++) hl_handle_release(hs[i]);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

TEST(engine_stop_string_never_streamed) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    hl_request r = greedy_req(ONCE, 5, 40);
    const char *stops[] = {"Lily"};
    r.stops = stops;
    r.n_stops = 1;
    outcome *o = calloc(1, sizeof *o);
    CHECK_EQ(run_one(e, &r, o), 0);
    o->text[0][o->n_text[0]] = 0;
    CHECK_STREQ(o->text[0], ", there was a little girl named ");
    CHECK_STREQ(o->stats[0].done_reason, "stop");
    free(o);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

TEST(engine_rejects_bad_requests) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 1);
    p.max_ctx = 64;
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    hl_handle *h = NULL;
    hl_err err = {0};
    int32_t big[100];
    for (int i = 0; i < 100; i++) big[i] = 300;
    hl_request r = greedy_req(big, 100, 10);
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, &err), HL_ERANGE);
    CHECK(strstr(err.msg, "context") != NULL);
    int32_t badtok[2] = {1, 99999};
    r = greedy_req(badtok, 2, 10);
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, &err), HL_EINVAL);
    r = greedy_req(ONCE, 0, 10);
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, &err), HL_EINVAL);
    CHECK(h == NULL);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* Many streams sharing a prompt prefix on a pool far too small for all of
 * them: prefix lookups, preemption and re-admission must neither livelock nor
 * change any output. */
TEST(engine_tiny_pool_shared_prefix_no_livelock) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e, *big;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.n_blocks = 12;
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    hl_engine_params pb = hl_engine_default_params();
    use_threads(&pb, 2);
    CHECK_EQ(hl_engine_new(&big, lm, &pb, NULL), 0);
    enum { N = 8 };
    int32_t prompts[N][40];
    hl_handle *hs[N];
    outcome *tiny = calloc(N, sizeof *tiny), *ref = calloc(N, sizeof *ref);
    for (int i = 0; i < N; i++) {
        prompts[i][0] = 1;
        for (int k = 1; k < 40; k++) prompts[i][k] = k < 34 ? 300 + k : 400 + i * 3 + k; /* 2 shared blocks */
        hl_request r = greedy_req(prompts[i], 40, 60);
        CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &hs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        collect(hs[i], &tiny[i]);
        hl_handle_release(hs[i]);
        hl_request r = greedy_req(prompts[i], 40, 60);
        CHECK_EQ(run_one(big, &r, &ref[i]), 0);
        CHECK(tiny[i].done[0]);
        CHECK_EQ(tiny[i].n[0], ref[i].n[0]);
        CHECK(memcmp(tiny[i].tokens[0], ref[i].tokens[0], sizeof(int32_t) * (size_t)ref[i].n[0]) == 0);
    }
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK(m.preemptions > 0);
    CHECK(m.preemptions < 10000); /* progress, not a preemption storm */
    CHECK_EQ(m.blocks_used, 0);
    free(tiny);
    free(ref);
    hl_engine_free(e);
    hl_engine_free(big);
    hl_loaded_free(lm);
}

/* Four choices of one request on a pool of two blocks: they cannot all hold
 * their context at once, so they run in turn (preemption) or the request
 * fails with an ERROR event; either way the handle finishes (nothing waits
 * forever) and every choice that reports DONE has its full output. Under
 * ASan this also checks that neither path leaks the handle. */
TEST(engine_forks_on_a_two_block_pool_finish) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 1);
    p.n_blocks = 2;
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    int32_t prompt[20];
    for (int i = 0; i < 20; i++) prompt[i] = ONCE[i % 5];
    hl_request r = greedy_req(prompt, 20, 10);
    r.n_choices = 4;
    outcome *o = calloc(1, sizeof *o);
    hl_handle *h = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, &err), 0);
    if (h) {
        collect(h, o);
        CHECK(hl_handle_finished(h));
        hl_handle_release(h);
    }
    int done = 0;
    for (int i = 0; i < 4; i++) {
        done += o->done[i];
        if (o->done[i] && !o->error) CHECK_EQ(o->n[i], 10);
    }
    printf("     %d choices done, error %d\n", done, o->error);
    CHECK(o->error || done == 4);
    free(o);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* Prompt scoring: one PROMPT event per prompt token after the first, in
 * order, across prefill chunks; the greedy continuation's tokens are each
 * the most likely at their position; a second identical request scores the
 * same (the prefix cache is not used to skip positions); sequences preempted
 * on a tiny pool score no position twice; num_predict 0 generates nothing. */
typedef struct scored {
    int32_t tok[64];
    hl_token_logprobs lp[64];
    int n, n_gen, done;
} scored;

static void collect_scores(hl_handle *h, scored *o) {
    hl_event ev;
    memset(o, 0, sizeof *o);
    while (hl_handle_wait(h, &ev, 60000)) {
        if (ev.type == HL_EVENT_PROMPT && o->n < 64) o->lp[o->n] = ev.lp, o->tok[o->n++] = ev.token;
        if (ev.type == HL_EVENT_TOKEN) {
            o->n_gen++;
            CHECK(o->n == 44); /* every score comes before the first generated token */
        }
        if (ev.type == HL_EVENT_DONE) o->done = 1;
    }
}

TEST(engine_scores_prompt) {
    hl_loaded *lm = load();
    if (!lm) return;
    int32_t prompt[45];
    memcpy(prompt, ONCE, sizeof ONCE);
    memcpy(prompt + 5, ONCE_GREEDY, sizeof ONCE_GREEDY);
    for (int tiny = 0; tiny <= 1; tiny++) {
        hl_engine *e;
        hl_engine_params p = hl_engine_default_params();
        use_threads(&p, 2);
        p.step_tokens = 16; /* three prefill chunks */
        if (tiny) p.n_blocks = 9; /* 144 slots for 3 sequences growing to 85 tokens: preemption */
        CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
        enum { N = 3 };
        hl_handle *hs[N];
        scored *o = calloc(N, sizeof *o);
        for (int i = 0; i < N; i++) {
            hl_request r = greedy_req(prompt, 45, i == 0 ? 0 : 40);
            r.prompt_logprobs = 1;
            r.sampling.n_top_logprobs = 2;
            CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &hs[i], NULL), 0);
            if (!tiny) { /* one after the other: the second finds the first's blocks cached */
                collect_scores(hs[i], &o[i]);
                hl_handle_release(hs[i]);
            }
        }
        for (int i = 0; i < N; i++) {
            if (tiny) {
                collect_scores(hs[i], &o[i]);
                hl_handle_release(hs[i]);
            }
            CHECK(o[i].done);
            CHECK_EQ(o[i].n, 44);
            CHECK_EQ(o[i].n_gen, i == 0 ? 0 : 40);
            for (int k = 0; k < o[i].n && k < 44; k++) {
                CHECK_EQ(o[i].tok[k], prompt[k + 1]);
                CHECK(o[i].lp[k].chosen.logprob <= 0 && o[i].lp[k].chosen.logprob > -50);
                CHECK_EQ(o[i].lp[k].n_top, 2);
                CHECK(o[i].lp[k].top[0].logprob >= o[i].lp[k].top[1].logprob);
                if (k >= 4) CHECK_EQ(o[i].lp[k].top[0].token, prompt[k + 1]); /* greedy text: the argmax */
                CHECK(fabsf(o[i].lp[k].chosen.logprob - o[0].lp[k].chosen.logprob) < 1e-4f);
            }
        }
        if (tiny) {
            hl_engine_metrics m;
            hl_engine_get_metrics(e, &m);
            CHECK(m.preemptions > 0);
        }
        free(o);
        hl_engine_free(e);
    }
    hl_loaded_free(lm);
}
