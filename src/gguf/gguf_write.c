/* The GGUF writer: collects kvs (serialized as they are set) and tensors
 * (copied, borrowed, gathered from borrowed parts: a stack of expert
 * matrices, or produced chunk by chunk by a callback while the file is
 * written: a rearranged view of borrowed data), then streams a version-3 file to a temporary file next
 * to the destination, fsyncs and renames it, so a multi-GB model is never
 * gathered in memory and a crash leaves the old file or the new one, never
 * half. Tensor descriptions are validated when added; setters never fail
 * (an allocation failure is sticky and reported by gguf_write). */
#include "gguf/gguf_internal.h"

#include "base/assert.h"
#include "base/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wkv {
    char *key;
    gguf_vtype type;
    hl_buf val; /* serialized value */
} wkv;

typedef struct wtensor {
    char *name;
    hl_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    void *owned;
    size_t size;
    const void **parts; /* owned array: data gathered from n_parts borrowed pieces of size / n_parts bytes */
    uint32_t n_parts;
    gguf_fill_fn fill;  /* else: n_chunks chunks of size / n_chunks bytes, each produced by fill(ctx, ...) */
    void *ctx;          /* owned copy of the caller's context */
    uint64_t n_chunks;
} wtensor;

struct gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
    int oom;
};

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        hl_buf_free(&w->kvs[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->ts[i].name);
        free(w->ts[i].owned);
        free(w->ts[i].parts);
        free(w->ts[i].ctx);
    }
    free(w->kvs);
    free(w->ts);
    free(w);
}

/* Returns the buffer for key's value, emptied (a replaced key keeps its
 * place), or NULL after an allocation failure. */
static hl_buf *kv_slot(gguf_writer *w, const char *key, gguf_vtype type) {
    HL_ASSERT(key != NULL);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0) {
            w->kvs[i].type = type;
            hl_buf_reset(&w->kvs[i].val);
            return &w->kvs[i].val;
        }
    if (w->n_kv == w->cap_kv) {
        size_t c = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *n = realloc(w->kvs, c * sizeof *n);
        if (!n) {
            w->oom = 1;
            return NULL;
        }
        w->kvs = n;
        w->cap_kv = c;
    }
    char *k = strdup(key);
    if (!k) {
        w->oom = 1;
        return NULL;
    }
    w->kvs[w->n_kv] = (wkv){.key = k, .type = type};
    return &w->kvs[w->n_kv++].val;
}

static void put_u32(hl_buf *b, uint32_t v) { hl_buf_append(b, &v, 4); }
static void put_u64(hl_buf *b, uint64_t v) { hl_buf_append(b, &v, 8); }
static void put_str(hl_buf *b, const char *s, size_t n) {
    put_u64(b, n);
    hl_buf_append(b, s, n);
}

static void set_bytes(gguf_writer *w, const char *key, gguf_vtype type, const void *p, size_t n) {
    hl_buf *b = kv_slot(w, key, type);
    if (!b) return;
    hl_buf_append(b, p, n);
    if (b->oom) w->oom = 1;
}

void gguf_set_scalar(gguf_writer *w, const char *key, gguf_vtype type, const void *v) {
    size_t sz = gguf_vtype_size(type);
    HL_ASSERT(sz != 0);
    set_bytes(w, key, type, v, sz);
}

void gguf_set_u32(gguf_writer *w, const char *key, uint32_t v) { set_bytes(w, key, GGUF_U32, &v, 4); }
void gguf_set_i32(gguf_writer *w, const char *key, int32_t v) { set_bytes(w, key, GGUF_I32, &v, 4); }
void gguf_set_u64(gguf_writer *w, const char *key, uint64_t v) { set_bytes(w, key, GGUF_U64, &v, 8); }
void gguf_set_f32(gguf_writer *w, const char *key, float v) { set_bytes(w, key, GGUF_F32, &v, 4); }
void gguf_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    set_bytes(w, key, GGUF_BOOL, &b, 1);
}

void gguf_set_str(gguf_writer *w, const char *key, const char *v) {
    hl_buf *b = kv_slot(w, key, GGUF_STRING);
    if (!b) return;
    put_str(b, v, strlen(v));
    if (b->oom) w->oom = 1;
}

void gguf_set_raw(gguf_writer *w, const char *key, gguf_vtype type, const void *bytes, size_t n) {
    set_bytes(w, key, type, bytes, n);
}

void gguf_set_arr(gguf_writer *w, const char *key, gguf_vtype elem, const void *v, uint64_t n) {
    size_t sz = gguf_vtype_size(elem);
    HL_ASSERT(sz != 0 && n <= SIZE_MAX / sz);
    hl_buf *b = kv_slot(w, key, GGUF_ARRAY);
    if (!b) return;
    put_u32(b, elem);
    put_u64(b, n);
    hl_buf_append(b, v, (size_t)n * sz);
    if (b->oom) w->oom = 1;
}

void gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) { gguf_set_arr(w, key, GGUF_I32, v, n); }
void gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) { gguf_set_arr(w, key, GGUF_F32, v, n); }

void gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    hl_buf *b = kv_slot(w, key, GGUF_ARRAY);
    if (!b) return;
    put_u32(b, GGUF_STRING);
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++) put_str(b, v[i], strlen(v[i]));
    if (b->oom) w->oom = 1;
}

void gguf_set_kv_from(gguf_writer *w, const gguf_file *f) {
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        set_bytes(w, kv->key, kv->type, kv->val, (size_t)kv->val_size);
    }
}

int gguf_add_tensor(gguf_writer *w, const char *name, hl_type type, uint32_t n_dims, const int64_t *ne,
                    const void *data, size_t size, int borrow, hl_err *err) {
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > GGUF_MAX_NAME_LEN)
        return hl_err_set(err, HL_EINVAL, "tensor name '%.64s' must be 1..%u bytes long", name, GGUF_MAX_NAME_LEN);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->ts[i].name, name) == 0) return hl_err_set(err, HL_EINVAL, "duplicate tensor name '%s'", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return hl_err_set(err, HL_EINVAL, "tensor %s: n_dims %u is out of range (1..%d)", name, n_dims, GGUF_MAX_DIMS);
    const hl_type_traits *tr = hl_type_get((int)type);
    if (!tr || !tr->blck || !tr->size) return hl_err_set(err, HL_EINVAL, "tensor %s: unknown tensor type %d", name, (int)type);
    uint64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1) return hl_err_set(err, HL_EINVAL, "tensor %s: dimension %u is %lld (must be positive)", name, d, (long long)ne[d]);
        if (d > 0) {
            if (rows > (uint64_t)INT64_MAX / (uint64_t)ne[d]) return hl_err_set(err, HL_EINVAL, "tensor %s: element count overflows", name);
            rows *= (uint64_t)ne[d];
        }
    }
    if (ne[0] % tr->blck)
        return hl_err_set(err, HL_EINVAL, "tensor %s: row length %lld is not a multiple of the %s block size %u", name,
                          (long long)ne[0], tr->name, tr->blck);
    uint64_t row = (uint64_t)ne[0] / tr->blck * tr->size;
    if (rows > UINT64_MAX / row || row * rows != size)
        return hl_err_set(err, HL_EINVAL, "tensor %s: data is %zu bytes, but shape and type %s need %llu", name, size,
                          tr->name, (unsigned long long)(rows <= UINT64_MAX / row ? row * rows : 0));
    if (w->n_t == w->cap_t) {
        size_t c = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *n = realloc(w->ts, c * sizeof *n);
        if (!n) return hl_err_set(err, HL_ENOMEM, "out of memory adding tensor %s", name);
        w->ts = n;
        w->cap_t = c;
    }
    wtensor t = {.type = type, .n_dims = n_dims, .size = size, .data = data};
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t.ne[d] = d < (int)n_dims ? ne[d] : 1;
    t.name = strdup(name);
    if (!borrow) {
        t.owned = malloc(size ? size : 1);
        if (t.owned) memcpy(t.owned, data, size);
        t.data = t.owned;
    }
    if (!t.name || (!borrow && !t.owned)) {
        free(t.name);
        free(t.owned);
        return hl_err_set(err, HL_ENOMEM, "out of memory adding tensor %s (%zu bytes)", name, size);
    }
    w->ts[w->n_t++] = t;
    return 0;
}

int gguf_add_tensor_parts(gguf_writer *w, const char *name, hl_type type, uint32_t n_dims, const int64_t *ne,
                          const void *const *parts, size_t part_size, uint32_t n_parts, hl_err *err) {
    if (n_parts == 0 || part_size > SIZE_MAX / n_parts)
        return hl_err_set(err, HL_EINVAL, "tensor %s: %u parts of %zu bytes", name, n_parts, part_size);
    const void **p = malloc(n_parts * sizeof *p);
    if (!p) return hl_err_set(err, HL_ENOMEM, "out of memory adding tensor %s", name);
    memcpy(p, parts, n_parts * sizeof *p);
    /* validated and described as one borrowed tensor of the whole size */
    int rc = gguf_add_tensor(w, name, type, n_dims, ne, parts[0], part_size * n_parts, 1, err);
    if (rc) {
        free(p);
        return rc;
    }
    w->ts[w->n_t - 1].parts = p;
    w->ts[w->n_t - 1].n_parts = n_parts;
    return 0;
}

int gguf_add_tensor_fill(gguf_writer *w, const char *name, hl_type type, uint32_t n_dims, const int64_t *ne,
                         gguf_fill_fn fill, const void *ctx, size_t ctx_size, size_t chunk_size, uint64_t n_chunks,
                         hl_err *err) {
    if (!fill || !chunk_size || !n_chunks || n_chunks > SIZE_MAX / chunk_size)
        return hl_err_set(err, HL_EINVAL, "tensor %s: %llu chunks of %zu bytes", name, (unsigned long long)n_chunks, chunk_size);
    void *c = malloc(ctx_size ? ctx_size : 1);
    if (!c) return hl_err_set(err, HL_ENOMEM, "out of memory adding tensor %s", name);
    if (ctx_size) memcpy(c, ctx, ctx_size);
    /* validated and described as one borrowed tensor of the whole size (no data pointer) */
    int rc = gguf_add_tensor(w, name, type, n_dims, ne, NULL, chunk_size * (size_t)n_chunks, 1, err);
    if (rc) {
        free(c);
        return rc;
    }
    wtensor *t = &w->ts[w->n_t - 1];
    t->fill = fill, t->ctx = c, t->n_chunks = n_chunks;
    return 0;
}

/* ---- streaming the file out -------------------------------------------- */

/* general.alignment when set, else the default; a value our reader (and
 * others) would refuse is refused here rather than written. */
static int writer_alignment(const gguf_writer *w, uint32_t *align, hl_err *err) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        if (w->kvs[i].type != GGUF_U32 || w->kvs[i].val.len != 4)
            return hl_err_set(err, HL_EINVAL, "general.alignment must be a u32 (it is a %s)", gguf_vtype_name(w->kvs[i].type));
        uint32_t a = gguf_ld32((const uint8_t *)w->kvs[i].val.data);
        if (!a || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
            return hl_err_set(err, HL_EINVAL, "general.alignment %u is not a power of two between 1 and %u", a, GGUF_MAX_ALIGNMENT);
        *align = a;
    }
    return 0;
}

static int wr(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n ? 0 : -1; }

static int pad(FILE *fp, uint64_t *pos, uint32_t a) {
    static const uint8_t zeros[256];
    uint64_t n = (a - *pos % a) % a;
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (wr(fp, zeros, k)) return -1;
        n -= k;
        *pos += k;
    }
    return 0;
}

static int write_all(const gguf_writer *w, FILE *fp, uint32_t align) {
    hl_buf h = {0};
    put_u32(&h, GGUF_MAGIC);
    put_u32(&h, 3);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kvs[i].key, strlen(w->kvs[i].key));
        put_u32(&h, w->kvs[i].type);
        hl_buf_append(&h, w->kvs[i].val.data, w->kvs[i].val.len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, (uint32_t)t->type);
        put_u64(&h, off);
        off += (t->size + align - 1) / align * align;
    }
    if (h.oom) {
        hl_buf_free(&h);
        return HL_ENOMEM;
    }
    uint64_t pos = h.len;
    int rc = wr(fp, h.data, h.len);
    hl_buf_free(&h);
    if (rc) return HL_EIO;
    if (w->n_t && pad(fp, &pos, align)) return HL_EIO;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        if (t->parts) {
            for (uint32_t k = 0; k < t->n_parts; k++)
                if (wr(fp, t->parts[k], t->size / t->n_parts)) return HL_EIO;
        } else if (t->fill) {
            size_t cs = (size_t)(t->size / t->n_chunks);
            uint8_t *buf = malloc(cs);
            if (!buf) return HL_ENOMEM;
            for (uint64_t k = 0; k < t->n_chunks; k++) {
                t->fill(t->ctx, k, buf);
                if (wr(fp, buf, cs)) {
                    free(buf);
                    return HL_EIO;
                }
            }
            free(buf);
        } else if (wr(fp, t->data, t->size)) {
            return HL_EIO;
        }
        pos += w->ts[i].size;
        if (i + 1 < w->n_t && pad(fp, &pos, align)) return HL_EIO;
    }
    return 0;
}

int gguf_write(gguf_writer *w, const char *path, hl_err *err) {
    if (w->oom) return hl_err_set(err, HL_ENOMEM, "out of memory building GGUF metadata for %s", path);
    uint32_t align;
    int rc = writer_alignment(w, &align, err);
    if (rc) return rc;
    for (size_t i = 0; i < w->n_kv; i++)
        if (strlen(w->kvs[i].key) > GGUF_MAX_KEY_LEN)
            return hl_err_set(err, HL_EINVAL, "metadata key '%.64s...' is longer than %u bytes", w->kvs[i].key, GGUF_MAX_KEY_LEN);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return hl_err_set(err, HL_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return hl_err_set(err, HL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return hl_err_set(err, HL_EIO, "cannot open %s: %s", tmp, strerror(e));
    }
    rc = write_all(w, fp, align);
    int e = errno;
    if (!rc && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) {
        rc = HL_EIO;
        e = errno;
    }
    if (fclose(fp) != 0 && !rc) {
        rc = HL_EIO;
        e = errno;
    }
    if (rc) {
        unlink(tmp);
        if (rc == HL_ENOMEM) return hl_err_set(err, rc, "out of memory writing %s", path);
        return hl_err_set(err, rc, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return hl_err_set(err, HL_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* makes the rename durable; failure here loses nothing already written */
        close(dfd);
    }
    return 0;
}
