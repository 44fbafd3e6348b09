/* `import --from-ollama`: brings models from an Ollama store (same layout as
 * ours) in without downloading. Every blob a manifest names is verified to
 * exist with the right size, hard-linked (copied when the stores are on
 * different filesystems), and only then is the manifest copied, atomically,
 * so an interrupted import leaves whole models only. Blob contents are not
 * re-hashed: Ollama verified them when it pulled them, and hashing tens of
 * GB would make the import slow; `hyperlama` checks digests on pull. */
#include "store/store_internal.h"

#include "base/file.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int import_one(store *s, store *o, const store_name *n, const store_ops *ops, hl_err *err) {
    char src[STORE_PATH_MAX], dst[STORE_PATH_MAX], disp[700];
    store_name_display(n, disp, sizeof disp);
    int rc = store_manifest_path(o, n, src, sizeof src, err);
    if (rc) return rc;
    char *data;
    size_t len;
    if ((rc = hl_read_file(src, STORE_MANIFEST_MAX, &data, &len, err))) return rc;
    store_manifest m;
    if ((rc = store_manifest_parse(data, len, &m, err))) {
        free(data);
        return hl_err_prefix(err, "Ollama model %s: ", disp);
    }
    char status[800];
    snprintf(status, sizeof status, "importing %s", disp);
    store_report(ops, status, NULL, 0, 0);
    for (int i = -1; i < m.n_layers && rc == HL_OK; i++) {
        const store_layer *l = i < 0 ? &m.config : &m.layers[i];
        char from[STORE_PATH_MAX], to[STORE_PATH_MAX];
        struct stat st;
        if ((rc = store_blob_path(o, l->digest, from, sizeof from, err)) ||
            (rc = store_blob_path(s, l->digest, to, sizeof to, err)))
            break;
        if (stat(to, &st) == 0 && st.st_size == l->size) continue;
        if (stat(from, &st) != 0 || st.st_size != l->size) {
            rc = hl_err_set(err, HL_EIO, "Ollama model %s: blob %s is missing or has the wrong size", disp, l->digest);
            break;
        }
        rc = store_copy_file(from, to, 1, ops ? ops->cancel : NULL, err);
    }
    if (rc == HL_OK && (rc = store_manifest_path(s, n, dst, sizeof dst, err)) == HL_OK) {
        char dir[STORE_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", dst);
        *strrchr(dir, '/') = 0;
        if ((rc = hl_mkdirs(dir, err)) == HL_OK) {
            int lock = store_lock(s, err);
            if (lock < 0) rc = lock;
            else {
                rc = hl_write_file_atomic(dst, data, len, err);
                store_unlock(lock);
            }
        }
    }
    free(data);
    return rc;
}

int store_import_ollama(store *s, const char *ollama_root, const char *name, const store_ops *ops, int *n_imported,
                        hl_err *err) {
    *n_imported = 0;
    char root[STORE_PATH_MAX];
    const char *env = getenv("OLLAMA_MODELS"), *home = getenv("HOME");
    int rc;
    if (ollama_root && *ollama_root) rc = store_pathf(root, sizeof root, err, "%s", ollama_root);
    else if (env && *env) rc = store_pathf(root, sizeof root, err, "%s", env);
    else if (home && *home) rc = store_pathf(root, sizeof root, err, "%s/.ollama/models", home);
    else return hl_err_set(err, HL_EINVAL, "cannot find Ollama's store: set OLLAMA_MODELS");
    if (rc) return rc;
    char mdir[STORE_PATH_MAX + 16];
    struct stat st;
    snprintf(mdir, sizeof mdir, "%s/manifests", root);
    if (stat(mdir, &st) != 0 || !S_ISDIR(st.st_mode))
        return hl_err_set(err, HL_ENOENT, "no Ollama store at %s (no manifests folder); set OLLAMA_MODELS or pass --path", root);
    /* open the Ollama store read-only: borrow its struct for path building */
    store o = {0};
    snprintf(o.root, sizeof o.root, "%s", root);
    store_name *names;
    size_t n;
    if ((rc = store_scan_manifests(&o, &names, &n, err))) return rc;
    store_name want;
    if (name && (rc = store_name_parse(name, &want, err))) {
        free(names);
        return rc;
    }
    int matched = 0;
    for (size_t i = 0; i < n && rc == HL_OK; i++) {
        if (name && (strcasecmp(names[i].host, want.host) || strcasecmp(names[i].ns, want.ns) ||
                     strcasecmp(names[i].model, want.model) || strcasecmp(names[i].tag, want.tag)))
            continue;
        matched++;
        if (store_cancelled(ops)) rc = hl_err_set(err, HL_EIO, "cancelled");
        else if ((rc = import_one(s, &o, &names[i], ops, err)) == HL_OK) (*n_imported)++;
    }
    free(names);
    if (rc == HL_OK && name && !matched) rc = hl_err_set(err, HL_ENOENT, "model \"%s\" not found in the Ollama store at %s", name, root);
    if (*n_imported) store_index_refresh(s, NULL);
    if (rc == HL_OK) store_report(ops, "success", NULL, 0, 0);
    return rc;
}
