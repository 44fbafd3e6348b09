/* The OpenAI-compatible API: POST /v1/chat/completions and /v1/completions
 * (SSE streaming ending with "data: [DONE]", stream_options.include_usage,
 * n > 1 choices, logprobs), GET /v1/models and /v1/models/{id}. Errors carry
 * message, type, param and code with the matching status. */
#include "server/internal.h"
#include "base/json_write.h"
#include "base/log.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static const char *finish_reason(const char *done) {
    if (!done) return "stop";
    if (!strcmp(done, "length")) return "length";
    return "stop";
}

static void lp_entry(srv_run *run, const hl_event *ev, hl_buf *b) {
    char piece[256];
    srv_token_piece(run, ev->lp.chosen.token, piece, sizeof piece);
    if (run->g.api == SRV_OAI_CHAT) {
        if (b->len) hl_buf_putc(b, ',');
        hl_buf_puts(b, "{\"token\":");
        hl_json_escape(b, piece, strlen(piece));
        hl_buf_printf(b, ",\"logprob\":%.6g,\"bytes\":[", (double)ev->lp.chosen.logprob);
        for (size_t i = 0; piece[i]; i++) hl_buf_printf(b, i ? ",%u" : "%u", (unsigned char)piece[i]);
        hl_buf_puts(b, "],\"top_logprobs\":[");
        for (int k = 0; k < ev->lp.n_top && k < run->g.top_logprobs; k++) {
            char p2[256];
            srv_token_piece(run, ev->lp.top[k].token, p2, sizeof p2);
            hl_buf_puts(b, k ? ",{\"token\":" : "{\"token\":");
            hl_json_escape(b, p2, strlen(p2));
            hl_buf_printf(b, ",\"logprob\":%.6g,\"bytes\":[", (double)ev->lp.top[k].logprob);
            for (size_t i = 0; p2[i]; i++) hl_buf_printf(b, i ? ",%u" : "%u", (unsigned char)p2[i]);
            hl_buf_puts(b, "]}");
        }
        hl_buf_puts(b, "]}");
    }
}

/* Characters (code points) in s[0..n): text_offset counts characters, as
 * Python's len() of the text does. */
static int64_t n_chars(const char *s, size_t n) {
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* One token of the legacy logprobs object: its piece, logprob, alternatives
 * and text_offset (*chars), appended to the four parallel arrays; then
 * *chars advances over the token's text: the bytes ts, a detokenizer that
 * saw the tokens before it, emits for it (specials are no text, SPM's
 * leading space of the text's first word is none). lp NULL: the prompt's
 * first token, which has no score (null, as OpenAI). */
static void completion_lp_entry(srv_run *run, tok_stream *ts, int32_t token, const hl_token_logprobs *lp, int64_t *chars,
                                hl_buf p[4]) {
    char piece[256];
    srv_token_piece(run, token, piece, sizeof piece);
    if (p[0].len)
        for (int k = 0; k < 4; k++) hl_buf_putc(&p[k], ',');
    hl_json_escape(&p[0], piece, strlen(piece));
    if (lp) {
        hl_buf_printf(&p[1], "%.6g", (double)lp->chosen.logprob);
        hl_buf_putc(&p[2], '{');
        for (int k = 0; k < lp->n_top && k < run->g.top_logprobs; k++) {
            char p2[256];
            srv_token_piece(run, lp->top[k].token, p2, sizeof p2);
            if (k) hl_buf_putc(&p[2], ',');
            hl_json_escape(&p[2], p2, strlen(p2));
            hl_buf_printf(&p[2], ":%.6g", (double)lp->top[k].logprob);
        }
        hl_buf_putc(&p[2], '}');
    } else {
        hl_buf_puts(&p[1], "null");
        hl_buf_puts(&p[2], "null");
    }
    hl_buf_printf(&p[3], "%lld", (long long)*chars);
    char text[512];
    int n = tok_stream_bound(run->model->lm->tok) <= sizeof text ? tok_stream_push(ts, token, text, sizeof text) : 0;
    if (n > 0) *chars += n_chars(text, (size_t)n);
}

static void lp_object(hl_buf *out, const hl_buf p[4]);
static void response_head(srv_run *run, hl_buf *out);
static void write_choices(srv_run *run, hl_buf *out);

static void completion_lp(srv_run *run, srv_choice *c, const hl_event *ev, hl_buf p[4]) {
    if (!c->lp_init) {
        c->lp_init = 1; /* echo: the generated text starts after the prompt's */
        c->lp_chars = run->g.echo && !run->g.stream && run->g.prompt ? n_chars(run->g.prompt, strlen(run->g.prompt)) : 0;
        tok_stream_init(&c->lp_ts, run->model->lm->tok, 0);
        tok_stream_prime(&c->lp_ts, run->prompt, run->n_prompt);
    }
    completion_lp_entry(run, &c->lp_ts, ev->lp.chosen.token, &ev->lp, &c->lp_chars, p);
}

static void chunk_head(srv_run *run, hl_buf *out) {
    int chat = run->g.api == SRV_OAI_CHAT;
    hl_buf_printf(out, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", run->id,
                  chat ? "chat.completion.chunk" : "text_completion", (long long)run->created);
    hl_json_escape(out, run->g.model, strlen(run->g.model));
    hl_buf_puts(out, ",\"system_fingerprint\":\"hyperlama\",\"choices\":[");
}

static void chunk_tail(srv_run *run, hl_buf *out) {
    hl_buf_puts(out, "]");
    if (run->g.include_usage) hl_buf_puts(out, ",\"usage\":null");
    hl_buf_puts(out, "}\n\n");
}

/* Usage of runs[0..n) (several for a batch of prompts), summed. */
static void usage(srv_run *const *runs, int n, hl_buf *out) {
    int64_t gen = 0, prompt = 0, cached = 0;
    for (int k = 0; k < n; k++) {
        const srv_run *run = runs[k];
        for (int i = 0; i < run->g.n; i++) gen += run->choices[i].stats.gen_tokens;
        cached += run->choices[0].stats.prompt_cached;
        prompt += (int64_t)run->n_prompt;
    }
    hl_buf_printf(out, "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":%lld}}",
                  (long long)prompt, (long long)gen, (long long)(gen + prompt), (long long)cached);
}

static void on_event(srv_run *run, const hl_event *ev, hl_buf *out) {
    srv_choice *c = &run->choices[ev->index];
    int chat = run->g.api == SRV_OAI_CHAT;
    hl_buf lp = {0}, t[4] = {{0}};
    if (run->g.logprobs && ev->type == HL_EVENT_TOKEN) {
        if (chat) lp_entry(run, ev, run->g.stream ? &lp : &c->logprobs);
        else if (run->g.stream) completion_lp(run, c, ev, t);
        else {
            /* non-streamed completions keep four parallel arrays in one buffer, split by \x01 later */
            completion_lp(run, c, ev, t);
            if (c->n_lp++) hl_buf_putc(&c->logprobs, '\x02');
            for (int k = 0; k < 4; k++) {
                if (k) hl_buf_putc(&c->logprobs, '\x01');
                hl_buf_append(&c->logprobs, t[k].data, t[k].len);
            }
        }
    }
    if (run->g.stream) {
        if (chat && !run->sent_first) {
            /* the first chunk of each choice carries the role */
            for (int i = 0; i < run->g.n; i++) {
                chunk_head(run, out);
                hl_buf_printf(out, "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}", i);
                chunk_tail(run, out);
            }
            run->sent_first = 1;
        }
        if (chat && c->d_thinking.len) { /* reasoning_content, as vLLM and llama-server stream it */
            chunk_head(run, out);
            hl_buf_printf(out, "{\"index\":%d,\"delta\":{\"reasoning_content\":", ev->index + run->index_base);
            hl_json_escape(out, c->d_thinking.data, c->d_thinking.len);
            hl_buf_puts(out, "},\"logprobs\":null,\"finish_reason\":null}");
            chunk_tail(run, out);
        }
        if (ev->n_text || lp.len || t[0].len) {
            chunk_head(run, out);
            hl_buf_printf(out, "{\"index\":%d,", ev->index + run->index_base);
            if (chat) {
                hl_buf_puts(out, "\"delta\":{\"content\":");
                hl_json_escape(out, ev->text, ev->n_text);
                hl_buf_puts(out, "},\"logprobs\":");
                if (lp.len) {
                    hl_buf_puts(out, "{\"content\":[");
                    hl_buf_append(out, lp.data, lp.len);
                    hl_buf_puts(out, "],\"refusal\":null}");
                } else hl_buf_puts(out, "null");
            } else {
                hl_buf_puts(out, "\"text\":");
                hl_json_escape(out, ev->text, ev->n_text);
                hl_buf_puts(out, ",\"logprobs\":");
                if (t[0].len) lp_object(out, t);
                else hl_buf_puts(out, "null");
            }
            hl_buf_puts(out, ",\"finish_reason\":null}");
            chunk_tail(run, out);
        }
        for (; chat && c->n_calls_sent < c->n_calls; c->n_calls_sent++) {
            /* a call once it is complete: its name first, then its arguments */
            for (int part = 1; part <= 2; part++) {
                chunk_head(run, out);
                hl_buf_printf(out, "{\"index\":%d,\"delta\":{%s\"tool_calls\":[", ev->index + run->index_base, part == 1 && !c->n_calls_sent ? "\"content\":null," : "");
                srv_put_oai_call(run, c, c->n_calls_sent, part, out);
                hl_buf_puts(out, "]},\"logprobs\":null,\"finish_reason\":null}");
                chunk_tail(run, out);
            }
        }
        if (ev->type == HL_EVENT_DONE) {
            chunk_head(run, out);
            hl_buf_printf(out, "{\"index\":%d,%s,\"logprobs\":null,\"finish_reason\":\"%s\"}", ev->index + run->index_base,
                          chat ? "\"delta\":{}" : "\"text\":\"\"", srv_finish_reason(c, finish_reason(ev->stats.done_reason)));
            chunk_tail(run, out);
        }
    }
    hl_buf_free(&lp);
    for (int k = 0; k < 4; k++) hl_buf_free(&t[k]);
}

/* The legacy logprobs object from its four parallel arrays. */
static void lp_object(hl_buf *out, const hl_buf p[4]) {
    static const char *const KEYS[4] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    for (int k = 0; k < 4; k++) {
        hl_buf_printf(out, "%s\"%s\":[", k ? "]," : "{", KEYS[k]);
        hl_buf_append(out, p[k].data ? p[k].data : "", p[k].len);
    }
    hl_buf_puts(out, "]}");
}

/* Non-streamed: the prompt's tokens first when it was scored (echo), with
 * offsets into the echoed text, then the generated ones. */
static void completion_logprobs_json(srv_run *run, srv_choice *c, hl_buf *out) {
    hl_buf parts[4] = {{0}};
    if (run->g.echo && run->n_plp + 1 == run->n_prompt) {
        int64_t chars = 0;
        tok_stream ts;
        tok_stream_init(&ts, run->model->lm->tok, 0);
        for (size_t i = 0; i < run->n_prompt; i++)
            completion_lp_entry(run, &ts, run->prompt[i], i ? &run->plp[i - 1] : NULL, &chars, parts);
    }
    const char *p = c->logprobs.data ? c->logprobs.data : "";
    const char *end = p + c->logprobs.len;
    while (p < end) {
        for (int k = 0; k < 4; k++) {
            const char *q = p;
            while (q < end && *q != (k < 3 ? '\x01' : '\x02')) q++;
            if (parts[k].len) hl_buf_putc(&parts[k], ',');
            hl_buf_append(&parts[k], p, (size_t)(q - p));
            p = q < end ? q + 1 : end;
        }
    }
    lp_object(out, parts);
    for (int k = 0; k < 4; k++) hl_buf_free(&parts[k]);
}

/* The end of a response once every run of it is done (one run, or a batch's):
 * the first failure as an error, else the stream's usage and [DONE], else the
 * whole non-streamed object with every run's choices and the usage summed. */
static int respond(srv_run *const *runs, int n, hl_buf *out) {
    srv_run *first = runs[0];
    for (int i = 0; i < n; i++) {
        const srv_run *run = runs[i];
        if (!run->error) continue;
        hl_buf_puts(out, first->g.stream ? "data: {\"error\":{\"message\":" : "{\"error\":{\"message\":");
        hl_json_escape(out, run->errmsg, strlen(run->errmsg));
        hl_buf_puts(out, ",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        hl_buf_puts(out, first->g.stream ? "\n\ndata: [DONE]\n\n" : "\n");
        return 1;
    }
    if (first->g.stream) {
        if (first->g.include_usage) {
            chunk_head(first, out);
            hl_buf_puts(out, "],");
            usage(runs, n, out);
            hl_buf_puts(out, "}\n\n");
        }
        hl_buf_puts(out, "data: [DONE]\n\n");
        return 1;
    }
    response_head(first, out);
    for (int i = 0; i < n; i++) write_choices(runs[i], out);
    hl_buf_puts(out, "],");
    usage(runs, n, out);
    hl_buf_puts(out, "}\n");
    return 1;
}

static int pull(srv_stream *st, void *ctx, hl_buf *out) {
    srv_run *run = ctx;
    (void)st;
    if (!srv_run_drain(run, on_event, out)) return 0;
    return respond(&run, 1, out);
}

static void response_head(srv_run *run, hl_buf *out) {
    int chat = run->g.api == SRV_OAI_CHAT;
    hl_buf_printf(out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", run->id,
                  chat ? "chat.completion" : "text_completion", (long long)run->created);
    hl_json_escape(out, run->g.model, strlen(run->g.model));
    hl_buf_puts(out, ",\"system_fingerprint\":\"hyperlama\",\"choices\":[");
}

/* The run's choices of a non-streamed response, numbered from index_base. */
static void write_choices(srv_run *run, hl_buf *out) {
    int chat = run->g.api == SRV_OAI_CHAT;
    for (int i = 0; i < run->g.n; i++) {
        srv_choice *c = &run->choices[i];
        const char *text = c->text.data ? c->text.data : "";
        hl_buf_printf(out, "%s{\"index\":%d,", i + run->index_base ? "," : "", i + run->index_base);
        if (chat) {
            hl_buf_puts(out, "\"message\":{\"role\":\"assistant\",\"content\":");
            if (c->n_calls && !c->text.len) hl_buf_puts(out, "null");
            else hl_json_escape(out, text, c->text.len);
            if (c->thinking.len) {
                hl_buf_puts(out, ",\"reasoning_content\":");
                hl_json_escape(out, c->thinking.data, c->thinking.len);
            }
            if (c->n_calls) {
                hl_buf_puts(out, ",\"tool_calls\":[");
                for (size_t k = 0; k < c->n_calls; k++) {
                    if (k) hl_buf_putc(out, ',');
                    srv_put_oai_call(run, c, k, 0, out);
                }
                hl_buf_putc(out, ']');
            }
            hl_buf_puts(out, ",\"refusal\":null},\"logprobs\":");
            if (run->g.logprobs) {
                hl_buf_puts(out, "{\"content\":[");
                hl_buf_append(out, c->logprobs.data ? c->logprobs.data : "", c->logprobs.len);
                hl_buf_puts(out, "],\"refusal\":null}");
            } else hl_buf_puts(out, "null");
        } else {
            hl_buf_puts(out, "\"text\":");
            if (run->g.echo) {
                hl_buf t = {0};
                hl_buf_puts(&t, run->g.prompt ? run->g.prompt : "");
                hl_buf_append(&t, text, c->text.len);
                hl_json_escape(out, t.data ? t.data : "", t.len);
                hl_buf_free(&t);
            } else hl_json_escape(out, text, c->text.len);
            hl_buf_puts(out, ",\"logprobs\":");
            if (run->g.logprobs) completion_logprobs_json(run, c, out);
            else hl_buf_puts(out, "null");
        }
        hl_buf_printf(out, ",\"finish_reason\":\"%s\"}", srv_finish_reason(c, finish_reason(c->stats.done_reason)));
    }
}

/* A batch (several prompts): every run's events as they come, then one
 * response with all the choices and the usage summed. */
static int pull_batch(srv_stream *st, void *ctx, hl_buf *out) {
    srv_batch *b = ctx;
    (void)st;
    int all = 1;
    for (int i = 0; i < b->n; i++) all &= srv_run_drain(b->runs[i], on_event, out);
    if (!all) return 0;
    return respond(b->runs, b->n, out);
}

/* A /v1/completions batch: each prompt of the list is parsed as the same
 * request with that one prompt, and runs as its own request in the engine
 * (they batch there like any concurrent requests); choice i of prompt j is
 * index j * n + i, as OpenAI numbers them. */
static int start_batch(srv_req *r, srv_api api, srv_gen *g0) {
    int k = g0->n_batch, stream = g0->stream;
    srv_gen_free(g0);
    struct json_object *root = NULL, *list = NULL;
    hl_err err = {0};
    if (srv_json_parse(r->body.data ? r->body.data : "", r->body.len, &root, &err) ||
        !json_object_object_get_ex(root, "prompt", &list)) {
        json_object_put(root);
        return srv_reply_oai_error(r, 400, "\"prompt\" could not be read", "invalid_request_error", "prompt", NULL);
    }
    json_object_get(list);
    srv_gen *gs = calloc((size_t)k, sizeof *gs);
    int rc = gs ? 0 : hl_err_set(&err, HL_ENOMEM, "out of memory"), n = 0;
    for (; n < k && !rc; n++) {
        json_object_object_add(root, "prompt", json_object_get(json_object_array_get_idx(list, (size_t)n)));
        const char *body = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        rc = srv_parse_openai(api, body, strlen(body), &gs[n], &err);
        if (rc) {
            char msg[300];
            snprintf(msg, sizeof msg, "prompt[%d]: %s", n, err.msg);
            snprintf(err.msg, sizeof err.msg, "%s", msg);
            srv_gen_free(&gs[n]);
        }
    }
    json_object_put(list);
    json_object_put(root);
    if (rc) {
        for (int i = 0; i < n - 1; i++) srv_gen_free(&gs[i]);
        free(gs);
        return srv_reply_oai_error(r, srv_status_of(rc == HL_ENOENT ? HL_EINVAL : rc), err.msg, "invalid_request_error", "prompt", NULL);
    }
    rc = srv_gen_start_batch(r, gs, k, pull_batch, stream ? "text/event-stream" : "application/json");
    free(gs);
    return rc;
}

static int route_completion(srv_req *r, srv_api api) {
    srv_gen g;
    hl_err err = {0};
    int rc = srv_parse_openai(api, r->body.data ? r->body.data : "", r->body.len, &g, &err);
    if (rc) {
        int status = srv_status_of(rc == HL_ENOENT ? HL_EINVAL : rc);
        rc = srv_reply_oai_error(r, status, err.msg, "invalid_request_error", g.err_param, rc == HL_ENOTSUP ? "unsupported_parameter" : NULL);
        srv_gen_free(&g);
        return rc;
    }
    if (g.n_unknown && r->srv->cfg.strict_requests) {
        char msg[160];
        snprintf(msg, sizeof msg, "Unrecognized request argument supplied: %s", g.unknown);
        rc = srv_reply_oai_error(r, 400, msg, "invalid_request_error", g.unknown, NULL);
        srv_gen_free(&g);
        return rc;
    }
    if (g.n_unknown) hl_debug("%s: ignored %d unknown field(s), the first \"%s\" (server.strict_requests refuses them)", r->url, g.n_unknown, g.unknown);
    if (g.n_batch > 1) return start_batch(r, api, &g);
    return srv_gen_start(r, &g, pull, g.stream ? "text/event-stream" : "application/json");
}

static void model_obj(hl_jw *w, const char *id, int64_t created) {
    hl_jw_obj_begin(w);
    hl_jw_key(w, "id"); hl_jw_str(w, id);
    hl_jw_key(w, "object"); hl_jw_str(w, "model");
    hl_jw_key(w, "created"); hl_jw_int(w, created);
    hl_jw_key(w, "owned_by"); hl_jw_str(w, "library");
    hl_jw_obj_end(w);
}

typedef struct loaded_ctx {
    hl_jw *w;
    const char *want;
    int found;
} loaded_ctx;

static void loaded_one(void *ctx, srv_model *m) {
    loaded_ctx *lc = ctx;
    if (m->from_store) return; /* listed from the store already */
    if (lc->want) {
        if (!strcmp(lc->want, m->key) || !strcmp(lc->want, m->name)) lc->found = 1;
        return;
    }
    model_obj(lc->w, m->key, m->last_used_ns ? srv_wall_ns() / 1000000000ll : 0);
}

static int route_models(srv_req *r, const char *id) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_err err;
    if (id) {
        store_info info;
        loaded_ctx lc = {&w, id, 0};
        srv_models_each(&r->srv->models, loaded_one, &lc);
        if (r->srv->st && store_info_get(r->srv->st, id, &info, &err) == 0) model_obj(&w, info.name, info.modified);
        else if (lc.found) model_obj(&w, id, srv_wall_ns() / 1000000000ll);
        else {
            hl_buf_free(&b);
            char msg[700];
            snprintf(msg, sizeof msg, "The model '%s' does not exist", id);
            return srv_reply_oai_error(r, 404, msg, "invalid_request_error", "model", "model_not_found");
        }
        return srv_reply_json(r, 200, &b);
    }
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "object"); hl_jw_str(&w, "list");
    hl_jw_key(&w, "data");
    hl_jw_arr_begin(&w);
    store_info *list = NULL;
    size_t n = 0;
    if (r->srv->st && store_list(r->srv->st, &list, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) model_obj(&w, list[i].name, list[i].modified);
        free(list);
    }
    loaded_ctx lc = {&w, NULL, 0};
    srv_models_each(&r->srv->models, loaded_one, &lc);
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    return srv_reply_json(r, 200, &b);
}

int srv_route_openai(srv_req *r) {
    const char *u = r->url;
    int post = !strcmp(r->method, "POST"), get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (!strcmp(u, "/v1/chat/completions")) return post ? route_completion(r, SRV_OAI_CHAT) : srv_reply_error(r, 405, "method not allowed");
    if (!strcmp(u, "/v1/completions")) return post ? route_completion(r, SRV_OAI_COMPLETION) : srv_reply_error(r, 405, "method not allowed");
    if (!strcmp(u, "/v1/models")) return get ? route_models(r, NULL) : srv_reply_error(r, 405, "method not allowed");
    if (!strncmp(u, "/v1/models/", 11) && u[11]) return get ? route_models(r, u + 11) : srv_reply_error(r, 405, "method not allowed");
    return -1;
}
