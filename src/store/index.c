/* The SQLite index beside the store (index.db: WAL journal, STRICT tables):
 * one row per manifest (its digest, file mtime and size, total size, model
 * blob, last-used time) and one per model blob (architecture, parameter
 * count, quantization, lengths), so `list` reads no GGUF header twice. The
 * manifests on disk are the truth: a refresh re-reads any manifest whose
 * mtime or size differ from its row, adds missing ones and drops rows whose
 * file is gone. Losing or corrupting index.db costs only a rebuild. */
#include "store/store_internal.h"

#include "base/file.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS models("
    " name TEXT PRIMARY KEY, manifest_digest TEXT NOT NULL, mtime_ns INTEGER NOT NULL,"
    " fsize INTEGER NOT NULL, size INTEGER NOT NULL, model_digest TEXT NOT NULL,"
    " last_used INTEGER NOT NULL DEFAULT 0) STRICT;"
    "CREATE TABLE IF NOT EXISTS blobmeta("
    " digest TEXT PRIMARY KEY, arch TEXT NOT NULL, n_params INTEGER NOT NULL, quant TEXT NOT NULL,"
    " ctx_len INTEGER NOT NULL, embd_len INTEGER NOT NULL) STRICT;";

static int try_open(store *s, const char *path) {
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close(s->db);
        s->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(s->db);
        s->db = NULL;
        return -1;
    }
    return 0;
}

int store_index_open(store *s, hl_err *err) {
    char path[STORE_PATH_MAX];
    if (store_pathf(path, sizeof path, err, "%s/index.db", s->root)) return HL_ERANGE;
    if (try_open(s, path) == 0) return HL_OK;
    /* a damaged index is only a cache: throw it away and rebuild */
    char p2[STORE_PATH_MAX + 8];
    unlink(path);
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
    if (try_open(s, path) == 0) return HL_OK;
    return hl_err_set(err, HL_EIO, "cannot open the store index %s", path);
}

void store_index_close(store *s) {
    if (s->db) sqlite3_close(s->db);
    s->db = NULL;
}

static void name_from_parts(store_name *n, const char *h, const char *ns, const char *m, const char *t) {
    snprintf(n->host, sizeof n->host, "%s", h);
    snprintf(n->ns, sizeof n->ns, "%s", ns);
    snprintf(n->model, sizeof n->model, "%s", m);
    snprintf(n->tag, sizeof n->tag, "%s", t);
}

/* Lists the entries of a folder that are valid name parts. */
static int list_dir(const char *path, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.") || strlen(e->d_name) > STORE_PART_MAX) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **nv = realloc(*out, cap * sizeof *nv);
            if (!nv) break;
            *out = nv;
        }
        (*out)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    return 0;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

int store_scan_manifests(store *s, store_name **out, size_t *n_out, hl_err *err) {
    *out = NULL;
    *n_out = 0;
    size_t cap = 0;
    char p[STORE_PATH_MAX];
    char **hosts, **nss, **models, **tags;
    size_t nh, nn, nm, nt;
    snprintf(p, sizeof p, "%s/manifests", s->root);
    list_dir(p, &hosts, &nh);
    for (size_t a = 0; a < nh; a++) {
        snprintf(p, sizeof p, "%s/manifests/%s", s->root, hosts[a]);
        list_dir(p, &nss, &nn);
        for (size_t b = 0; b < nn; b++) {
            snprintf(p, sizeof p, "%s/manifests/%s/%s", s->root, hosts[a], nss[b]);
            list_dir(p, &models, &nm);
            for (size_t c = 0; c < nm; c++) {
                snprintf(p, sizeof p, "%s/manifests/%s/%s/%s", s->root, hosts[a], nss[b], models[c]);
                list_dir(p, &tags, &nt);
                for (size_t d = 0; d < nt; d++) {
                    char full[700];
                    store_name nm_;
                    snprintf(full, sizeof full, "%s/%s/%s:%s", hosts[a], nss[b], models[c], tags[d]);
                    if (store_name_parse(full, &nm_, NULL) != 0) continue;
                    if (*n_out == cap) {
                        cap = cap ? cap * 2 : 16;
                        store_name *nv = realloc(*out, cap * sizeof *nv);
                        if (!nv) {
                            free_list(tags, nt);
                            free_list(models, nm);
                            free_list(nss, nn);
                            free_list(hosts, nh);
                            return hl_err_set(err, HL_ENOMEM, "out of memory listing models");
                        }
                        *out = nv;
                    }
                    name_from_parts(&(*out)[(*n_out)++], hosts[a], nss[b], models[c], tags[d]);
                }
                free_list(tags, nt);
            }
            free_list(models, nm);
        }
        free_list(nss, nn);
    }
    free_list(hosts, nh);
    return HL_OK;
}

int store_info_from_manifest(store *s, const store_name *n, const store_manifest *m, int64_t mtime,
                             store_info *info, hl_err *err) {
    memset(info, 0, sizeof *info);
    store_name_display(n, info->name, sizeof info->name);
    store_name_full(n, info->full, sizeof info->full);
    snprintf(info->digest, sizeof info->digest, "%s", m->id);
    snprintf(info->id, sizeof info->id, "%.12s", m->id);
    info->size = m->total_size;
    info->modified = mtime;
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].media_type, STORE_MT_MODEL) == 0) {
            hl_err e2;
            store_model_meta(s, m->layers[i].digest, info, &e2); /* a missing blob leaves blanks */
            break;
        }
    return HL_OK;
}

/* Refreshes the rows of one manifest and fills its info. */
int store_index_info(store *s, const store_name *n, store_info *info, hl_err *err) {
    char path[STORE_PATH_MAX];
    int rc = store_manifest_path(s, n, path, sizeof path, err);
    if (rc) return rc;
    struct stat st;
    if (stat(path, &st) != 0) return hl_err_set(err, HL_ENOENT, "manifest %s vanished", path);
    int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    char full[700];
    store_name_full(n, full, sizeof full);
    sqlite3_stmt *q = NULL;
    if (s->db && sqlite3_prepare_v2(s->db,
                                    "SELECT manifest_digest, size, model_digest, last_used FROM models "
                                    "WHERE name=? AND mtime_ns=? AND fsize=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, full, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, mtime_ns);
        sqlite3_bind_int64(q, 3, st.st_size);
        if (sqlite3_step(q) == SQLITE_ROW) {
            memset(info, 0, sizeof *info);
            store_name_display(n, info->name, sizeof info->name);
            snprintf(info->full, sizeof info->full, "%s", full);
            snprintf(info->digest, sizeof info->digest, "%s", (const char *)sqlite3_column_text(q, 0));
            snprintf(info->id, sizeof info->id, "%.12s", info->digest);
            info->size = sqlite3_column_int64(q, 1);
            info->modified = st.st_mtim.tv_sec;
            info->last_used = sqlite3_column_int64(q, 3);
            const char *md = (const char *)sqlite3_column_text(q, 2);
            hl_err e2;
            if (md && *md) store_model_meta(s, md, info, &e2);
            sqlite3_finalize(q);
            return HL_OK;
        }
        sqlite3_finalize(q);
    }
    store_manifest m;
    if ((rc = store_manifest_read(s, n, &m, err))) return rc;
    store_info_from_manifest(s, n, &m, st.st_mtim.tv_sec, info, err);
    const char *model_digest = "";
    for (int i = 0; i < m.n_layers; i++)
        if (strcmp(m.layers[i].media_type, STORE_MT_MODEL) == 0) {
            model_digest = m.layers[i].digest;
            break;
        }
    if (s->db && sqlite3_prepare_v2(s->db,
                                    "INSERT INTO models(name, manifest_digest, mtime_ns, fsize, size, model_digest) "
                                    "VALUES(?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                                    "manifest_digest=excluded.manifest_digest, mtime_ns=excluded.mtime_ns, "
                                    "fsize=excluded.fsize, size=excluded.size, model_digest=excluded.model_digest",
                                    -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, full, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, m.id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, mtime_ns);
        sqlite3_bind_int64(q, 4, st.st_size);
        sqlite3_bind_int64(q, 5, m.total_size);
        sqlite3_bind_text(q, 6, model_digest, -1, SQLITE_STATIC);
        sqlite3_step(q);
        sqlite3_finalize(q);
    }
    if (s->db && sqlite3_prepare_v2(s->db, "SELECT last_used FROM models WHERE name=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, full, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) info->last_used = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    return HL_OK;
}

static int by_modified(const void *a, const void *b) {
    const store_info *x = a, *y = b;
    if (x->modified != y->modified) return x->modified < y->modified ? 1 : -1;
    return strcmp(x->name, y->name);
}

int store_list(store *s, store_info **out, size_t *n_out, hl_err *err) {
    *out = NULL;
    *n_out = 0;
    store_name *names;
    size_t n;
    int rc = store_scan_manifests(s, &names, &n, err);
    if (rc) return rc;
    store_info *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        free(names);
        return hl_err_set(err, HL_ENOMEM, "out of memory listing models");
    }
    if (s->db) sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        hl_err e2;
        if (store_index_info(s, &names[i], &v[k], &e2) == HL_OK) k++; /* skip unreadable manifests */
    }
    /* drop rows of manifests that are gone */
    if (s->db) {
        sqlite3_exec(s->db, "CREATE TEMP TABLE IF NOT EXISTS seen(name TEXT PRIMARY KEY); DELETE FROM seen;", NULL,
                     NULL, NULL);
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO seen(name) VALUES(?)", -1, &q, NULL) == SQLITE_OK) {
            for (size_t i = 0; i < k; i++) {
                sqlite3_bind_text(q, 1, v[i].full, -1, SQLITE_STATIC);
                sqlite3_step(q);
                sqlite3_reset(q);
            }
            sqlite3_finalize(q);
            sqlite3_exec(s->db, "DELETE FROM models WHERE name NOT IN (SELECT name FROM seen)", NULL, NULL, NULL);
        }
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    free(names);
    qsort(v, k, sizeof *v, by_modified);
    *out = v;
    *n_out = k;
    return HL_OK;
}

int store_index_refresh(store *s, hl_err *err) {
    store_info *v;
    size_t n;
    int rc = store_list(s, &v, &n, err);
    free(v);
    return rc;
}

void store_index_touch(store *s, const char *full_name) {
    if (!s->db) return;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "UPDATE models SET last_used=? WHERE name=?", -1, &q, NULL) != SQLITE_OK) return;
    sqlite3_bind_int64(q, 1, (int64_t)time(NULL));
    sqlite3_bind_text(q, 2, full_name, -1, SQLITE_STATIC);
    sqlite3_step(q);
    sqlite3_finalize(q);
}

void store_index_forget(store *s, const char *full_name) {
    if (!s->db) return;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM models WHERE name=?", -1, &q, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(q, 1, full_name, -1, SQLITE_STATIC);
    sqlite3_step(q);
    sqlite3_finalize(q);
}
