/* The embeddings API: Ollama's POST /api/embed and legacy POST
 * /api/embeddings, and OpenAI's POST /v1/embeddings, over one path: parse the
 * inputs, tokenize them with the model's tokenizer (special tokens added, as
 * for a prompt: [CLS] .. [SEP] for BERT), submit every input to the model's
 * engine as an embed request at once (the scheduler puts them into the same
 * forward passes, beside whatever else runs), wait for their vectors and
 * write the reply.
 *
 *   /api/embed       {"model", "input": string | [strings], "truncate"? (true),
 *                     "dimensions"?, "keep_alive"?, "options"? (num_ctx: cut inputs there)}
 *                    -> {"model", "embeddings": [[..]] (L2-normalized), "total_duration",
 *                        "load_duration", "prompt_eval_count"}
 *   /api/embeddings  {"model", "prompt": string, "keep_alive"?, "options"?}
 *                    -> {"embedding": [..]} (not normalized; "" gives [])
 *   /v1/embeddings   {"model", "input": string | [strings] | [ids] | [[ids]],
 *                     "encoding_format"? ("float" | "base64"), "dimensions"?, "user"?}
 *                    -> {"object": "list", "data": [{"object": "embedding", "index",
 *                        "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}
 *
 * An input longer than the model embeds at once is cut to fit (its last
 * token kept the model's end token, when it adds one) unless truncate is
 * false, which makes it a 400. `dimensions` keeps the first n components
 * and normalizes again (Matryoshka models). The HTTP thread waits for the
 * engine here (embeddings are one pass, not a stream). */
#include "server/internal.h"
#include "base/clock.h"
#include "base/json_write.h"

#include <json-c/json.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EMBED_MAX_INPUTS 2048

typedef enum embed_api { EMB_OLLAMA = 1, EMB_OLLAMA_LEGACY, EMB_OPENAI } embed_api;

/* One input: text to tokenize, or token ids given (OpenAI). */
typedef struct embed_in {
    const char *text;
    int32_t *ids; /* owned */
    size_t n_ids;
} embed_in;

typedef struct embed_job {
    embed_api api;
    embed_in *in;
    size_t n_in;
    int truncate;
    int32_t dims;     /* 0: all */
    int base64;
    int has_keep_alive;
    int64_t keep_alive_ns;
    int32_t num_ctx;  /* options.num_ctx: a tighter cut than the model's (0: none) */
    float **vec;      /* [n_in] results, n_embd each */
    int32_t n_embd;
    int64_t prompt_tokens;
} embed_job;

static void job_free(embed_job *j) {
    for (size_t i = 0; i < j->n_in; i++) {
        free(j->in[i].ids);
        if (j->vec) free(j->vec[i]);
    }
    free(j->in);
    free(j->vec);
}

/* OpenAI's token-id input: an array of ints. */
static int parse_ids(struct json_object *arr, embed_in *in, int32_t n_vocab, hl_err *err) {
    size_t n = json_object_array_length(arr);
    if (n == 0) return hl_err_set(err, HL_EINVAL, "input: an array of token ids must not be empty");
    in->ids = malloc(n * sizeof *in->ids);
    if (!in->ids) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        int64_t x = json_object_is_type(e, json_type_int) ? json_object_get_int64(e) : -1;
        if (x < 0 || x >= n_vocab)
            return hl_err_set(err, HL_EINVAL, "input: token id %zu is not a token of this model (0..%d)", i, n_vocab - 1);
        in->ids[i] = (int32_t)x;
    }
    in->n_ids = n;
    return 0;
}

static int parse_inputs(struct json_object *root, embed_job *j, int32_t n_vocab, hl_err *err) {
    const char *key = j->api == EMB_OLLAMA_LEGACY ? "prompt" : "input";
    struct json_object *v;
    if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
        return hl_err_set(err, HL_EINVAL, "\"%s\" is required", key);
    if (json_object_is_type(v, json_type_string)) {
        if (j->api != EMB_OLLAMA_LEGACY && json_object_get_string_len(v) == 0)
            return hl_err_set(err, HL_EINVAL, "\"%s\" must not be an empty string", key);
        j->in = calloc(1, sizeof *j->in);
        if (!j->in) return hl_err_set(err, HL_ENOMEM, "out of memory");
        j->in[0].text = json_object_get_string(v);
        j->n_in = 1;
        return 0;
    }
    if (j->api == EMB_OLLAMA_LEGACY || !json_object_is_type(v, json_type_array))
        return hl_err_set(err, HL_EINVAL, "%s", j->api == EMB_OLLAMA_LEGACY ? "\"prompt\" must be a string"
                                   : j->api == EMB_OLLAMA ? "\"input\" must be a string or an array of strings"
                                                          : "\"input\" must be a string, an array of strings, an array of "
                                                            "token ids or an array of arrays of token ids");
    size_t n = json_object_array_length(v);
    if (n == 0) return hl_err_set(err, HL_EINVAL, "\"input\" must not be an empty array");
    if (n > EMBED_MAX_INPUTS) return hl_err_set(err, HL_EINVAL, "\"input\" has more than %d entries", EMBED_MAX_INPUTS);
    struct json_object *first = json_object_array_get_idx(v, 0);
    if (j->api == EMB_OPENAI && json_object_is_type(first, json_type_int)) { /* one input of token ids */
        j->in = calloc(1, sizeof *j->in);
        if (!j->in) return hl_err_set(err, HL_ENOMEM, "out of memory");
        j->n_in = 1;
        return parse_ids(v, &j->in[0], n_vocab, err);
    }
    j->in = calloc(n, sizeof *j->in);
    if (!j->in) return hl_err_set(err, HL_ENOMEM, "out of memory");
    j->n_in = n;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        if (json_object_is_type(e, json_type_string)) {
            if (json_object_get_string_len(e) == 0)
                return hl_err_set(err, HL_EINVAL, "input[%zu] must not be an empty string", i);
            j->in[i].text = json_object_get_string(e);
        } else if (j->api == EMB_OPENAI && json_object_is_type(e, json_type_array)) {
            int rc = parse_ids(e, &j->in[i], n_vocab, err);
            if (rc) {
                hl_err_prefix(err, "input[%zu]: ", i);
                return rc;
            }
        } else {
            return hl_err_set(err, HL_EINVAL, "input[%zu] must be a string%s", i,
                              j->api == EMB_OPENAI ? " or an array of token ids" : "");
        }
    }
    return 0;
}

static int parse_job(struct json_object *root, embed_job *j, int32_t n_vocab, hl_err *err) {
    int rc = parse_inputs(root, j, n_vocab, err);
    if (rc) return rc;
    struct json_object *v;
    j->truncate = 1;
    if (json_object_object_get_ex(root, "truncate", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_boolean)) return hl_err_set(err, HL_EINVAL, "\"truncate\" must be a boolean");
        j->truncate = json_object_get_boolean(v);
    }
    if (json_object_object_get_ex(root, "dimensions", &v) && !json_object_is_type(v, json_type_null)) {
        int64_t d = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
        if (d <= 0 || d > 1 << 20) return hl_err_set(err, HL_EINVAL, "\"dimensions\" must be a positive integer");
        j->dims = (int32_t)d;
    }
    if (json_object_object_get_ex(root, "encoding_format", &v) && !json_object_is_type(v, json_type_null)) {
        const char *f = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (!strcmp(f, "base64")) j->base64 = 1;
        else if (strcmp(f, "float"))
            return hl_err_set(err, HL_EINVAL, "\"encoding_format\" must be \"float\" or \"base64\"");
    }
    if (json_object_object_get_ex(root, "keep_alive", &v) && !json_object_is_type(v, json_type_null)) {
        if (json_object_is_type(v, json_type_string)) {
            hl_err e2 = {0};
            if (srv_parse_duration(json_object_get_string(v), &j->keep_alive_ns, &e2))
                return hl_err_set(err, HL_EINVAL, "keep_alive: %s", e2.msg);
        } else if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
            double d = json_object_get_double(v);
            if (!isfinite(d)) return hl_err_set(err, HL_EINVAL, "keep_alive must be finite");
            j->keep_alive_ns = d < 0 ? -1 : (d > 9e9 ? INT64_MAX / 2 : (int64_t)(d * 1e9));
        } else {
            return hl_err_set(err, HL_EINVAL, "keep_alive must be a duration string (\"5m\") or a number of seconds");
        }
        j->has_keep_alive = 1;
    }
    if (json_object_object_get_ex(root, "options", &v) && !json_object_is_type(v, json_type_null)) {
        /* validated as for generation; only num_ctx matters here (a tighter
         * truncation length, as Ollama's) */
        srv_opts o = {0};
        if (!json_object_is_type(v, json_type_object)) return hl_err_set(err, HL_EINVAL, "\"options\" must be an object");
        rc = srv_parse_options(v, &o, err);
        if (!rc && (o.set & SRV_O_NCTX) && o.num_ctx > 0) j->num_ctx = o.num_ctx;
        srv_opts_free(&o);
        if (rc) return rc;
    }
    return 0;
}

/* Tokens of input i, cut to max when truncating (keeping the end token). */
static int input_tokens(const embed_job *j, size_t i, const hl_loaded *lm, int32_t max, int32_t **ids, size_t *n,
                        hl_err *err) {
    const embed_in *in = &j->in[i];
    if (in->ids) {
        *ids = malloc(in->n_ids * sizeof **ids);
        if (!*ids) return hl_err_set(err, HL_ENOMEM, "out of memory");
        memcpy(*ids, in->ids, in->n_ids * sizeof **ids);
        *n = in->n_ids;
    } else if (!*in->text) { /* the legacy route's "": no vector */
        *ids = NULL;
        *n = 0;
        return 0;
    } else {
        int rc = tok_encode(lm->tok, in->text, strlen(in->text), 1, 0, ids, n, err);
        if (rc) return rc;
    }
    if (*n > (size_t)max) {
        if (!j->truncate) {
            size_t got = *n;
            free(*ids);
            *ids = NULL;
            return hl_err_set(err, HL_EINVAL, "input %zu is %zu tokens, longer than the %d this model embeds at once "
                              "(truncate is false)", i, got, max);
        }
        int32_t last = (*ids)[*n - 1];
        *n = (size_t)max;
        if (tok_add_eos(lm->tok) && last == tok_eos(lm->tok)) (*ids)[*n - 1] = last;
    }
    return 0;
}

/* Submits every input, then collects the vectors. */
static int run_job(embed_job *j, srv_model *m, hl_err *err) {
    hl_engine *eng = m->eng;
    if (!hl_engine_embedding(eng))
        return hl_err_set(err, HL_EINVAL, "model \"%s\" does not support embeddings (it is not an embedding model)",
                          m->name ? m->name : m->key);
    const hl_hparams *hp = hl_model_hparams(m->lm->model);
    if (hp->pooling == HL_POOLING_NONE)
        return hl_err_set(err, HL_EINVAL, "model \"%s\" has pooling type none (one vector per token), which this API "
                          "cannot return", m->name ? m->name : m->key);
    j->n_embd = hl_model_n_out(m->lm->model);
    if (j->dims > j->n_embd)
        return hl_err_set(err, HL_EINVAL, "\"dimensions\" is %d, but this model's embeddings have %d", j->dims, j->n_embd);
    j->vec = calloc(j->n_in, sizeof *j->vec);
    hl_handle **hs = calloc(j->n_in, sizeof *hs);
    if (!j->vec || !hs) {
        free(hs);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    int32_t max = hl_engine_max_embed_tokens(eng);
    if (j->num_ctx > 0 && j->num_ctx < max) max = j->num_ctx;
    int rc = 0;
    for (size_t i = 0; i < j->n_in && !rc; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if ((rc = input_tokens(j, i, m->lm, max, &ids, &n, err))) break;
        if (n == 0) { /* the legacy route's "" */
            free(ids);
            continue;
        }
        hl_request req = {.prompt = ids, .n_prompt = n, .embed = 1};
        req.sampling = hl_sampling_default_params();
        rc = hl_engine_submit(eng, &req, NULL, NULL, &hs[i], err);
        free(ids);
        j->prompt_tokens += (int64_t)n;
    }
    for (size_t i = 0; i < j->n_in; i++) {
        if (!hs[i]) continue;
        hl_event ev;
        while (!rc && hl_handle_wait(hs[i], &ev, -1)) {
            if (ev.type == HL_EVENT_EMBED && ev.n_embedding == j->n_embd) {
                j->vec[i] = malloc((size_t)j->n_embd * sizeof(float));
                if (!j->vec[i]) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                else memcpy(j->vec[i], ev.embedding, (size_t)j->n_embd * sizeof(float));
            } else if (ev.type == HL_EVENT_ERROR) {
                rc = hl_err_set(err, HL_EIO, "embedding failed: %s", ev.error);
            } else if (ev.type == HL_EVENT_DONE) {
                break;
            }
        }
        if (!rc && !j->vec[i]) rc = hl_err_set(err, HL_EIO, "embedding failed: the engine returned no vector");
        hl_handle_release(hs[i]);
    }
    free(hs);
    return rc;
}

static void put_vec(hl_jw *w, const float *v, int32_t n) {
    hl_jw_arr_begin(w);
    for (int32_t i = 0; v && i < n; i++) hl_jw_double(w, v[i]);
    hl_jw_arr_end(w);
}

static void put_base64(hl_jw *w, const float *v, int32_t n) {
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)v; /* little-endian float32, as OpenAI sends */
    size_t len = (size_t)n * 4, o = 0;
    char *s = malloc((len + 2) / 3 * 4 + 1);
    if (!s) {
        hl_jw_null(w);
        return;
    }
    for (size_t i = 0; i < len; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
        s[o++] = tb[x >> 18 & 63];
        s[o++] = tb[x >> 12 & 63];
        s[o++] = i + 1 < len ? tb[x >> 6 & 63] : '=';
        s[o++] = i + 2 < len ? tb[x & 63] : '=';
    }
    hl_jw_strn(w, s, o);
    free(s);
}

static void reply_body(const embed_job *j, const srv_req *r, int64_t t0, int64_t load_ns, hl_buf *b) {
    hl_jw w;
    hl_jw_init(&w, b);
    hl_jw_obj_begin(&w);
    int32_t n = j->dims ? j->dims : j->n_embd;
    if (j->api == EMB_OLLAMA_LEGACY) {
        hl_jw_key(&w, "embedding");
        put_vec(&w, j->vec ? j->vec[0] : NULL, n);
    } else if (j->api == EMB_OLLAMA) {
        hl_jw_key(&w, "model");
        hl_jw_str(&w, r->model);
        hl_jw_key(&w, "embeddings");
        hl_jw_arr_begin(&w);
        for (size_t i = 0; i < j->n_in; i++) put_vec(&w, j->vec[i], n);
        hl_jw_arr_end(&w);
        hl_jw_key(&w, "total_duration");
        hl_jw_int(&w, hl_now_ns() - t0);
        hl_jw_key(&w, "load_duration");
        hl_jw_int(&w, load_ns);
        hl_jw_key(&w, "prompt_eval_count");
        hl_jw_int(&w, j->prompt_tokens);
    } else {
        hl_jw_key(&w, "object");
        hl_jw_str(&w, "list");
        hl_jw_key(&w, "data");
        hl_jw_arr_begin(&w);
        for (size_t i = 0; i < j->n_in; i++) {
            hl_jw_obj_begin(&w);
            hl_jw_key(&w, "object");
            hl_jw_str(&w, "embedding");
            hl_jw_key(&w, "index");
            hl_jw_int(&w, (int64_t)i);
            hl_jw_key(&w, "embedding");
            if (j->base64) put_base64(&w, j->vec[i], n);
            else put_vec(&w, j->vec[i], n);
            hl_jw_obj_end(&w);
        }
        hl_jw_arr_end(&w);
        hl_jw_key(&w, "model");
        hl_jw_str(&w, r->model);
        hl_jw_key(&w, "usage");
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "prompt_tokens");
        hl_jw_int(&w, j->prompt_tokens);
        hl_jw_key(&w, "total_tokens");
        hl_jw_int(&w, j->prompt_tokens);
        hl_jw_obj_end(&w);
    }
    hl_jw_obj_end(&w);
}

int srv_route_embed(srv_req *r) {
    embed_api api;
    if (!strcmp(r->url, "/api/embed")) api = EMB_OLLAMA;
    else if (!strcmp(r->url, "/api/embeddings")) api = EMB_OLLAMA_LEGACY;
    else if (!strcmp(r->url, "/v1/embeddings")) api = EMB_OPENAI;
    else return -1;
    if (strcmp(r->method, "POST")) return srv_reply_error(r, 405, "method not allowed");
    int64_t t0 = hl_now_ns();
    struct json_object *root, *v;
    hl_err err = {0};
    if (srv_json_parse(r->body.data ? r->body.data : "", r->body.len, &root, &err)) return srv_reply_error(r, 400, err.msg);
    if (!json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return srv_reply_error(r, 400, "the request body must be a JSON object");
    }
    if (!json_object_object_get_ex(root, "model", &v) || !json_object_is_type(v, json_type_string) ||
        !json_object_get_string_len(v)) {
        json_object_put(root);
        return srv_reply_error(r, 400, "model is required");
    }
    snprintf(r->model, sizeof r->model, "%s", json_object_get_string(v));
    srv_model *m = NULL;
    int rc = srv_models_get(&r->srv->models, r->model, SRV_NUM_GPU_UNSET, &m, &err);
    if (rc) {
        json_object_put(root);
        return srv_reply_error(r, srv_status_of(rc), err.msg);
    }
    int64_t load_ns = hl_now_ns() - t0;
    embed_job j = {.api = api};
    rc = parse_job(root, &j, tok_n_vocab(m->lm->tok), &err);
    if (!rc) rc = run_job(&j, m, &err);
    srv_models_put(&r->srv->models, m, j.has_keep_alive, j.keep_alive_ns);
    json_object_put(root);
    if (rc) {
        job_free(&j);
        return srv_reply_error(r, srv_status_of(rc), err.msg);
    }
    int32_t n = j.dims ? j.dims : j.n_embd;
    for (size_t i = 0; i < j.n_in; i++)
        if (j.vec[i] && api != EMB_OLLAMA_LEGACY) hl_embed_normalize(j.vec[i], n);
    srv_metrics_tokens(&r->srv->metrics, j.prompt_tokens, 0);
    hl_buf b = {0};
    reply_body(&j, r, t0, load_ns, &b);
    job_free(&j);
    return srv_reply_json(r, 200, &b);
}
