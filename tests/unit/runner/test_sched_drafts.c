/* Tests for the scheduler's draft verification and rollback, logits
 * processors and parallel sampling (runner/sched.c, sched_verify.c), on
 * stories260K (and SmolLM2 when it is present).
 *
 * The drafters here are deterministic functions of the tokens they are
 * given: a reference continuation (the undrafted output) that is right for
 * its first j tokens and then wrong, or prompt lookup. So the engine must
 * reproduce the undrafted output exactly, greedy or seeded; only the number
 * of steps may change. A step hook (engine_impl.h) checks after every step
 * that each sequence's bookkeeping is consistent (no drafts left over, blocks
 * = ceil(n_computed / block_size), reference counts = holders), that the
 * sequence equals the reference, that every cached block (full or partial) is
 * a block-aligned piece of the verified sequence (never a rejected draft),
 * and, for one drafting sequence, that exactly min(j, drafted) drafts were
 * accepted and n_computed advanced by that plus one. */
#include "harness.h"
#include "rig.h"

#include "runner/engine_impl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

enum { MAXTOK = 256, MAXCH = 4 };


static const int32_t ONCE[] = {1, 403, 407, 261, 378}; /* BOS + "Once upon a time" */

typedef struct outcome {
    int32_t tokens[MAXCH][MAXTOK];
    int32_t n[MAXCH];
    float lp[MAXCH][MAXTOK];
    char text[MAXCH][4096];
    size_t n_text[MAXCH];
    hl_choice_stats stats[MAXCH];
    int done[MAXCH];
    int error;
} outcome;

static hl_loaded *load_path(const char *path) {
    hl_loaded *lm = NULL;
    hl_err err = {0};
    if (!path) return NULL;
    if (hl_loaded_open(&lm, path, &err) != 0) {
        hl_test_fail(__FILE__, __LINE__, "load %s: %s", path, err.msg);
        return NULL;
    }
    return lm;
}

static hl_loaded *load(void) { return load_path(hl_test_shared("models/stories260K.gguf")); }

static hl_engine *engine(hl_loaded *lm, int32_t max_draft, int32_t n_blocks) {
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.max_draft = max_draft;
    p.spec_fixed = 1; /* these tests count drafts exactly: no adaptive control */
    p.n_blocks = n_blocks;
    hl_engine *e = NULL;
    hl_err err = {0};
    if (hl_engine_new(&e, lm, &p, &err) != 0) hl_test_fail(__FILE__, __LINE__, "engine: %s", err.msg);
    return e;
}

static hl_request greedy_req(const int32_t *prompt, size_t n, int32_t num_predict) {
    return rig_greedy_req(prompt, n, num_predict);
}

/* Ollama's default chain (penalties, top-k, top-p) at a fixed seed. */
static hl_request seeded_req(const int32_t *prompt, size_t n, int32_t num_predict, uint64_t seed) {
    hl_request r = greedy_req(prompt, n, num_predict);
    r.sampling = hl_sampling_default_params();
    r.sampling.temperature = 1.0f;
    r.sampling.has_seed = 1;
    r.sampling.seed = seed;
    return r;
}

static void collect(hl_handle *h, outcome *o) {
    hl_event ev;
    while (hl_handle_wait(h, &ev, 60000)) {
        if (ev.type == HL_EVENT_ERROR) {
            o->error = 1;
            continue;
        }
        int i = ev.index;
        if (i < 0 || i >= MAXCH) continue;
        if (ev.type == HL_EVENT_TOKEN && o->n[i] < MAXTOK) {
            o->lp[i][o->n[i]] = ev.lp.chosen.logprob;
            o->tokens[i][o->n[i]++] = ev.token;
        }
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
    return o->error ? -1 : 0;
}

static uint64_t steps_of(hl_engine *e) {
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    return m.steps;
}

static int same_tokens(const outcome *a, int ca, const outcome *b, int cb) {
    return a->n[ca] == b->n[cb] && memcmp(a->tokens[ca], b->tokens[cb], sizeof(int32_t) * (size_t)a->n[ca]) == 0;
}

/* ---- drafters ----------------------------------------------------------------- */

/* Proposes the reference continuation, right for its first j tokens and then
 * wrong (token + 1); j < 0: j is a hash of the position, 0..max. */
typedef struct ref_drafter {
    const int32_t *prompt, *ref;
    int32_t n_prompt, n_ref, j, n_vocab;
    /* engine thread */
    int32_t calls, bad_tokens, max_asked, frees;
    int32_t cut; /* calls asking for fewer than max_draft (8) although more could still be emitted */
} ref_drafter;

static int32_t ref_propose(void *ctx, int32_t choice, const int32_t *tokens, int32_t n_tokens, int32_t *draft, int32_t max) {
    ref_drafter *d = ctx;
    d->calls++;
    if (max > d->max_asked) d->max_asked = max;
    int32_t g = n_tokens - d->n_prompt; /* generated so far, the pending token included */
    /* the engine passes the prompt and the accepted tokens: the reference so far */
    if (g < 0 || g > d->n_ref || memcmp(tokens, d->prompt, sizeof(int32_t) * (size_t)d->n_prompt) ||
        memcmp(tokens + d->n_prompt, d->ref, sizeof(int32_t) * (size_t)g)) {
        d->bad_tokens++;
        return 0;
    }
    if (max < 8 && max < d->n_ref - g - 1) d->cut++;
    int32_t j = d->j >= 0 ? d->j : (int32_t)(((uint32_t)n_tokens * 2654435761u >> 7) % (uint32_t)(max + 1));
    int32_t n = 0;
    for (; n < max && g + n < d->n_ref; n++) draft[n] = n < j ? d->ref[g + n] : (d->ref[g + n] + 1) % d->n_vocab;
    return n;
}

static void ref_free(void *ctx) { ((ref_drafter *)ctx)->frees++; }

static hl_drafter as_drafter(ref_drafter *d) {
    return (hl_drafter){.propose = ref_propose, .free = ref_free, .ctx = d};
}

/* Prompt lookup: the tokens that followed the previous occurrence of the last token. */
static int32_t lookup_propose(void *ctx, int32_t choice, const int32_t *tokens, int32_t n_tokens, int32_t *draft, int32_t max) {
    (void)ctx;
    int32_t last = tokens[n_tokens - 1];
    for (int32_t i = n_tokens - 2; i >= 0; i--) {
        if (tokens[i] != last) continue;
        int32_t n = 0;
        while (n < max && i + 1 + n < n_tokens - 1) {
            draft[n] = tokens[i + 1 + n];
            n++;
        }
        return n;
    }
    return 0;
}

/* ---- the step hook ------------------------------------------------------------ */

typedef struct watch {
    pthread_mutex_t mu;   /* the hook may still run after the client saw DONE */
    uint64_t base_steps;  /* engine steps before the hook was installed */
    const int32_t *truth; /* prompt + reference output, or NULL */
    int32_t n_truth;
    int32_t j;            /* >= 0: one sequence drafting right for j tokens */
    int steps, drafted_steps, violations;
    char what[256];
    uint64_t prev_drafted, prev_accepted;
    int32_t prev_nc, prev_nt;
    int have_prev;
} watch;

static void bad(watch *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(watch *w, const char *fmt, ...) {
    if (w->violations++) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->what, sizeof w->what, fmt, ap);
    va_end(ap);
}

static void watch_check_step(hl_engine *e, watch *w);

static void watch_step(hl_engine *e, void *ctx) {
    watch *w = ctx;
    pthread_mutex_lock(&w->mu);
    watch_check_step(e, w);
    pthread_mutex_unlock(&w->mu);
}

static void watch_check_step(hl_engine *e, watch *w) {
    w->steps++;
    const int32_t bs = e->block_size;
    int32_t *holders = calloc((size_t)e->kvc.n_blocks, sizeof *holders);
    seq *lists[2] = {e->running, e->waiting};
    for (int l = 0; l < 2; l++)
        for (seq *s = lists[l]; s; s = s->next) {
            if (s->n_draft != 0 || s->row != -1) bad(w, "step %d: drafts or a logits row left over", w->steps);
            if (s->n_committed * bs > s->n_computed || s->n_committed > s->n_blocks)
                bad(w, "step %d: %d blocks committed for %d computed", w->steps, s->n_committed, s->n_computed);
            for (int32_t b = 0; b < s->n_blocks; b++) holders[s->blocks[b]]++;
            if (l == 0 && s->n_blocks != (s->n_computed + bs - 1) / bs)
                bad(w, "step %d: %d blocks held for %d positions computed", w->steps, s->n_blocks, s->n_computed);
            if (l == 0 && s->n_tokens <= s->n_computed)
                bad(w, "step %d: running with nothing pending (%d tokens, %d computed)", w->steps, s->n_tokens,
                    s->n_computed);
            if (w->truth && (s->n_tokens > w->n_truth || memcmp(s->tokens, w->truth, sizeof(int32_t) * (size_t)s->n_tokens)))
                bad(w, "step %d: the sequence left the reference", w->steps);
        }
    int32_t used = 0;
    for (int32_t b = 0; b < e->kvc.n_blocks; b++) {
        const hl_kvc_block *kb = &e->kvc.blocks[b];
        if (kb->ref != holders[b]) bad(w, "step %d: block %d has ref %d, held %d times", w->steps, b, kb->ref, holders[b]);
        used += holders[b] > 0;
        if (w->truth && (kb->hashed || kb->partial)) {
            int32_t n = kb->hashed ? bs : kb->n_valid;
            const int32_t *t = &e->kvc.tokens[(size_t)b * (size_t)bs];
            int found = 0;
            for (int32_t off = 0; !found && off + n <= w->n_truth; off += bs)
                found = memcmp(t, w->truth + off, sizeof(int32_t) * (size_t)n) == 0;
            if (!found) bad(w, "step %d: block %d is cached with tokens outside the verified sequence", w->steps, b);
        }
    }
    if (used != hl_kvc_n_used(&e->kvc)) bad(w, "step %d: %d blocks held, %d in use", w->steps, used, hl_kvc_n_used(&e->kvc));
    free(holders);
    uint64_t d = atomic_load(&e->m_draft_tokens), a = atomic_load(&e->m_draft_accepted);
    uint64_t drafted = d - w->prev_drafted, accepted = a - w->prev_accepted;
    w->prev_drafted = d;
    w->prev_accepted = a;
    w->drafted_steps += drafted > 0;
    if (w->j < 0) return;
    uint64_t want = drafted < (uint64_t)w->j ? drafted : (uint64_t)w->j;
    if (accepted != want)
        bad(w, "step %d: %llu of %llu drafts accepted, expected %llu", w->steps, (unsigned long long)accepted,
            (unsigned long long)drafted, (unsigned long long)want);
    seq *s = e->running;
    if (s && w->have_prev && w->prev_nt - w->prev_nc == 1 &&
        (s->n_computed - w->prev_nc != 1 + (int32_t)accepted || s->n_tokens - w->prev_nt != 1 + (int32_t)accepted))
        bad(w, "step %d: computed %d -> %d, tokens %d -> %d with %llu accepted", w->steps, w->prev_nc, s->n_computed,
            w->prev_nt, s->n_tokens, (unsigned long long)accepted);
    w->have_prev = s != NULL;
    if (s) {
        w->prev_nc = s->n_computed;
        w->prev_nt = s->n_tokens;
    }
}

/* Installs the hook; only before the first submit (the engine thread reads
 * it without a lock). */
static void watch_on(hl_engine *e, watch *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->base_steps = steps_of(e);
    w->j = -1;
    e->step_hook = watch_step;
    e->step_hook_ctx = w;
}

/* Waits until the hook has run for every step the engine counted (the last
 * step of a request ends after its DONE event). Call with no request running. */
static void watch_settle(hl_engine *e, watch *w) {
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&w->mu);
        int done = (uint64_t)w->steps == steps_of(e) - w->base_steps;
        pthread_mutex_unlock(&w->mu);
        if (done) return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    hl_test_fail(__FILE__, __LINE__, "the step hook did not catch up");
}

/* What the next run is checked against; per-step accounting starts afresh. */
static void watch_set(hl_engine *e, watch *w, const int32_t *truth, int32_t n_truth, int32_t j) {
    watch_settle(e, w);
    pthread_mutex_lock(&w->mu);
    w->truth = truth;
    w->n_truth = n_truth;
    w->j = j;
    w->have_prev = 0;
    w->prev_drafted = atomic_load(&e->m_draft_tokens);
    w->prev_accepted = atomic_load(&e->m_draft_accepted);
    pthread_mutex_unlock(&w->mu);
}

#define CHECK_WATCH(e, w)                                                                                \
    do {                                                                                                 \
        watch_settle((e), (w));                                                                          \
        if ((w)->violations)                                                                             \
            hl_test_fail(__FILE__, __LINE__, "%d state violations; first: %s", (w)->violations, (w)->what); \
    } while (0)

/* Steps a drafting run takes: one for the prompt (its first token), then each
 * step emits min(j, k') + 1 tokens, k' = the drafts allowed (never past
 * num_predict). first_decode: the prefix cache held all of the prompt but its
 * last token, so the first step is already a decode, with drafts. */
static uint64_t expected_steps(int32_t n_gen, int32_t k, int32_t j, int first_decode) {
    uint64_t steps = first_decode ? 0 : 1;
    for (int32_t g = first_decode ? 0 : 1; g < n_gen; steps++) {
        int32_t kk = k < n_gen - g - 1 ? k : n_gen - g - 1;
        g += (j < kk ? j : kk) + 1;
    }
    return steps;
}

/* ---- (a), (b): greedy drafts, all right or right for j then wrong ------------- */

enum { NGEN = 48, K = 4 };

TEST(drafts_greedy_exact_for_every_accept_count) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *plain = engine(lm, K, 0);
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o);
    int32_t truth[5 + NGEN];
    memcpy(truth, ONCE, sizeof ONCE);
    /* the plain run first: no drafter, one step per token */
    hl_request r = greedy_req(ONCE, 5, NGEN);
    CHECK_EQ(run_one(plain, &r, ref), 0);
    CHECK_EQ(ref->n[0], NGEN);
    CHECK_EQ(steps_of(plain), NGEN);
    memcpy(truth + 5, ref->tokens[0], sizeof(int32_t) * NGEN);
    for (int32_t j = 0; j <= K; j++) {
        hl_engine *e = engine(lm, K, 0);
        watch w;
        watch_on(e, &w);
        /* run 1 on an empty cache; run 2 finds all of the prompt but its last
         * token cached, so its very first step drafts */
        for (int run = 0; run < 2; run++) {
            ref_drafter d = {.prompt = ONCE, .n_prompt = 5, .ref = ref->tokens[0], .n_ref = NGEN, .j = j,
                             .n_vocab = e->n_vocab};
            r.drafter = as_drafter(&d);
            watch_set(e, &w, truth, 5 + NGEN, j);
            uint64_t s0 = steps_of(e);
            CHECK_EQ(run_one(e, &r, o), 0);
            CHECK(same_tokens(o, 0, ref, 0));
            CHECK_STREQ(o->text[0], ref->text[0]);
            CHECK_EQ(o->stats[0].gen_tokens, NGEN);
            CHECK_EQ(o->stats[0].prompt_cached, run ? 4 : 0);
            CHECK_STREQ(o->stats[0].done_reason, "length");
            /* j = K: every draft accepted, K + 1 tokens a step (a) */
            CHECK_EQ(steps_of(e) - s0, expected_steps(NGEN, K, j, run));
            CHECK(d.calls > 0);
            CHECK_EQ(d.bad_tokens, 0);
            CHECK_EQ(d.max_asked, K);
            CHECK_EQ(d.frees, 1);
        }
        CHECK_WATCH(e, &w);
        CHECK(w.drafted_steps > 0);
        hl_engine_metrics m;
        hl_engine_get_metrics(e, &m);
        CHECK_EQ(m.draft_accepted, j == 0 ? 0 : m.draft_accepted);
        CHECK(j == 0 || m.draft_accepted > 0);
        CHECK(j == K || m.draft_tokens > m.draft_accepted);
        CHECK_EQ(m.blocks_used, 0);
        CHECK_EQ(m.gen_tokens, (uint64_t)NGEN * 2);
        hl_engine_free(e);
    }
    free(ref);
    free(o);
    hl_engine_free(plain);
    hl_loaded_free(lm);
}

/* The request's own limit applies under the engine's, and the engine's caps it. */
TEST(drafts_request_limit_and_engine_cap) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, 8, 0);
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o);
    hl_request r = greedy_req(ONCE, 5, 30);
    CHECK_EQ(run_one(e, &r, ref), 0);
    int32_t limits[] = {3, 50};
    int32_t want[] = {3, 8};
    for (int t = 0; t < 2; t++) {
        ref_drafter d = {.prompt = ONCE, .n_prompt = 5, .ref = ref->tokens[0], .n_ref = 30, .j = 100, .n_vocab = e->n_vocab};
        r.drafter = as_drafter(&d);
        r.drafter.max_draft = limits[t];
        uint64_t s0 = steps_of(e);
        CHECK_EQ(run_one(e, &r, o), 0);
        CHECK(same_tokens(o, 0, ref, 0));
        CHECK_EQ(d.max_asked, want[t]);
        CHECK_EQ(steps_of(e) - s0, expected_steps(30, want[t], want[t], 1));
    }
    free(ref);
    free(o);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* ---- (c): rejected drafts never reach the prefix cache ------------------------ */

/* Always-wrong drafts of 8 tokens cover every block boundary on the way
 * (at 24 computed positions, drafts fill 25..31, the rest of the second
 * block): none of it may be cached. Afterwards the cache holds exactly what an
 * undrafted run leaves, and the next turn hits the verified blocks. */
TEST(drafts_rejected_never_cached) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, 8, 0), *plain = engine(lm, 8, 0);
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o), *o2 = calloc(1, sizeof *o2),
            *o3 = calloc(1, sizeof *o3);
    enum { N = 40 };
    hl_request r = greedy_req(ONCE, 5, N);
    CHECK_EQ(run_one(plain, &r, ref), 0);
    CHECK_EQ(ref->n[0], N);
    int32_t truth[5 + N + 8];
    memcpy(truth, ONCE, sizeof ONCE);
    memcpy(truth + 5, ref->tokens[0], sizeof(int32_t) * N);
    watch w;
    watch_on(e, &w);
    watch_set(e, &w, truth, 5 + N, 0);
    ref_drafter d = {.prompt = ONCE, .n_prompt = 5, .ref = ref->tokens[0], .n_ref = N, .j = 0, .n_vocab = e->n_vocab};
    r.drafter = as_drafter(&d);
    CHECK_EQ(run_one(e, &r, o), 0);
    CHECK(same_tokens(o, 0, ref, 0));
    CHECK_WATCH(e, &w); /* the engine is idle from here on */
    CHECK(w.drafted_steps >= N - 9);
    /* the same cache state as the undrafted run: two full blocks and a partial one */
    int32_t n_hashed = 0, n_partial = 0, partial_valid = -1;
    for (int32_t b = 0; b < e->kvc.n_blocks; b++) {
        n_hashed += e->kvc.blocks[b].hashed;
        if (e->kvc.blocks[b].partial) n_partial++, partial_valid = e->kvc.blocks[b].n_valid;
    }
    CHECK_EQ(n_hashed, 2);
    CHECK_EQ(n_partial, 1);
    CHECK_EQ(partial_valid, 5 + N - 1 - 32); /* the last token was never fed back */
    /* next turn: the whole history plus 8 new tokens; it hits 2 full blocks and
     * the 12 verified positions of the third, and answers as a fresh engine does */
    for (int k = 0; k < 8; k++) truth[5 + N + k] = 300 + k;
    hl_request r2 = greedy_req(truth, 5 + N + 8, 12);
    hl_engine_metrics m0, m1;
    hl_engine_get_metrics(e, &m0);
    watch_set(e, &w, NULL, 0, -1); /* a new prompt */
    CHECK_EQ(run_one(e, &r2, o2), 0);
    hl_engine_get_metrics(e, &m1);
    CHECK_EQ(o2->stats[0].prompt_cached, 5 + N - 1);
    CHECK_EQ(m1.prefix_hits - m0.prefix_hits, 3);
    hl_engine *fresh = engine(lm, 8, 0);
    CHECK_EQ(run_one(fresh, &r2, o3), 0);
    CHECK_EQ(o3->stats[0].prompt_cached, 0);
    CHECK(same_tokens(o2, 0, o3, 0));
    CHECK_WATCH(e, &w);
    free(ref);
    free(o);
    free(o2);
    free(o3);
    hl_engine_free(e);
    hl_engine_free(plain);
    hl_engine_free(fresh);
    hl_loaded_free(lm);
}

/* ---- (d): seeded sampling: the same tokens with any deterministic drafter ------ */

TEST(drafts_seeded_sampling_exact) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, K, 0);
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o);
    enum { N = 64 };
    for (uint64_t seed = 7; seed < 10; seed++) {
        hl_request r = seeded_req(ONCE, 5, N, seed);
        r.logprobs = 1;
        CHECK_EQ(run_one(e, &r, ref), 0);
        CHECK(ref->n[0] > 8);
        int32_t js[] = {0, 1, K, -1};
        for (int t = 0; t < 5; t++) {
            ref_drafter d = {.prompt = ONCE, .n_prompt = 5, .ref = ref->tokens[0], .n_ref = ref->n[0],
                             .j = t < 4 ? js[t] : 0, .n_vocab = e->n_vocab};
            r.drafter = t < 4 ? as_drafter(&d) : (hl_drafter){.propose = lookup_propose};
            CHECK_EQ(run_one(e, &r, o), 0);
            CHECK(same_tokens(o, 0, ref, 0));
            CHECK_EQ(d.bad_tokens, 0);
            for (int32_t i = 0; i < o->n[0] && i < ref->n[0]; i++) CHECK(o->lp[0][i] == ref->lp[0][i]);
            CHECK_STREQ(o->stats[0].done_reason, ref->stats[0].done_reason);
        }
    }
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK(m.draft_accepted > 0);
    free(ref);
    free(o);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* A stop string and the end of generation inside an accepted run of drafts
 * end the sequence there, as without drafts. */
TEST(drafts_stop_inside_accepted_run) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, 8, 0);
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o), *full = calloc(1, sizeof *full);
    hl_request r = greedy_req(ONCE, 5, 40);
    CHECK_EQ(run_one(e, &r, full), 0);
    const char *stops[] = {"Lily"};
    r.stops = stops;
    r.n_stops = 1;
    CHECK_EQ(run_one(e, &r, ref), 0);
    CHECK_STREQ(ref->stats[0].done_reason, "stop");
    ref_drafter d = {.prompt = ONCE, .n_prompt = 5, .ref = full->tokens[0], .n_ref = 40, .j = 100, .n_vocab = e->n_vocab};
    r.drafter = as_drafter(&d);
    CHECK_EQ(run_one(e, &r, o), 0);
    CHECK(same_tokens(o, 0, ref, 0));
    CHECK_STREQ(o->text[0], ref->text[0]);
    CHECK_STREQ(o->stats[0].done_reason, "stop");
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK_EQ(m.blocks_used, 0);
    free(ref);
    free(o);
    free(full);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* ---- (e): logits processors ---------------------------------------------------- */

typedef struct proc_log {
    pthread_mutex_t mu;
    const uint8_t *ok;    /* [n_vocab] allowed tokens, NULL: all */
    int instances, frees, masks;
    int32_t acc[8][MAXTOK];
    int32_t n_acc[8];
    pthread_t threads[8];
    int n_threads;
} proc_log;

typedef struct set_proc {
    hl_logits_proc base;
    proc_log *log;
    int id;
} set_proc;

static void set_mask(hl_logits_proc *self, float *logits, int32_t n_vocab) {
    set_proc *p = (set_proc *)self;
    proc_log *g = p->log;
    if (g->ok)
        for (int32_t i = 0; i < n_vocab; i++)
            if (!g->ok[i]) logits[i] = -INFINITY;
    pthread_mutex_lock(&g->mu);
    g->masks++;
    int seen = 0;
    for (int i = 0; i < g->n_threads; i++) seen |= pthread_equal(g->threads[i], pthread_self());
    if (!seen && g->n_threads < 8) g->threads[g->n_threads++] = pthread_self();
    pthread_mutex_unlock(&g->mu);
}

static void set_accept(hl_logits_proc *self, int32_t token) {
    set_proc *p = (set_proc *)self;
    pthread_mutex_lock(&p->log->mu);
    if (p->log->n_acc[p->id] < MAXTOK) p->log->acc[p->id][p->log->n_acc[p->id]++] = token;
    pthread_mutex_unlock(&p->log->mu);
}

static hl_logits_proc *set_new(proc_log *g);

static hl_logits_proc *set_clone(const hl_logits_proc *self) {
    const set_proc *p = (const set_proc *)self;
    set_proc *c = (set_proc *)set_new(p->log);
    if (!c) return NULL;
    pthread_mutex_lock(&p->log->mu);
    memcpy(p->log->acc[c->id], p->log->acc[p->id], sizeof(int32_t) * (size_t)p->log->n_acc[p->id]);
    p->log->n_acc[c->id] = p->log->n_acc[p->id];
    pthread_mutex_unlock(&p->log->mu);
    return &c->base;
}

static void set_free(hl_logits_proc *self) {
    set_proc *p = (set_proc *)self;
    pthread_mutex_lock(&p->log->mu);
    p->log->frees++;
    pthread_mutex_unlock(&p->log->mu);
    free(p);
}

static const hl_logits_proc_vt SET_VT = {set_mask, set_accept, set_clone, set_free};

static hl_logits_proc *set_new(proc_log *g) {
    set_proc *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.vt = &SET_VT;
    p->log = g;
    pthread_mutex_lock(&g->mu);
    p->id = g->instances < 8 ? g->instances : 7;
    g->instances++;
    pthread_mutex_unlock(&g->mu);
    return &p->base;
}

static void log_init(proc_log *g, const uint8_t *ok) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    g->ok = ok;
}

static const int32_t ALLOWED[5] = {261, 286, 298, 383, 432};

static int all_allowed(const outcome *o, int c) {
    for (int32_t i = 0; i < o->n[c]; i++) {
        int in = 0;
        for (int k = 0; k < 5; k++) in |= o->tokens[c][i] == ALLOWED[k];
        if (!in) return 0;
    }
    return 1;
}

static int log_is(const proc_log *g, int id, const outcome *o, int c) {
    return g->n_acc[id] == o->n[c] && memcmp(g->acc[id], o->tokens[c], sizeof(int32_t) * (size_t)o->n[c]) == 0;
}

TEST(proc_masks_and_sees_accepted_tokens) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, K, 0);
    uint8_t *ok = calloc((size_t)e->n_vocab, 1);
    for (int k = 0; k < 5; k++) ok[ALLOWED[k]] = 1;
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o), *un = calloc(1, sizeof *un);
    proc_log g;
    enum { N = 40 };
    hl_request r = greedy_req(ONCE, 5, N);
    r.logprobs = 1;
    CHECK_EQ(run_one(e, &r, un), 0);
    /* greedy under the mask, no drafts: one mask per token, accept sees them all */
    log_init(&g, ok);
    r.proc = set_new(&g);
    CHECK_EQ(run_one(e, &r, ref), 0);
    CHECK_EQ(ref->n[0], N);
    CHECK(all_allowed(ref, 0));
    CHECK(!same_tokens(ref, 0, un, 0)); /* the mask changed the output */
    CHECK_EQ(g.masks, N);
    CHECK(log_is(&g, 0, ref, 0));
    CHECK_EQ(g.instances, 1);
    CHECK_EQ(g.frees, 1);
    /* logprobs are of the masked distribution: the 5 allowed tokens carry all the mass */
    for (int32_t i = 0; i < ref->n[0]; i++) CHECK(ref->lp[0][i] <= 0.0f && ref->lp[0][i] > -20.0f);
    for (int32_t j = 0; j <= K; j++) {
        ref_drafter d = {.prompt = ONCE, .n_prompt = 5, .ref = ref->tokens[0], .n_ref = N, .j = j, .n_vocab = e->n_vocab};
        log_init(&g, ok);
        r.proc = set_new(&g);
        r.drafter = as_drafter(&d);
        CHECK_EQ(run_one(e, &r, o), 0);
        CHECK(same_tokens(o, 0, ref, 0));
        for (int32_t i = 0; i < N; i++) CHECK(o->lp[0][i] == ref->lp[0][i]);
        CHECK(log_is(&g, 0, o, 0)); /* never a rejected draft */
        CHECK_EQ(g.instances, 1);
        CHECK_EQ(g.frees, 1);
        CHECK_EQ(d.bad_tokens, 0);
    }
    /* seeded sampling under the mask, with prompt lookup drafts */
    r = seeded_req(ONCE, 5, N, 42);
    log_init(&g, ok);
    r.proc = set_new(&g);
    CHECK_EQ(run_one(e, &r, ref), 0);
    CHECK(all_allowed(ref, 0));
    CHECK(log_is(&g, 0, ref, 0));
    log_init(&g, ok);
    r.proc = set_new(&g);
    r.drafter = (hl_drafter){.propose = lookup_propose};
    CHECK_EQ(run_one(e, &r, o), 0);
    CHECK(same_tokens(o, 0, ref, 0));
    CHECK(log_is(&g, 0, o, 0));
    CHECK_EQ(g.frees, 1);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK(m.draft_tokens > m.draft_accepted);
    free(ok);
    free(ref);
    free(o);
    free(un);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* n = 3: every choice gets its own clone (made before the first sample), and
 * each clone sees exactly its choice's tokens; all are freed. */
TEST(proc_forks_clone_the_processor) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, K, 0);
    uint8_t *ok = calloc((size_t)e->n_vocab, 1);
    for (int k = 0; k < 5; k++) ok[ALLOWED[k]] = 1;
    outcome *o = calloc(1, sizeof *o), *o2 = calloc(1, sizeof *o2);
    proc_log g;
    for (int drafts = 0; drafts < 2; drafts++) {
        hl_request r = seeded_req(ONCE, 5, 30, 1234);
        r.n_choices = 3;
        log_init(&g, ok);
        r.proc = set_new(&g);
        if (drafts) r.drafter = (hl_drafter){.propose = lookup_propose};
        CHECK_EQ(run_one(e, &r, drafts ? o2 : o), 0);
        outcome *x = drafts ? o2 : o;
        CHECK_EQ(g.instances, 3);
        CHECK_EQ(g.frees, 3);
        int used[3] = {0};
        for (int c = 0; c < 3; c++) {
            CHECK(x->done[c]);
            CHECK(x->n[c] > 0);
            CHECK(all_allowed(x, c));
            int found = -1;
            for (int id = 0; id < 3 && found < 0; id++)
                if (!used[id] && log_is(&g, id, x, c)) found = id;
            CHECK(found >= 0);
            if (found >= 0) used[found] = 1;
        }
        CHECK(!same_tokens(x, 0, x, 1) || !same_tokens(x, 0, x, 2));
    }
    /* drafts change nothing, choice by choice */
    for (int c = 0; c < 3; c++) CHECK(same_tokens(o, c, o2, c));
    free(ok);
    free(o);
    free(o2);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* Ownership: a failed submit leaves the processor and the drafter's context
 * with the caller; a successful one frees each exactly once. */
TEST(proc_and_drafter_ownership) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 1);
    p.max_ctx = 64;
    hl_engine *e;
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    proc_log g;
    log_init(&g, NULL);
    int32_t big[100];
    for (int i = 0; i < 100; i++) big[i] = 300;
    ref_drafter d = {.n_prompt = 100};
    hl_request r = greedy_req(big, 100, 10);
    r.proc = set_new(&g);
    r.drafter = as_drafter(&d);
    hl_handle *h = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &h, &err), HL_ERANGE);
    CHECK_EQ(g.frees, 0);
    CHECK_EQ(d.frees, 0);
    static const hl_logits_proc_vt broken = {set_mask, NULL, set_clone, set_free};
    hl_logits_proc bp = {.vt = &broken};
    hl_request rb = greedy_req(ONCE, 5, 4);
    rb.proc = &bp;
    CHECK_EQ(hl_engine_submit(e, &rb, NULL, NULL, &h, &err), HL_EINVAL);
    /* cancelled before it ran: still freed once */
    hl_request r2 = greedy_req(ONCE, 5, -1);
    r2.proc = r.proc;
    r2.drafter = r.drafter;
    CHECK_EQ(hl_engine_submit(e, &r2, NULL, NULL, &h, &err), 0);
    hl_handle_release(h);
    hl_engine_free(e);
    CHECK_EQ(g.frees, 1);
    CHECK_EQ(d.frees, 1);
    hl_loaded_free(lm);
}

/* ---- (f): preemption and budget cuts of drafting sequences --------------------- */

TEST(drafts_preempted_on_tiny_pool_lose_nothing) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, K, 10), *big = engine(lm, K, 0); /* 160 slots for 4 x ~90 tokens */
    enum { N = 4, G = 80 };
    int32_t prompts[N][12];
    outcome *tiny = calloc(N, sizeof *tiny), *ref = calloc(N, sizeof *ref);
    ref_drafter d[N];
    hl_handle *hs[N];
    watch w;
    watch_on(e, &w);
    for (int i = 0; i < N; i++) {
        prompts[i][0] = 1;
        for (int k = 1; k < 12; k++) prompts[i][k] = 270 + i * 20 + k;
        hl_request r = greedy_req(prompts[i], 12, G);
        CHECK_EQ(run_one(big, &r, &ref[i]), 0);
        d[i] = (ref_drafter){.prompt = prompts[i], .n_prompt = 12, .ref = ref[i].tokens[0], .n_ref = ref[i].n[0],
                             .j = i == 3 ? -1 : i + 1, .n_vocab = e->n_vocab};
    }
    for (int i = 0; i < N; i++) { /* all at once */
        hl_request r = greedy_req(prompts[i], 12, G);
        r.drafter = as_drafter(&d[i]);
        CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &hs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        collect(hs[i], &tiny[i]);
        hl_handle_release(hs[i]);
        CHECK(same_tokens(&tiny[i], 0, &ref[i], 0));
        CHECK_STREQ(tiny[i].text[0], ref[i].text[0]);
        CHECK_EQ(d[i].bad_tokens, 0);
        CHECK_EQ(d[i].frees, 1);
    }
    CHECK_WATCH(e, &w);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK(m.preemptions > 0);
    CHECK(m.draft_accepted > 0);
    CHECK_EQ(m.running, 0);
    CHECK_EQ(m.blocks_used, 0);
    free(tiny);
    free(ref);
    hl_engine_free(e);
    hl_engine_free(big);
    hl_loaded_free(lm);
}

/* A step budget barely above the number of decodes: drafts are cut, own
 * tokens never, and prefills still progress. */
TEST(drafts_cut_by_step_budget) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.max_seqs = 6;
    p.step_tokens = 9;
    p.max_draft = 8;
    hl_engine *e, *big = engine(lm, 8, 0);
    CHECK_EQ(hl_engine_new(&e, lm, &p, NULL), 0);
    enum { N = 6, G = 40 };
    int32_t prompts[N][20];
    outcome *o = calloc(N, sizeof *o), *ref = calloc(N, sizeof *ref);
    ref_drafter d[N];
    hl_handle *hs[N];
    watch w;
    watch_on(e, &w);
    for (int i = 0; i < N; i++) {
        prompts[i][0] = 1;
        for (int k = 1; k < 20; k++) prompts[i][k] = 300 + (i * 31 + k * 7) % 200;
        hl_request r = greedy_req(prompts[i], 20, G);
        CHECK_EQ(run_one(big, &r, &ref[i]), 0);
        d[i] = (ref_drafter){.prompt = prompts[i], .n_prompt = 20, .ref = ref[i].tokens[0], .n_ref = ref[i].n[0],
                             .j = 100, .n_vocab = e->n_vocab};
    }
    for (int i = 0; i < N; i++) { /* all at once */
        hl_request r = greedy_req(prompts[i], 20, G);
        r.drafter = as_drafter(&d[i]);
        CHECK_EQ(hl_engine_submit(e, &r, NULL, NULL, &hs[i], NULL), 0);
    }
    int32_t cut = 0;
    for (int i = 0; i < N; i++) {
        collect(hs[i], &o[i]);
        hl_handle_release(hs[i]);
        CHECK(same_tokens(&o[i], 0, &ref[i], 0));
        CHECK(!o[i].error);
        cut += d[i].cut;
    }
    CHECK(cut > 0); /* drafts were cut to the budget */
    CHECK_WATCH(e, &w);
    free(o);
    free(ref);
    hl_engine_free(e);
    hl_engine_free(big);
    hl_loaded_free(lm);
}

/* ---- (g): parallel sampling ---------------------------------------------------- */

/* 16 streams with their own seeds (half drafting by prompt lookup, each with a
 * processor) at once, then each alone: identical tokens and logprobs; the
 * processors' masks ran on more than one thread of the pool. */
TEST(parallel_sampling_equals_alone) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_engine *e = engine(lm, K, 0);
    enum { N = 16, G = 48 };
    int32_t prompts[N][24];
    size_t lens[N];
    outcome *alone = calloc(N, sizeof *alone), *together = calloc(N, sizeof *together);
    proc_log g;
    log_init(&g, NULL);
    hl_handle *hs[N];
    hl_request rs[N];
    for (int i = 0; i < N; i++) {
        lens[i] = 5 + (size_t)(i * 5 % 19);
        prompts[i][0] = 1;
        for (size_t k = 1; k < lens[i]; k++) prompts[i][k] = 260 + (int32_t)((i * 37 + (int)k * 11) % 240);
        rs[i] = seeded_req(prompts[i], lens[i], G, 1000 + (uint64_t)i);
        rs[i].logprobs = 1;
        if (i % 4 == 1) rs[i].sampling.top_k = 0, rs[i].sampling.top_p = 1.0f; /* the whole-row draw */
        if (i % 2) rs[i].drafter = (hl_drafter){.propose = lookup_propose};
    }
    for (int i = 0; i < N; i++) {
        rs[i].proc = set_new(&g);
        CHECK_EQ(hl_engine_submit(e, &rs[i], NULL, NULL, &hs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        collect(hs[i], &together[i]);
        hl_handle_release(hs[i]);
    }
    CHECK(g.n_threads >= 2);
    for (int i = 0; i < N; i++) {
        rs[i].proc = set_new(&g);
        CHECK_EQ(run_one(e, &rs[i], &alone[i]), 0);
        CHECK(alone[i].n[0] > 0);
        CHECK(same_tokens(&together[i], 0, &alone[i], 0));
        for (int32_t t = 0; t < alone[i].n[0]; t++) CHECK(together[i].lp[0][t] == alone[i].lp[0][t]);
    }
    CHECK_EQ(g.frees, 2 * N);
    hl_engine_metrics m;
    hl_engine_get_metrics(e, &m);
    CHECK_EQ(m.running, 0);
    CHECK(m.draft_tokens > 0);
    free(alone);
    free(together);
    hl_engine_free(e);
    hl_loaded_free(lm);
}

/* ---- a real vocabulary: SmolLM2 ------------------------------------------------ */

TEST(drafts_smollm2_greedy_exact) {
    hl_loaded *lm = load_path(hl_test_model("smollm2-135m-instruct-q4_1.gguf"));
    if (!lm) return;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    hl_err err = {0};
    CHECK_EQ(hl_loaded_tokenize_prompt(lm, "The capital of France is Paris. The capital of France is", &prompt, &n_prompt, &err), 0);
    hl_engine *e = engine(lm, K, 0);
    watch w;
    watch_on(e, &w);
    outcome *ref = calloc(1, sizeof *ref), *o = calloc(1, sizeof *o);
    enum { N = 24 };
    hl_request r = greedy_req(prompt, n_prompt, N);
    CHECK_EQ(run_one(e, &r, ref), 0);
    CHECK(ref->n[0] > 4);
    int32_t truth[256];
    memcpy(truth, prompt, sizeof(int32_t) * n_prompt);
    memcpy(truth + n_prompt, ref->tokens[0], sizeof(int32_t) * (size_t)ref->n[0]);
    watch_set(e, &w, truth, (int32_t)n_prompt + ref->n[0], 2);
    ref_drafter d = {.prompt = prompt, .n_prompt = (int32_t)n_prompt, .ref = ref->tokens[0], .n_ref = ref->n[0],
                     .j = 2, .n_vocab = e->n_vocab};
    r.drafter = as_drafter(&d);
    uint64_t s0 = steps_of(e);
    CHECK_EQ(run_one(e, &r, o), 0);
    CHECK(same_tokens(o, 0, ref, 0));
    CHECK_STREQ(o->text[0], ref->text[0]);
    if (ref->n[0] == N) CHECK_EQ(steps_of(e) - s0, expected_steps(N, K, 2, 1));
    CHECK_WATCH(e, &w);
    free(prompt);
    free(ref);
    free(o);
    hl_engine_free(e);
    hl_loaded_free(lm);
}
