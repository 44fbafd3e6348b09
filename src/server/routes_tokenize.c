/* Tokenization over HTTP: Ollama-style POST /api/tokenize and /api/detokenize
 * (a "model" is required) and llama-server's POST /tokenize and /detokenize
 * (the "model" may be left out when exactly one model is loaded), with the
 * model's own tokenizer, the one generation uses.
 *
 *   /api/tokenize    {"model", "text" | "prompt" | "content", "add_special"?, "parse_special"?}
 *                    -> {"model", "tokens": [ids]}
 *   /api/detokenize  {"model", "tokens": [ids]}  -> {"model", "text"}
 *   /tokenize        {"content", "add_special"? (false), "parse_special"? (true), "with_pieces"?}
 *                    -> {"tokens": [ids]} or [{"id", "piece"}] with pieces (a piece that is not
 *                    valid UTF-8 by itself is given as its bytes, as llama-server does)
 *   /detokenize      {"tokens": [ids]} -> {"content"}
 *
 * Ollama's routes add the vocabulary's BOS by default (what a prompt gets);
 * llama-server's do not. Token ids outside the vocabulary are a 400. */
#include "server/internal.h"
#include "base/json_write.h"
#include "base/utf8.h"

#include <json-c/json.h>

#include <stdlib.h>
#include <string.h>

#define MAX_DETOKENIZE_IDS (1 << 22)

typedef struct sole_ctx {
    int n;
    char key[4096];
} sole_ctx;

static void count_loaded(void *ctx, srv_model *m) {
    sole_ctx *c = ctx;
    if (!c->n++) snprintf(c->key, sizeof c->key, "%s", m->key);
}

static int get_bool(struct json_object *root, const char *key, int dflt, int *out, hl_err *err) {
    struct json_object *v;
    *out = dflt;
    if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_boolean)) return hl_err_set(err, HL_EINVAL, "\"%s\" must be a boolean", key);
    *out = json_object_get_boolean(v);
    return 0;
}

static const char *get_text(struct json_object *root, const char *const *keys) {
    struct json_object *v;
    for (int i = 0; keys[i]; i++)
        if (json_object_object_get_ex(root, keys[i], &v) && json_object_is_type(v, json_type_string))
            return json_object_get_string(v);
    return NULL;
}

static int piece_json(hl_jw *w, const tok_vocab *v, int32_t id) {
    char buf[512];
    int n = tok_piece_ex(v, id, 1, buf, sizeof buf);
    if (n < 0) return n;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf;
    if (hl_utf8_valid(buf, len)) {
        hl_jw_strn(w, buf, len);
    } else {
        hl_jw_arr_begin(w);
        for (size_t i = 0; i < len; i++) hl_jw_int(w, (unsigned char)buf[i]);
        hl_jw_arr_end(w);
    }
    return 0;
}

/* The reply object opened, with Ollama's "model" echoed. */
static void reply_begin(hl_jw *w, hl_buf *b, const srv_req *r, int ollama) {
    hl_jw_init(w, b);
    hl_jw_obj_begin(w);
    if (ollama) {
        hl_jw_key(w, "model");
        hl_jw_str(w, r->model);
    }
}

static int do_tokenize(srv_req *r, struct json_object *root, const hl_loaded *lm, int ollama, hl_buf *b, hl_err *err) {
    static const char *const TEXT_KEYS[] = {"text", "prompt", "content", NULL};
    const char *text = get_text(root, TEXT_KEYS);
    if (!text) return hl_err_set(err, HL_EINVAL, ollama ? "\"text\" (a string) is required" : "\"content\" (a string) is required");
    int add_special, parse_special, with_pieces;
    int rc = get_bool(root, "add_special", ollama, &add_special, err);
    if (!rc) rc = get_bool(root, "parse_special", 1, &parse_special, err);
    if (!rc) rc = get_bool(root, "with_pieces", 0, &with_pieces, err);
    if (rc) return rc;
    int32_t *ids = NULL;
    size_t n = 0;
    if ((rc = tok_encode(lm->tok, text, strlen(text), add_special, parse_special, &ids, &n, err))) return rc;
    hl_jw w;
    reply_begin(&w, b, r, ollama);
    hl_jw_key(&w, "tokens");
    hl_jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        if (!with_pieces) {
            hl_jw_int(&w, ids[i]);
            continue;
        }
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "id");
        hl_jw_int(&w, ids[i]);
        hl_jw_key(&w, "piece");
        piece_json(&w, lm->tok, ids[i]);
        hl_jw_obj_end(&w);
    }
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    free(ids);
    return 0;
}

static int do_detokenize(srv_req *r, struct json_object *root, const hl_loaded *lm, int ollama, hl_buf *b, hl_err *err) {
    struct json_object *arr;
    if (!json_object_object_get_ex(root, "tokens", &arr) || !json_object_is_type(arr, json_type_array))
        return hl_err_set(err, HL_EINVAL, "\"tokens\" (an array of token ids) is required");
    size_t n = json_object_array_length(arr);
    if (n > MAX_DETOKENIZE_IDS) return hl_err_set(err, HL_ERANGE, "\"tokens\" has more than %d ids", MAX_DETOKENIZE_IDS);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return hl_err_set(err, HL_ENOMEM, "out of memory");
    int32_t nv = tok_n_vocab(lm->tok);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        int64_t x = json_object_is_type(e, json_type_int) ? json_object_get_int64(e) : -1;
        if (!json_object_is_type(e, json_type_int) || x < 0 || x >= nv) {
            free(ids);
            return hl_err_set(err, HL_EINVAL, "tokens[%zu] is not a token id of this model (0..%d)", i, (int)nv - 1);
        }
        ids[i] = (int32_t)x;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = tok_decode(lm->tok, ids, n, 0, &text, &len, err);
    free(ids);
    if (rc) return rc;
    hl_jw w;
    reply_begin(&w, b, r, ollama);
    hl_jw_key(&w, ollama ? "text" : "content");
    hl_jw_strn(&w, text, len);
    hl_jw_obj_end(&w);
    free(text);
    return 0;
}

int srv_route_tokenize(srv_req *r) {
    const char *u = r->url;
    int ollama = !strncmp(u, "/api/", 5);
    const char *verb = ollama ? u + 4 : u;
    int tokenize = !strcmp(verb, "/tokenize");
    if (!tokenize && strcmp(verb, "/detokenize")) return -1;
    if (strcmp(r->method, "POST")) return srv_reply_error(r, 405, "method not allowed");
    struct json_object *root, *v;
    hl_err err = {0};
    if (srv_json_parse(r->body.data ? r->body.data : "", r->body.len, &root, &err)) return srv_reply_error(r, 400, err.msg);
    if (!json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return srv_reply_error(r, 400, "the request body must be a JSON object");
    }
    const char *name = NULL;
    if (json_object_object_get_ex(root, "model", &v) && json_object_is_type(v, json_type_string)) name = json_object_get_string(v);
    sole_ctx sole = {0};
    if (!name || !*name) {
        if (ollama) {
            json_object_put(root);
            return srv_reply_error(r, 400, "model is required");
        }
        srv_models_each(&r->srv->models, count_loaded, &sole);
        if (sole.n != 1) {
            json_object_put(root);
            return srv_reply_error(r, 400, sole.n ? "several models are loaded: say which with \"model\""
                                                  : "no model is loaded: say which with \"model\"");
        }
        name = sole.key;
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    srv_model *m = NULL;
    int rc = srv_models_get(&r->srv->models, name, SRV_NUM_GPU_UNSET, &m, &err);
    if (rc) {
        json_object_put(root);
        return srv_reply_error(r, srv_status_of(rc), err.msg);
    }
    hl_buf b = {0};
    rc = tokenize ? do_tokenize(r, root, m->lm, ollama, &b, &err) : do_detokenize(r, root, m->lm, ollama, &b, &err);
    srv_models_put(&r->srv->models, m, 0, 0);
    json_object_put(root);
    if (rc) {
        hl_buf_free(&b);
        return srv_reply_error(r, srv_status_of(rc), err.msg);
    }
    return srv_reply_json(r, 200, &b);
}
