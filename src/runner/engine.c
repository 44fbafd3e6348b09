/* The engine's outside: creation (pool sizing), the engine thread's loop,
 * request submission, and the per-request event queues that client threads
 * read. The scheduling itself is in sched.c. */
#include "runner/engine_impl.h"
#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

hl_engine_params hl_engine_default_params(void) {
    return (hl_engine_params){.backend = NULL, .pool = NULL, .n_blocks = 0, .kv_bytes = (size_t)512 << 20, .block_size = 0,
                              .max_seqs = 32, .step_tokens = 512, .max_queue = 128, .max_ctx = 0,
                              .prefix_cache = 1, .kv_type = HL_TYPE_F16, .max_draft = HL_ENGINE_DEFAULT_DRAFT,
                              .num_gpu = -1};
}

static void *engine_main(void *arg);

int hl_engine_new(hl_engine **out, const hl_loaded *lm, const hl_engine_params *p, hl_err *err) {
    *out = NULL;
    hl_engine *e = calloc(1, sizeof *e);
    if (!e) return hl_err_set(err, HL_ENOMEM, "out of memory");
    e->lm = lm;
    e->p = *p;
    if (e->p.max_seqs <= 0) e->p.max_seqs = 32;
    if (e->p.step_tokens <= 0) e->p.step_tokens = 512;
    if (e->p.step_tokens < e->p.max_seqs) e->p.step_tokens = e->p.max_seqs;
    if (e->p.max_queue <= 0) e->p.max_queue = 128;
    if (e->p.max_draft <= 0) e->p.max_draft = HL_ENGINE_DEFAULT_DRAFT;
    if (e->p.max_draft > HL_ENGINE_MAX_DRAFT) e->p.max_draft = HL_ENGINE_MAX_DRAFT;
    spec_cost_init(&e->cost, e->p.spec_row_cost);
    const hl_hparams *hp = hl_model_hparams(lm->model);
    e->n_vocab = hp->n_vocab;
    e->n_out = hl_model_n_out(lm->model);
    e->embedding = hp->embedding;
    if (!e->p.backend || !e->p.pool) {
        free(e);
        return hl_err_set(err, HL_EINVAL, "an engine needs a backend and the process's thread pool");
    }
    hl_kv_params kp = hl_model_kv_params(lm->model, 1, e->p.block_size);
    kp.type = e->p.kv_type;
    int rc0 = hl_kv_check_params(&kp, err);
    if (rc0) {
        free(e);
        return rc0;
    }
    e->block_size = kp.block_size;
    if (e->p.n_blocks <= 0) {
        size_t budget = e->p.kv_bytes ? e->p.kv_bytes : (size_t)512 << 20;
        e->p.n_blocks = (int32_t)(budget / hl_kv_block_bytes(&kp));
        /* never more than every sequence at full context needs */
        int64_t most = ((int64_t)hp->n_ctx_train + e->block_size - 1) / e->block_size * e->p.max_seqs;
        if (hp->n_ctx_train > 0 && e->p.n_blocks > most) e->p.n_blocks = (int32_t)most;
    }
    if (e->p.n_blocks < 2) {
        free(e);
        return hl_err_set(err, HL_EINVAL, "KV budget too small: one block needs %zu bytes", hl_kv_block_bytes(&kp));
    }
    kp.n_blocks = e->p.n_blocks;
    int32_t pool_ctx = e->p.n_blocks * e->block_size;
    if (e->p.max_ctx <= 0) e->p.max_ctx = hp->n_ctx_train > 0 ? hp->n_ctx_train : pool_ctx;
    if (e->p.max_ctx > pool_ctx) e->p.max_ctx = pool_ctx;
    if (hp->n_ctx_train > 0 && e->p.max_ctx > hp->n_ctx_train) e->p.max_ctx = hp->n_ctx_train;

    int rc = HL_OK;
    e->pool = e->p.pool;
    hl_forward_placement pl = {.be = e->p.backend, .first = e->p.offload_rest, .n_on_be = e->p.num_gpu,
                               .n_ctx = e->p.num_ctx > 0 && e->p.num_ctx < e->p.max_ctx ? e->p.num_ctx : e->p.max_ctx};
    rc = hl_forward_ctx_new_placed(&e->fctx, lm->model, &pl, e->p.step_tokens, err);
    if (!rc) rc = hl_forward_kv_new(e->fctx, e->p.n_blocks, e->block_size, kp.type, &e->kv, err);
    if (!rc) rc = hl_kvc_init(&e->kvc, e->p.n_blocks, e->block_size, err);
    if (!rc) {
        /* a forward pass on a device leaves the host's cores free: masks are prepared beside it */
        hl_backend_mem mem = {0};
        hl_forward_memory(e->fctx, &mem);
        if (mem.where && strcmp(mem.where, "host") != 0) rc = hl_side_new(&e->side, err);
    }
    if (!rc) {
        /* an embedding model's step may want a row for every token (mean pooling) */
        e->cap_rows = e->embedding ? e->p.step_tokens : e->p.max_seqs; /* grown by the scheduler when drafts need more */
        e->logits = malloc((size_t)e->cap_rows * (size_t)e->n_out * sizeof *e->logits);
        e->btok = malloc((size_t)e->p.step_tokens * sizeof *e->btok);
        e->bseq = malloc((size_t)e->p.max_seqs * sizeof *e->bseq);
        e->bseq_owner = malloc((size_t)e->p.max_seqs * sizeof *e->bseq_owner);
        e->bseq_logit_row = malloc((size_t)e->p.max_seqs * sizeof *e->bseq_logit_row);
        e->snap = malloc((size_t)e->p.max_seqs * sizeof *e->snap);
        e->dq = malloc((size_t)e->p.max_seqs * sizeof *e->dq);
        e->dq_tmp = malloc((size_t)e->p.max_seqs * sizeof *e->dq_tmp);
        e->dq_seq = malloc((size_t)e->p.max_seqs * sizeof *e->dq_seq);
        e->dq_idx = malloc((size_t)e->p.max_seqs * sizeof *e->dq_idx);
        e->piece_cap = tok_stream_bound(lm->tok) + 16;
        e->piece = malloc(e->piece_cap);
        if (!e->logits || !e->btok || !e->bseq || !e->bseq_owner || !e->bseq_logit_row || !e->snap || !e->piece || !e->dq || !e->dq_tmp ||
            !e->dq_seq || !e->dq_idx)
            rc = hl_err_set(err, HL_ENOMEM, "out of memory for the engine's buffers");
    }
    if (!rc) {
        pthread_mutex_init(&e->mu, NULL);
        pthread_cond_init(&e->cv, NULL);
        if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
            pthread_mutex_destroy(&e->mu);
            pthread_cond_destroy(&e->cv);
            rc = hl_err_set(err, HL_ENOMEM, "cannot start the engine thread");
        }
    }
    if (rc) {
        if (e->fctx) hl_forward_kv_free(e->fctx, e->kv);
        hl_forward_ctx_free(e->fctx);
        hl_kvc_free(&e->kvc);
        hl_side_free(e->side);
        free(e->logits); free(e->btok); free(e->bseq); free(e->bseq_owner); free(e->bseq_logit_row); free(e->snap); free(e->piece);
        free(e->dq); free(e->dq_tmp); free(e->dq_seq); free(e->dq_idx);
        free(e);
        return rc;
    }
    hl_debug("engine: %d %s KV blocks of %d tokens (%zu MiB), max context %d, %d sequences, %d tokens per step",
             e->p.n_blocks, hl_type_name(kp.type), e->block_size, hl_kv_block_bytes(&kp) * (size_t)e->p.n_blocks >> 20, e->p.max_ctx,
             e->p.max_seqs, e->p.step_tokens);
    *out = e;
    return HL_OK;
}

void hl_engine_free(hl_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    hl_forward_kv_free(e->fctx, e->kv);
    hl_forward_ctx_free(e->fctx);
    hl_kvc_free(&e->kvc);
    hl_side_free(e->side);
    free(e->logits); free(e->btok); free(e->bseq); free(e->bseq_owner); free(e->bseq_logit_row); free(e->snap); free(e->piece);
    free(e->dq); free(e->dq_tmp); free(e->dq_seq); free(e->dq_idx);
    free(e);
}

const hl_loaded *hl_engine_loaded(const hl_engine *e) { return e->lm; }
const char *hl_engine_backend_name(const hl_engine *e) { return hl_forward_backend_name(e->fctx); }
void hl_engine_gpu_share(const hl_engine *e, int32_t *gpu_layers, size_t *gpu_weight_bytes) {
    hl_forward_gpu_share(e->fctx, gpu_layers, gpu_weight_bytes);
}
int32_t hl_engine_max_ctx(const hl_engine *e) { return e->p.max_ctx; }
int32_t hl_engine_n_threads(const hl_engine *e) { return hl_pool_size(e->pool); }
int hl_engine_embedding(const hl_engine *e) { return e->embedding; }
int32_t hl_engine_max_embed_tokens(const hl_engine *e) {
    return e->p.step_tokens < e->p.max_ctx ? e->p.step_tokens : e->p.max_ctx;
}

static void *engine_main(void *arg) {
    hl_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->inbox_head && !e->waiting && !e->running) pthread_cond_wait(&e->cv, &e->mu);
        hl_handle *in = e->inbox_head;
        e->inbox_head = e->inbox_tail = NULL;
        int stopping = e->stopping;
        pthread_mutex_unlock(&e->mu);
        while (in) {
            hl_handle *next = in->next_in;
            sched_admit(e, in);
            in = next;
        }
        if (stopping) {
            sched_cancel_all(e);
            break;
        }
        sched_step(e);
    }
    return NULL;
}

/* ---- submission ---- */

static void handle_free(hl_handle *h) {
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->evs);
    hl_buf_free(&h->text);
    hl_buf_free(&h->out_text);
    free(h->prompt);
    free(h->bias);
    if (h->proc) h->proc->vt->free(h->proc); /* never admitted */
    if (h->drafter.free) h->drafter.free(h->drafter.ctx);
    for (int32_t i = 0; i < h->n_stops; i++) free(h->stops[i]);
    free(h->stops);
    free(h);
}

void handle_unref(hl_handle *h) {
    if (atomic_fetch_sub(&h->refs, 1) == 1) handle_free(h);
}

int hl_engine_submit(hl_engine *e, const hl_request *r, void (*notify)(void *), void *notify_ctx, hl_handle **out,
                     hl_err *err) {
    *out = NULL;
    int32_t num_ctx = r->num_ctx > 0 && r->num_ctx < e->p.max_ctx && !r->embed ? r->num_ctx : e->p.max_ctx;
    if (r->n_prompt == 0) return hl_err_set(err, HL_EINVAL, "the prompt is empty");
    if (r->embed && !e->embedding) return hl_err_set(err, HL_EINVAL, "this model does not produce embeddings");
    if (!r->embed && e->embedding)
        return hl_err_set(err, HL_EINVAL, "this is an embedding model: it cannot generate text");
    if (r->embed && r->n_prompt > (size_t)hl_engine_max_embed_tokens(e))
        return hl_err_set(err, HL_ERANGE, "the input is %zu tokens, but this model embeds at most %d", r->n_prompt,
                          hl_engine_max_embed_tokens(e));
    if (!r->embed && r->n_prompt >= (size_t)num_ctx)
        return hl_err_set(err, HL_ERANGE, "the prompt is %zu tokens, but the context holds %d", r->n_prompt, num_ctx);
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->n_vocab)
            return hl_err_set(err, HL_EINVAL, "token %d at position %zu is outside the vocabulary (%d tokens)",
                              r->prompt[i], i, e->n_vocab);
    int32_t n_choices = r->n_choices > 0 ? r->n_choices : 1;
    if (n_choices > e->p.max_seqs)
        return hl_err_set(err, HL_EINVAL, "n = %d exceeds the %d sequences this model runs at once", n_choices, e->p.max_seqs);
    /* validate sampling parameters now so errors reach the client synchronously */
    hl_sampler *probe = NULL;
    if (hl_sampler_new(&probe, &r->sampling, e->n_vocab, err)) return err ? err->code : HL_EINVAL;
    hl_sampler_free(probe);
    hl_stop_matcher *sprobe = NULL;
    if (hl_stop_new(&sprobe, r->stops, NULL, r->n_stops, err)) return err ? err->code : HL_EINVAL;
    hl_stop_free(sprobe);
    if (r->proc && (!r->proc->vt || !r->proc->vt->mask || !r->proc->vt->accept || !r->proc->vt->clone || !r->proc->vt->free))
        return hl_err_set(err, HL_EINVAL, "the logits processor lacks one of mask, accept, clone, free");

    hl_handle *h = calloc(1, sizeof *h);
    if (!h) return hl_err_set(err, HL_ENOMEM, "out of memory");
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    atomic_init(&h->refs, 2);
    atomic_init(&h->cancel, 0);
    h->notify = notify;
    h->notify_ctx = notify_ctx;
    h->choices_left = n_choices;
    h->n_choices = n_choices;
    h->num_predict = r->num_predict;
    h->num_ctx = num_ctx;
    h->logprobs = r->logprobs;
    h->ignore_eos = r->ignore_eos;
    h->prompt_logprobs = r->prompt_logprobs;
    h->embed = r->embed;
    h->sampling = r->sampling;
    if (drafter_set(&r->drafter)) {
        int32_t k = r->drafter.max_draft;
        h->max_draft = k > 0 && k < e->p.max_draft ? k : e->p.max_draft;
    }
    h->prompt = malloc(r->n_prompt * sizeof *h->prompt);
    int oom = !h->prompt;
    if (!oom) memcpy(h->prompt, r->prompt, r->n_prompt * sizeof *h->prompt);
    h->n_prompt = r->n_prompt;
    if (!oom && r->sampling.n_logit_bias > 0) {
        h->bias = malloc((size_t)r->sampling.n_logit_bias * sizeof *h->bias);
        oom = !h->bias;
        if (!oom) memcpy(h->bias, r->sampling.logit_bias, (size_t)r->sampling.n_logit_bias * sizeof *h->bias);
    }
    h->sampling.logit_bias = h->bias;
    if (!oom && r->n_stops > 0) {
        h->stops = calloc((size_t)r->n_stops, sizeof *h->stops);
        oom = !h->stops;
        for (int32_t i = 0; !oom && i < r->n_stops; i++) {
            h->stops[i] = strdup(r->stops[i]);
            oom = !h->stops[i];
            h->n_stops = i + 1;
        }
    }
    if (oom) {
        handle_free(h);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    h->t_submit = hl_now_ns();
    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->n_queued >= e->p.max_queue) {
        int stopping = e->stopping;
        pthread_mutex_unlock(&e->mu);
        handle_free(h);
        return stopping ? hl_err_set(err, HL_EBUSY, "the model is being unloaded")
                        : hl_err_set(err, HL_EBUSY, "server busy: %d requests are already waiting", e->p.max_queue);
    }
    e->n_queued++;
    /* from here on the engine owns the processor and the drafter's context */
    h->proc = r->proc;
    if (drafter_set(&r->drafter)) h->drafter = r->drafter;
    if (e->inbox_tail) e->inbox_tail->next_in = h;
    else e->inbox_head = h;
    e->inbox_tail = h;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *out = h;
    return HL_OK;
}

/* ---- events: producer side (engine thread) ---- */

static ev_rec *ev_new(hl_handle *h) {
    if (h->n_evs == h->cap_evs) {
        size_t cap = h->cap_evs ? h->cap_evs * 2 : 16;
        ev_rec *n = realloc(h->evs, cap * sizeof *n);
        if (!n) return NULL;
        h->evs = n;
        h->cap_evs = cap;
    }
    ev_rec *r = &h->evs[h->n_evs++];
    memset(r, 0, sizeof *r);
    r->text_off = h->text.len;
    return r;
}

/* The notify callback runs under the handle's lock, so a client releasing the
 * handle (which clears notify under the same lock) never races with it. */
static void ev_published(hl_handle *h) {
    pthread_cond_broadcast(&h->cv);
    if (h->notify) h->notify(h->notify_ctx);
    pthread_mutex_unlock(&h->mu);
}

void ev_push_token(hl_engine *e, seq *s, int32_t token, const char *text, size_t n, const hl_token_logprobs *lp) {
    (void)e;
    hl_handle *h = s->h;
    pthread_mutex_lock(&h->mu);
    ev_rec *r = ev_new(h);
    if (r) {
        r->type = HL_EVENT_TOKEN;
        r->index = s->index;
        r->token = token;
        hl_buf_append(&h->text, text, n);
        r->text_len = n;
        if (lp) r->lp = *lp;
    }
    ev_published(h);
}

void ev_push_prompt(hl_engine *e, seq *s, const hl_token_logprobs *lp) {
    (void)e;
    hl_handle *h = s->h;
    pthread_mutex_lock(&h->mu);
    ev_rec *r = ev_new(h);
    if (r) {
        r->type = HL_EVENT_PROMPT;
        r->index = s->index;
        r->token = lp->chosen.token;
        r->lp = *lp;
    }
    ev_published(h);
}

void ev_push_embed(hl_engine *e, seq *s, const float *v, int32_t n) {
    (void)e;
    hl_handle *h = s->h;
    pthread_mutex_lock(&h->mu);
    ev_rec *r = ev_new(h);
    if (r) {
        r->type = HL_EVENT_EMBED;
        r->index = s->index;
        r->token = -1;
        hl_buf_append(&h->text, (const char *)v, (size_t)n * sizeof *v);
        r->text_len = (size_t)n * sizeof *v;
    }
    ev_published(h);
}

void ev_push_done(hl_engine *e, seq *s, const char *reason, const char *text, size_t n) {
    hl_handle *h = s->h;
    int64_t now = hl_now_ns();
    pthread_mutex_lock(&h->mu);
    ev_rec *r = ev_new(h);
    if (r) {
        r->type = HL_EVENT_DONE;
        r->index = s->index;
        r->token = -1;
        hl_buf_append(&h->text, text, n);
        r->text_len = n;
        r->stats = (hl_choice_stats){
            .done_reason = reason,
            .prompt_tokens = s->n_prompt,
            .prompt_cached = s->prompt_cached,
            .gen_tokens = s->n_gen,
            .queue_ns = s->t_admit - h->t_submit,
            .prompt_ns = (s->t_first ? s->t_first : now) - s->t_admit,
            .gen_ns = s->t_first ? now - s->t_first : 0,
            .draft_tokens = s->n_drafted,
            .draft_accepted = s->n_accepted,
        };
    }
    h->choices_left--;
    (void)e;
    ev_published(h);
}

void ev_push_error(hl_handle *h, const char *msg) {
    pthread_mutex_lock(&h->mu);
    ev_rec *r = ev_new(h);
    if (r) {
        r->type = HL_EVENT_ERROR;
        r->token = -1;
        snprintf(r->error, sizeof r->error, "%s", msg);
    }
    /* the request is over for the client; its sequences still end with DONE
     * events (finish), which count choices_left down for the engine's ref */
    h->failed = 1;
    ev_published(h);
}

/* ---- events: consumer side (client threads) ---- */

static int take(hl_handle *h, hl_event *ev) {
    if (h->rd >= h->n_evs) return 0;
    ev_rec *r = &h->evs[h->rd++];
    hl_buf_reset(&h->out_text);
    hl_buf_append(&h->out_text, h->text.data ? h->text.data + r->text_off : "", r->text_len);
    memset(ev, 0, sizeof *ev);
    ev->type = r->type;
    ev->index = r->index;
    ev->token = r->token;
    ev->text = h->out_text.data ? h->out_text.data : "";
    ev->n_text = r->text_len;
    ev->lp = r->lp;
    ev->stats = r->stats;
    if (r->type == HL_EVENT_EMBED) { /* out_text is malloc'ed: aligned for floats */
        ev->embedding = (const float *)(const void *)ev->text;
        ev->n_embedding = (int32_t)(r->text_len / sizeof(float));
    }
    memcpy(ev->error, r->error, sizeof ev->error);
    if (h->rd == h->n_evs) { /* drained: reuse the memory */
        h->rd = h->n_evs = 0;
        hl_buf_reset(&h->text);
    }
    return 1;
}

int hl_handle_next(hl_handle *h, hl_event *ev) {
    pthread_mutex_lock(&h->mu);
    int got = take(h, ev);
    pthread_mutex_unlock(&h->mu);
    return got;
}

int hl_handle_wait(hl_handle *h, hl_event *ev, int timeout_ms) {
    pthread_mutex_lock(&h->mu);
    struct timespec dl;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    int got;
    while (!(got = take(h, ev))) {
        if (h->choices_left == 0 || h->failed) break; /* finished and drained */
        if (timeout_ms < 0) pthread_cond_wait(&h->cv, &h->mu);
        else if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&h->mu);
    return got;
}

int hl_handle_finished(hl_handle *h) {
    pthread_mutex_lock(&h->mu);
    int done = (h->choices_left == 0 || h->failed) && h->rd >= h->n_evs;
    pthread_mutex_unlock(&h->mu);
    return done;
}

void hl_handle_cancel(hl_handle *h) { atomic_store(&h->cancel, 1); }

void hl_handle_release(hl_handle *h) {
    if (!h) return;
    atomic_store(&h->cancel, 1);
    pthread_mutex_lock(&h->mu);
    h->notify = NULL; /* the client is gone: nobody to wake */
    pthread_mutex_unlock(&h->mu);
    handle_unref(h);
}

void hl_engine_get_metrics(hl_engine *e, hl_engine_metrics *m) {
    pthread_mutex_lock(&e->mu);
    m->queued = e->n_queued;
    pthread_mutex_unlock(&e->mu);
    m->running = atomic_load(&e->m_running);
    m->blocks_used = atomic_load(&e->m_blocks_used);
    m->blocks_total = e->p.n_blocks;
    m->prefix_queries = atomic_load(&e->m_prefix_queries);
    m->prefix_hits = atomic_load(&e->m_prefix_hits);
    m->prompt_tokens = atomic_load(&e->m_prompt_tokens);
    m->gen_tokens = atomic_load(&e->m_gen_tokens);
    m->steps = atomic_load(&e->m_steps);
    m->preemptions = atomic_load(&e->m_preemptions);
    m->draft_tokens = atomic_load(&e->m_draft_tokens);
    m->draft_accepted = atomic_load(&e->m_draft_accepted);
    m->masks_prepared = atomic_load(&e->m_masks_prepared);
}
