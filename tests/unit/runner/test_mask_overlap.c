/* Masks prepared beside the forward pass (sched.c prepare_masks, runner/side.c):
 * on the Vulkan backend (lavapipe in CI) the engine calls a logits
 * processor's prepare on its side thread while the device runs the step.
 * A test processor (bans every token whose id is odd, and records each call)
 * checks the contract sample.h states: prepare sees the state after every
 * earlier accept, the mask that follows sees the state prepare saw, calls on
 * one processor never overlap, and the constrained text is the CPU engine's
 * (where prepare is never called: the host runs the pass). Several
 * concurrent requests, so one job prepares several processors. */
#include "harness.h"
#include "model/model_harness.h"
#include "rig.h"

#include <stdatomic.h>
#include <stdlib.h>

enum { NREQ = 4, NPRED = 24 };

typedef struct tproc {
    hl_logits_proc base;
    int32_t accepted;          /* accept calls so far: the state */
    int32_t prepared_at;       /* the state prepare last saw, -1 none */
    int32_t masks, prepared_masks, stale;
    atomic_int in_call;
    int overlapped;            /* two calls at once were seen */
} tproc;

static void enter(tproc *p) {
    if (atomic_fetch_add(&p->in_call, 1) != 0) p->overlapped = 1;
}
static void leave(tproc *p) { atomic_fetch_sub(&p->in_call, 1); }

static void t_prepare(hl_logits_proc *self) {
    tproc *p = (tproc *)self;
    enter(p);
    p->prepared_at = p->accepted;
    leave(p);
}
static void t_mask(hl_logits_proc *self, float *logits, int32_t n_vocab) {
    tproc *p = (tproc *)self;
    enter(p);
    p->masks++;
    if (p->prepared_at == p->accepted) p->prepared_masks++;
    else if (p->prepared_at >= 0) p->stale++; /* prepared for another state and not redone: never, below */
    for (int32_t t = 1; t < n_vocab; t += 2) logits[t] = -INFINITY;
    leave(p);
}
static void t_accept(hl_logits_proc *self, int32_t token) {
    tproc *p = (tproc *)self;
    enter(p);
    p->accepted++;
    if (token % 2) p->stale += 1000; /* a banned token got through */
    leave(p);
}
static hl_logits_proc *t_clone(const hl_logits_proc *self) {
    (void)self;
    return NULL;
}
static void t_free(hl_logits_proc *self) { (void)self; } /* owned by the test */
static const hl_logits_proc_vt tvt = {t_mask, t_accept, t_clone, t_free, t_prepare};

typedef struct out {
    int32_t tok[NPRED + 1], n;
} out;

static int run(hl_engine *e, const int32_t *prompt, size_t np, tproc *procs, out *res) {
    hl_handle *h[NREQ];
    for (int i = 0; i < NREQ; i++) {
        procs[i] = (tproc){.base = {&tvt}, .prepared_at = -1};
        hl_request r = rig_greedy_req(prompt, np - (size_t)i, NPRED); /* different prompts */
        r.proc = &procs[i].base;
        hl_err err = {0};
        if (hl_engine_submit(e, &r, NULL, NULL, &h[i], &err)) {
            hl_test_fail(__FILE__, __LINE__, "submit: %s", err.msg);
            for (int j = 0; j < i; j++) hl_handle_release(h[j]);
            return -1;
        }
    }
    for (int i = 0; i < NREQ; i++) {
        res[i].n = 0;
        hl_event ev;
        while (hl_handle_wait(h[i], &ev, -1)) {
            if (ev.type == HL_EVENT_TOKEN && res[i].n <= NPRED) res[i].tok[res[i].n++] = ev.token;
            if (ev.type == HL_EVENT_ERROR) hl_test_fail(__FILE__, __LINE__, "request: %s", ev.error);
            if (hl_handle_finished(h[i])) break;
        }
        hl_handle_release(h[i]);
    }
    return 0;
}

static hl_engine *engine_on(hl_loaded *lm, hl_backend *be) {
    hl_engine_params p = hl_engine_default_params();
    use_threads(&p, 2);
    if (be) p.backend = be;
    p.n_blocks = 64;
    p.max_seqs = NREQ;
    hl_engine *e = NULL;
    hl_err err = {0};
    if (hl_engine_new(&e, lm, &p, &err)) hl_test_fail(__FILE__, __LINE__, "engine: %s", err.msg);
    return e;
}

TEST(masks_prepared_beside_a_device_pass) {
    hl_backend *vk = hl_test_open_vulkan(1);
    if (!vk) return;
    hl_loaded *lm = rig_load_stories();
    if (!lm) {
        hl_backend_free(vk);
        return;
    }
    int32_t *prompt = NULL;
    size_t np = 0;
    hl_err err = {0};
    CHECK_EQ(hl_loaded_tokenize_prompt(lm, "Once upon a time there was a little girl named", &prompt, &np, &err), 0);
    CHECK(np > NREQ);
    static tproc pc[NREQ], pv[NREQ];
    static out oc[NREQ], ov[NREQ];
    hl_engine *ec = engine_on(lm, NULL), *ev = engine_on(lm, vk);
    if (ec && ev && np > NREQ && !run(ec, prompt, np, pc, oc) && !run(ev, prompt, np, pv, ov)) {
        hl_engine_metrics mc, mv;
        hl_engine_get_metrics(ec, &mc);
        hl_engine_get_metrics(ev, &mv);
        CHECK_EQ(mc.masks_prepared, 0); /* the host ran the pass: nothing beside it */
        CHECK(mv.masks_prepared >= (uint64_t)(NREQ * NPRED) / 2);
        for (int i = 0; i < NREQ; i++) {
            CHECK_EQ(ov[i].n, NPRED);
            CHECK(ov[i].n == oc[i].n && !memcmp(ov[i].tok, oc[i].tok, sizeof(int32_t) * (size_t)oc[i].n));
            CHECK_EQ(pc[i].prepared_masks, 0);
            CHECK_EQ(pv[i].masks, NPRED);
            CHECK_EQ(pv[i].prepared_masks, NPRED); /* every mask found its state prepared */
            CHECK_EQ(pv[i].stale + pc[i].stale, 0);
            CHECK(!pv[i].overlapped && !pc[i].overlapped);
        }
        printf("    vulkan: %llu masks prepared beside the pass for %d requests of %d tokens\n",
               (unsigned long long)mv.masks_prepared, NREQ, NPRED);
    }
    hl_engine_free(ec);
    hl_engine_free(ev);
    free(prompt);
    hl_loaded_free(lm);
    hl_backend_free(vk);
}
