/* Generation shared by the Ollama and OpenAI routes: resolve and pin the
 * model, turn the request into prompt tokens (raw text, or messages through
 * the model's chat template; Ollama's truncate drops the oldest messages),
 * merge options (defaults < Modelfile PARAMETERs < request), check the context,
 * submit to the engine and hand the response to a streamed reply whose pull
 * function (per API) formats the token events. */
#include "server/internal.h"
#include "base/clock.h"
#include "base/json_write.h"
#include "base/log.h"
#include "runner/ngram.h"
#include "runner/prompt.h"

#include <json-c/json.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t srv_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

void srv_iso_time(char *out, size_t cap, int64_t ns) {
    time_t t = (time_t)(ns / 1000000000ll);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%09lldZ", base, (long long)(ns % 1000000000ll));
}

void srv_token_piece(const srv_run *run, int32_t tok, char *buf, size_t cap) {
    int n = tok_piece_ex(run->model->lm->tok, tok, 1, buf, cap - 1);
    if (n < 0) n = 0;
    if ((size_t)n > cap - 1) n = (int)cap - 1;
    buf[n] = 0;
}

static void run_notify(void *ctx) {
    srv_run *run = ctx;
    srv_stream *st = __atomic_load_n(&run->st, __ATOMIC_ACQUIRE);
    if (st) srv_stream_wake(st);
}

static void run_cancel(void *ctx) {
    srv_run *run = ctx;
    if (run->h) hl_handle_cancel(run->h);
}

/* Choice 0's decode rate, for the log line. */
static double gen_rate(const srv_run *run) {
    const hl_choice_stats *s = &run->choices[0].stats;
    return s->gen_ns > 0 ? s->gen_tokens / ((double)s->gen_ns / 1e9) : 0.0;
}

static void run_free(void *ctx) {
    srv_run *run = ctx;
    if (run->h) hl_handle_release(run->h); /* cancels if still running; no notify after this */
    if (run->t_first) {
        srv_metrics_latency(&run->srv->metrics, (double)(run->t_first - run->t_start) / 1e9, run->itl, run->n_itl);
    }
    int64_t gen = 0, drafted = 0, accepted = 0;
    for (int i = 0; i < run->g.n; i++) {
        gen += run->choices[i].stats.gen_tokens;
        drafted += run->choices[i].stats.draft_tokens;
        accepted += run->choices[i].stats.draft_accepted;
    }
    srv_metrics_tokens(&run->srv->metrics, (int64_t)run->n_prompt, gen);
    if (run->n_done > 0 && run->model)
        hl_info("generated model=%s prompt=%zu tokens=%lld drafted=%lld accepted=%lld (%.0f%%) %.1f tok/s",
                run->model->name, run->n_prompt, (long long)gen, (long long)drafted, (long long)accepted,
                drafted ? 100.0 * (double)accepted / (double)drafted : 0.0, gen_rate(run));
    if (run->model) srv_models_put(&run->srv->models, run->model, run->g.has_keep_alive, run->g.keep_alive_ns);
    for (int i = 0; i < SRV_MAX_CHOICES; i++) {
        hl_buf_free(&run->choices[i].text);
        hl_buf_free(&run->choices[i].logprobs);
        srv_choice_out_free(&run->choices[i]);
    }
    free(run->prompt_text);
    srv_gen_free(&run->g);
    free(run->prompt);
    free(run->gen_ids);
    free(run->plp);
    free(run->itl);
    free(run);
}

int srv_run_drain(srv_run *run, void (*on_event)(srv_run *, const hl_event *, hl_buf *), hl_buf *out) {
    hl_event ev;
    while (run->h && hl_handle_next(run->h, &ev)) {
        if (ev.type == HL_EVENT_ERROR) {
            run->error = 1;
            snprintf(run->errmsg, sizeof run->errmsg, "%s", ev.error);
            break;
        }
        if (ev.index < 0 || ev.index >= run->g.n) continue;
        srv_choice *c = &run->choices[ev.index];
        if (ev.type == HL_EVENT_TOKEN) {
            int64_t now = hl_now_ns();
            if (!run->t_first) run->t_first = now;
            else if (ev.index == 0) {
                if (run->n_itl == run->cap_itl) {
                    size_t nc = run->cap_itl ? run->cap_itl * 2 : 64;
                    double *ni = realloc(run->itl, nc * sizeof *ni);
                    if (ni) run->itl = ni, run->cap_itl = nc;
                }
                if (run->n_itl < run->cap_itl) run->itl[run->n_itl++] = (double)(now - run->t_last) / 1e9;
            }
            if (ev.index == 0) run->t_last = now;
            if (ev.index == 0 && run->g.api == SRV_OLLAMA_GENERATE) {
                if (run->n_gen == run->cap_gen) {
                    size_t nc = run->cap_gen ? run->cap_gen * 2 : 256;
                    int32_t *ng = realloc(run->gen_ids, nc * sizeof *ng);
                    if (ng) run->gen_ids = ng, run->cap_gen = nc;
                }
                if (run->n_gen < run->cap_gen) run->gen_ids[run->n_gen++] = ev.token;
            }
        } else if (ev.type == HL_EVENT_PROMPT) {
            if (run->n_plp == run->cap_plp) {
                size_t nc = run->cap_plp ? run->cap_plp * 2 : 64;
                hl_token_logprobs *np = realloc(run->plp, nc * sizeof *np);
                if (np) run->plp = np, run->cap_plp = nc;
            }
            if (run->n_plp < run->cap_plp) run->plp[run->n_plp++] = ev.lp;
            continue; /* scores are written with the final response */
        } else if (ev.type == HL_EVENT_DONE) {
            c->stats = ev.stats;
            c->done = 1;
            run->n_done++;
        }
        srv_out_event(run, c, &ev); /* tools / thinking: ev keeps the content part */
        if (ev.n_text) hl_buf_append(&c->text, ev.text, ev.n_text);
        on_event(run, &ev, out);
    }
    return run->error || run->n_done >= run->g.n;
}

/* ---- prompt construction --------------------------------------------------- */

/* The Go template that formats this request, or NULL for the GGUF's Jinja
 * one: the request's "template" (Ollama generate) wins over the Modelfile's
 * TEMPLATE, as in Ollama. */
static const char *go_template(const srv_run *run) {
    if (run->g.tmpl && *run->g.tmpl) return run->g.tmpl;
    return run->model->sm.template_text;
}

/* The conversation a template sees, in Ollama's order, as hl_prompt_render
 * takes it (the system message apart, then the rest).
 *  generate: system ("system", else the Modelfile's SYSTEM), the Modelfile's
 *            MESSAGEs unless "context" continues an earlier exchange, then the
 *            prompt as a user message (a raw prompt, /v1/completions' always,
 *            is that last message alone).
 *  chat:     the Modelfile's SYSTEM when the request's first message is not a
 *            system message, the Modelfile's MESSAGEs, then the request's
 *            messages without the `drop` oldest non-system ones (truncate).
 * The array borrows every string. */
static int conversation(const srv_run *run, size_t drop, hl_prompt *p, chat_message **out, hl_err *err) {
    const srv_gen *g = &run->g;
    const srv_model *mdl = run->model;
    size_t cap = 1 + mdl->n_mf_msgs + g->n_msgs, n = 0;
    chat_message *v = malloc(cap * sizeof *v);
    if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
    const char *sys = mdl->sm.system;
    p->system = NULL;
    if (g->api == SRV_OLLAMA_GENERATE || g->api == SRV_OAI_COMPLETION) {
        if (g->system && *g->system) sys = g->system;
        p->system = sys;
        if (!g->n_context)
            for (size_t i = 0; i < mdl->n_mf_msgs; i++) v[n++] = (chat_message){mdl->mf_msgs[i].role, mdl->mf_msgs[i].content};
        v[n++] = (chat_message){"user", g->prompt ? g->prompt : ""};
    } else {
        if (!g->n_msgs || strcmp(g->msgs[0].role, "system")) p->system = sys;
        for (size_t i = 0; i < mdl->n_mf_msgs; i++) v[n++] = (chat_message){mdl->mf_msgs[i].role, mdl->mf_msgs[i].content};
        size_t skipped = 0;
        for (size_t i = 0; i < g->n_msgs; i++) {
            if (strcmp(g->msgs[i].role, "system") && skipped < drop) {
                skipped++;
                continue;
            }
            const srv_msg *m = &g->msgs[i];
            v[n++] = (chat_message){m->role, m->content, m->tool_calls, m->tool_call_id, m->name, m->thinking};
        }
    }
    p->msgs = v;
    p->n_msgs = n;
    *out = v;
    return 0;
}

/* The prompt's text before tokenization, with `drop` messages truncated:
 * raw for /v1/completions and raw generate; else the template's. */
static int prompt_text(srv_run *run, size_t drop, char **text, hl_err *err) {
    const srv_gen *g = &run->g;
    const hl_loaded *lm = run->model->lm;
    *text = NULL;
    int chat = g->api == SRV_OLLAMA_CHAT || g->api == SRV_OAI_CHAT;
    const char *gt = go_template(run);
    /* a model without any template answers chats too, in the plain form
     * (runner/prompt.h), as Ollama's default template does; one whose
     * template we cannot run says so rather than send a wrong prompt */
    if (chat && !hl_prompt_has_template(lm, gt) && lm->tmpl_error)
        return hl_err_set(err, HL_ENOTSUP, "the model's chat template is not supported: %s", lm->tmpl_error);
    hl_prompt p = {.go_template = gt, .template_name = gt == g->tmpl ? "\"template\"" : "the model's TEMPLATE",
                   .raw = g->api == SRV_OAI_COMPLETION || (g->api == SRV_OLLAMA_GENERATE && g->raw),
                   .suffix = chat ? NULL : g->suffix,
                   .tools_json = g->tool_choice == SRV_TOOLS_NONE ? NULL : g->tools_json,
                   .think_set = g->think_set, .think = g->think,
                   .think_level = g->think_level[0] ? g->think_level : NULL, .vars_json = g->tmpl_vars_json};
    chat_message *msgs = NULL;
    int rc = conversation(run, drop, &p, &msgs, err);
    if (rc) return rc;
    rc = hl_prompt_render(lm, &p, text, err);
    free(msgs);
    return rc;
}

static int build_prompt(srv_run *run, int32_t num_ctx, hl_err *err) {
    srv_gen *g = &run->g;
    const hl_loaded *lm = run->model->lm;
    char *text = NULL;
    int rc = 0;
    size_t first = 0; /* messages dropped by truncate */
    for (;;) {
        free(text);
        if ((rc = prompt_text(run, first, &text, err))) return rc;
        free(run->prompt);
        run->prompt = NULL;
        if (g->n_context) {
            int32_t *ids = NULL;
            size_t n = 0;
            int32_t nv = tok_n_vocab(lm->tok);
            for (size_t i = 0; i < g->n_context && !rc; i++)
                if (g->context[i] >= nv) rc = hl_err_set(err, HL_EINVAL, "\"context\" holds token id %d, outside the vocabulary", g->context[i]);
            if (rc) break;
            rc = tok_encode(lm->tok, text, strlen(text), 0, 1, &ids, &n, err);
            if (rc) break;
            run->prompt = malloc((g->n_context + n + 1) * sizeof *run->prompt);
            if (!run->prompt) {
                free(ids);
                rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                break;
            }
            memcpy(run->prompt, g->context, g->n_context * sizeof *run->prompt);
            if (n) memcpy(run->prompt + g->n_context, ids, n * sizeof *ids);
            run->n_prompt = g->n_context + n;
            free(ids);
        } else {
            rc = hl_loaded_tokenize_prompt(lm, text, &run->prompt, &run->n_prompt, err);
            if (rc) break;
        }
        if ((int64_t)run->n_prompt < num_ctx) break;
        size_t others = 0;
        for (size_t i = 0; i < g->n_msgs; i++) others += strcmp(g->msgs[i].role, "system") != 0;
        if (g->truncate && (g->api == SRV_OLLAMA_CHAT) && first + 1 < others) {
            first++;
            continue;
        }
        rc = hl_err_set(err, HL_ERANGE,
                        "the prompt is %zu tokens, but the context holds %d (num_ctx): shorten the prompt%s or raise num_ctx",
                        run->n_prompt, num_ctx, g->api == SRV_OLLAMA_CHAT ? ", send \"truncate\": true to drop old messages," : "");
        break;
    }
    run->dropped_msgs = (int)first;
    free(run->prompt_text);
    run->prompt_text = text; /* the output splitter looks at how it ends */
    if (!rc && g->prompt_is_ids) {
        /* echo shows the prompt's text */
        char *t = NULL;
        size_t tl = 0;
        if ((rc = tok_decode(lm->tok, g->context, g->n_context, 0, &t, &tl, err))) return rc;
        free(g->prompt);
        g->prompt = t;
    }
    return rc;
}

/* ignore_eos: every end-of-generation token gets the banning bias (the
 * sampler never picks a token at <= -100), added to the request's own
 * logit_bias, so generation ends only at num_predict, a stop string or the
 * context's end. */
static int ban_end_tokens(srv_run *run, hl_err *err) {
    srv_gen *g = &run->g;
    const tok_vocab *v = run->model->lm->tok;
    int32_t nv = tok_n_vocab(v), n_end = 0;
    for (int32_t t = 0; t < nv; t++) n_end += tok_is_eog(v, t) != 0;
    if (!n_end) return 0;
    if (g->n_bias + n_end > HL_SAMPLER_MAX_LOGIT_BIAS) return hl_err_set(err, HL_ERANGE, "\"logit_bias\" has too many entries to add ignore_eos's");
    hl_logit_bias *nb = realloc(g->bias, (size_t)(g->n_bias + n_end) * sizeof *nb);
    if (!nb) return hl_err_set(err, HL_ENOMEM, "out of memory");
    g->bias = nb;
    for (int32_t t = 0; t < nv; t++)
        if (tok_is_eog(v, t)) g->bias[g->n_bias++] = (hl_logit_bias){t, -1000.0f};
    return 0;
}

static int reply_gen_error(srv_req *r, srv_gen *g, int rc, const char *msg) {
    int status = srv_status_of(rc);
    if (r->oai) {
        const char *code = rc == HL_ERANGE && strstr(msg, "context") ? "context_length_exceeded"
                         : rc == HL_ENOENT ? "model_not_found" : NULL;
        const char *param = rc == HL_ERANGE && strstr(msg, "context") ? (g->api == SRV_OAI_CHAT ? "messages" : "prompt")
                          : rc == HL_ENOENT ? "model" : g->err_param;
        return srv_reply_oai_error(r, status, msg, status == 503 ? "server_error" : "invalid_request_error", param, code);
    }
    return srv_reply_error(r, status, msg);
}

/* Ollama: an empty prompt (or no messages) loads the model, or unloads it with keep_alive 0. */
static int reply_load_unload(srv_req *r, srv_run *run) {
    int unload = run->g.has_keep_alive && run->g.keep_alive_ns == 0;
    char ts[64];
    srv_iso_time(ts, sizeof ts, srv_wall_ns());
    hl_buf b = {0};
    hl_buf_printf(&b, "{\"model\":");
    hl_json_escape(&b, run->g.model, strlen(run->g.model));
    hl_buf_printf(&b, ",\"created_at\":\"%s\",", ts);
    if (run->g.api == SRV_OLLAMA_CHAT) hl_buf_puts(&b, "\"message\":{\"role\":\"assistant\",\"content\":\"\"},");
    else hl_buf_puts(&b, "\"response\":\"\",");
    hl_buf_printf(&b, "\"done_reason\":\"%s\",\"done\":true}\n", unload ? "unload" : "load");
    int rc = srv_reply_json(r, 200, &b);
    run_free(run); /* drops the reference; keep_alive 0 unloads */
    return rc;
}

/* Sets up a run whose g is filled (run_new): resolves and pins the model,
 * builds the prompt, submits. Replies nothing: returns 0, RUN_LOAD_ONLY (an
 * Ollama load / unload request), or an error code with err set. */
#define RUN_LOAD_ONLY 1
static int run_begin(srv_req *r, srv_run *run, hl_err *err) {
    srv_gen *g = &run->g;
    int rc = srv_models_get(&r->srv->models, g->model, (g->opts.set & SRV_O_NGPU) ? g->opts.num_gpu : SRV_NUM_GPU_UNSET,
                            &run->model, err);
    if (rc) return rc;
    run->load_ns = hl_now_ns() - run->t_start;
    if ((g->api == SRV_OLLAMA_GENERATE && (!g->prompt || !*g->prompt) && !g->n_context) ||
        (g->api == SRV_OLLAMA_CHAT && g->n_msgs == 0))
        return RUN_LOAD_ONLY;
    if (hl_engine_embedding(run->model->eng))
        return hl_err_set(err, HL_EINVAL, "\"%s\" is an embedding model: it does not generate text (use /api/embed "
                          "or /v1/embeddings)", g->model);

    /* options: defaults < Modelfile parameters < request */
    srv_opts o = {0};
    o.s = hl_sampling_default_params();
    o.num_predict = g->api == SRV_OAI_COMPLETION ? 16 : -1;
    if (g->api == SRV_OAI_CHAT || g->api == SRV_OAI_COMPLETION) {
        /* OpenAI's defaults where the request says nothing; a Modelfile's
         * PARAMETERs still come above them (they are the model's defaults) */
        o.s.temperature = 1.0f;
        o.s.top_p = 1.0f;
    }
    srv_opts_merge(&o, &run->model->params);
    srv_opts_merge(&o, &g->opts);
    int32_t max_ctx = hl_engine_max_ctx(run->model->eng);
    int32_t num_ctx = (o.set & SRV_O_NCTX) && o.num_ctx > 0 ? o.num_ctx : r->srv->cfg.num_ctx > 0 ? r->srv->cfg.num_ctx : max_ctx;
    if (num_ctx > max_ctx) num_ctx = max_ctx;

    rc = srv_out_check(run, go_template(run), err);
    if (!rc) rc = build_prompt(run, num_ctx, err);
    if (!rc) rc = srv_out_setup(run, go_template(run), err);
    if (rc) {
        srv_opts_free(&o);
        return rc;
    }
    hl_request req = {0};
    req.prompt = run->prompt;
    req.n_prompt = run->n_prompt;
    req.sampling = o.s;
    req.sampling.logit_bias = g->bias;
    req.sampling.n_logit_bias = g->n_bias;
    if (g->ignore_eos && (rc = ban_end_tokens(run, err))) {
        srv_opts_free(&o);
        return rc;
    }
    if (g->ignore_eos) req.sampling.logit_bias = g->bias, req.sampling.n_logit_bias = g->n_bias;
    req.sampling.n_top_logprobs = g->logprobs ? g->top_logprobs : 0;
    req.num_predict = o.num_predict < 0 ? -1 : o.num_predict;
    req.num_ctx = num_ctx;
    req.stops = (const char *const *)o.stops;
    req.n_stops = o.n_stops;
    req.n_choices = g->n;
    req.logprobs = g->logprobs;
    /* OpenAI's legacy completions: echo with logprobs scores the prompt too */
    req.prompt_logprobs = g->api == SRV_OAI_COMPLETION && g->echo && g->logprobs && !g->stream;
    /* speculative decoding: on unless the request, the Modelfile or
     * engine.speculative say otherwise; the engine adapts the length
     * (num_draft is the most) and verifies, so the output is the same. The
     * drafter: the draft model that the request, the Modelfile or
     * engine.draft_model names (one named by the request or the Modelfile
     * must be usable: a refusal is the request's error; the server's
     * default falls back to prompt lookup for models it cannot draft for),
     * else prompt lookup. */
    int spec = o.set & SRV_O_SPEC ? o.speculative : r->srv->cfg.speculative;
    int32_t num_draft = o.set & SRV_O_NDRAFT ? o.num_draft : 0; /* 0: the engine's engine.num_draft */
    if (spec && !(o.set & SRV_O_NDRAFT && num_draft == 0)) {
        const char *dname = o.set & SRV_O_DRAFT ? o.draft_model : r->srv->cfg.draft_model;
        hl_draft_model *dm = NULL;
        if (dname && *dname && (rc = srv_model_draft(&r->srv->models, run->model, dname, &dm, err)) &&
            !(o.set & SRV_O_DRAFT))
            rc = 0;
        if (!rc) rc = dm ? hl_draft_drafter_new(dm, &req.drafter, num_draft, err)
                         : ngram_drafter_new(&req.drafter, NGRAM_DEFAULT_MIN, NGRAM_DEFAULT_MAX, num_draft, err);
        if (rc) {
            srv_opts_free(&o);
            return rc;
        }
    }
    rc = srv_structured_proc(run, &req.proc, err);
    if (!rc) {
        rc = hl_engine_submit(run->model->eng, &req, run_notify, run, &run->h, err);
        if (rc && req.proc) req.proc->vt->free(req.proc); /* a failed submit leaves it ours */
    }
    srv_opts_free(&o);
    if (rc && req.drafter.free) req.drafter.free(req.drafter.ctx); /* a failed submit leaves it ours */
    if (rc) {
        if (rc == HL_ERANGE && r->oai) snprintf(err->msg, sizeof err->msg, "This model's maximum context length is %d tokens. However, your %s resulted in %zu tokens. Please reduce the length of the %s.", num_ctx, g->api == SRV_OAI_CHAT ? "messages" : "prompt", run->n_prompt, g->api == SRV_OAI_CHAT ? "messages" : "prompt");
        return rc;
    }
    return 0;
}

static srv_run *run_new(srv_req *r, srv_gen *g) {
    srv_run *run = calloc(1, sizeof *run);
    if (!run) {
        srv_gen_free(g);
        return NULL;
    }
    run->srv = r->srv;
    run->g = *g;
    memset(g, 0, sizeof *g);
    g = &run->g;
    if (g->n < 1) g->n = 1;
    snprintf(r->model, sizeof r->model, "%s", g->model);
    run->t_start = hl_now_ns();
    run->created = srv_wall_ns() / 1000000000ll;
    {
        /* ids only need to be unique among live requests: time mixed with the run's address */
        uint64_t x = (uint64_t)srv_wall_ns() ^ ((uint64_t)(uintptr_t)run * 0x9E3779B97F4A7C15ull);
        snprintf(run->id, sizeof run->id, "%s-%016llx", g->api == SRV_OAI_COMPLETION ? "cmpl" : "chatcmpl", (unsigned long long)x);
    }
    return run;
}

int srv_gen_start(srv_req *r, srv_gen *g, srv_pull_fn pull, const char *ctype) {
    hl_err err = {0};
    srv_run *run = run_new(r, g);
    if (!run) return srv_reply_error(r, 500, "out of memory");
    int rc = run_begin(r, run, &err);
    if (rc == RUN_LOAD_ONLY) return reply_load_unload(r, run);
    if (rc) {
        rc = reply_gen_error(r, &run->g, rc, err.msg);
        run_free(run);
        return rc;
    }
    srv_stream *st = NULL;
    rc = srv_reply_stream(r, 200, ctype, pull, run_free, run_cancel, run, &st);
    if (rc == MHD_YES && st) __atomic_store_n(&run->st, st, __ATOMIC_RELEASE);
    return rc;
}

static void batch_free(void *ctx) {
    srv_batch *b = ctx;
    for (int i = 0; i < b->n; i++) run_free(b->runs[i]);
    free(b->runs);
    free(b);
}

static void batch_cancel(void *ctx) {
    srv_batch *b = ctx;
    for (int i = 0; i < b->n; i++) run_cancel(b->runs[i]);
}

int srv_gen_start_batch(srv_req *r, srv_gen *gs, int k, srv_pull_fn pull, const char *ctype) {
    srv_batch *b = calloc(1, sizeof *b);
    srv_run **runs = calloc((size_t)k, sizeof *runs);
    if (!b || !runs) {
        free(b);
        free(runs);
        for (int i = 0; i < k; i++) srv_gen_free(&gs[i]);
        return srv_reply_error(r, 500, "out of memory");
    }
    b->runs = runs;
    int rc = 0;
    hl_err err = {0};
    for (int i = 0; i < k; i++) {
        srv_run *run = rc ? NULL : run_new(r, &gs[i]);
        if (!run) {
            srv_gen_free(&gs[i]); /* after a failure: the rest are not started */
            if (!rc) rc = hl_err_set(&err, HL_ENOMEM, "out of memory");
            continue;
        }
        runs[b->n++] = run;
        run->index_base = i * run->g.n;
        if ((rc = run_begin(r, run, &err))) break;
    }
    for (int i = b->n; i < k; i++) srv_gen_free(&gs[i]);
    if (rc) {
        rc = b->n ? reply_gen_error(r, &runs[b->n - 1]->g, rc, err.msg) : srv_reply_error(r, 500, err.msg);
        batch_free(b);
        return rc;
    }
    srv_stream *st = NULL;
    rc = srv_reply_stream(r, 200, ctype, pull, batch_free, batch_cancel, b, &st);
    if (rc == MHD_YES && st)
        for (int i = 0; i < b->n; i++) __atomic_store_n(&runs[i]->st, st, __ATOMIC_RELEASE);
    return rc;
}
