/* Tool calling and thinking on the generation routes: the request fields
 * (OpenAI tools / tool_choice / parallel_tool_calls / reasoning_effort /
 * chat_template_kwargs, Ollama tools / think, and messages' tool calls and
 * tool results), the check that the model's template can do what was asked,
 * the per-choice output splitter (chat/outparse.h) chosen by the template's
 * family, and the JSON the routes write for calls. A call's id is derived
 * from the response id and the call's index, so it is unique per response.
 *
 * tool_choice required / named are enforced by a grammar (the output must be
 * calls matching the tools' parameter schemas, in the family's syntax):
 * force_calls has tool_grammar.c build it from the family's row of
 * chat/callsyntax.c, and the request's logits processor then applies it like
 * any structured output. */
#include "server/internal.h"
#include "base/json_write.h"
#include "base/log.h"
#include "chat/outparse.h"
#include "gotmpl/gotmpl.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOOLS 128

static struct json_object *get(struct json_object *o, const char *k) {
    struct json_object *v = NULL;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int is_str(struct json_object *v) { return v && json_object_is_type(v, json_type_string); }

static char *json_text(struct json_object *v) {
    const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return strdup(s ? s : "null");
}

/* ---- request fields ---------------------------------------------------------- */

/* tools: [{type: "function", function: {name, description?, parameters?}}] */
static int parse_tools(struct json_object *v, srv_gen *g, hl_err *err) {
    if (json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_array)) return hl_err_set(err, HL_EINVAL, "\"tools\" must be an array");
    size_t n = json_object_array_length(v);
    if (!n) return 0;
    if (n > MAX_TOOLS) return hl_err_set(err, HL_ERANGE, "too many tools (%zu; at most %d)", n, MAX_TOOLS);
    for (size_t i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(v, i), *type = get(t, "type"), *f = get(t, "function");
        if (!json_object_is_type(t, json_type_object)) return hl_err_set(err, HL_EINVAL, "tools[%zu] must be an object", i);
        if (type && (!is_str(type) || strcmp(json_object_get_string(type), "function")))
            return hl_err_set(err, HL_EINVAL, "tools[%zu].type must be \"function\"", i);
        if (!f || !json_object_is_type(f, json_type_object) || !is_str(get(f, "name")) || !json_object_get_string_len(get(f, "name")))
            return hl_err_set(err, HL_EINVAL, "tools[%zu].function.name must be a non-empty string", i);
        struct json_object *p = get(f, "parameters");
        if (p && !json_object_is_type(p, json_type_object) && !json_object_is_type(p, json_type_null))
            return hl_err_set(err, HL_EINVAL, "tools[%zu].function.parameters must be a JSON Schema object", i);
    }
    free(g->tools_json);
    g->tools_json = json_text(v);
    return g->tools_json ? 0 : hl_err_set(err, HL_ENOMEM, "out of memory");
}

static int tool_exists(const srv_gen *g, const char *name) {
    struct json_object *t = g->tools_json ? json_tokener_parse(g->tools_json) : NULL;
    int found = 0;
    for (size_t i = 0; t && i < json_object_array_length(t) && !found; i++)
        found = !strcmp(json_object_get_string(get(get(json_object_array_get_idx(t, i), "function"), "name")), name);
    json_object_put(t);
    return found;
}

static int parse_think_level(const char *s, srv_gen *g, const char *what, hl_err *err) {
    if (!strcmp(s, "low") || !strcmp(s, "medium") || !strcmp(s, "high")) {
        g->think_set = g->think = 1;
        snprintf(g->think_level, sizeof g->think_level, "%s", s);
        return 0;
    }
    if (!strcmp(s, "none")) {
        g->think_set = 1, g->think = 0;
        return 0;
    }
    return hl_err_set(err, HL_EINVAL, "%s must be %s\"low\", \"medium\" or \"high\"", what, !strcmp(what, "\"think\"") ? "true, false, " : "\"none\", ");
}

int srv_parse_oai_tool_key(const char *key, struct json_object *v, srv_gen *g, hl_err *err) {
    int rc;
    if (!strcmp(key, "tools")) {
        if (g->api != SRV_OAI_CHAT) return hl_err_set(err, HL_EINVAL, "\"tools\" is only accepted on /v1/chat/completions");
        return (rc = parse_tools(v, g, err)) ? rc : 1;
    }
    if (!strcmp(key, "tool_choice")) {
        if (is_str(v)) {
            const char *s = json_object_get_string(v);
            if (!strcmp(s, "none")) g->tool_choice = SRV_TOOLS_NONE;
            else if (!strcmp(s, "auto")) g->tool_choice = SRV_TOOLS_AUTO;
            else if (!strcmp(s, "required")) g->tool_choice = SRV_TOOLS_REQUIRED;
            else return hl_err_set(err, HL_EINVAL, "\"tool_choice\" must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
            return 1;
        }
        struct json_object *name = get(get(v, "function"), "name");
        if (!is_str(name)) return hl_err_set(err, HL_EINVAL, "\"tool_choice\" must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        free(g->tool_choice_name);
        g->tool_choice_name = strdup(json_object_get_string(name));
        g->tool_choice = SRV_TOOLS_NAMED;
        return g->tool_choice_name ? 1 : hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    if (!strcmp(key, "parallel_tool_calls")) {
        if (!json_object_is_type(v, json_type_boolean)) return hl_err_set(err, HL_EINVAL, "\"parallel_tool_calls\" must be true or false");
        g->parallel_tool_calls = json_object_get_boolean(v);
        return 1;
    }
    if (!strcmp(key, "reasoning_effort")) {
        if (!is_str(v)) return hl_err_set(err, HL_EINVAL, "\"reasoning_effort\" must be a string");
        return (rc = parse_think_level(json_object_get_string(v), g, "\"reasoning_effort\"", err)) ? rc : 1;
    }
    if (!strcmp(key, "chat_template_kwargs")) {
        if (!json_object_is_type(v, json_type_object)) return hl_err_set(err, HL_EINVAL, "\"chat_template_kwargs\" must be an object");
        struct json_object *et = get(v, "enable_thinking");
        if (et && json_object_is_type(et, json_type_boolean)) g->think_set = 1, g->think = json_object_get_boolean(et);
        free(g->tmpl_vars_json);
        g->tmpl_vars_json = json_text(v);
        return g->tmpl_vars_json ? 1 : hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    return 0;
}

int srv_parse_ollama_tools(struct json_object *root, srv_gen *g, hl_err *err) {
    struct json_object *v;
    int rc;
    if (json_object_object_get_ex(root, "tools", &v) && !json_object_is_type(v, json_type_null)) {
        if (g->api != SRV_OLLAMA_CHAT && json_object_is_type(v, json_type_array) && json_object_array_length(v))
            return hl_err_set(err, HL_EINVAL, "\"tools\" is only accepted on /api/chat");
        if ((rc = parse_tools(v, g, err))) return rc;
    }
    if (json_object_object_get_ex(root, "think", &v) && !json_object_is_type(v, json_type_null)) {
        if (json_object_is_type(v, json_type_boolean)) g->think_set = 1, g->think = json_object_get_boolean(v);
        else if (is_str(v)) {
            if ((rc = parse_think_level(json_object_get_string(v), g, "\"think\"", err))) return rc;
        } else return hl_err_set(err, HL_EINVAL, "\"think\" must be true, false, \"low\", \"medium\" or \"high\"");
    }
    return 0;
}

static int opt_string(struct json_object *m, const char *key, char **out, hl_err *err) {
    struct json_object *v = get(m, key);
    if (!v || json_object_is_type(v, json_type_null)) return 0;
    if (!is_str(v)) return hl_err_set(err, HL_EINVAL, "\"%s\" must be a string", key);
    free(*out);
    *out = strdup(json_object_get_string(v));
    return *out ? 0 : hl_err_set(err, HL_ENOMEM, "out of memory");
}

int srv_parse_msg_tools(struct json_object *m, srv_msg *msg, int oai, hl_err *err) {
    struct json_object *calls = get(m, "tool_calls");
    int rc;
    if (calls && !json_object_is_type(calls, json_type_null)) {
        if (!json_object_is_type(calls, json_type_array)) return hl_err_set(err, HL_EINVAL, "\"tool_calls\" must be an array");
        for (size_t i = 0; i < json_object_array_length(calls); i++) {
            struct json_object *c = json_object_array_get_idx(calls, i), *f = get(c, "function"), *a = get(f, "arguments");
            if (!is_str(get(f, "name"))) return hl_err_set(err, HL_EINVAL, "tool_calls[%zu].function.name must be a string", i);
            if (a && !json_object_is_type(a, json_type_null) && !is_str(a) && !json_object_is_type(a, json_type_object))
                return hl_err_set(err, HL_EINVAL, "tool_calls[%zu].function.arguments must be %s", i,
                                  oai ? "a JSON string" : "an object");
        }
        if (json_object_array_length(calls) && !(msg->tool_calls = json_text(calls))) return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    if ((rc = opt_string(m, "tool_call_id", &msg->tool_call_id, err))) return rc;
    if ((rc = opt_string(m, "name", &msg->name, err))) return rc;
    if ((rc = opt_string(m, "tool_name", &msg->name, err))) return rc;
    if ((rc = opt_string(m, "reasoning_content", &msg->thinking, err))) return rc;
    if ((rc = opt_string(m, "thinking", &msg->thinking, err))) return rc;
    return 0;
}

void srv_msg_tools_free(srv_msg *m) {
    free(m->tool_calls);
    free(m->tool_call_id);
    free(m->name);
    free(m->thinking);
}

void srv_gen_tools_free(srv_gen *g) {
    free(g->tools_json);
    free(g->tool_choice_name);
    free(g->tmpl_vars_json);
}

/* ---- what the model can do ------------------------------------------------------ */

unsigned srv_template_caps(const char *go_template, const char *jinja_src) {
    if (go_template && *go_template) {
        unsigned c = 0;
        gotmpl *t;
        hl_err err;
        if (gotmpl_parse(&t, go_template, strlen(go_template), &err) == 0) {
            if (gotmpl_uses(t, "tools")) c |= CHAT_CAP_TOOLS;
            gotmpl_free(t);
        }
        if (strstr(go_template, "<think>")) c |= CHAT_CAP_THINKING;
        return c;
    }
    return chat_template_caps(jinja_src);
}

/* ---- the output splitter ---------------------------------------------------------- */

int srv_out_check(srv_run *run, const char *go_template, hl_err *err) {
    srv_gen *g = &run->g;
    const hl_loaded *lm = run->model->lm;
    int chat = g->api == SRV_OLLAMA_CHAT || g->api == SRV_OAI_CHAT;
    unsigned caps = srv_template_caps(go_template, lm->tmpl_src);
    int want_tools = chat && g->tools_json && g->tool_choice != SRV_TOOLS_NONE;
    if (g->tool_choice == SRV_TOOLS_NAMED && !tool_exists(g, g->tool_choice_name)) {
        snprintf(g->err_param, sizeof g->err_param, "tool_choice");
        return hl_err_set(err, HL_EINVAL, "\"tool_choice\" names function \"%s\", which is not among \"tools\"", g->tool_choice_name);
    }
    if ((g->tool_choice == SRV_TOOLS_REQUIRED || g->tool_choice == SRV_TOOLS_NAMED) && !g->tools_json) {
        snprintf(g->err_param, sizeof g->err_param, "tool_choice");
        return hl_err_set(err, HL_EINVAL, "\"tool_choice\" needs \"tools\"");
    }
    if (want_tools && !(caps & CHAT_CAP_TOOLS)) {
        snprintf(g->err_param, sizeof g->err_param, "tools");
        return hl_err_set(err, HL_EINVAL, "%s does not support tools (its chat template has no tools)", g->model);
    }
    if (g->think_set && g->think && !(caps & CHAT_CAP_THINKING) && (g->api == SRV_OLLAMA_CHAT || g->api == SRV_OLLAMA_GENERATE))
        return hl_err_set(err, HL_EINVAL, "\"%s\" does not support thinking", g->model);
    if (want_tools && (g->tool_choice == SRV_TOOLS_REQUIRED || g->tool_choice == SRV_TOOLS_NAMED) && g->grammar) {
        snprintf(g->err_param, sizeof g->err_param, "tool_choice");
        return hl_err_set(err, HL_EINVAL, "\"tool_choice\": \"%s\" constrains the output already: it cannot be combined "
                                          "with response_format, format or grammar",
                          g->tool_choice == SRV_TOOLS_NAMED ? g->tool_choice_name : "required");
    }
    return 0;
}

/* tool_choice required / named: the output must be tool calls in the
 * family's syntax (chat_call_syntax_of), each matching its function's
 * parameters (srv_tool_gbnf), several when parallel_tool_calls allows. The
 * grammar becomes the request's (srv_structured_proc attaches it at
 * submit), so the splitter then parses calls that cannot fail to parse. */
static int force_calls(srv_gen *g, const chat_outparse_cfg *cfg, const char *tmpl_src, hl_err *err) {
    chat_call_syntax syn;
    struct json_object *tools = g->tools_json ? json_tokener_parse(g->tools_json) : NULL;
    hl_buf b = {0};
    if (chat_call_syntax_of(cfg, tmpl_src, &syn, err)) {
        json_object_put(tools);
        snprintf(g->err_param, sizeof g->err_param, "tool_choice");
        return hl_err_set(err, HL_ENOTSUP, "\"tool_choice\": \"%s\" needs the model's tool-call format, which its template does not show: use \"auto\"",
                          g->tool_choice == SRV_TOOLS_NAMED ? g->tool_choice_name : "required");
    }
    int rc = tools ? 0 : hl_err_set(err, HL_EINVAL, "\"tool_choice\" needs \"tools\"");
    /* a prompt that left thinking open (DeepSeek-R1's): close it first, so the calls are the answer */
    hl_buf lead = {0};
    if (cfg->in_thinking && cfg->think_close) hl_buf_printf(&lead, "%s\n\n", cfg->think_close);
    if (!rc) rc = srv_tool_gbnf(tools, g->tool_choice == SRV_TOOLS_NAMED ? g->tool_choice_name : NULL, g->parallel_tool_calls,
                                lead.data, &syn, &b, err);
    hl_buf_free(&lead);
    if (!rc) rc = hl_grammar_parse(&g->grammar, b.data, b.len, err);
    if (rc) {
        snprintf(g->err_param, sizeof g->err_param, "tools");
        hl_err_prefix(err, "tools: ");
    }
    hl_debug("tool_choice %s: %s grammar of %zu bytes", g->tool_choice == SRV_TOOLS_NAMED ? g->tool_choice_name : "required",
             chat_tool_format_name(cfg->tools), b.len);
    hl_buf_free(&b);
    json_object_put(tools);
    return rc;
}

int srv_out_setup(srv_run *run, const char *go_template, hl_err *err) {
    srv_gen *g = &run->g;
    const hl_loaded *lm = run->model->lm;
    int chat = g->api == SRV_OLLAMA_CHAT || g->api == SRV_OAI_CHAT;
    int go = go_template && *go_template;
    int want_tools = chat && g->tools_json && g->tool_choice != SRV_TOOLS_NONE;
    chat_outparse_cfg cfg = {0};
    char *prefix = NULL, *suffix = NULL;
    if (go) {
        if (want_tools) {
            hl_err e2;
            if (gotmpl_tool_markers(go_template, strlen(go_template), &prefix, &suffix, &e2) == 0) {
                cfg.tools = CHAT_TOOLS_PREFIX;
                cfg.prefix = prefix;
                cfg.suffix = suffix;
            }
        }
        if (strstr(go_template, "<think>")) cfg.think_open = "<think>", cfg.think_close = "</think>";
    } else {
        cfg = lm->outparse;
        if (!want_tools) cfg.tools = CHAT_TOOLS_NONE; /* harmony still splits its channels */
    }
    if (g->think_set && !g->think) cfg.think_open = cfg.think_close = NULL; /* think false: all is content */
    cfg.in_thinking = cfg.think_open && chat_prompt_opens_thinking(run->prompt_text, cfg.think_open, cfg.think_close);
    int rc = 0;
    if (want_tools && (g->tool_choice == SRV_TOOLS_REQUIRED || g->tool_choice == SRV_TOOLS_NAMED) &&
        (rc = force_calls(g, &cfg, go ? NULL : lm->tmpl_src, err))) {
        free(prefix);
        free(suffix);
        return rc;
    }
    struct json_object *defs = g->tools_json ? json_tokener_parse(g->tools_json) : NULL;
    cfg.tool_defs = defs;
    if (cfg.tools != CHAT_TOOLS_NONE || cfg.think_open || cfg.harmony) {
        hl_debug("output split: tools %s%s%s, thinking %s%s", chat_tool_format_name(cfg.tools), cfg.prefix ? " prefix " : "",
                 cfg.prefix ? cfg.prefix : "", cfg.harmony ? "harmony channels" : cfg.think_open ? cfg.think_open : "none",
                 cfg.in_thinking ? " (open)" : "");
        for (int i = 0; i < g->n && !rc; i++) rc = chat_outparse_new(&run->choices[i].op, &cfg, err);
    }
    json_object_put(defs);
    free(prefix);
    free(suffix);
    return rc;
}

static void add_calls(srv_choice *c, chat_out *o, int parallel) {
    for (size_t i = 0; i < o->n_calls; i++) {
        if (!parallel && c->n_calls >= 1) { /* parallel_tool_calls false: the first call only */
            free(o->calls[i].name);
            free(o->calls[i].arguments);
            continue;
        }
        if (c->n_calls == c->cap_calls) {
            size_t nc = c->cap_calls ? c->cap_calls * 2 : 4;
            chat_tool_call *v = realloc(c->calls, nc * sizeof *v);
            if (!v) {
                free(o->calls[i].name);
                free(o->calls[i].arguments);
                continue;
            }
            c->calls = v, c->cap_calls = nc;
        }
        c->calls[c->n_calls++] = o->calls[i];
    }
    o->n_calls = 0; /* moved */
}

void srv_out_event(srv_run *run, srv_choice *c, hl_event *ev) {
    hl_buf_reset(&c->d_content);
    hl_buf_reset(&c->d_thinking);
    if (!c->op) return;
    chat_out o = {0};
    hl_err err;
    if (ev->n_text) chat_outparse_feed(c->op, ev->text, ev->n_text, &o, &err);
    if (ev->type == HL_EVENT_DONE) chat_outparse_finish(c->op, &o, &err);
    hl_buf_append(&c->d_content, o.content.data ? o.content.data : "", o.content.len);
    hl_buf_append(&c->d_thinking, o.thinking.data ? o.thinking.data : "", o.thinking.len);
    hl_buf_append(&c->thinking, o.thinking.data ? o.thinking.data : "", o.thinking.len);
    add_calls(c, &o, run->g.parallel_tool_calls);
    chat_out_free(&o);
    ev->text = c->d_content.data ? c->d_content.data : "";
    ev->n_text = c->d_content.len;
}

void srv_choice_out_free(srv_choice *c) {
    chat_outparse_free(c->op);
    c->op = NULL;
    for (size_t i = 0; i < c->n_calls; i++) {
        free(c->calls[i].name);
        free(c->calls[i].arguments);
    }
    free(c->calls);
    c->calls = NULL;
    hl_buf_free(&c->thinking);
    hl_buf_free(&c->d_content);
    hl_buf_free(&c->d_thinking);
}

const char *srv_finish_reason(const srv_choice *c, const char *done) {
    if (c->n_calls && (!done || !strcmp(done, "stop"))) return "tool_calls";
    return done ? done : "stop";
}

/* ---- writing calls ------------------------------------------------------------------ */

static void call_id(const srv_run *run, size_t k, char *out, size_t cap) {
    /* unique per response: the response id's hash with the call's index */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = run->id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h ^= (uint64_t)k * 0x9E3779B97F4A7C15ull;
    snprintf(out, cap, "call_%016llx%02zx", (unsigned long long)h, k & 0xff);
}

void srv_put_oai_call(const srv_run *run, const srv_choice *c, size_t k, int part, hl_buf *out) {
    char id[48];
    call_id(run, k, id, sizeof id);
    hl_buf_putc(out, '{');
    if (part) hl_buf_printf(out, "\"index\":%zu,", k);
    if (part != 2) {
        hl_buf_printf(out, "\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", id);
        hl_json_escape(out, c->calls[k].name, strlen(c->calls[k].name));
        hl_buf_puts(out, ",\"arguments\":");
    } else hl_buf_puts(out, "\"function\":{\"arguments\":");
    if (part == 1) hl_buf_puts(out, "\"\"");
    else hl_json_escape(out, c->calls[k].arguments, strlen(c->calls[k].arguments));
    hl_buf_puts(out, "}}");
}

void srv_put_ollama_calls(const srv_choice *c, size_t from, size_t to, hl_buf *out) {
    for (size_t k = from; k < to; k++) {
        if (k > from) hl_buf_putc(out, ',');
        hl_buf_printf(out, "{\"function\":{\"index\":%zu,\"name\":", k);
        hl_json_escape(out, c->calls[k].name, strlen(c->calls[k].name));
        hl_buf_puts(out, ",\"arguments\":");
        hl_buf_puts(out, c->calls[k].arguments); /* a JSON object already */
        hl_buf_puts(out, "}}");
    }
}
