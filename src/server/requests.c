/* Request bodies → srv_gen: strict JSON parsing (json-c, UTF-8 validated,
 * depth-limited), Ollama's fields and "options" (every sampling key, num_ctx,
 * num_predict, seed, stop, speculative, num_draft, draft_model; unknown keys warned
 * about and ignored), and the
 * OpenAI chat/completions fields (unsupported ones refused with the parameter
 * named). Pure functions of the bytes, so the fuzzer can drive them. */
#include "server/internal.h"
#include "base/log.h"
#include "base/utf8.h"

#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int srv_json_parse(const char *body, size_t n, struct json_object **out, hl_err *err) {
    *out = NULL;
    if (n == 0) return hl_err_set(err, HL_EINVAL, "missing request body");
    if (n > (size_t)INT32_MAX) return hl_err_set(err, HL_ERANGE, "request body too large");
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) return hl_err_set(err, HL_ENOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)n);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t used = (size_t)json_tokener_get_parse_end(tok);
    int rc = 0;
    if (je == json_tokener_continue) rc = hl_err_set(err, HL_EINVAL, "invalid JSON: unexpected end of the body");
    else if (je != json_tokener_success || !o)
        rc = hl_err_set(err, HL_EINVAL, "invalid JSON at byte %zu: %s", used, json_tokener_error_desc(je));
    else {
        while (used < n && (body[used] == ' ' || body[used] == '\n' || body[used] == '\r' || body[used] == '\t')) used++;
        if (used != n) rc = hl_err_set(err, HL_EINVAL, "invalid JSON: unexpected data after the value at byte %zu", used);
        else if (!json_object_is_type(o, json_type_object)) rc = hl_err_set(err, HL_EINVAL, "the request body must be a JSON object");
    }
    json_tokener_free(tok);
    if (rc) {
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

void srv_opts_free(srv_opts *o) {
    for (int i = 0; i < o->n_stops; i++) free(o->stops[i]);
    o->n_stops = 0;
}

void srv_opts_merge(srv_opts *d, const srv_opts *s) {
#define M(bit, f) if (s->set & bit) d->f = s->f
    M(SRV_O_TEMP, s.temperature); M(SRV_O_TOPK, s.top_k); M(SRV_O_TOPP, s.top_p); M(SRV_O_MINP, s.min_p);
    M(SRV_O_TYPP, s.typical_p); M(SRV_O_REPP, s.repeat_penalty); M(SRV_O_REPN, s.repeat_last_n);
    M(SRV_O_PRES, s.presence_penalty); M(SRV_O_FREQ, s.frequency_penalty); M(SRV_O_NPRED, num_predict);
    M(SRV_O_NCTX, num_ctx); M(SRV_O_SPEC, speculative); M(SRV_O_NDRAFT, num_draft); M(SRV_O_NGPU, num_gpu);
#undef M
    if (s->set & SRV_O_DRAFT) memcpy(d->draft_model, s->draft_model, sizeof d->draft_model);
    if (s->set & SRV_O_SEED) {
        d->s.seed = s->s.seed;
        d->s.has_seed = s->s.has_seed;
    }
    if (s->set & SRV_O_STOP) {
        srv_opts_free(d);
        for (int i = 0; i < s->n_stops; i++) {
            d->stops[i] = strdup(s->stops[i]);
            if (d->stops[i]) d->n_stops++;
        }
    }
    d->set |= s->set;
}

static int get_num(struct json_object *v, const char *key, double *out, hl_err *err) {
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return hl_err_set(err, HL_EINVAL, "option \"%s\" must be a number", key);
    double d = json_object_get_double(v);
    if (!isfinite(d)) return hl_err_set(err, HL_EINVAL, "option \"%s\" must be finite", key);
    *out = d;
    return 0;
}

static int get_int(struct json_object *v, const char *key, int64_t lo, int64_t hi, int64_t *out, hl_err *err) {
    int64_t x;
    if (json_object_is_type(v, json_type_int)) {
        x = json_object_get_int64(v);
    } else if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9e15) return hl_err_set(err, HL_EINVAL, "\"%s\" must be an integer", key);
        x = (int64_t)d;
    } else {
        return hl_err_set(err, HL_EINVAL, "\"%s\" must be an integer", key);
    }
    if (x < lo || x > hi) return hl_err_set(err, HL_ERANGE, "\"%s\" must be between %lld and %lld", key, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

/* stop: a string or an array of strings */
static int parse_stops(struct json_object *v, srv_opts *o, int max, hl_err *err) {
    srv_opts_free(o);
    if (json_object_is_type(v, json_type_null)) {
        o->set |= SRV_O_STOP;
        return 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        if (json_object_get_string_len(v) > HL_STOP_MAX_LEN) return hl_err_set(err, HL_ERANGE, "a stop string is longer than %d bytes", HL_STOP_MAX_LEN);
        if (json_object_get_string_len(v)) o->stops[o->n_stops++] = strdup(json_object_get_string(v));
        o->set |= SRV_O_STOP;
        return 0;
    }
    if (!json_object_is_type(v, json_type_array)) return hl_err_set(err, HL_EINVAL, "\"stop\" must be a string or an array of strings");
    size_t n = json_object_array_length(v);
    if ((int)n > max || n > HL_STOP_MAX_STRINGS) return hl_err_set(err, HL_ERANGE, "\"stop\" has %zu strings; at most %d are allowed", n, max);
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(v, i);
        if (!json_object_is_type(s, json_type_string)) return hl_err_set(err, HL_EINVAL, "\"stop\" must hold only strings");
        if (json_object_get_string_len(s) > HL_STOP_MAX_LEN) return hl_err_set(err, HL_ERANGE, "a stop string is longer than %d bytes", HL_STOP_MAX_LEN);
        if (!json_object_get_string_len(s)) continue;
        char *d = strdup(json_object_get_string(s));
        if (!d) return hl_err_set(err, HL_ENOMEM, "out of memory");
        o->stops[o->n_stops++] = d;
    }
    o->set |= SRV_O_STOP;
    return 0;
}

/* keys Ollama accepts that have no effect here (llama.cpp runner knobs) */
static const char *const NOOP_KEYS[] = {"num_keep", "penalize_newline", "numa", "num_batch", "main_gpu",
                                         "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mmap", "use_mlock",
                                         "num_thread", "mirostat", "mirostat_tau", "mirostat_eta", "tfs_z", NULL};

int srv_parse_options(struct json_object *obj, srv_opts *o, hl_err *err) {
    if (!obj || json_object_is_type(obj, json_type_null)) return 0;
    if (!json_object_is_type(obj, json_type_object)) return hl_err_set(err, HL_EINVAL, "\"options\" must be an object");
    json_object_object_foreach(obj, key, v) {
        double d;
        int64_t x;
        int rc = 0;
        if (json_object_is_type(v, json_type_null)) continue;
#define FNUM(name, bit, field, lo, hi)                                                                          \
    if (!strcmp(key, name)) {                                                                                   \
        if ((rc = get_num(v, key, &d, err))) return rc;                                                         \
        if (d < (lo) || d > (hi)) return hl_err_set(err, HL_ERANGE, "option \"%s\" must be between %g and %g", key, (double)(lo), (double)(hi)); \
        o->field = (float)d;                                                                                    \
        o->set |= bit;                                                                                          \
        continue;                                                                                               \
    }
#define FINT(name, bit, field, lo, hi)                                                                          \
    if (!strcmp(key, name)) {                                                                                   \
        if ((rc = get_int(v, key, lo, hi, &x, err))) return rc;                                                 \
        o->field = (int32_t)x;                                                                                  \
        o->set |= bit;                                                                                          \
        continue;                                                                                               \
    }
        FNUM("temperature", SRV_O_TEMP, s.temperature, 0, 100)
        FINT("top_k", SRV_O_TOPK, s.top_k, -1, 1 << 30)
        FNUM("top_p", SRV_O_TOPP, s.top_p, 0, 1)
        FNUM("min_p", SRV_O_MINP, s.min_p, 0, 1)
        FNUM("typical_p", SRV_O_TYPP, s.typical_p, 0, 1)
        FNUM("repeat_penalty", SRV_O_REPP, s.repeat_penalty, 0, 100)
        FINT("repeat_last_n", SRV_O_REPN, s.repeat_last_n, -1, HL_SAMPLER_MAX_REPEAT_LAST_N)
        FNUM("presence_penalty", SRV_O_PRES, s.presence_penalty, -100, 100)
        FNUM("frequency_penalty", SRV_O_FREQ, s.frequency_penalty, -100, 100)
        FINT("num_predict", SRV_O_NPRED, num_predict, -2, 1 << 24)
        FINT("num_ctx", SRV_O_NCTX, num_ctx, 0, 1 << 24)
        FINT("num_draft", SRV_O_NDRAFT, num_draft, 0, HL_ENGINE_MAX_DRAFT)
        FINT("num_gpu", SRV_O_NGPU, num_gpu, -1, 1 << 20)
#undef FNUM
#undef FINT
        if (!strcmp(key, "seed")) {
            if ((rc = get_int(v, key, INT64_MIN, INT64_MAX, &x, err))) return rc;
            o->s.seed = (uint64_t)x;
            o->s.has_seed = x >= 0; /* Ollama: a negative seed means random */
            o->set |= SRV_O_SEED;
            continue;
        }
        if (!strcmp(key, "stop")) {
            if ((rc = parse_stops(v, o, HL_STOP_MAX_STRINGS, err))) return rc;
            continue;
        }
        if (!strcmp(key, "draft_model")) {
            if (!json_object_is_type(v, json_type_string))
                return hl_err_set(err, HL_EINVAL, "option \"draft_model\" must be a model name (a string)");
            if ((size_t)json_object_get_string_len(v) >= sizeof o->draft_model)
                return hl_err_set(err, HL_EINVAL, "option \"draft_model\" is too long");
            snprintf(o->draft_model, sizeof o->draft_model, "%s", json_object_get_string(v));
            o->set |= SRV_O_DRAFT;
            continue;
        }
        if (!strcmp(key, "speculative")) {
            if (!json_object_is_type(v, json_type_boolean)) return hl_err_set(err, HL_EINVAL, "option \"speculative\" must be true or false");
            o->speculative = json_object_get_boolean(v);
            o->set |= SRV_O_SPEC;
            continue;
        }
        int known = 0;
        for (int i = 0; NOOP_KEYS[i]; i++) known |= !strcmp(NOOP_KEYS[i], key);
        if (known) hl_debug("option \"%s\" has no effect in hyperlama", key);
        else hl_warn("invalid option provided: \"%s\" (ignored)", key);
    }
    return 0;
}

void srv_gen_free(srv_gen *g) {
    free(g->model);
    free(g->prompt);
    free(g->system);
    free(g->tmpl);
    free(g->suffix);
    for (size_t i = 0; i < g->n_msgs; i++) {
        free(g->msgs[i].role);
        free(g->msgs[i].content);
        srv_msg_tools_free(&g->msgs[i]);
    }
    free(g->msgs);
    srv_gen_tools_free(g);
    free(g->bias);
    free(g->context);
    srv_opts_free(&g->opts);
    hl_grammar_free(g->grammar);
    memset(g, 0, sizeof *g);
}

static int opt_str(struct json_object *root, const char *key, char **out, hl_err *err) {
    struct json_object *v;
    if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_string)) return hl_err_set(err, HL_EINVAL, "\"%s\" must be a string", key);
    free(*out);
    *out = strdup(json_object_get_string(v));
    return *out ? 0 : hl_err_set(err, HL_ENOMEM, "out of memory");
}

static int opt_bool(struct json_object *root, const char *key, int *out, hl_err *err) {
    struct json_object *v;
    if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_boolean)) return hl_err_set(err, HL_EINVAL, "\"%s\" must be true or false", key);
    *out = json_object_get_boolean(v);
    return 0;
}

/* Message content: a string, or (OpenAI) a list of parts of which only text is supported. */
static int content_text(struct json_object *c, char **out, int allow_parts, hl_err *err) {
    if (!c || json_object_is_type(c, json_type_null)) {
        *out = strdup("");
        return *out ? 0 : HL_ENOMEM;
    }
    if (json_object_is_type(c, json_type_string)) {
        *out = strdup(json_object_get_string(c));
        return *out ? 0 : HL_ENOMEM;
    }
    if (!allow_parts || !json_object_is_type(c, json_type_array))
        return hl_err_set(err, HL_EINVAL, "message content must be a string%s", allow_parts ? " or an array of content parts" : "");
    hl_buf b = {0};
    size_t n = json_object_array_length(c);
    for (size_t i = 0; i < n; i++) {
        struct json_object *part = json_object_array_get_idx(c, i), *t, *x;
        if (!json_object_is_type(part, json_type_object) || !json_object_object_get_ex(part, "type", &t) ||
            !json_object_is_type(t, json_type_string)) {
            hl_buf_free(&b);
            return hl_err_set(err, HL_EINVAL, "each content part must be an object with a \"type\"");
        }
        if (strcmp(json_object_get_string(t), "text") != 0) {
            hl_buf_free(&b);
            return hl_err_set(err, HL_ENOTSUP, "content parts of type \"%s\" are not supported (only \"text\")", json_object_get_string(t));
        }
        if (!json_object_object_get_ex(part, "text", &x) || !json_object_is_type(x, json_type_string)) {
            hl_buf_free(&b);
            return hl_err_set(err, HL_EINVAL, "a text content part needs a \"text\" string");
        }
        hl_buf_append(&b, json_object_get_string(x), (size_t)json_object_get_string_len(x));
    }
    if (b.oom) {
        hl_buf_free(&b);
        return HL_ENOMEM;
    }
    *out = b.data ? hl_buf_take(&b) : strdup("");
    return *out ? 0 : HL_ENOMEM;
}

static int parse_messages(struct json_object *root, srv_gen *g, int oai, hl_err *err) {
    struct json_object *arr;
    if (!json_object_object_get_ex(root, "messages", &arr) || json_object_is_type(arr, json_type_null)) {
        if (oai) return hl_err_set(err, HL_EINVAL, "\"messages\" is required");
        return 0;
    }
    if (!json_object_is_type(arr, json_type_array)) return hl_err_set(err, HL_EINVAL, "\"messages\" must be an array");
    size_t n = json_object_array_length(arr);
    if (n > SRV_MAX_MESSAGES) return hl_err_set(err, HL_ERANGE, "too many messages (%zu; at most %d)", n, SRV_MAX_MESSAGES);
    if (oai && n == 0) return hl_err_set(err, HL_EINVAL, "\"messages\" must not be empty");
    g->msgs = calloc(n ? n : 1, sizeof *g->msgs);
    if (!g->msgs) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(arr, i), *role, *c, *x;
        if (!json_object_is_type(m, json_type_object)) return hl_err_set(err, HL_EINVAL, "messages[%zu] must be an object", i);
        if (!json_object_object_get_ex(m, "role", &role) || !json_object_is_type(role, json_type_string))
            return hl_err_set(err, HL_EINVAL, "messages[%zu].role must be a string", i);
        const char *r = json_object_get_string(role);
        static const char *const ROLES[] = {"system", "user", "assistant", "tool", "developer", NULL};
        int ok = 0;
        for (int k = 0; ROLES[k]; k++) ok |= !strcmp(r, ROLES[k]);
        if (!ok) return hl_err_set(err, HL_EINVAL, "messages[%zu].role \"%s\" is not one of system, developer, user, assistant, tool", i, r);
        if (json_object_object_get_ex(m, "images", &x) && !json_object_is_type(x, json_type_null) &&
            !(json_object_is_type(x, json_type_array) && json_object_array_length(x) == 0))
            return hl_err_set(err, HL_ENOTSUP, "images are not supported: this server runs text models only");
        json_object_object_get_ex(m, "content", &c);
        int rc = content_text(c, &g->msgs[i].content, oai, err);
        if (!rc && (rc = srv_parse_msg_tools(m, &g->msgs[i], oai, err))) { /* not counted yet: free it here */
            free(g->msgs[i].content);
            srv_msg_tools_free(&g->msgs[i]);
            memset(&g->msgs[i], 0, sizeof g->msgs[i]);
        }
        if (rc) return rc == HL_ENOMEM ? hl_err_set(err, HL_ENOMEM, "out of memory") : hl_err_prefix(err, "messages[%zu]: ", i);
        /* OpenAI's developer role is the system role of models that have no such distinction */
        g->msgs[i].role = strdup(!strcmp(r, "developer") ? "system" : r);
        g->n_msgs++;
        if (!g->msgs[i].role) return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_keep_alive(struct json_object *root, srv_gen *g, hl_err *err) {
    struct json_object *v;
    if (!json_object_object_get_ex(root, "keep_alive", &v) || json_object_is_type(v, json_type_null)) return 0;
    if (json_object_is_type(v, json_type_string)) {
        hl_err e2;
        if (srv_parse_duration(json_object_get_string(v), &g->keep_alive_ns, &e2)) return hl_err_set(err, HL_EINVAL, "keep_alive: %s", e2.msg);
    } else if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!isfinite(d)) return hl_err_set(err, HL_EINVAL, "keep_alive must be finite");
        g->keep_alive_ns = d < 0 ? -1 : (d > 9e9 ? INT64_MAX / 2 : (int64_t)(d * 1e9));
    } else {
        return hl_err_set(err, HL_EINVAL, "keep_alive must be a duration string (\"5m\") or a number of seconds");
    }
    g->has_keep_alive = 1;
    return 0;
}

static int refuse_nonempty(struct json_object *root, const char *key, const char *why, hl_err *err) {
    struct json_object *v;
    if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null)) return 0;
    if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0) return 0;
    if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0) return 0;
    return hl_err_set(err, HL_ENOTSUP, "\"%s\" is not supported yet: %s", key, why);
}

int srv_parse_ollama(srv_api api, const char *body, size_t n, srv_gen *g, hl_err *err) {
    memset(g, 0, sizeof *g);
    g->api = api;
    g->stream = 1;
    g->n = 1;
    g->parallel_tool_calls = 1;
    struct json_object *root, *v;
    int rc = srv_json_parse(body, n, &root, err);
    if (rc) return rc;
    if ((rc = opt_str(root, "model", &g->model, err))) goto out;
    if (!g->model || !*g->model) {
        rc = hl_err_set(err, HL_EINVAL, "model is required");
        goto out;
    }
    if ((rc = opt_bool(root, "stream", &g->stream, err))) goto out;
    if ((rc = parse_keep_alive(root, g, err))) goto out;
    if ((rc = srv_structured_ollama(root, g, err))) goto out;
    if ((rc = refuse_nonempty(root, "images", "this server runs text models only", err))) goto out;
    if ((rc = srv_parse_ollama_tools(root, g, err))) goto out;
    if (json_object_object_get_ex(root, "options", &v) && (rc = srv_parse_options(v, &g->opts, err))) goto out;
    if ((rc = opt_bool(root, "logprobs", &g->logprobs, err))) goto out;
    if (json_object_object_get_ex(root, "top_logprobs", &v) && !json_object_is_type(v, json_type_null)) {
        int64_t x;
        if ((rc = get_int(v, "top_logprobs", 0, HL_SAMPLER_MAX_TOP_LOGPROBS, &x, err))) goto out;
        g->top_logprobs = (int)x;
    }
    if (api == SRV_OLLAMA_GENERATE) {
        if ((rc = opt_str(root, "prompt", &g->prompt, err))) goto out;
        if ((rc = opt_str(root, "suffix", &g->suffix, err))) goto out;
        if ((rc = opt_str(root, "system", &g->system, err))) goto out;
        if ((rc = opt_str(root, "template", &g->tmpl, err))) goto out;
        if ((rc = opt_bool(root, "raw", &g->raw, err))) goto out;
        if (json_object_object_get_ex(root, "context", &v) && !json_object_is_type(v, json_type_null)) {
            if (!json_object_is_type(v, json_type_array)) {
                rc = hl_err_set(err, HL_EINVAL, "\"context\" must be an array of token ids");
                goto out;
            }
            size_t k = json_object_array_length(v);
            if (k > SRV_MAX_CONTEXT_IDS) {
                rc = hl_err_set(err, HL_ERANGE, "\"context\" is too long");
                goto out;
            }
            g->context = malloc((k ? k : 1) * sizeof *g->context);
            if (!g->context) {
                rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                goto out;
            }
            for (size_t i = 0; i < k; i++) {
                int64_t x;
                if ((rc = get_int(json_object_array_get_idx(v, i), "context[]", 0, INT32_MAX, &x, err))) goto out;
                g->context[i] = (int32_t)x;
            }
            g->n_context = k;
        }
    } else {
        if ((rc = parse_messages(root, g, 0, err))) goto out;
        if ((rc = opt_bool(root, "truncate", &g->truncate, err))) goto out;
    }
out:
    json_object_put(root);
    return rc;
}

/* ---- OpenAI ------------------------------------------------------------------ */

static const char *const OAI_IGNORED[] = {"user", "store", "metadata", "service_tier", NULL};

/* What /v1 takes beyond OpenAI's own fields, as Ollama and vLLM do: Ollama's
 * sampling options by name (top_k, min_p, repeat_penalty, num_ctx, ...) and
 * an Ollama "options" object. Anything else is recorded as unknown: the
 * route ignores it (logged at debug level) unless server.strict_requests.
 * Returns 1 when the field was used, 0 when unknown, < 0 on a bad value. */
static const char *const OAI_OLLAMA_OPTIONS[] = {"top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n",
                                                 "num_ctx", "num_predict", "speculative", "num_draft",
                                                 "draft_model", NULL};

/* /v1/completions' prompt as token ids: they become the request's context
 * (as Ollama's "context": tokens before the, here empty, text) and the
 * prompt text, for echo, is filled in from them once the model is known. */
static int token_prompt(struct json_object *v, srv_gen *g, hl_err *err) {
    size_t k = json_object_array_length(v);
    if (k == 0) return hl_err_set(err, HL_EINVAL, "\"prompt\" must not be empty");
    if (k > SRV_MAX_CONTEXT_IDS) return hl_err_set(err, HL_ERANGE, "\"prompt\" has too many token ids");
    free(g->context);
    g->context = malloc(k * sizeof *g->context);
    if (!g->context) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (size_t i = 0; i < k; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        int64_t x;
        if (!json_object_is_type(e, json_type_int))
            return hl_err_set(err, HL_ENOTSUP, "\"prompt\" must be a string, an array of token ids, or a list of those");
        int rc = get_int(e, "prompt[]", 0, INT32_MAX, &x, err);
        if (rc) return rc;
        g->context[i] = (int32_t)x;
    }
    g->n_context = k;
    g->prompt_is_ids = 1;
    free(g->prompt);
    g->prompt = strdup("");
    return g->prompt ? 0 : hl_err_set(err, HL_ENOMEM, "out of memory");
}

static int oai_extra_field(srv_gen *g, const char *key, struct json_object *v, hl_err *err) {
    for (int i = 0; OAI_IGNORED[i]; i++)
        if (!strcmp(OAI_IGNORED[i], key)) return 1;
    if (!strcmp(key, "options")) return srv_parse_options(v, &g->opts, err) ? -1 : 1;
    for (int i = 0; OAI_OLLAMA_OPTIONS[i]; i++) {
        if (strcmp(OAI_OLLAMA_OPTIONS[i], key)) continue;
        struct json_object *one = json_object_new_object();
        if (!one) return hl_err_set(err, HL_ENOMEM, "out of memory");
        json_object_object_add(one, key, json_object_get(v));
        int rc = srv_parse_options(one, &g->opts, err);
        json_object_put(one);
        return rc ? -1 : 1;
    }
    if (!g->n_unknown++) snprintf(g->unknown, sizeof g->unknown, "%s", key);
    return 0;
}

int srv_parse_openai(srv_api api, const char *body, size_t n, srv_gen *g, hl_err *err) {
    memset(g, 0, sizeof *g);
    g->api = api;
    g->n = 1;
    g->parallel_tool_calls = 1;
    struct json_object *root;
    int rc = srv_json_parse(body, n, &root, err);
    if (rc) return rc;
    int chat = api == SRV_OAI_CHAT;
    json_object_object_foreach(root, key, v) {
        double d;
        int64_t x;
        snprintf(g->err_param, sizeof g->err_param, "%s", key);
        if (json_object_is_type(v, json_type_null)) continue;
        if (!strcmp(key, "model")) {
            if (!json_object_is_type(v, json_type_string)) { rc = hl_err_set(err, HL_EINVAL, "\"model\" must be a string"); break; }
            g->model = strdup(json_object_get_string(v));
        } else if (!strcmp(key, "messages") && chat) {
            if ((rc = parse_messages(root, g, 1, err))) break;
        } else if (!strcmp(key, "prompt") && !chat) {
            if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 1 &&
                json_object_is_type(json_object_array_get_idx(v, 0), json_type_string))
                v = json_object_array_get_idx(v, 0);
            /* token ids: [1, 2, 3], or a batch of one [[1, 2, 3]]; used as given (no BOS added) */
            if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 1 &&
                json_object_is_type(json_object_array_get_idx(v, 0), json_type_array))
                v = json_object_array_get_idx(v, 0);
            /* a batch of several prompts (strings or token arrays): the route
             * answers each as its own run (srv_gen_start_batch) */
            if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 1 &&
                (json_object_is_type(json_object_array_get_idx(v, 0), json_type_string) ||
                 json_object_is_type(json_object_array_get_idx(v, 0), json_type_array))) {
                size_t k = json_object_array_length(v);
                if (k > SRV_MAX_BATCH) { rc = hl_err_set(err, HL_ERANGE, "\"prompt\" holds %zu prompts; at most %d", k, SRV_MAX_BATCH); break; }
                for (size_t i = 0; i < k && !rc; i++) {
                    struct json_object *e = json_object_array_get_idx(v, i);
                    if (!json_object_is_type(e, json_type_string) && !json_object_is_type(e, json_type_array))
                        rc = hl_err_set(err, HL_EINVAL, "prompt[%zu] must be a string or an array of token ids", i);
                }
                if (rc) break;
                g->n_batch = (int)k;
                free(g->prompt);
                g->prompt = strdup(""); /* each run gets its own */
                continue;
            }
            if (json_object_is_type(v, json_type_array)) {
                if ((rc = token_prompt(v, g, err))) break;
                continue;
            }
            if (!json_object_is_type(v, json_type_string)) {
                rc = hl_err_set(err, HL_ENOTSUP, "\"prompt\" must be a string, an array of token ids, or a list of those");
                break;
            }
            g->prompt = strdup(json_object_get_string(v));
        } else if (!strcmp(key, "stream")) {
            if ((rc = opt_bool(root, key, &g->stream, err))) break;
        } else if (!strcmp(key, "stream_options")) {
            struct json_object *iu;
            if (!json_object_is_type(v, json_type_object)) { rc = hl_err_set(err, HL_EINVAL, "\"stream_options\" must be an object"); break; }
            if (json_object_object_get_ex(v, "include_usage", &iu) && (rc = opt_bool(v, "include_usage", &g->include_usage, err))) break;
        } else if (!strcmp(key, "temperature")) {
            if ((rc = get_num(v, key, &d, err))) break;
            if (d < 0 || d > 2) { rc = hl_err_set(err, HL_ERANGE, "\"temperature\" must be between 0 and 2"); break; }
            g->opts.s.temperature = (float)d;
            g->opts.set |= SRV_O_TEMP;
        } else if (!strcmp(key, "top_p")) {
            if ((rc = get_num(v, key, &d, err))) break;
            if (d < 0 || d > 1) { rc = hl_err_set(err, HL_ERANGE, "\"top_p\" must be between 0 and 1"); break; }
            g->opts.s.top_p = (float)d;
            g->opts.set |= SRV_O_TOPP;
        } else if (!strcmp(key, "presence_penalty") || !strcmp(key, "frequency_penalty")) {
            if ((rc = get_num(v, key, &d, err))) break;
            if (d < -2 || d > 2) { rc = hl_err_set(err, HL_ERANGE, "\"%s\" must be between -2 and 2", key); break; }
            if (key[0] == 'p') g->opts.s.presence_penalty = (float)d, g->opts.set |= SRV_O_PRES;
            else g->opts.s.frequency_penalty = (float)d, g->opts.set |= SRV_O_FREQ;
        } else if (!strcmp(key, "max_tokens") || !strcmp(key, "max_completion_tokens")) {
            /* 0 on completions: score the prompt only (with echo and logprobs) */
            if ((rc = get_int(v, key, chat ? 1 : 0, 1 << 24, &x, err))) break;
            g->opts.num_predict = (int32_t)x;
            g->opts.set |= SRV_O_NPRED;
        } else if (!strcmp(key, "stop")) {
            if ((rc = parse_stops(v, &g->opts, 4, err))) break;
        } else if (!strcmp(key, "seed")) {
            if ((rc = get_int(v, key, INT64_MIN, INT64_MAX, &x, err))) break;
            g->opts.s.seed = (uint64_t)x;
            g->opts.s.has_seed = 1;
            g->opts.set |= SRV_O_SEED;
        } else if (!strcmp(key, "n") || !strcmp(key, "best_of")) {
            if ((rc = get_int(v, key, 1, SRV_MAX_CHOICES, &x, err))) break;
            if (key[0] == 'n') g->n = (int)x;
            else if (x != 1) { rc = hl_err_set(err, HL_ENOTSUP, "\"best_of\" other than 1 is not supported"); break; }
        } else if (!strcmp(key, "logit_bias")) {
            if (!json_object_is_type(v, json_type_object)) { rc = hl_err_set(err, HL_EINVAL, "\"logit_bias\" must be an object mapping token ids to numbers"); break; }
            int nb = json_object_object_length(v);
            if (nb > HL_SAMPLER_MAX_LOGIT_BIAS) { rc = hl_err_set(err, HL_ERANGE, "\"logit_bias\" has too many entries"); break; }
            g->bias = calloc((size_t)(nb ? nb : 1), sizeof *g->bias);
            if (!g->bias) { rc = hl_err_set(err, HL_ENOMEM, "out of memory"); break; }
            json_object_object_foreach(v, tk, bv) {
                char *end;
                long id = strtol(tk, &end, 10);
                if (!*tk || *end || id < 0 || id > INT32_MAX) { rc = hl_err_set(err, HL_EINVAL, "logit_bias key \"%s\" is not a token id", tk); break; }
                if ((rc = get_num(bv, "logit_bias value", &d, err))) break;
                if (d < -100 || d > 100) { rc = hl_err_set(err, HL_ERANGE, "logit_bias values must be between -100 and 100"); break; }
                g->bias[g->n_bias].token = (int32_t)id;
                g->bias[g->n_bias].bias = (float)d;
                g->n_bias++;
            }
            if (rc) break;
        } else if (!strcmp(key, "logprobs")) {
            if (chat) {
                if ((rc = opt_bool(root, key, &g->logprobs, err))) break;
            } else {
                if ((rc = get_int(v, key, 0, 5, &x, err))) break;
                g->logprobs = 1;
                g->top_logprobs = (int)x;
            }
        } else if (!strcmp(key, "top_logprobs") && chat) {
            if ((rc = get_int(v, key, 0, HL_SAMPLER_MAX_TOP_LOGPROBS, &x, err))) break;
            g->top_logprobs = (int)x;
        } else if (!strcmp(key, "ignore_eos")) {
            /* vLLM's extension: generate through end tokens (benchmarks need exact lengths) */
            if ((rc = opt_bool(root, key, &g->ignore_eos, err))) break;
        } else if (!strcmp(key, "echo") && !chat) {
            if ((rc = opt_bool(root, key, &g->echo, err))) break;
        } else if (!strcmp(key, "suffix") && !chat) {
            if ((rc = opt_str(root, key, &g->suffix, err))) break;
        } else if (!strcmp(key, "response_format")) {
            if ((rc = srv_structured_response_format(v, g, err))) break;
        } else if (!strcmp(key, "grammar")) {
            /* llama-server's extension: a GBNF grammar */
            if ((rc = srv_structured_grammar(v, g, err))) break;
        } else if (chat && (rc = srv_parse_oai_tool_key(key, v, g, err)) != 0) {
            if (rc < 0) break;
            rc = 0;
        } else if (!strcmp(key, "functions") || !strcmp(key, "function_call")) {
            if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0) continue;
            if (json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), "none")) continue;
            rc = hl_err_set(err, HL_ENOTSUP, "\"%s\" (deprecated) is not supported: use \"tools\" and \"tool_choice\"", key);
            break;
        } else {
            if ((rc = oai_extra_field(g, key, v, err)) < 0) break;
            rc = 0;
        }
        if (!rc && g->model == NULL && !strcmp(key, "model")) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        if (rc) break;
    }
    if (!rc) {
        g->err_param[0] = 0;
        if (!g->model || !*g->model) {
            snprintf(g->err_param, sizeof g->err_param, "model");
            rc = hl_err_set(err, HL_EINVAL, "you must provide a model parameter");
        } else if (chat && !g->n_msgs) {
            snprintf(g->err_param, sizeof g->err_param, "messages");
            rc = hl_err_set(err, HL_EINVAL, "\"messages\" is required and must not be empty");
        } else if (!chat && !g->prompt) {
            snprintf(g->err_param, sizeof g->err_param, "prompt");
            rc = hl_err_set(err, HL_EINVAL, "\"prompt\" is required");
        } else if (g->top_logprobs && !g->logprobs) {
            snprintf(g->err_param, sizeof g->err_param, "top_logprobs");
            rc = hl_err_set(err, HL_EINVAL, "\"top_logprobs\" requires \"logprobs\": true");
        } else if (g->include_usage && !g->stream) {
            snprintf(g->err_param, sizeof g->err_param, "stream_options");
            rc = hl_err_set(err, HL_EINVAL, "\"stream_options\" is only allowed when \"stream\" is true");
        }
    }
    json_object_put(root);
    return rc;
}
