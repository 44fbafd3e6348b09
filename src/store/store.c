/* The store's lifecycle and the verbs that read or rearrange existing models:
 * open (root from the argument, $HYPERLAMA_MODELS or ~/.hyperlama/models),
 * looking a name up (exactly, then case-insensitively, else "did you mean"),
 * loading a model's layers for run/show, copying a manifest, and deleting one
 * together with the blobs that no other manifest references. */
#include "store/store_internal.h"

#include "base/buf.h"
#include "base/file.h"
#include "store/modelfile.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int store_open(store **out, const char *root, hl_err *err) {
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) return hl_err_set(err, HL_ENOMEM, "out of memory");
    int rc;
    const char *env = getenv("HYPERLAMA_MODELS");
    if (root && *root) rc = store_pathf(s->root, sizeof s->root, err, "%s", root);
    else if (env && *env) rc = store_pathf(s->root, sizeof s->root, err, "%s", env);
    else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            free(s);
            return hl_err_set(err, HL_EINVAL, "HOME is not set; set HYPERLAMA_MODELS to choose the model folder");
        }
        rc = store_pathf(s->root, sizeof s->root, err, "%s/.hyperlama/models", home);
    }
    size_t l = strlen(s->root);
    while (l > 1 && s->root[l - 1] == '/') s->root[--l] = 0;
    char p[STORE_PATH_MAX];
    if (rc == HL_OK && !(rc = store_pathf(p, sizeof p, err, "%s/blobs", s->root))) rc = hl_mkdirs(p, err);
    if (rc == HL_OK && !(rc = store_pathf(p, sizeof p, err, "%s/manifests", s->root))) rc = hl_mkdirs(p, err);
    if (rc) {
        hl_err_prefix(err, "opening model store %s: ", s->root);
        free(s);
        return rc;
    }
    hl_err e2;
    store_index_open(s, &e2); /* without an index we still work, only slower */
    *out = s;
    return HL_OK;
}

void store_close(store *s) {
    if (!s) return;
    store_index_close(s);
    free(s);
}

const char *store_root(const store *s) { return s->root; }

char *store_suggest(store *s, const char *name) {
    store_name *names;
    size_t n;
    if (store_scan_manifests(s, &names, &n, NULL)) return NULL;
    hl_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        char disp[700], bare[300];
        store_name_display(&names[i], disp, sizeof disp);
        snprintf(bare, sizeof bare, "%s", names[i].model);
        int d1 = store_edit_distance(name, disp), d2 = store_edit_distance(name, bare);
        if (d1 <= 3 || d2 <= 2 || strcasestr(disp, name)) {
            if (b.len) hl_buf_puts(&b, ", ");
            hl_buf_puts(&b, disp);
        }
    }
    free(names);
    if (b.oom || !b.len) {
        hl_buf_free(&b);
        return NULL;
    }
    return hl_buf_take(&b);
}

/* Finds the manifest of a name: exact path first, then a case-insensitive
 * match (Ollama treats names case-insensitively). */
static int find_name(store *s, const char *name, store_name *out, hl_err *err) {
    int rc = store_name_parse(name, out, err);
    if (rc) return rc;
    char path[STORE_PATH_MAX];
    if ((rc = store_manifest_path(s, out, path, sizeof path, err))) return rc;
    if (access(path, F_OK) == 0) return HL_OK;
    store_name *names;
    size_t n;
    if (store_scan_manifests(s, &names, &n, err) == HL_OK) {
        for (size_t i = 0; i < n; i++)
            if (!strcasecmp(names[i].host, out->host) && !strcasecmp(names[i].ns, out->ns) &&
                !strcasecmp(names[i].model, out->model) && !strcasecmp(names[i].tag, out->tag)) {
                *out = names[i];
                free(names);
                return HL_OK;
            }
        free(names);
    }
    char *sug = store_suggest(s, name);
    if (sug) hl_err_set(err, HL_ENOENT, "model \"%s\" not found; did you mean: %s?", name, sug);
    else hl_err_set(err, HL_ENOENT, "model \"%s\" not found; try \"hyperlama pull %s\"", name, name);
    free(sug);
    return HL_ENOENT;
}

int store_info_get(store *s, const char *name, store_info *out, hl_err *err) {
    store_name n;
    int rc = find_name(s, name, &n, err);
    if (rc) return rc;
    return store_index_info(s, &n, out, err);
}

static int read_text_layer(store *s, const store_layer *l, char **out, hl_err *err) {
    char path[STORE_PATH_MAX];
    int rc = store_blob_path(s, l->digest, path, sizeof path, err);
    if (rc) return rc;
    size_t len;
    if ((rc = hl_read_file(path, STORE_TEXT_LAYER_MAX, out, &len, err))) return rc;
    return HL_OK;
}

int store_load(store *s, const char *name, store_model *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    store_name n;
    store_manifest m;
    int rc = find_name(s, name, &n, err);
    if (rc || (rc = store_manifest_read(s, &n, &m, err)) || (rc = store_index_info(s, &n, &out->info, err)))
        return rc;
    for (int i = 0; i < m.n_layers && rc == HL_OK; i++) {
        const store_layer *l = &m.layers[i];
        char path[STORE_PATH_MAX], **dst = NULL;
        if (!strcmp(l->media_type, STORE_MT_MODEL) || !strcmp(l->media_type, STORE_MT_PROJECTOR)) {
            if ((rc = store_blob_path(s, l->digest, path, sizeof path, err))) break;
            if (access(path, R_OK) != 0) {
                rc = hl_err_set(err, HL_EIO, "model %s: blob %s is missing; pull or create the model again", name, l->digest);
                break;
            }
            dst = !strcmp(l->media_type, STORE_MT_MODEL) ? &out->model_path : &out->projector_path;
            if (!*dst && !(*dst = strdup(path))) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            continue;
        }
        if (!strcmp(l->media_type, STORE_MT_ADAPTER)) {
            out->has_adapter = 1;
            continue;
        }
        if (!strcmp(l->media_type, STORE_MT_TEMPLATE)) dst = &out->template_text;
        else if (!strcmp(l->media_type, STORE_MT_SYSTEM)) dst = &out->system;
        else if (!strcmp(l->media_type, STORE_MT_PARAMS)) dst = &out->params_json;
        else if (!strcmp(l->media_type, STORE_MT_MESSAGES)) dst = &out->messages_json;
        else if (!strcmp(l->media_type, STORE_MT_LICENSE)) dst = &out->license;
        else continue; /* unknown layer types are carried, not interpreted */
        char *text;
        if ((rc = read_text_layer(s, l, &text, err))) break;
        if (*dst && dst == &out->license) { /* several licenses: keep them all */
            size_t a = strlen(*dst), b = strlen(text);
            char *j = malloc(a + b + 3);
            if (!j) {
                free(text);
                rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                break;
            }
            memcpy(j, *dst, a);
            memcpy(j + a, "\n\n", 2);
            memcpy(j + a + 2, text, b + 1);
            free(*dst);
            free(text);
            *dst = j;
        } else {
            free(*dst);
            *dst = text;
        }
    }
    if (rc == HL_OK && !out->model_path)
        rc = hl_err_set(err, HL_EINVAL, "model %s has no model layer", name);
    if (rc) store_model_free(out);
    return rc;
}

int store_resolve(store *s, const char *name, store_model *out, hl_err *err) {
    int rc = store_load(s, name, out, err);
    if (rc == HL_OK) store_index_touch(s, out->info.full);
    return rc;
}

void store_model_free(store_model *m) {
    free(m->model_path);
    free(m->projector_path);
    free(m->template_text);
    free(m->system);
    free(m->license);
    free(m->params_json);
    free(m->messages_json);
    memset(m, 0, sizeof *m);
}

int store_copy(store *s, const char *src, const char *dst, hl_err *err) {
    store_name a, b;
    int rc = find_name(s, src, &a, err);
    if (rc || (rc = store_name_parse(dst, &b, err))) return rc;
    char pa[STORE_PATH_MAX], pb[STORE_PATH_MAX];
    if ((rc = store_manifest_path(s, &a, pa, sizeof pa, err)) || (rc = store_manifest_path(s, &b, pb, sizeof pb, err)))
        return rc;
    char *data;
    size_t len;
    if ((rc = hl_read_file(pa, STORE_MANIFEST_MAX, &data, &len, err))) return rc;
    store_manifest m;
    if ((rc = store_manifest_parse(data, len, &m, err))) {
        free(data);
        return rc;
    }
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", pb);
    *strrchr(dir, '/') = 0;
    if ((rc = hl_mkdirs(dir, err)) == HL_OK) {
        int lock = store_lock(s, err);
        if (lock < 0) rc = lock;
        else {
            rc = hl_write_file_atomic(pb, data, len, err);
            store_unlock(lock);
        }
    }
    free(data);
    if (rc == HL_OK) store_index_refresh(s, NULL);
    return rc;
}

/* Removes empty folders from the manifest's folder up to manifests/. */
static void prune_dirs(const store *s, const char *path) {
    char dir[STORE_PATH_MAX], stop[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(stop, sizeof stop, "%s/manifests", s->root);
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(dir, '/');
        if (!slash) return;
        *slash = 0;
        if (strcmp(dir, stop) == 0 || rmdir(dir) != 0) return;
    }
}

int store_delete(store *s, const char *name, hl_err *err) {
    store_name n;
    store_manifest m;
    int rc = find_name(s, name, &n, err);
    if (rc) return rc;
    int lock = store_lock(s, err);
    if (lock < 0) return lock;
    char path[STORE_PATH_MAX];
    if ((rc = store_manifest_path(s, &n, path, sizeof path, err)) || (rc = store_manifest_read(s, &n, &m, err)))
        goto out;
    if (unlink(path) != 0) {
        rc = hl_err_set(err, HL_EIO, "cannot remove %s: %s", path, strerror(errno));
        goto out;
    }
    store_fsync_dir(path);
    prune_dirs(s, path);
    char full[700];
    store_name_full(&n, full, sizeof full);
    store_index_forget(s, full);
    /* garbage: this manifest's blobs that no remaining manifest references */
    store_name *names;
    size_t nn;
    if (store_scan_manifests(s, &names, &nn, err) != HL_OK) goto out; /* keep blobs when unsure */
    int keep[STORE_MAX_LAYERS + 1] = {0};
    for (size_t i = 0; i < nn; i++) {
        store_manifest o;
        hl_err e2;
        if (store_manifest_read(s, &names[i], &o, &e2) != HL_OK) {
            /* an unreadable manifest might reference anything: keep every blob */
            for (int k = 0; k <= m.n_layers; k++) keep[k] = 1;
            continue;
        }
        for (int k = 0; k <= m.n_layers; k++) {
            const char *d = k < m.n_layers ? m.layers[k].digest : m.config.digest;
            if (!strcmp(o.config.digest, d)) keep[k] = 1;
            for (int j = 0; j < o.n_layers; j++)
                if (!strcmp(o.layers[j].digest, d)) keep[k] = 1;
        }
    }
    free(names);
    for (int k = 0; k <= m.n_layers; k++) {
        if (keep[k]) continue;
        char bp[STORE_PATH_MAX];
        if (store_blob_path(s, k < m.n_layers ? m.layers[k].digest : m.config.digest, bp, sizeof bp, NULL) == 0)
            unlink(bp);
    }
out:
    store_unlock(lock);
    return rc;
}
