/* The store's file primitives: streaming sha256 (OpenSSL EVP), path building
 * with length checks, the advisory lock that serializes manifest changes,
 * atomic blob writes and copies (temporary file, fsync, rename, fsync of the
 * folder) and hard links for imports. */
#include "store/store_internal.h"

#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct store_sha {
    EVP_MD_CTX *ctx;
};

store_sha *store_sha_new(void) {
    store_sha *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void store_sha_update(store_sha *h, const void *p, size_t n) { EVP_DigestUpdate(h->ctx, p, n); }

void store_sha_final(store_sha *h, char hex[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(h->ctx, md, &len);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void store_sha_hex(const void *p, size_t n, char hex[65]) {
    store_sha *h = store_sha_new();
    if (!h) { memset(hex, '0', 64); hex[64] = 0; return; }
    store_sha_update(h, p, n);
    store_sha_final(h, hex);
}

int store_sha_file(const char *path, char hex[65], int64_t *size, const atomic_int *cancel, hl_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hl_err_set(err, errno == ENOENT ? HL_ENOENT : HL_EIO, "cannot open %s: %s", path, strerror(errno));
    store_sha *h = store_sha_new();
    char *buf = malloc(1 << 20);
    if (!h || !buf) {
        close(fd);
        free(buf);
        if (h) store_sha_final(h, hex);
        return hl_err_set(err, HL_ENOMEM, "out of memory hashing %s", path);
    }
    int64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || (cancel && atomic_load(cancel))) {
            int e = errno;
            close(fd);
            free(buf);
            store_sha_final(h, hex);
            if (n >= 0) return hl_err_set(err, HL_EIO, "cancelled");
            return hl_err_set(err, HL_EIO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0) break;
        store_sha_update(h, buf, (size_t)n);
        total += n;
    }
    close(fd);
    free(buf);
    store_sha_final(h, hex);
    if (size) *size = total;
    return HL_OK;
}

int store_digest_valid(const char *d) {
    if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71) return 0;
    for (int i = 7; i < 71; i++)
        if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f'))) return 0;
    return 1;
}

int store_pathf(char *out, size_t cap, hl_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) return hl_err_set(err, HL_ERANGE, "path too long (%d bytes)", n);
    return HL_OK;
}

int store_blob_path(const store *s, const char *digest, char *out, size_t cap, hl_err *err) {
    char d[72];
    snprintf(d, sizeof d, "%s", digest ? digest : "");
    if (strncmp(d, "sha256-", 7) == 0) d[6] = ':';
    if (!store_digest_valid(d)) return hl_err_set(err, HL_EINVAL, "invalid digest \"%s\" (want sha256:<64 hex digits>)", digest ? digest : "");
    return store_pathf(out, cap, err, "%s/blobs/sha256-%s", s->root, d + 7);
}

int store_manifest_path(const store *s, const store_name *n, char *out, size_t cap, hl_err *err) {
    return store_pathf(out, cap, err, "%s/manifests/%s/%s/%s/%s", s->root, n->host, n->ns, n->model, n->tag);
}

int store_lock(const store *s, hl_err *err) {
    char p[STORE_PATH_MAX];
    if (store_pathf(p, sizeof p, err, "%s/.lock", s->root)) return HL_ERANGE;
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return hl_err_set(err, HL_EIO, "cannot open lock file %s: %s", p, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return hl_err_set(err, HL_EIO, "cannot lock %s: %s", p, strerror(e));
    }
    return fd;
}

void store_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing drops the flock */
}

int store_fsync_dir(const char *path) {
    char dir[STORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int store_tmp_path(char *out, size_t n, const char *base, hl_err *err) {
    return store_pathf(out, n, err, "%s.tmp.%ld.%lx", base, (long)getpid(), (unsigned long)pthread_self());
}

int store_copy_file(const char *src, const char *dst, int try_link, const atomic_int *cancel, hl_err *err) {
    char tmp[STORE_PATH_MAX];
    if (store_tmp_path(tmp, sizeof tmp, dst, err)) return HL_ERANGE;
    unlink(tmp);
    if (try_link && link(src, tmp) == 0) {
        if (rename(tmp, dst) != 0) {
            int e = errno;
            unlink(tmp);
            return hl_err_set(err, HL_EIO, "cannot rename %s to %s: %s", tmp, dst, strerror(e));
        }
        store_fsync_dir(dst);
        return HL_OK;
    }
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return hl_err_set(err, errno == ENOENT ? HL_ENOENT : HL_EIO, "cannot open %s: %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return hl_err_set(err, HL_EIO, "cannot create %s: %s", tmp, strerror(e));
    }
    char *buf = malloc(1 << 20);
    int rc = buf ? HL_OK : hl_err_set(err, HL_ENOMEM, "out of memory copying %s", src);
    while (rc == HL_OK) {
        if (cancel && atomic_load(cancel)) { rc = hl_err_set(err, HL_EIO, "cancelled"); break; }
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { rc = hl_err_set(err, HL_EIO, "cannot read %s: %s", src, strerror(errno)); break; }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) { rc = hl_err_set(err, HL_EIO, "cannot write %s: %s", tmp, strerror(errno)); break; }
            off += w;
        }
    }
    free(buf);
    close(in);
    if (rc == HL_OK && fsync(out) != 0) rc = hl_err_set(err, HL_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(out) != 0 && rc == HL_OK) rc = hl_err_set(err, HL_EIO, "cannot close %s: %s", tmp, strerror(errno));
    if (rc == HL_OK && rename(tmp, dst) != 0) rc = hl_err_set(err, HL_EIO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    if (rc != HL_OK) unlink(tmp);
    else store_fsync_dir(dst);
    return rc;
}

int store_blob_put(store *s, const void *data, size_t len, char digest[72], hl_err *err) {
    char hex[65], path[STORE_PATH_MAX];
    store_sha_hex(data, len, hex);
    snprintf(digest, 72, "sha256:%s", hex);
    int rc = store_blob_path(s, digest, path, sizeof path, err);
    if (rc) return rc;
    struct stat st;
    if (stat(path, &st) == 0 && (size_t)st.st_size == len) return HL_OK; /* content-addressed: already there */
    return hl_write_file_atomic(path, data, len, err);
}

int store_blob_put_file(store *s, const char *src, int link_ok, char digest[72], int64_t *size,
                        const store_ops *ops, hl_err *err) {
    char hex[65], path[STORE_PATH_MAX];
    int64_t sz = 0;
    store_report(ops, "parsing GGUF", NULL, 0, 0);
    int rc = store_sha_file(src, hex, &sz, ops ? ops->cancel : NULL, err);
    if (rc) return rc;
    snprintf(digest, 72, "sha256:%s", hex);
    if (size) *size = sz;
    if ((rc = store_blob_path(s, digest, path, sizeof path, err))) return rc;
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size == sz) return HL_OK;
    char status[128];
    snprintf(status, sizeof status, "copying file %.19s", digest);
    store_report(ops, status, digest, sz, 0);
    rc = store_copy_file(src, path, link_ok, ops ? ops->cancel : NULL, err);
    if (rc == HL_OK) store_report(ops, status, digest, sz, sz);
    return rc;
}
