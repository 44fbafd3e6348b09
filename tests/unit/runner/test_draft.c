/* Draft-model speculation (runner/draft.c) in the engine, on the stories260K
 * files, which share one tokenizer:
 *
 * - lossless greedy: with the model as its own draft (every draft must be
 *   accepted) and with its Q4_0 requantization as the draft (it drifts from
 *   the F32 target, so drafts are partly rejected), the tokens equal the
 *   undrafted ones, one stream and 8 concurrent streams drafting in the same
 *   batched draft passes; seeded sampling gives the same tokens too;
 * - the draft KV after each verification holds exactly the accepted prefix
 *   (all k accepted: all but the last draft), checked by a step hook, and
 *   both cases really happened;
 * - a request whose prompt starts like an earlier one's adopts that one's
 *   draft KV (the draft computes only the rest), with the same tokens;
 * - a draft model whose vocabulary differs is refused with a message;
 * - a draft model is placed by num_gpu as its target is (none, the last N or
 *   all of its layers on the "GPU" backend, the rest on the CPU; the
 *   reference backend stands in for the GPU). */
#include "harness.h"
#include "rig.h"

#include "runner/draft.h"
#include "runner/engine_impl.h"

#include <stdlib.h>

enum { MAXTOK = 256, NSTREAM = 8 };

static const int32_t ONCE[] = {1, 403, 407, 261, 378}; /* BOS + "Once upon a time" */

typedef struct result {
    int32_t tokens[MAXTOK];
    int32_t n;
    hl_choice_stats st;
    int done, error;
} result;

static hl_loaded *load(const char *rel) {
    hl_loaded *lm = NULL;
    hl_err err = {0};
    if (hl_loaded_open(&lm, hl_test_shared(rel), &err)) hl_test_fail(__FILE__, __LINE__, "load %s: %s", rel, err.msg);
    return lm;
}

static hl_engine *make_engine(const hl_loaded *lm, int fixed) {
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    p.n_blocks = 512;
    p.max_seqs = NSTREAM;
    p.spec_fixed = fixed;
    hl_engine *e = NULL;
    hl_err err = {0};
    if (hl_engine_new(&e, lm, &p, &err)) hl_test_fail(__FILE__, __LINE__, "engine: %s", err.msg);
    return e;
}

static hl_draft_model *make_draft(const hl_loaded *draft, const hl_loaded *target) {
    hl_draft_params p = hl_draft_default_params();
    rig_compute(2, NULL, &p.backend);
    p.kv_bytes = 8 << 20;
    p.max_seqs = NSTREAM;
    hl_draft_model *dm = NULL;
    hl_err err = {0};
    if (hl_draft_model_new(&dm, draft, target, &p, &err)) hl_test_fail(__FILE__, __LINE__, "draft: %s", err.msg);
    return dm;
}

static void take(hl_handle *h, result *o) {
    hl_event ev;
    while (!o->done && !o->error && hl_handle_wait(h, &ev, 60000)) {
        if (ev.type == HL_EVENT_ERROR) o->error = 1;
        if (ev.type == HL_EVENT_TOKEN && o->n < MAXTOK) o->tokens[o->n++] = ev.token;
        if (ev.type == HL_EVENT_DONE) {
            o->st = ev.stats;
            o->done = 1;
        }
    }
}

/* Runs n requests at once; with dm, each gets a drafter over it. */
static int run_all(hl_engine *e, hl_draft_model *dm, hl_request *rs, result *out, int n) {
    hl_handle *h[NSTREAM];
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        hl_err err = {0};
        if (dm && hl_draft_drafter_new(dm, &rs[i].drafter, 0, &err)) return -1;
        if (hl_engine_submit(e, &rs[i], NULL, NULL, &h[i], &err)) return -1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        take(h[i], &out[i]);
        bad |= !out[i].done || out[i].error;
        hl_handle_release(h[i]);
    }
    return bad ? -1 : 0;
}

/* Distinct prompts: BOS + "Once upon a time" + i varied tokens. */
static void prompts(int32_t p[NSTREAM][16], size_t *n) {
    for (int i = 0; i < NSTREAM; i++) {
        memcpy(p[i], ONCE, sizeof ONCE);
        n[i] = 5;
        for (int j = 0; j < i % 4; j++) p[i][n[i]++] = 300 + 17 * i + j;
    }
}

static void check_lossless(const char *draft_rel, int n_streams, int fixed, int sampled, int expect_all) {
    hl_loaded *lm = load("models/stories260K.gguf"), *dl = load(draft_rel);
    if (!lm || !dl) return;
    hl_engine *e = make_engine(lm, fixed);
    hl_draft_model *dm = make_draft(dl, lm);
    if (!e || !dm) return;
    int32_t p[NSTREAM][16];
    size_t np[NSTREAM];
    prompts(p, np);
    hl_request rs[NSTREAM];
    static result off[NSTREAM], on[NSTREAM];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n_streams; i++) {
            rs[i] = rig_greedy_req(p[i], np[i], 120);
            if (sampled) {
                rs[i].sampling = hl_sampling_default_params();
                rs[i].sampling.temperature = 0.8f;
                rs[i].sampling.has_seed = 1;
                rs[i].sampling.seed = 1000 + (uint64_t)i;
            }
        }
        CHECK_EQ(run_all(e, pass ? dm : NULL, rs, pass ? on : off, n_streams), 0);
    }
    int64_t drafted = 0, accepted = 0;
    for (int i = 0; i < n_streams; i++) {
        CHECK_EQ(on[i].n, off[i].n);
        CHECK(on[i].n > 0 && memcmp(on[i].tokens, off[i].tokens, sizeof(int32_t) * (size_t)on[i].n) == 0);
        CHECK_EQ(off[i].st.draft_tokens, 0);
        drafted += on[i].st.draft_tokens;
        accepted += on[i].st.draft_accepted;
    }
    if (expect_all >= 0) { /* the test must not pass vacuously */
        CHECK(drafted > 0);
        CHECK(accepted > 0);
        if (expect_all) CHECK_EQ(accepted, drafted);
        else CHECK(accepted < drafted);
    }
    hl_engine_free(e);
    hl_draft_model_free(dm);
    hl_loaded_free(dl);
    hl_loaded_free(lm);
}

TEST(draft_same_model_lossless_all_accepted) { check_lossless("models/stories260K.gguf", 1, 1, 0, 1); }
TEST(draft_quantized_lossless_partial_accept) { check_lossless("models/stories260K-Q4_0.gguf", 1, 1, 0, 0); }
TEST(draft_quantized_lossless_concurrent) { check_lossless("models/stories260K-Q4_0.gguf", NSTREAM, 1, 0, 0); }
TEST(draft_quantized_seeded_sampling_same_tokens) { check_lossless("models/stories260K-Q4_0.gguf", 4, 1, 1, 0); }

/* After every step: each drafting sequence's draft KV agrees with its tokens
 * and holds the accepted prefix (n_computed), or one less right after a step
 * that accepted every draft. */
typedef struct kv_watch {
    int32_t last_drafted, last_accepted;
    int bad, partial, full;
} kv_watch;

static void kv_hook(hl_engine *e, void *ctx) {
    kv_watch *w = ctx;
    for (seq *s = e->running; s; s = s->next) {
        const int32_t *t = NULL;
        int32_t n = hl_draft_drafter_kv(&s->h->drafter, s->index, &t);
        int32_t k = s->n_drafted - w->last_drafted, j = s->n_accepted - w->last_accepted;
        w->last_drafted = s->n_drafted;
        w->last_accepted = s->n_accepted;
        if (k == 0) continue;
        if (n > 0 && memcmp(t, s->tokens, sizeof(int32_t) * (size_t)n)) w->bad++;
        if (j < k) {
            w->partial++;
            if (n != s->n_computed) w->bad++;
        } else {
            w->full++;
            if (n != s->n_computed - 1) w->bad++;
        }
    }
}

TEST(draft_kv_holds_accepted_prefix) {
    hl_loaded *lm = load("models/stories260K.gguf"), *dl = load("models/stories260K-Q4_0.gguf");
    if (!lm || !dl) return;
    hl_engine *e = make_engine(lm, 1);
    hl_draft_model *dm = make_draft(dl, lm);
    if (!e || !dm) return;
    kv_watch w = {0};
    e->step_hook = kv_hook;
    e->step_hook_ctx = &w;
    hl_request r = rig_greedy_req(ONCE, 5, 200);
    result o;
    CHECK_EQ(run_all(e, dm, &r, &o, 1), 0);
    CHECK_EQ(w.bad, 0);
    CHECK(w.partial > 0);
    CHECK(w.full > 0);
    hl_engine_free(e);
    hl_draft_model_free(dm);
    hl_loaded_free(dl);
    hl_loaded_free(lm);
}

/* Adaptive control with a draft that costs as much as the target: the
 * output is still exact (whatever it decides). */
TEST(draft_adaptive_lossless) { check_lossless("models/stories260K-Q4_0.gguf", 2, 0, 0, -1); }

TEST(draft_incompatible_vocab_refused) {
    hl_loaded *lm = load("models/stories260K.gguf"), *other = load("models/llama-2-tiny-random.gguf");
    if (!lm || !other) return;
    hl_draft_params p = hl_draft_default_params();
    rig_compute(2, NULL, &p.backend);
    hl_draft_model *dm = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_draft_model_new(&dm, other, lm, &p, &err), HL_EINVAL);
    CHECK(dm == NULL);
    CHECK(strstr(err.msg, "cannot draft for") != NULL);
    CHECK(strstr(err.msg, "32000") != NULL && strstr(err.msg, "512") != NULL);
    CHECK_EQ(hl_draft_check_vocab(lm->tok, lm->tok, NULL), 0);
    hl_loaded_free(other);
    hl_loaded_free(lm);
}

TEST(draft_follows_num_gpu) {
    hl_loaded *lm = load("models/stories260K.gguf"), *dl = load("models/stories260K-Q4_0.gguf");
    if (!lm || !dl) return;
    hl_backend *gpu = NULL, *cpu = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_backend_open(&gpu, "ref", NULL, &err), 0);
    rig_compute(2, NULL, &cpu);
    const int32_t nl = hl_model_hparams(dl->model)->n_layer;
    CHECK(nl >= 2);
    char partial[96];
    snprintf(partial, sizeof partial, "ref (1 of %d layers, the rest on cpu)", nl);
    const struct { int32_t num_gpu; const char *want; } cases[] = {{0, "cpu"}, {1, partial}, {-1, "ref"}, {nl, "ref"}, {99, "ref"}};
    for (size_t i = 0; gpu && i < sizeof cases / sizeof cases[0]; i++) {
        hl_draft_params p = hl_draft_default_params();
        p.backend = gpu, p.offload_rest = cpu, p.num_gpu = cases[i].num_gpu;
        p.kv_bytes = 1 << 20;
        p.max_seqs = 2;
        hl_draft_model *dm = NULL;
        if (hl_draft_model_new(&dm, dl, lm, &p, &err)) {
            hl_test_fail(__FILE__, __LINE__, "draft with num_gpu %d: %s", cases[i].num_gpu, err.msg);
            continue;
        }
        if (strcmp(hl_draft_model_backend_name(dm), cases[i].want))
            hl_test_fail(__FILE__, __LINE__, "num_gpu %d: the draft runs on \"%s\", not \"%s\"", cases[i].num_gpu,
                         hl_draft_model_backend_name(dm), cases[i].want);
        hl_draft_model_free(dm);
    }
    /* without a CPU to offload to, num_gpu does not matter: all on backend */
    hl_draft_params p = hl_draft_default_params();
    p.backend = gpu, p.num_gpu = 0, p.kv_bytes = 1 << 20, p.max_seqs = 2;
    hl_draft_model *dm = NULL;
    if (gpu && !hl_draft_model_new(&dm, dl, lm, &p, &err)) {
        CHECK(strcmp(hl_draft_model_backend_name(dm), "ref") == 0);
        hl_draft_model_free(dm);
    }
    hl_backend_free(gpu);
    hl_loaded_free(dl);
    hl_loaded_free(lm);
}

TEST(draft_kv_adopted_by_a_repeated_prompt) {
    hl_loaded *lm = load("models/stories260K.gguf"), *dl = load("models/stories260K-Q4_0.gguf");
    if (!lm || !dl) return;
    hl_engine *e = make_engine(lm, 1);
    hl_draft_model *dm = make_draft(dl, lm);
    if (!e || !dm) return;
    int32_t prompt[70];
    memcpy(prompt, ONCE, sizeof ONCE);
    for (int i = 5; i < 70; i++) prompt[i] = 260 + (i * 7) % 200;
    result a, b;
    hl_request r = rig_greedy_req(prompt, 70, 40);
    uint64_t f0, f1, f2;
    hl_draft_model_counts(dm, &f0, NULL);
    CHECK_EQ(run_all(e, dm, &r, &a, 1), 0);
    hl_draft_model_counts(dm, &f1, NULL);
    r = rig_greedy_req(prompt, 70, 40);
    CHECK_EQ(run_all(e, dm, &r, &b, 1), 0);
    hl_draft_model_counts(dm, &f2, NULL);
    CHECK(f1 - f0 >= 70); /* the whole prompt, then the accepted tokens */
    CHECK(f2 - f1 < 40);  /* the prompt's KV was adopted: only the generated part again */
    CHECK(a.n == b.n && memcmp(a.tokens, b.tokens, sizeof(int32_t) * (size_t)a.n) == 0);
    CHECK(b.st.draft_accepted > 0);
    hl_engine_free(e);
    hl_draft_model_free(dm);
    hl_loaded_free(dl);
    hl_loaded_free(lm);
}
