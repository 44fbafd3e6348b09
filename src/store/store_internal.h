/* Internals shared by the store's files: the store struct, path building,
 * sha256 streaming, the index, locking. Not for use outside src/store/. */
#ifndef HL_STORE_INTERNAL_H
#define HL_STORE_INTERNAL_H

#include "store/store.h"

#include <sqlite3.h>
#include <stdio.h>

#define STORE_PATH_MAX 4096
#define STORE_MANIFEST_MAX (1 << 20) /* a manifest is a few hundred bytes */
#define STORE_TEXT_LAYER_MAX (16 << 20) /* template/system/license/params/messages */

struct store {
    char root[STORE_PATH_MAX];
    sqlite3 *db; /* NULL if the index could not be opened: we work without it */
};

/* sha256 */
typedef struct store_sha store_sha;
store_sha *store_sha_new(void);
void store_sha_update(store_sha *h, const void *p, size_t n);
void store_sha_final(store_sha *h, char hex[65]); /* frees h */
void store_sha_hex(const void *p, size_t n, char hex[65]);
/* Hashes a whole file (and reports its size). */
int store_sha_file(const char *path, char hex[65], int64_t *size, const atomic_int *cancel, hl_err *err);
int store_digest_valid(const char *d); /* "sha256:<64 lowercase hex>" */

/* paths */
int store_manifest_path(const store *s, const store_name *n, char *out, size_t cap, hl_err *err);
int store_pathf(char *out, size_t cap, hl_err *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Exclusive advisory lock on <root>/.lock for manifest changes and GC. */
int store_lock(const store *s, hl_err *err); /* returns fd */
void store_unlock(int fd);
/* Atomic copy of a file into dst (tmp + fsync + rename), or hard link. */
/* base + ".tmp.<pid>.<thread>": the one name of a file being written before
 * it is renamed into place (the store's listings skip ".tmp." names), so two
 * writers, threads or processes, never share one. */
int store_tmp_path(char *out, size_t n, const char *base, hl_err *err);
int store_copy_file(const char *src, const char *dst, int try_link, const atomic_int *cancel, hl_err *err);
int store_fsync_dir(const char *path);

/* index (index.c) */
int store_index_open(store *s, hl_err *err);
void store_index_close(store *s);
/* Refreshes rows from the manifests on disk. */
int store_index_refresh(store *s, hl_err *err);
void store_index_touch(store *s, const char *full_name);
void store_index_forget(store *s, const char *full_name);
/* refreshes one manifest's row and fills its info */
int store_index_info(store *s, const store_name *n, store_info *info, hl_err *err);
/* metadata of a model blob, cached by digest */
int store_model_meta(store *s, const char *model_digest, store_info *info, hl_err *err);
/* fills info for one full name from the manifest (and the index cache) */
int store_info_from_manifest(store *s, const store_name *n, const store_manifest *m, int64_t mtime,
                             store_info *info, hl_err *err);

/* all manifest names on disk; caller frees the array */
int store_scan_manifests(store *s, store_name **out, size_t *n, hl_err *err);

/* manifest JSON writing */
char *store_manifest_json(const store_layer *config, const store_layer *layers, int n_layers);

/* progress helper */
static inline void store_report(const store_ops *ops, const char *status, const char *digest, int64_t total,
                                int64_t completed) {
    if (ops && ops->progress) {
        store_progress p = {status, digest, total, completed};
        ops->progress(ops->progress_ctx, &p);
    }
}
static inline int store_cancelled(const store_ops *ops) { return ops && ops->cancel && atomic_load(ops->cancel); }

int store_edit_distance(const char *a, const char *b);

/* quantize.c */
int store_requantize(const char *src_path, const char *dst_path, const char *qname, int threads,
                     const store_ops *ops, hl_err *err);
const char *store_quant_names(void);

#endif
