/* The in-process engine: how `run FILE.gguf` and `bench` make theirs from the
 * command line's options, and the one client loop that submits a request and
 * reads its events back. Generation itself (sampling, stop strings,
 * streaming detokenization) is the engine's scheduler, exactly as for the
 * server, so a request gives the same text on either path. */
#include "cli/cli.h"
#include "backend/kv.h"
#include "base/log.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *backend_name(const cli_engine_opts *o) { return o->backend ? o->backend : "auto"; }

int cli_compute_open(cli_compute *c, const cli_engine_opts *o, hl_err *err) {
    memset(c, 0, sizeof *c);
    c->n_threads = o->n_threads;
    snprintf(c->backend, sizeof c->backend, "%s", backend_name(o));
    /* the pool's workers inherit this mask: Ctrl+C reaches the main thread */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    c->pool = hl_pool_new(o->n_threads);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!c->pool) return hl_err_set(err, HL_ENOMEM, "cannot start the thread pool");
    char note[600];
    hl_backend_choice ch = {.name = c->backend, .vulkan_device = o->vulkan_device,
                            .gpu_memory_fraction = o->gpu_memory_fraction};
    int rc = hl_backend_open_choice(&c->be, &ch, c->pool, note, sizeof note, err);
    if (!rc && note[0]) hl_debug("%s", note); /* the server logs it at info; a verb stays quiet (bench prints its backend) */
    /* a GPU: the CPU backend too, for the layers --num-gpu leaves off it */
    if (!rc && hl_backend_is_gpu(c->be)) rc = hl_backend_open(&c->cpu, "cpu", c->pool, err);
    if (rc) hl_backend_free(c->be), c->be = NULL;
    if (rc) {
        hl_pool_free(c->pool);
        c->pool = NULL;
    }
    return rc;
}

void cli_compute_close(cli_compute *c) {
    hl_backend_free(c->cpu);
    hl_backend_free(c->be);
    hl_pool_free(c->pool);
    memset(c, 0, sizeof *c);
}

int cli_compute_fits(const cli_compute *c, const cli_engine_opts *o) {
    return c->pool && c->n_threads == o->n_threads && !strcmp(c->backend, backend_name(o));
}

int cli_engine_open(const hl_loaded *lm, const cli_engine_opts *o, cli_compute *c, hl_engine **out, hl_err *err) {
    const hl_hparams *hp = hl_model_hparams(lm->model);
    int32_t ctx = cli_run_ctx(o->num_ctx, hp->n_ctx_train);
    hl_engine_params p = hl_engine_default_params();
    p.backend = c->be;
    p.pool = c->pool;
    if (c->cpu && o->num_gpu == 0) p.backend = c->cpu;
    else if (c->cpu && o->num_gpu > 0 && o->num_gpu < hp->n_layer) p.offload_rest = c->cpu, p.num_gpu = o->num_gpu;
    p.max_seqs = 1;
    p.max_ctx = ctx;
    /* the pool holds the one sequence's context, as the memory check counts it */
    p.block_size = HL_KV_DEFAULT_BLOCK_SIZE;
    p.n_blocks = (ctx + p.block_size - 1) / p.block_size;
    if (p.n_blocks < 2) p.n_blocks = 2;
    if (o->max_seqs > 1) p.max_seqs = o->max_seqs, p.n_blocks *= o->max_seqs;
    p.step_tokens = o->n_batch > 0 ? o->n_batch : 512;
    if (p.step_tokens > ctx) p.step_tokens = ctx;
    p.kv_type = o->kv_type;
    p.prefix_cache = o->prefix_cache;
    /* the engine's threads inherit this mask: Ctrl+C reaches the main thread
     * (the line editor, the wait loop below), never a worker */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = hl_engine_new(out, lm, &p, err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int cli_engine_generate(hl_engine *e, const hl_request *r, void (*emit)(void *user, const char *text, size_t n),
                        void *user, volatile sig_atomic_t *interrupted, hl_choice_stats *stats, hl_err *err) {
    hl_handle *h = NULL;
    int rc = hl_engine_submit(e, r, NULL, NULL, &h, err);
    if (rc) {
        if (r->drafter.free) r->drafter.free(r->drafter.ctx); /* not the engine's: the request's drafter is ours to free */
        if (r->proc) r->proc->vt->free(r->proc);              /* likewise its processor (--format's grammar) */
        return rc;
    }
    int cancelled = 0;
    hl_event ev;
    for (;;) {
        /* a short wait, so Ctrl+C cancels within a step */
        if (!hl_handle_wait(h, &ev, 50)) {
            if (hl_handle_finished(h)) break;
            if (interrupted && *interrupted && !cancelled) {
                hl_handle_cancel(h);
                cancelled = 1;
            }
            continue;
        }
        if (ev.type == HL_EVENT_ERROR) {
            rc = hl_err_set(err, HL_EINVAL, "%s", ev.error);
            break;
        }
        if (ev.n_text && emit) emit(user, ev.text, ev.n_text);
        if (ev.type == HL_EVENT_DONE) {
            if (stats) *stats = ev.stats;
            break;
        }
        if (interrupted && *interrupted && !cancelled) {
            hl_handle_cancel(h);
            cancelled = 1;
        }
    }
    hl_handle_release(h);
    return rc;
}
