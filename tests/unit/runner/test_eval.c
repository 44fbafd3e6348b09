/* Tests for teacher-forced evaluation (runner/eval.h) on the real
 * stories260K model: llama.cpp's first greedy token from the last row,
 * every-row logits agreeing with last-row-only evaluation, chunked and
 * token-by-token evaluation equal to one pass, the argmax continuation
 * reproducing llama.cpp's 40 greedy ids, and clear errors at the limits. */
#include "harness.h"
#include "rig.h"

#include "runner/eval.h"

#include <stdlib.h>

/* BOS + "Once upon a time", and llama.cpp's greedy ids after it
 * (../shared/models/stories260K-llamacpp-reference.txt). */
static const int32_t ONCE[] = {1, 403, 407, 261, 378};
static const int32_t ONCE_GREEDY[40] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396,
                                         267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
                                         328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426};
enum { NV = 512 };

static hl_loaded *load(void) { return rig_load_stories(); }

static int32_t argmax(const float *row) {
    int32_t best = 0;
    for (int32_t t = 1; t < NV; t++)
        if (row[t] > row[best]) best = t;
    return best;
}

static hl_backend *backend(void) {
    hl_backend *be = NULL;
    rig_compute(2, NULL, &be);
    return be;
}

static hl_eval *new_eval(const hl_loaded *lm, int32_t n_ctx, int32_t n_batch) {
    hl_eval_params p = hl_eval_default_params();
    p.n_ctx = n_ctx;
    p.backend = backend();
    p.n_batch = n_batch;
    hl_eval *ev = NULL;
    hl_err err = {0};
    if (hl_eval_new(&ev, lm, &p, &err) != 0) hl_test_fail(__FILE__, __LINE__, "hl_eval_new: %s", err.msg);
    return ev;
}

TEST(eval_last_row_and_all_rows_agree) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_eval *a = new_eval(lm, 64, 512), *b = new_eval(lm, 64, 512);
    float *all = calloc(5 * NV, sizeof *all), *last = calloc(NV, sizeof *last);
    CHECK_EQ(hl_eval_append(a, ONCE, 5, 1, all, NULL), 0);
    CHECK_EQ(hl_eval_append(b, ONCE, 5, 0, last, NULL), 0);
    CHECK_EQ(hl_eval_n_past(a), 5);
    CHECK_EQ(argmax(last), ONCE_GREEDY[0]);
    CHECK(memcmp(all + 4 * NV, last, NV * sizeof(float)) == 0);
    /* earlier rows are real predictions too, not copies of the last */
    CHECK(memcmp(all, last, NV * sizeof(float)) != 0);
    free(all);
    free(last);
    hl_eval_free(a);
    hl_eval_free(b);
    hl_loaded_free(lm);
}

/* Chunks of 2 tokens, and one token per call, give the logits of one pass. */
TEST(eval_chunked_and_incremental_equal_one_pass) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_eval *one = new_eval(lm, 64, 512), *chunked = new_eval(lm, 64, 2), *inc = new_eval(lm, 64, 512);
    float *x = calloc(5 * NV, sizeof *x), *y = calloc(5 * NV, sizeof *y), *z = calloc(5 * NV, sizeof *z);
    CHECK_EQ(hl_eval_append(one, ONCE, 5, 1, x, NULL), 0);
    CHECK_EQ(hl_eval_append(chunked, ONCE, 5, 1, y, NULL), 0);
    for (int i = 0; i < 5; i++) CHECK_EQ(hl_eval_append(inc, &ONCE[i], 1, 0, z + (size_t)i * NV, NULL), 0);
    for (int i = 0; i < 5 * NV; i++) {
        CHECK_NEAR(y[i], x[i], 1e-4);
        CHECK_NEAR(z[i], x[i], 1e-4);
        if (fabsf(y[i] - x[i]) > 1e-4f || fabsf(z[i] - x[i]) > 1e-4f) break;
    }
    free(x);
    free(y);
    free(z);
    hl_eval_free(one);
    hl_eval_free(chunked);
    hl_eval_free(inc);
    hl_loaded_free(lm);
}

/* The argmax continuation `hyperlama logits --greedy` prints. */
TEST(eval_argmax_continuation_matches_llamacpp) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_eval *ev = new_eval(lm, 64, 512);
    float *row = calloc(NV, sizeof *row);
    CHECK_EQ(hl_eval_append(ev, ONCE, 5, 0, row, NULL), 0);
    for (int g = 0; g < 40; g++) {
        int32_t t = argmax(row);
        CHECK_EQ(t, ONCE_GREEDY[g]);
        if (t != ONCE_GREEDY[g]) break;
        if (g + 1 < 40) CHECK_EQ(hl_eval_append(ev, &t, 1, 0, row, NULL), 0);
    }
    CHECK_EQ(hl_eval_n_past(ev), 44);
    free(row);
    hl_eval_free(ev);
    hl_loaded_free(lm);
}

TEST(eval_errors_at_the_limits) {
    hl_loaded *lm = load();
    if (!lm) return;
    hl_eval *ev = new_eval(lm, 16, 512);
    int32_t toks[17];
    for (int i = 0; i < 17; i++) toks[i] = 300 + i;
    hl_err err = {0};
    CHECK_EQ(hl_eval_append(ev, toks, 17, 0, NULL, &err), HL_ERANGE);
    CHECK(strstr(err.msg, "do not fit") != NULL);
    CHECK_EQ(hl_eval_n_past(ev), 0);
    int32_t bad[2] = {1, NV};
    CHECK_EQ(hl_eval_append(ev, bad, 2, 0, NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "outside the vocabulary") != NULL);
    /* the whole context fills exactly, without logits asked */
    CHECK_EQ(hl_eval_append(ev, toks, 16, 0, NULL, &err), 0);
    CHECK_EQ(hl_eval_append(ev, toks, 1, 0, NULL, &err), HL_ERANGE);
    hl_eval_free(ev);
    /* q8_0 needs heads of whole 32-value blocks: stories260K's are 8 wide */
    hl_eval_params p = hl_eval_default_params();
    p.kv_type = HL_TYPE_Q8_0;
    ev = NULL;
    CHECK(hl_eval_new(&ev, lm, &p, &err) != 0);
    CHECK(ev == NULL);
    hl_loaded_free(lm);
}
