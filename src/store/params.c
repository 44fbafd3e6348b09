/* Modelfile PARAMETERs: the keys Ollama accepts (api.Options and the runner
 * options), each with its type; deprecated keys that Ollama still parses are
 * accepted with a warning. Conversion to and from the params layer's JSON. */
#include "store/modelfile.h"

#include "base/buf.h"
#include "base/json_write.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { P_INT, P_FLOAT, P_BOOL, P_STRS, P_STR } ptype;

static const struct {
    const char *key;
    ptype type;
    int deprecated;
} params[] = {
    {"num_keep", P_INT, 0}, {"seed", P_INT, 0}, {"num_predict", P_INT, 0}, {"top_k", P_INT, 0},
    {"top_p", P_FLOAT, 0}, {"min_p", P_FLOAT, 0}, {"typical_p", P_FLOAT, 0}, {"repeat_last_n", P_INT, 0},
    {"temperature", P_FLOAT, 0}, {"repeat_penalty", P_FLOAT, 0}, {"presence_penalty", P_FLOAT, 0},
    {"frequency_penalty", P_FLOAT, 0}, {"stop", P_STRS, 0},
    {"num_ctx", P_INT, 0}, {"num_batch", P_INT, 0}, {"num_gpu", P_INT, 0}, {"main_gpu", P_INT, 0},
    {"use_mmap", P_BOOL, 0}, {"num_thread", P_INT, 0},
    /* hyperlama's own: speculative decoding (prompt lookup or a draft model) and its draft length */
    {"speculative", P_BOOL, 0}, {"num_draft", P_INT, 0}, {"draft_model", P_STR, 0},
    /* still parsed by Ollama, without effect */
    {"mirostat", P_INT, 1}, {"mirostat_tau", P_FLOAT, 1}, {"mirostat_eta", P_FLOAT, 1}, {"tfs_z", P_FLOAT, 1},
    {"penalize_newline", P_BOOL, 1}, {"low_vram", P_BOOL, 1}, {"f16_kv", P_BOOL, 1}, {"logits_all", P_BOOL, 1},
    {"vocab_only", P_BOOL, 1}, {"use_mlock", P_BOOL, 1}, {"numa", P_BOOL, 1},
};
#define N_PARAMS (sizeof params / sizeof params[0])

static int find(const char *key) {
    for (size_t i = 0; i < N_PARAMS; i++)
        if (!strcmp(params[i].key, key)) return (int)i;
    return -1;
}

static int parse_bool(const char *v, int *out) {
    /* Go's strconv.ParseBool */
    static const char *t[] = {"1", "t", "T", "TRUE", "true", "True"}, *f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (int i = 0; i < 6; i++) {
        if (!strcmp(v, t[i])) { *out = 1; return 0; }
        if (!strcmp(v, f[i])) { *out = 0; return 0; }
    }
    return -1;
}

static int parse_int(const char *v, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) return -1;
    *out = x;
    return 0;
}

static int parse_float(const char *v, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

int store_param_check(const char *key, const char *value, int *deprecated, hl_err *err) {
    int i = find(key);
    if (i < 0) return hl_err_set(err, HL_EINVAL, "unknown parameter \"%s\"", key);
    if (deprecated) *deprecated = params[i].deprecated;
    long long li;
    double d;
    int b;
    switch (params[i].type) {
    case P_INT:
        if (parse_int(value, &li)) return hl_err_set(err, HL_EINVAL, "parameter %s wants an integer, not \"%s\"", key, value);
        if (li < INT32_MIN || li > INT32_MAX) return hl_err_set(err, HL_ERANGE, "parameter %s is out of range (%s)", key, value);
        break;
    case P_FLOAT:
        if (parse_float(value, &d)) return hl_err_set(err, HL_EINVAL, "parameter %s wants a number, not \"%s\"", key, value);
        break;
    case P_BOOL:
        if (parse_bool(value, &b)) return hl_err_set(err, HL_EINVAL, "parameter %s wants true or false, not \"%s\"", key, value);
        break;
    case P_STRS:
    case P_STR:
        break;
    }
    return HL_OK;
}

int store_params_json(const store_modelfile *mf, char **json, void (*warn)(void *, const char *), void *warn_ctx,
                      hl_err *err) {
    *json = NULL;
    /* the last value of a key wins, except stop which accumulates */
    int last[N_PARAMS];
    for (size_t k = 0; k < N_PARAMS; k++) last[k] = -1;
    int any = 0;
    for (size_t i = 0; i < mf->n; i++) {
        const store_mf_cmd *c = &mf->cmds[i];
        if (c->kind != STORE_MF_PARAMETER) continue;
        int dep = 0, rc = store_param_check(c->key, c->value, &dep, err);
        if (rc) return rc;
        int k = find(c->key);
        if (dep && warn && last[k] < 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "parameter \"%s\" is deprecated and has no effect", c->key);
            warn(warn_ctx, msg);
        }
        last[k] = (int)i;
        any = 1;
    }
    if (!any) return HL_OK;
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    for (size_t k = 0; k < N_PARAMS; k++) {
        if (last[k] < 0) continue;
        const char *v = mf->cmds[last[k]].value;
        hl_jw_key(&w, params[k].key);
        long long li = 0;
        double d = 0;
        int bo = 0;
        switch (params[k].type) {
        case P_INT: parse_int(v, &li); hl_jw_int(&w, li); break;
        case P_FLOAT: parse_float(v, &d); hl_jw_double(&w, d); break;
        case P_BOOL: parse_bool(v, &bo); hl_jw_bool(&w, bo); break;
        case P_STR: hl_jw_str(&w, v); break;
        case P_STRS:
            hl_jw_arr_begin(&w);
            for (size_t i = 0; i < mf->n; i++)
                if (mf->cmds[i].kind == STORE_MF_PARAMETER && !strcmp(mf->cmds[i].key, "stop"))
                    hl_jw_str(&w, mf->cmds[i].value);
            hl_jw_arr_end(&w);
            break;
        }
    }
    hl_jw_obj_end(&w);
    if (b.oom) {
        hl_buf_free(&b);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    *json = hl_buf_take(&b);
    return HL_OK;
}

static json_object *parse_json(const char *json, hl_err *err) {
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, json, (int)strlen(json));
    if (json_tokener_get_error(tok) != json_tokener_success) {
        hl_err_set(err, HL_EINVAL, "invalid JSON layer: %s", json_tokener_error_desc(json_tokener_get_error(tok)));
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* A JSON value as Ollama prints it in a Modelfile. */
static void value_text(json_object *v, char *out, size_t cap) {
    switch (json_object_get_type(v)) {
    case json_type_string: snprintf(out, cap, "%s", json_object_get_string(v)); break;
    case json_type_boolean: snprintf(out, cap, "%s", json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_int: snprintf(out, cap, "%lld", (long long)json_object_get_int64(v)); break;
    case json_type_double: snprintf(out, cap, "%.9g", json_object_get_double(v)); break;
    default: snprintf(out, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN)); break;
    }
}

int store_params_from_json(const char *json, store_modelfile *mf, hl_err *err) {
    json_object *o = parse_json(json, err);
    if (!o) return HL_EINVAL;
    int rc = HL_OK;
    if (!json_object_is_type(o, json_type_object)) rc = hl_err_set(err, HL_EINVAL, "params layer is not a JSON object");
    json_object_object_foreach(o, key, val) {
        if (rc) break;
        char buf[4096];
        if (json_object_is_type(val, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(val) && rc == HL_OK; i++) {
                value_text(json_object_array_get_idx(val, i), buf, sizeof buf);
                rc = store_modelfile_add(mf, STORE_MF_PARAMETER, key, buf, err);
            }
        } else {
            value_text(val, buf, sizeof buf);
            rc = store_modelfile_add(mf, STORE_MF_PARAMETER, key, buf, err);
        }
    }
    json_object_put(o);
    return rc;
}

int store_messages_from_json(const char *json, store_modelfile *mf, hl_err *err) {
    json_object *o = parse_json(json, err);
    if (!o) return HL_EINVAL;
    int rc = HL_OK;
    if (!json_object_is_type(o, json_type_array)) rc = hl_err_set(err, HL_EINVAL, "messages layer is not a JSON array");
    for (size_t i = 0; rc == HL_OK && i < json_object_array_length(o); i++) {
        json_object *m = json_object_array_get_idx(o, i), *role, *content;
        if (!json_object_object_get_ex(m, "role", &role) || !json_object_object_get_ex(m, "content", &content)) {
            rc = hl_err_set(err, HL_EINVAL, "message %zu lacks role or content", i);
            break;
        }
        rc = store_modelfile_add(mf, STORE_MF_MESSAGE, json_object_get_string(role), json_object_get_string(content), err);
    }
    json_object_put(o);
    return rc;
}
