/* `create`: builds a model from a Modelfile. FROM names a store model (its
 * layers are inherited) or a GGUF file (copied in as a blob, or requantized
 * first with --quantize). TEMPLATE/SYSTEM/MESSAGE replace the inherited
 * layer, PARAMETERs are merged over the inherited ones, LICENSE adds a layer.
 * Every blob is written before the manifest, which is written last and
 * atomically. Also the reverse: the Modelfile of a stored model (show). */
#include "store/store_internal.h"

#include "base/buf.h"
#include "base/file.h"
#include "base/json_write.h"
#include "gguf/gguf.h"
#include "gotmpl/gotmpl.h"
#include "store/convert.h"
#include "store/modelfile.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct layers {
    store_layer v[STORE_MAX_LAYERS];
    int n;
} layers;

static int add_layer(layers *L, const char *mt, const char *digest, int64_t size, hl_err *err) {
    if (L->n >= STORE_MAX_LAYERS) return hl_err_set(err, HL_ERANGE, "too many layers");
    store_layer *l = &L->v[L->n++];
    snprintf(l->media_type, sizeof l->media_type, "%s", mt);
    snprintf(l->digest, sizeof l->digest, "%s", digest);
    l->size = size;
    return HL_OK;
}

static void drop_layers(layers *L, const char *mt) {
    int k = 0;
    for (int i = 0; i < L->n; i++)
        if (strcmp(L->v[i].media_type, mt)) L->v[k++] = L->v[i];
    L->n = k;
}

static const store_layer *find_layer(const layers *L, const char *mt) {
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->v[i].media_type, mt)) return &L->v[i];
    return NULL;
}

static int put_text(store *s, layers *L, const char *mt, const char *text, int replace, const store_ops *ops,
                    hl_err *err) {
    char digest[72];
    size_t len = strlen(text);
    int rc = store_blob_put(s, text, len, digest, err);
    if (rc) return rc;
    if (replace) drop_layers(L, mt);
    char status[128];
    snprintf(status, sizeof status, "creating new layer %s", digest);
    store_report(ops, status, NULL, 0, 0);
    return add_layer(L, mt, digest, (int64_t)len, err);
}

/* A temporary file next to the blobs for one create's intermediate GGUF
 * (what: "convert", "quantize"; store_tmp_path names it per pid and thread). */
static int tmp_path(store *s, const char *what, char *out, size_t n, hl_err *err) {
    char base[STORE_PATH_MAX];
    int rc = store_pathf(base, sizeof base, err, "%s/blobs/%s", s->root, what);
    return rc ? rc : store_tmp_path(out, n, base, err);
}

/* FROM ./dir (a Hugging Face checkpoint): converted into a temporary GGUF
 * next to the blobs, which then enters the store like a FROM file (and is
 * requantized with --quantize); the temporary file is removed either way. */
static int add_model_file(store *s, struct layers *L, const char *path, const store_ops *ops, hl_err *err);
static int add_model_dir(store *s, struct layers *L, const char *dir, const store_ops *ops, hl_err *err) {
    char tmp[STORE_PATH_MAX];
    int rc = tmp_path(s, "convert", tmp, sizeof tmp, err);
    if (rc) return rc;
    store_report(ops, "converting model", NULL, 0, 0);
    if ((rc = store_convert_hf(dir, tmp, ops, err)) == HL_OK) rc = add_model_file(s, L, tmp, ops, err);
    unlink(tmp);
    return rc;
}

/* FROM is a file when it looks like a path or names an existing file. */
static int from_is_path(const char *v, const char *base_dir, char *path, size_t cap) {
    int looks = v[0] == '/' || v[0] == '.' || v[0] == '~' || strstr(v, ".gguf") || strchr(v, '\\');
    if (v[0] == '/') snprintf(path, cap, "%s", v);
    else if (v[0] == '~' && v[1] == '/' && getenv("HOME")) snprintf(path, cap, "%s%s", getenv("HOME"), v + 1);
    else snprintf(path, cap, "%s/%s", base_dir && *base_dir ? base_dir : ".", v);
    struct stat st;
    if (stat(path, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) return 1;
    return looks;
}

static int merge_params(const char *old_json, const char *new_json, char **out, hl_err *err) {
    json_object *a = old_json ? json_tokener_parse(old_json) : NULL;
    json_object *b = json_tokener_parse(new_json);
    if (!b) {
        json_object_put(a);
        return hl_err_set(err, HL_EINVAL, "internal: bad params JSON");
    }
    if (!a || !json_object_is_type(a, json_type_object)) {
        json_object_put(a);
        a = json_object_new_object();
    }
    json_object_object_foreach(b, k, v) json_object_object_add(a, k, json_object_get(v));
    *out = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
    json_object_put(a);
    json_object_put(b);
    return *out ? HL_OK : hl_err_set(err, HL_ENOMEM, "out of memory");
}

static int messages_json(const store_modelfile *mf, char **out) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_arr_begin(&w);
    int any = 0;
    for (size_t i = 0; i < mf->n; i++) {
        if (mf->cmds[i].kind != STORE_MF_MESSAGE) continue;
        any = 1;
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "role");
        hl_jw_str(&w, mf->cmds[i].key);
        hl_jw_key(&w, "content");
        hl_jw_str(&w, mf->cmds[i].value);
        hl_jw_obj_end(&w);
    }
    hl_jw_arr_end(&w);
    *out = any && !b.oom ? hl_buf_take(&b) : NULL;
    hl_buf_free(&b);
    return any;
}

static int add_model_file(store *s, struct layers *L, const char *path, const store_ops *ops, hl_err *err) {
    gguf_file *f;
    int rc = gguf_open(&f, path, err); /* validate before it enters the store */
    if (rc) return hl_err_prefix(err, "FROM %s: ", path);
    gguf_close(f);
    char digest[72], tmp[STORE_PATH_MAX];
    int64_t size;
    const char *src = path;
    tmp[0] = 0;
    if (ops && ops->quantize) {
        if ((rc = tmp_path(s, "quantize", tmp, sizeof tmp, err))) return rc;
        if ((rc = store_requantize(path, tmp, ops->quantize, ops->threads, ops, err))) {
            unlink(tmp);
            return rc;
        }
        src = tmp;
    }
    rc = store_blob_put_file(s, src, 0, digest, &size, ops, err);
    if (tmp[0]) unlink(tmp);
    if (rc) return rc;
    char status[128];
    snprintf(status, sizeof status, "creating new layer %s", digest);
    store_report(ops, status, NULL, 0, 0);
    drop_layers(L, STORE_MT_MODEL);
    return add_layer(L, STORE_MT_MODEL, digest, size, err);
}

int store_create(store *s, const char *name, const char *text, size_t len, const char *base_dir,
                 const store_ops *ops, hl_err *err) {
    store_name n;
    int rc = store_name_parse(name, &n, err);
    if (rc) return rc;
    store_report(ops, "parsing modelfile", NULL, 0, 0);
    store_modelfile mf;
    if ((rc = store_modelfile_parse(text, len, &mf, err))) return rc;
    layers L = {0};
    char *params = NULL, *inherited_params = NULL;
    for (size_t i = 0; i < mf.n && rc == HL_OK; i++) {
        const store_mf_cmd *c = &mf.cmds[i];
        if (c->kind == STORE_MF_ADAPTER)
            rc = hl_err_set(err, HL_ENOTSUP, "line %d: ADAPTER is not supported yet (merge the LoRA into the weights first)", c->line);
        if (c->kind == STORE_MF_TEMPLATE) {
            gotmpl *t;
            hl_err e2;
            if (gotmpl_parse(&t, c->value, strlen(c->value), &e2)) {
                rc = hl_err_set(err, HL_EINVAL, "line %d: TEMPLATE: %s", c->line, e2.msg);
            } else {
                gotmpl_free(t);
            }
        }
    }
    for (size_t i = 0; i < mf.n && rc == HL_OK; i++) {
        const store_mf_cmd *c = &mf.cmds[i];
        if (c->kind != STORE_MF_FROM) continue;
        char path[STORE_PATH_MAX];
        if (from_is_path(c->value, base_dir, path, sizeof path)) {
            if (access(path, R_OK) != 0) {
                rc = hl_err_set(err, HL_ENOENT, "line %d: FROM %s: no such file (%s)", c->line, c->value, path);
                break;
            }
            struct stat st;
            if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) rc = add_model_dir(s, &L, path, ops, err);
            else rc = add_model_file(s, &L, path, ops, err);
        } else {
            store_name bn;
            store_manifest bm;
            store_model base;
            if ((rc = store_name_parse(c->value, &bn, err))) break;
            if ((rc = store_load(s, c->value, &base, err))) {
                hl_err_prefix(err, "line %d: FROM: ", c->line);
                break;
            }
            store_name_parse(base.info.full, &bn, NULL);
            if ((rc = store_manifest_read(s, &bn, &bm, err)) == HL_OK) {
                for (int k = 0; k < bm.n_layers && rc == HL_OK; k++) {
                    char status[128];
                    snprintf(status, sizeof status, "using existing layer %s", bm.layers[k].digest);
                    store_report(ops, status, NULL, 0, 0);
                    rc = add_layer(&L, bm.layers[k].media_type, bm.layers[k].digest, bm.layers[k].size, err);
                }
                if (base.params_json) inherited_params = strdup(base.params_json);
                if (rc == HL_OK && ops && ops->quantize) rc = add_model_file(s, &L, base.model_path, ops, err);
            }
            store_model_free(&base);
        }
    }
    /* text layers */
    for (size_t i = 0; i < mf.n && rc == HL_OK; i++) {
        const store_mf_cmd *c = &mf.cmds[i];
        if (c->kind == STORE_MF_TEMPLATE) rc = put_text(s, &L, STORE_MT_TEMPLATE, c->value, 1, ops, err);
        else if (c->kind == STORE_MF_SYSTEM) rc = put_text(s, &L, STORE_MT_SYSTEM, c->value, 1, ops, err);
        else if (c->kind == STORE_MF_LICENSE) rc = put_text(s, &L, STORE_MT_LICENSE, c->value, 0, ops, err);
    }
    char *msgs = NULL;
    if (rc == HL_OK && messages_json(&mf, &msgs)) {
        rc = msgs ? put_text(s, &L, STORE_MT_MESSAGES, msgs, 1, ops, err) : hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    free(msgs);
    if (rc == HL_OK)
        rc = store_params_json(&mf, &params, ops ? (void (*)(void *, const char *))ops->warn : NULL,
                               ops ? ops->progress_ctx : NULL, err);
    if (rc == HL_OK && params) {
        char *merged = NULL;
        const store_layer *old = find_layer(&L, STORE_MT_PARAMS);
        if ((rc = merge_params(old ? inherited_params : NULL, params, &merged, err)) == HL_OK)
            rc = put_text(s, &L, STORE_MT_PARAMS, merged, 1, ops, err);
        free(merged);
    }
    if (rc == HL_OK && !find_layer(&L, STORE_MT_MODEL)) rc = hl_err_set(err, HL_EINVAL, "Modelfile has no usable FROM");
    if (rc == HL_OK && !store_cancelled(ops)) {
        store_report(ops, "writing manifest", NULL, 0, 0);
        rc = store_write_manifest(s, &n, L.v, L.n, err);
        if (rc == HL_OK) store_report(ops, "success", NULL, 0, 0);
    } else if (rc == HL_OK) {
        rc = hl_err_set(err, HL_EIO, "cancelled");
    }
    free(params);
    free(inherited_params);
    store_modelfile_free(&mf);
    return rc;
}

char *store_modelfile_of(const store_model *m, const char *name) {
    store_modelfile mf = {0};
    hl_err e;
    store_modelfile_add(&mf, STORE_MF_FROM, NULL, m->model_path, &e);
    if (m->template_text) store_modelfile_add(&mf, STORE_MF_TEMPLATE, NULL, m->template_text, &e);
    if (m->system) store_modelfile_add(&mf, STORE_MF_SYSTEM, NULL, m->system, &e);
    if (m->params_json) store_params_from_json(m->params_json, &mf, &e);
    if (m->messages_json) store_messages_from_json(m->messages_json, &mf, &e);
    if (m->license) store_modelfile_add(&mf, STORE_MF_LICENSE, NULL, m->license, &e);
    char *body = store_modelfile_format(&mf);
    store_modelfile_free(&mf);
    if (!body) return NULL;
    hl_buf b = {0};
    hl_buf_printf(&b, "# Modelfile generated by \"hyperlama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM %s\n\n%s",
                  name, body);
    free(body);
    if (b.oom) {
        hl_buf_free(&b);
        return NULL;
    }
    return hl_buf_take(&b);
}
