/* What the runner's tests share: the tiny stories model loaded as a runner
 * loads it, and the process's thread pool and CPU backend (one per thread
 * count, created on first use and kept for the whole test binary, as a
 * program keeps its one pool). */
#ifndef HL_TEST_RUNNER_RIG_H
#define HL_TEST_RUNNER_RIG_H

#include "harness.h"
#include "runner/engine.h"

static inline hl_loaded *rig_load_stories(void) {
    hl_loaded *lm = NULL;
    hl_err err = {0};
    if (hl_loaded_open(&lm, hl_test_shared("models/stories260K.gguf"), &err) != 0) {
        hl_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
        return NULL;
    }
    return lm;
}

/* The pool of n threads (1 or 2) and the CPU backend over it. */
static inline void rig_compute(int n, hl_pool **pool, hl_backend **be) {
    static hl_pool *pools[3];
    static hl_backend *bes[3];
    if (!pools[n]) {
        pools[n] = hl_pool_new(n);
        hl_err err = {0};
        if (hl_backend_open(&bes[n], "cpu", pools[n], &err)) hl_test_fail(__FILE__, __LINE__, "backend: %s", err.msg);
    }
    if (pool) *pool = pools[n];
    if (be) *be = bes[n];
}

/* An engine's pool and backend: the shared ones of n threads. */
static inline void use_threads(hl_engine_params *p, int n) { rig_compute(n, &p->pool, &p->backend); }

/* A greedy request without penalties: the prompt borrowed, one choice. */
static inline hl_request rig_greedy_req(const int32_t *prompt, size_t n, int32_t num_predict) {
    hl_request r = {0};
    r.prompt = prompt;
    r.n_prompt = n;
    r.sampling = hl_sampling_default_params();
    r.sampling.temperature = 0;
    r.sampling.repeat_penalty = 1;
    r.num_predict = num_predict;
    r.n_choices = 1;
    return r;
}

#endif
