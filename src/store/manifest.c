/* Manifests: parsing (untrusted JSON, validated digests and media types),
 * writing (Ollama's field order, so the digest of a manifest we write is
 * stable), the config blob built from the model layer's GGUF metadata, and the
 * metadata itself (architecture, parameter count, quantization, lengths). */
#include "store/store_internal.h"

#include "base/buf.h"
#include "base/file.h"
#include "base/json_write.h"
#include "gguf/gguf.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int layer_from_json(json_object *o, store_layer *l, const char *what, hl_err *err) {
    json_object *mt, *dg, *sz;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "mediaType", &mt) ||
        !json_object_object_get_ex(o, "digest", &dg) || !json_object_object_get_ex(o, "size", &sz) ||
        !json_object_is_type(mt, json_type_string) || !json_object_is_type(dg, json_type_string) ||
        !json_object_is_type(sz, json_type_int))
        return hl_err_set(err, HL_EINVAL, "manifest %s needs mediaType, digest and size", what);
    const char *m = json_object_get_string(mt), *d = json_object_get_string(dg);
    if (strlen(m) >= sizeof l->media_type) return hl_err_set(err, HL_EINVAL, "manifest %s media type too long", what);
    if (!store_digest_valid(d)) return hl_err_set(err, HL_EINVAL, "manifest %s has an invalid digest \"%.80s\"", what, d);
    int64_t size = json_object_get_int64(sz);
    if (size < 0) return hl_err_set(err, HL_EINVAL, "manifest %s has a negative size", what);
    snprintf(l->media_type, sizeof l->media_type, "%s", m);
    snprintf(l->digest, sizeof l->digest, "%s", d);
    l->size = size;
    return HL_OK;
}

int store_manifest_parse(const char *json, size_t len, store_manifest *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    if (len > STORE_MANIFEST_MAX) return hl_err_set(err, HL_ERANGE, "manifest is too large (%zu bytes)", len);
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) return hl_err_set(err, HL_ENOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!root || je != json_tokener_success) {
        json_object_put(root);
        return hl_err_set(err, HL_EINVAL, "manifest is not valid JSON: %s", json_tokener_error_desc(je));
    }
    int rc = HL_OK;
    json_object *sv, *cfg, *layers;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "schemaVersion", &sv) ||
        json_object_get_int(sv) != 2) {
        rc = hl_err_set(err, HL_EINVAL, "manifest schemaVersion must be 2");
        goto out;
    }
    if (!json_object_object_get_ex(root, "config", &cfg) || (rc = layer_from_json(cfg, &out->config, "config", err)))
        goto out_cfg;
    if (!json_object_object_get_ex(root, "layers", &layers) || !json_object_is_type(layers, json_type_array)) {
        rc = hl_err_set(err, HL_EINVAL, "manifest has no layers array");
        goto out;
    }
    size_t n = json_object_array_length(layers);
    if (n > STORE_MAX_LAYERS) {
        rc = hl_err_set(err, HL_ERANGE, "manifest has %zu layers (at most %d)", n, STORE_MAX_LAYERS);
        goto out;
    }
    out->total_size = out->config.size;
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "layer %zu", i);
        if ((rc = layer_from_json(json_object_array_get_idx(layers, i), &out->layers[i], what, err))) goto out;
        out->total_size += out->layers[i].size;
    }
    out->n_layers = (int)n;
    store_sha_hex(json, len, out->id);
    goto out;
out_cfg:
    if (rc == HL_OK) rc = hl_err_set(err, HL_EINVAL, "manifest has no config");
out:
    json_object_put(root);
    return rc;
}

int store_manifest_read(store *s, const store_name *n, store_manifest *out, hl_err *err) {
    char path[STORE_PATH_MAX], full[600];
    int rc = store_manifest_path(s, n, path, sizeof path, err);
    if (rc) return rc;
    char *data;
    size_t len;
    store_name_display(n, full, sizeof full);
    if ((rc = hl_read_file(path, STORE_MANIFEST_MAX, &data, &len, err))) {
        if (rc == HL_ENOENT) return hl_err_set(err, HL_ENOENT, "model \"%s\" not found", full);
        return rc;
    }
    rc = store_manifest_parse(data, len, out, err);
    free(data);
    if (rc) hl_err_prefix(err, "model %s: ", full);
    return rc;
}

static void jw_layer(hl_jw *w, const store_layer *l) {
    hl_jw_obj_begin(w);
    hl_jw_key(w, "mediaType");
    hl_jw_str(w, l->media_type);
    hl_jw_key(w, "digest");
    hl_jw_str(w, l->digest);
    hl_jw_key(w, "size");
    hl_jw_int(w, l->size);
    hl_jw_obj_end(w);
}

char *store_manifest_json(const store_layer *config, const store_layer *layers, int n_layers) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "schemaVersion");
    hl_jw_int(&w, 2);
    hl_jw_key(&w, "mediaType");
    hl_jw_str(&w, STORE_MT_MANIFEST);
    hl_jw_key(&w, "config");
    jw_layer(&w, config);
    hl_jw_key(&w, "layers");
    hl_jw_arr_begin(&w);
    for (int i = 0; i < n_layers; i++) jw_layer(&w, &layers[i]);
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    if (b.oom) {
        hl_buf_free(&b);
        return NULL;
    }
    return hl_buf_take(&b);
}

/* llama.cpp's file-type enum (general.file_type) as Ollama names it. */
static const char *ftype_name(int64_t ft) {
    switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return NULL;
    }
}

/* Reads what list/show print from a GGUF file's header. */
static int gguf_meta(const char *path, store_info *info, hl_err *err) {
    gguf_file *f;
    int rc = gguf_open(&f, path, err);
    if (rc) return rc;
    gguf_str a;
    if (gguf_get_str(f, "general.architecture", &a) == 0 && a.len < sizeof info->arch)
        snprintf(info->arch, sizeof info->arch, "%.*s", (int)a.len, a.ptr);
    snprintf(info->family, sizeof info->family, "%s", info->arch);
    char key[128];
    snprintf(key, sizeof key, "%s.context_length", info->arch);
    gguf_get_int(f, key, &info->ctx_len);
    snprintf(key, sizeof key, "%s.embedding_length", info->arch);
    gguf_get_int(f, key, &info->embd_len);
    int64_t np = 0, ft = -1;
    int64_t count[HL_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        int64_t e = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) e *= t->ne[d];
        np += e;
        if (t->n_dims >= 2 && (int)t->type >= 0 && (int)t->type < HL_TYPE_COUNT) count[t->type] += e;
    }
    info->n_params = np;
    const char *q = NULL;
    if (gguf_get_int(f, "general.file_type", &ft) == 0) q = ftype_name(ft);
    if (!q) { /* no file type: name the most common matrix type */
        int best = 0;
        for (int t = 1; t < HL_TYPE_COUNT; t++)
            if (count[t] > count[best]) best = t;
        q = hl_type_name(best);
    }
    snprintf(info->quant, sizeof info->quant, "%s", q);
    gguf_close(f);
    return HL_OK;
}

int store_model_meta(store *s, const char *model_digest, store_info *info, hl_err *err) {
    if (s->db) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "SELECT arch, n_params, quant, ctx_len, embd_len FROM blobmeta WHERE digest=?",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, model_digest, -1, SQLITE_STATIC);
            int found = sqlite3_step(st) == SQLITE_ROW;
            if (found) {
                snprintf(info->arch, sizeof info->arch, "%s", (const char *)sqlite3_column_text(st, 0));
                snprintf(info->family, sizeof info->family, "%s", info->arch);
                info->n_params = sqlite3_column_int64(st, 1);
                snprintf(info->quant, sizeof info->quant, "%s", (const char *)sqlite3_column_text(st, 2));
                info->ctx_len = sqlite3_column_int64(st, 3);
                info->embd_len = sqlite3_column_int64(st, 4);
            }
            sqlite3_finalize(st);
            if (found) return HL_OK;
        }
    }
    char path[STORE_PATH_MAX];
    int rc = store_blob_path(s, model_digest, path, sizeof path, err);
    if (rc || (rc = gguf_meta(path, info, err))) return rc;
    if (s->db) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT OR REPLACE INTO blobmeta(digest, arch, n_params, quant, ctx_len, embd_len) "
                               "VALUES(?,?,?,?,?,?)", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, model_digest, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, info->arch, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, info->n_params);
            sqlite3_bind_text(st, 4, info->quant, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, info->ctx_len);
            sqlite3_bind_int64(st, 6, info->embd_len);
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
    }
    return HL_OK;
}

/* The config blob, as Ollama writes it (ConfigV2). */
static char *config_json(const store_info *meta, const store_layer *layers, int n_layers) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    char params[32];
    store_human_params(meta->n_params, params, sizeof params);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model_format");
    hl_jw_str(&w, "gguf");
    hl_jw_key(&w, "model_family");
    hl_jw_str(&w, meta->arch);
    hl_jw_key(&w, "model_families");
    hl_jw_arr_begin(&w);
    hl_jw_str(&w, meta->arch);
    hl_jw_arr_end(&w);
    hl_jw_key(&w, "model_type");
    hl_jw_str(&w, params);
    hl_jw_key(&w, "file_type");
    hl_jw_str(&w, meta->quant);
    hl_jw_key(&w, "architecture");
    hl_jw_str(&w, "amd64");
    hl_jw_key(&w, "os");
    hl_jw_str(&w, "linux");
    hl_jw_key(&w, "rootfs");
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "type");
    hl_jw_str(&w, "layers");
    hl_jw_key(&w, "diff_ids");
    hl_jw_arr_begin(&w);
    for (int i = 0; i < n_layers; i++) hl_jw_str(&w, layers[i].digest);
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    hl_jw_obj_end(&w);
    if (b.oom) {
        hl_buf_free(&b);
        return NULL;
    }
    return hl_buf_take(&b);
}

int store_write_manifest(store *s, const store_name *n, const store_layer *layers, int n_layers, hl_err *err) {
    if (n_layers > STORE_MAX_LAYERS) return hl_err_set(err, HL_ERANGE, "too many layers (%d)", n_layers);
    store_info meta = {0};
    int rc = HL_OK;
    for (int i = 0; i < n_layers; i++) {
        char p[STORE_PATH_MAX];
        struct stat st;
        if ((rc = store_blob_path(s, layers[i].digest, p, sizeof p, err))) return rc;
        if (stat(p, &st) != 0 || st.st_size != layers[i].size)
            return hl_err_set(err, HL_EIO, "blob %s is missing or has the wrong size; not writing the manifest",
                              layers[i].digest);
        if (strcmp(layers[i].media_type, STORE_MT_MODEL) == 0 && !meta.arch[0] &&
            (rc = store_model_meta(s, layers[i].digest, &meta, err)))
            return rc;
    }
    char *cfg = config_json(&meta, layers, n_layers);
    if (!cfg) return hl_err_set(err, HL_ENOMEM, "out of memory");
    store_layer config = {STORE_MT_CONFIG, "", (int64_t)strlen(cfg)};
    rc = store_blob_put(s, cfg, strlen(cfg), config.digest, err);
    free(cfg);
    if (rc) return rc;
    char *man = store_manifest_json(&config, layers, n_layers);
    if (!man) return hl_err_set(err, HL_ENOMEM, "out of memory");
    char path[STORE_PATH_MAX];
    if ((rc = store_manifest_path(s, n, path, sizeof path, err))) goto out;
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    if ((rc = hl_mkdirs(dir, err))) goto out;
    int lock = store_lock(s, err);
    if (lock < 0) {
        rc = lock;
        goto out;
    }
    rc = hl_write_file_atomic(path, man, strlen(man), err);
    store_unlock(lock);
    if (rc == HL_OK) store_index_refresh(s, NULL);
out:
    free(man);
    return rc;
}
