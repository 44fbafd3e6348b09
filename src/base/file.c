/* Memory maps, whole-file reads and atomic writes. */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int hl_mmap_open(hl_mmap *m, const char *path, hl_err *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hl_err_set(err, errno == ENOENT ? HL_ENOENT : HL_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hl_err_set(err, HL_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hl_err_set(err, HL_EINVAL, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return hl_err_set(err, HL_EINVAL, "%s is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return hl_err_set(err, HL_EIO, "cannot map %s: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return HL_OK;
}

void hl_mmap_close(hl_mmap *m) {
    if (m->data) munmap((void *)m->data, m->size);
    memset(m, 0, sizeof *m);
}

int hl_read_file(const char *path, size_t max_size, char **out, size_t *out_len, hl_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hl_err_set(err, errno == ENOENT ? HL_ENOENT : HL_EIO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return hl_err_set(err, HL_ENOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_size + 1) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return hl_err_set(err, HL_ENOMEM, "out of memory reading %s", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return hl_err_set(err, HL_EIO, "read error on %s", path);
    }
    if (len > max_size) {
        free(buf);
        return hl_err_set(err, HL_ERANGE, "%s is larger than the limit of %zu bytes", path, max_size);
    }
    buf[len] = 0;
    *out = buf;
    if (out_len) *out_len = len;
    return HL_OK;
}

int hl_write_file_atomic(const char *path, const void *data, size_t len, hl_err *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return hl_err_set(err, HL_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return hl_err_set(err, HL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return hl_err_set(err, HL_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return hl_err_set(err, HL_EIO, "cannot sync %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return hl_err_set(err, HL_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return HL_OK;
}

int hl_mkdirs(const char *path, hl_err *err) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return hl_err_set(err, HL_EINVAL, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return hl_err_set(err, HL_EIO, "cannot create directory %s: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
    return HL_OK;
}
