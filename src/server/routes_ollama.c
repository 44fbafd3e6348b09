/* The Ollama API's generation and model routes: POST /api/generate and
 * /api/chat (NDJSON streaming by default, or one object with stream:false),
 * GET /api/tags, POST /api/show, GET /api/ps, GET /api/version — field for
 * field as Ollama's docs/api.md describes them (durations in ns). */
#include "server/internal.h"
#include "base/clock.h"
#include "base/json_write.h"
#include "chat/outparse.h"
#include "gguf/gguf.h"
#include "runner/prompt.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static void put_logprobs(srv_run *run, const hl_event *ev, hl_buf *lp) {
    char piece[256];
    if (lp->len) hl_buf_putc(lp, ',');
    srv_token_piece(run, ev->lp.chosen.token, piece, sizeof piece);
    hl_buf_puts(lp, "{\"token\":");
    hl_json_escape(lp, piece, strlen(piece));
    hl_buf_printf(lp, ",\"logprob\":%.6g", (double)ev->lp.chosen.logprob);
    if (run->g.top_logprobs) {
        hl_buf_puts(lp, ",\"top_logprobs\":[");
        for (int k = 0; k < ev->lp.n_top; k++) {
            srv_token_piece(run, ev->lp.top[k].token, piece, sizeof piece);
            hl_buf_puts(lp, k ? ",{\"token\":" : "{\"token\":");
            hl_json_escape(lp, piece, strlen(piece));
            hl_buf_printf(lp, ",\"logprob\":%.6g}", (double)ev->lp.top[k].logprob);
        }
        hl_buf_putc(lp, ']');
    }
    hl_buf_putc(lp, '}');
}

static void head(srv_run *run, hl_buf *out) {
    char ts[64];
    srv_iso_time(ts, sizeof ts, srv_wall_ns());
    hl_buf_puts(out, "{\"model\":");
    hl_json_escape(out, run->g.model, strlen(run->g.model));
    hl_buf_printf(out, ",\"created_at\":\"%s\",", ts);
}

/* The answer part of an object: content, then thinking and the calls
 * [from, to) of choice c when there are any. */
static void content(srv_run *run, const char *text, size_t n, const char *think, size_t n_think, size_t from, size_t to,
                    hl_buf *out) {
    const srv_choice *c = &run->choices[0];
    if (run->g.api == SRV_OLLAMA_CHAT) {
        hl_buf_puts(out, "\"message\":{\"role\":\"assistant\",\"content\":");
        hl_json_escape(out, text, n);
        if (n_think) {
            hl_buf_puts(out, ",\"thinking\":");
            hl_json_escape(out, think, n_think);
        }
        if (to > from) {
            hl_buf_puts(out, ",\"tool_calls\":[");
            srv_put_ollama_calls(c, from, to, out);
            hl_buf_putc(out, ']');
        }
        hl_buf_puts(out, "},");
    } else {
        hl_buf_puts(out, "\"response\":");
        hl_json_escape(out, text, n);
        hl_buf_putc(out, ',');
        if (n_think) {
            hl_buf_puts(out, "\"thinking\":");
            hl_json_escape(out, think, n_think);
            hl_buf_putc(out, ',');
        }
    }
}

static void final_fields(srv_run *run, hl_buf *out) {
    const hl_choice_stats *s = &run->choices[0].stats;
    hl_buf_printf(out, "\"done\":true,\"done_reason\":\"%s\",", s->done_reason ? s->done_reason : "stop"); /* Ollama says stop after calls too */
    if (run->g.api == SRV_OLLAMA_GENERATE) {
        hl_buf_puts(out, "\"context\":[");
        for (size_t i = 0; i < run->n_prompt; i++) hl_buf_printf(out, i ? ",%d" : "%d", run->prompt[i]);
        for (size_t i = 0; i < run->n_gen; i++) hl_buf_printf(out, run->n_prompt || i ? ",%d" : "%d", run->gen_ids[i]);
        hl_buf_puts(out, "],");
    }
    if (run->dropped_msgs) hl_buf_printf(out, "\"truncated_messages\":%d,", run->dropped_msgs);
    hl_buf_printf(out,
                  "\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%d,\"prompt_eval_duration\":%lld,"
                  "\"eval_count\":%d,\"eval_duration\":%lld,\"prompt_cache_count\":%d,"
                  "\"draft_count\":%d,\"draft_accepted_count\":%d}\n",
                  (long long)(hl_now_ns() - run->t_start), (long long)run->load_ns, s->prompt_tokens,
                  (long long)(s->queue_ns + s->prompt_ns), s->gen_tokens, (long long)s->gen_ns, s->prompt_cached,
                  s->draft_tokens, s->draft_accepted);
}

static void on_event(srv_run *run, const hl_event *ev, hl_buf *out) {
    srv_choice *c = &run->choices[ev->index];
    hl_buf lp = {0};
    if (run->g.logprobs && ev->type == HL_EVENT_TOKEN) put_logprobs(run, ev, run->g.stream ? &lp : &c->logprobs);
    if (!run->g.stream) return;
    size_t from = c->n_calls_sent, to = c->n_calls;
    c->n_calls_sent = to;
    if (ev->type == HL_EVENT_TOKEN && (ev->n_text || lp.len || c->d_thinking.len || to > from)) {
        head(run, out);
        content(run, ev->text, ev->n_text, c->d_thinking.data, c->d_thinking.len, from, to, out);
        if (lp.len) {
            hl_buf_puts(out, "\"logprobs\":[");
            hl_buf_append(out, lp.data, lp.len);
            hl_buf_puts(out, "],");
        }
        hl_buf_puts(out, "\"done\":false}\n");
    } else if (ev->type == HL_EVENT_DONE) {
        head(run, out);
        content(run, ev->text ? ev->text : "", ev->n_text, c->d_thinking.data, c->d_thinking.len, from, to, out);
        final_fields(run, out);
    }
    hl_buf_free(&lp);
}

static int pull(srv_stream *st, void *ctx, hl_buf *out) {
    srv_run *run = ctx;
    (void)st;
    if (!srv_run_drain(run, on_event, out)) return 0;
    if (run->error) {
        hl_buf_puts(out, "{\"error\":");
        hl_json_escape(out, run->errmsg, strlen(run->errmsg));
        hl_buf_puts(out, "}\n");
        return 1;
    }
    if (!run->g.stream) {
        const srv_choice *c0 = &run->choices[0];
        head(run, out);
        content(run, c0->text.data ? c0->text.data : "", c0->text.len, c0->thinking.data, c0->thinking.len, 0, c0->n_calls, out);
        if (run->g.logprobs) {
            hl_buf_puts(out, "\"logprobs\":[");
            hl_buf_append(out, run->choices[0].logprobs.data ? run->choices[0].logprobs.data : "", run->choices[0].logprobs.len);
            hl_buf_puts(out, "],");
        }
        final_fields(run, out);
    }
    return 1;
}

static int route_gen(srv_req *r, srv_api api) {
    srv_gen g;
    hl_err err = {0};
    int rc = srv_parse_ollama(api, r->body.data ? r->body.data : "", r->body.len, &g, &err);
    if (rc) {
        srv_gen_free(&g);
        return srv_reply_error(r, srv_status_of(rc == HL_ENOENT ? HL_EINVAL : rc), err.msg);
    }
    return srv_gen_start(r, &g, pull, g.stream ? "application/x-ndjson" : "application/json; charset=utf-8");
}

/* ---- model listing -------------------------------------------------------- */

static void details(hl_jw *w, const char *family, const char *params, const char *quant) {
    hl_jw_key(w, "details");
    hl_jw_obj_begin(w);
    hl_jw_key(w, "parent_model"); hl_jw_str(w, "");
    hl_jw_key(w, "format"); hl_jw_str(w, "gguf");
    hl_jw_key(w, "family"); hl_jw_str(w, family);
    hl_jw_key(w, "families");
    hl_jw_arr_begin(w);
    if (*family) hl_jw_str(w, family);
    hl_jw_arr_end(w);
    hl_jw_key(w, "parameter_size"); hl_jw_str(w, params);
    hl_jw_key(w, "quantization_level"); hl_jw_str(w, quant);
    hl_jw_obj_end(w);
}

static void info_details(hl_jw *w, const store_info *i) {
    char ps[32];
    store_human_params(i->n_params, ps, sizeof ps);
    details(w, i->family[0] ? i->family : i->arch, i->n_params ? ps : "", i->quant);
}

static int route_tags(srv_req *r) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "models");
    hl_jw_arr_begin(&w);
    store_info *list = NULL;
    size_t n = 0;
    hl_err err;
    if (r->srv->st && store_list(r->srv->st, &list, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            char ts[64];
            srv_iso_time(ts, sizeof ts, list[i].modified * 1000000000ll);
            hl_jw_obj_begin(&w);
            hl_jw_key(&w, "name"); hl_jw_str(&w, list[i].name);
            hl_jw_key(&w, "model"); hl_jw_str(&w, list[i].name);
            hl_jw_key(&w, "modified_at"); hl_jw_str(&w, ts);
            hl_jw_key(&w, "size"); hl_jw_int(&w, list[i].size);
            hl_jw_key(&w, "digest"); hl_jw_str(&w, list[i].digest);
            info_details(&w, &list[i]);
            store_model sm = {0};
            hl_err e2;
            if (store_load(r->srv->st, list[i].name, &sm, &e2) == 0) srv_put_capabilities(&r->srv->caps, &w, sm.template_text, sm.model_path);
            store_model_free(&sm);
            hl_jw_obj_end(&w);
        }
        free(list);
    }
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    return srv_reply_json(r, 200, &b);
}

typedef struct ps_ctx {
    hl_jw *w;
} ps_ctx;

static void gguf_details(hl_jw *w, const hl_loaded *lm) {
    const gguf_file *f = hl_model_gguf(lm->model);
    gguf_str s;
    char arch[64] = "";
    if (gguf_get_str(f, "general.architecture", &s) == 0) snprintf(arch, sizeof arch, "%.*s", (int)s.len, s.ptr);
    details(w, arch, "", "");
}

static void ps_one(void *ctx, srv_model *m) {
    hl_jw *w = ((ps_ctx *)ctx)->w;
    char ts[64];
    if (m->expires_wall) srv_iso_time(ts, sizeof ts, m->expires_wall * 1000000000ll);
    else snprintf(ts, sizeof ts, "9999-12-31T23:59:59Z"); /* keep_alive < 0: never */
    hl_jw_obj_begin(w);
    hl_jw_key(w, "name"); hl_jw_str(w, m->name);
    hl_jw_key(w, "model"); hl_jw_str(w, m->name);
    hl_jw_key(w, "size"); hl_jw_int(w, m->size_bytes);
    hl_jw_key(w, "digest"); hl_jw_str(w, m->from_store ? m->sm.info.digest : "");
    if (m->from_store) info_details(w, &m->sm.info);
    else gguf_details(w, m->lm);
    hl_jw_key(w, "expires_at"); hl_jw_str(w, ts);
    hl_jw_key(w, "size_vram"); hl_jw_int(w, m->vram_bytes);
    hl_jw_key(w, "context_length"); hl_jw_int(w, hl_engine_max_ctx(m->eng));
    hl_jw_obj_end(w);
}

static int route_ps(srv_req *r) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "models");
    hl_jw_arr_begin(&w);
    ps_ctx pc = {&w};
    srv_models_each(&r->srv->models, ps_one, &pc);
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    return srv_reply_json(r, 200, &b);
}

/* model_info: the GGUF's scalar metadata (arrays are skipped, as Ollama does
 * without verbose), plus general.parameter_count summed over the tensors when
 * the file does not carry it (Ollama reports it too). The tensors' bytes are
 * returned for the top-level "weights_size", which Ollama's reply lacks: the
 * CLI's hardware-fit line (show) needs it with the head counts. */
/* Writes model_info. */
/* model_info from the GGUF at path; returns its tensor bytes (-1: unreadable)
 * and its layers in *n_layer (0: unknown) */
static int64_t model_info(hl_jw *w, const char *path, int32_t *n_layer) {
    gguf_file *f = NULL;
    int64_t weights = -1;
    *n_layer = 0;
    hl_jw_key(w, "model_info");
    hl_jw_obj_begin(w);
    if (path && gguf_open(&f, path, NULL) == 0) {
        for (int64_t i = 0; i < gguf_n_kv(f); i++) {
            const gguf_kv *kv = gguf_kv_at(f, i);
            const char *k = gguf_kv_key(kv);
            if (!strncmp(k, "tokenizer.", 10)) continue;
            gguf_str s;
            int64_t iv;
            double dv;
            int bv;
            if (gguf_get_str(f, k, &s) == 0) { hl_jw_key(w, k); hl_jw_strn(w, s.ptr, s.len); }
            else if (gguf_get_int(f, k, &iv) == 0) { hl_jw_key(w, k); hl_jw_int(w, iv); }
            else if (gguf_get_float(f, k, &dv) == 0) { hl_jw_key(w, k); hl_jw_double(w, dv); }
            else if (gguf_get_bool(f, k, &bv) == 0) { hl_jw_key(w, k); hl_jw_bool(w, bv); }
        }
        int64_t params = 0;
        weights = 0;
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            int64_t ne = 1;
            for (uint32_t d = 0; d < t->n_dims; d++) ne *= t->ne[d];
            params += ne;
            weights += (int64_t)t->size;
        }
        if (!gguf_find(f, "general.parameter_count")) { hl_jw_key(w, "general.parameter_count"); hl_jw_int(w, params); }
        gguf_str arch;
        int64_t blocks;
        char key[160];
        if (gguf_get_str(f, "general.architecture", &arch) == 0) {
            snprintf(key, sizeof key, "%.*s.block_count", (int)(arch.len < 128 ? arch.len : 128), arch.ptr);
            if (gguf_get_int(f, key, &blocks) == 0 && blocks > 0 && blocks < (1 << 20)) *n_layer = (int32_t)blocks;
        }
        gguf_close(f);
    }
    hl_jw_obj_end(w);
    return weights;
}

static int route_show(srv_req *r) {
    struct json_object *root, *v;
    hl_err err = {0};
    if (srv_json_parse(r->body.data ? r->body.data : "", r->body.len, &root, &err)) return srv_reply_error(r, 400, err.msg);
    const char *name = NULL;
    if ((json_object_object_get_ex(root, "model", &v) || json_object_object_get_ex(root, "name", &v)) &&
        json_object_is_type(v, json_type_string))
        name = json_object_get_string(v);
    if (!name || !*name) {
        json_object_put(root);
        return srv_reply_error(r, 400, "model is required");
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    char key[4096];
    int is_path = 0;
    store_model sm = {0};
    int rc = srv_model_key(name, key, sizeof key, &is_path, &err);
    if (!rc && !is_path) rc = r->srv->st ? store_load(r->srv->st, name, &sm, &err) : HL_ENOENT;
    if (rc) {
        char msg[600];
        snprintf(msg, sizeof msg, "model '%s' not found", name); /* name lives in root */
        json_object_put(root);
        return srv_reply_error(r, 404, msg);
    }
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    char *mf = is_path ? NULL : store_modelfile_of(&sm, sm.info.name);
    hl_jw_key(&w, "license"); hl_jw_str(&w, sm.license ? sm.license : "");
    hl_jw_key(&w, "modelfile");
    if (mf) hl_jw_str(&w, mf);
    else {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "FROM %s\n", key);
        hl_jw_str(&w, tmp);
    }
    free(mf);
    hl_buf params = {0};
    struct json_object *pj = NULL;
    srv_opts mf_opts = {0}; /* the Modelfile's parameters as a load reads them (placement below) */
    int have_opts = 0;
    if (sm.params_json && srv_json_parse(sm.params_json, strlen(sm.params_json), &pj, NULL) == 0) {
        have_opts = srv_parse_options(pj, &mf_opts, NULL) == 0;
        json_object_object_foreach(pj, pk, pv) {
            if (json_object_is_type(pv, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(pv); i++)
                    hl_buf_printf(&params, "%-30s %s\n", pk, json_object_to_json_string_ext(json_object_array_get_idx(pv, i), JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            } else {
                hl_buf_printf(&params, "%-30s %s\n", pk, json_object_to_json_string_ext(pv, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            }
        }
        json_object_put(pj);
    }
    hl_jw_key(&w, "parameters"); hl_jw_str(&w, params.data ? params.data : "");
    hl_buf_free(&params);
    hl_jw_key(&w, "template"); hl_jw_str(&w, sm.template_text ? sm.template_text : "");
    if (sm.system) { hl_jw_key(&w, "system"); hl_jw_str(&w, sm.system); }
    if (!is_path) {
        info_details(&w, &sm.info);
        char ts[64];
        srv_iso_time(ts, sizeof ts, sm.info.modified * 1000000000ll);
        hl_jw_key(&w, "modified_at"); hl_jw_str(&w, ts);
    } else {
        details(&w, "", "", "");
    }
    int32_t n_layer = 0;
    int64_t weights = model_info(&w, is_path ? key : sm.model_path, &n_layer);
    if (weights >= 0) { hl_jw_key(&w, "weights_size"); hl_jw_int(&w, weights); }
    /* ours: the backend the model runs on, or would (show's backend row) */
    char placed[512];
    srv_models_placement(&r->srv->models, key, have_opts ? &mf_opts : NULL, weights, n_layer, placed, sizeof placed);
    hl_jw_key(&w, "backend"); hl_jw_str(&w, placed);
    srv_opts_free(&mf_opts);
    /* ours too: how this server stores the KV cache (show's memory estimate) */
    hl_jw_key(&w, "kv_cache_type");
    hl_jw_str(&w, r->srv->cfg.kv_type == HL_TYPE_Q8_0 ? "q8_0" : "f16");
    srv_put_capabilities(&r->srv->caps, &w, sm.template_text, is_path ? key : sm.model_path);
    hl_jw_obj_end(&w);
    store_model_free(&sm);
    json_object_put(root);
    return srv_reply_json(r, 200, &b);
}

int srv_route_ollama(srv_req *r) {
    const char *u = r->url, *m = r->method;
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
    if (!strcmp(u, "/api/generate") && post) return route_gen(r, SRV_OLLAMA_GENERATE);
    if (!strcmp(u, "/api/chat") && post) return route_gen(r, SRV_OLLAMA_CHAT);
    if (!strcmp(u, "/api/tags") && get) return route_tags(r);
    if (!strcmp(u, "/api/ps") && get) return route_ps(r);
    if (!strcmp(u, "/api/show") && post) return route_show(r);
    if (!strcmp(u, "/api/version") && get) {
        hl_buf b = {0};
        hl_buf_printf(&b, "{\"version\":\"%s\"}", r->srv->cfg.version);
        return srv_reply_json(r, 200, &b);
    }
    if (!strcmp(u, "/api/generate") || !strcmp(u, "/api/chat") || !strcmp(u, "/api/tags") || !strcmp(u, "/api/ps") ||
        !strcmp(u, "/api/show") || !strcmp(u, "/api/version"))
        return srv_reply_error(r, 405, "method not allowed");
    return -1;
}
