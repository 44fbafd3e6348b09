/* The GGUF reader: parses and validates the header region of a mapped file
 * (metadata kvs, nested arrays, tensor table, alignment, data section) into a
 * gguf_file, builds hash indexes for keys and tensor names and offset indexes
 * for string/array arrays, and answers lookups. Every byte read is bounds-
 * checked against the file size before use; a file that opens can be read
 * without further checks. Tensor data is never touched here. */
#include "gguf/gguf_internal.h"

#include "base/assert.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- parse state -------------------------------------------------------- */

typedef struct pctx {
    gguf_file *f;
    const uint8_t *b;
    size_t size, pos;
    hl_err *err;
} pctx;

/* The parser works in terms of "need n bytes at pos"; a failure is either a
 * truncated file or a count/length field that is corrupt, and from the bytes
 * alone the two cannot be told apart, so the message states the facts. */
static int need(pctx *p, uint64_t n, const char *what, const char *ctx) {
    if (n <= p->size - p->pos) return 0;
    return hl_err_set(p->err, HL_EINVAL,
                      "model file truncated or corrupt: %s%s%s at offset %zu needs %llu bytes, but the file "
                      "has only %zu bytes left (file size %zu)",
                      ctx ? ctx : "", ctx ? ": " : "", what, p->pos, (unsigned long long)n, p->size - p->pos,
                      p->size);
}

static int rd_u32(pctx *p, uint32_t *v, const char *what, const char *ctx) {
    int rc = need(p, 4, what, ctx);
    if (rc) return rc;
    *v = gguf_ld32(p->b + p->pos);
    p->pos += 4;
    return 0;
}

static int rd_u64(pctx *p, uint64_t *v, const char *what, const char *ctx) {
    int rc = need(p, 8, what, ctx);
    if (rc) return rc;
    *v = gguf_ld64(p->b + p->pos);
    p->pos += 8;
    return 0;
}

/* ---- growable pools (indices stay valid across realloc) ----------------- */

static int grow(void **ptr, size_t *cap, size_t need_n, size_t elem, hl_err *err) {
    if (need_n <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need_n) {
        if (c > SIZE_MAX / 2 / elem) return hl_err_set(err, HL_ENOMEM, "out of memory parsing GGUF header");
        c *= 2;
    }
    void *np = realloc(*ptr, c * elem);
    if (!np) return hl_err_set(err, HL_ENOMEM, "out of memory parsing GGUF header (%zu bytes)", c * elem);
    *ptr = np;
    *cap = c;
    return 0;
}

/* Copies a name into the pool; refuses embedded NULs (they would make the
 * NUL-terminated copy lie about the name). */
static int pool_name(pctx *p, const uint8_t *s, uint64_t len, size_t *at, const char *what, int64_t idx) {
    if (memchr(s, 0, (size_t)len))
        return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s #%lld contains a NUL byte", what, (long long)idx);
    gguf_file *f = p->f;
    int rc = grow((void **)&f->names, &f->names_cap, f->names_len + (size_t)len + 1, 1, p->err);
    if (rc) return rc;
    memcpy(f->names + f->names_len, s, (size_t)len);
    f->names[f->names_len + len] = 0;
    *at = f->names_len;
    f->names_len += (size_t)len + 1;
    return 0;
}

/* ---- values ------------------------------------------------------------- */

static int parse_arr(pctx *p, size_t rec_at, int depth, const char *ctx);

/* Reads a string (u64 length + bytes), checking the length against what is
 * left of the file. */
static int skip_str(pctx *p, const char *what, const char *ctx) {
    uint64_t len;
    int rc = rd_u64(p, &len, what, ctx);
    if (rc) return rc;
    if ((rc = need(p, len, what, ctx))) return rc;
    p->pos += (size_t)len;
    return 0;
}

static int check_bools(pctx *p, const uint8_t *v, uint64_t n, const char *ctx) {
    for (uint64_t i = 0; i < n; i++)
        if (v[i] > 1)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: bool value %u at offset %zu is not 0 or 1",
                              ctx, v[i], (size_t)(v + i - p->b));
    return 0;
}

/* Parses one value of type t at p->pos (the type id has been read). Arrays
 * get a record at *arr_at. */
static int parse_value(pctx *p, uint32_t t, int depth, const char *ctx, size_t *arr_at) {
    if (!gguf_vtype_known(t))
        return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: unknown value type %u at offset %zu (known: 0..12)",
                          ctx, t, p->pos - 4);
    size_t sz = gguf_vtype_size(t);
    if (sz) {
        int rc = need(p, sz, "value", ctx);
        if (rc) return rc;
        if (t == GGUF_BOOL && (rc = check_bools(p, p->b + p->pos, 1, ctx))) return rc;
        p->pos += sz;
        return 0;
    }
    if (t == GGUF_STRING) return skip_str(p, "string value", ctx);
    gguf_file *f = p->f;
    int rc = grow((void **)&f->recs, &f->recs_cap, f->n_recs + 1, sizeof *f->recs, p->err);
    if (rc) return rc;
    *arr_at = f->n_recs++;
    return parse_arr(p, *arr_at, depth, ctx);
}

/* Parses an array (element type, count, elements) into recs[rec_at]. The
 * count is checked against the bytes left before anything is allocated, so a
 * huge count cannot make us allocate more than the file could describe. */
static int parse_arr(pctx *p, size_t rec_at, int depth, const char *ctx) {
    gguf_file *f = p->f;
    if (depth >= GGUF_MAX_NEST)
        return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: arrays nested deeper than %d levels at offset %zu",
                          ctx, GGUF_MAX_NEST, p->pos);
    uint32_t et;
    uint64_t n;
    int rc;
    if ((rc = rd_u32(p, &et, "array element type", ctx)) || (rc = rd_u64(p, &n, "array length", ctx))) return rc;
    if (!gguf_vtype_known(et))
        return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: unknown array element type %u at offset %zu (known: 0..12)",
                          ctx, et, p->pos - 12);
    size_t esz = gguf_vtype_size(et);
    size_t min = esz ? esz : (et == GGUF_STRING ? 8 : 12);
    size_t left = p->size - p->pos;
    if (n > left / min)
        return hl_err_set(p->err, HL_EINVAL,
                          "model file truncated or corrupt: %s: array of %llu %s elements at offset %zu needs at least "
                          "%llu bytes, but the file has only %zu bytes left (file size %zu)",
                          ctx, (unsigned long long)n, gguf_vtype_name((gguf_vtype)et), p->pos,
                          (unsigned long long)n * min, left, p->size);
    gguf_arr_rec r = {.type = (gguf_vtype)et, .n = n, .data = p->b + p->pos};
    if (esz) {
        if (et == GGUF_BOOL && (rc = check_bools(p, p->b + p->pos, n, ctx))) return rc;
        p->pos += (size_t)(n * esz);
        f->recs[rec_at] = r;
        return 0;
    }
    size_t data_pos = p->pos;
    /* offsets for this array, then (for nested arrays) n contiguous kid records */
    if ((rc = grow((void **)&f->offs, &f->offs_cap, f->n_offs + (size_t)n, sizeof *f->offs, p->err))) return rc;
    r.offs_at = f->n_offs;
    f->n_offs += (size_t)n;
    if (et == GGUF_ARRAY) {
        if ((rc = grow((void **)&f->recs, &f->recs_cap, f->n_recs + (size_t)n, sizeof *f->recs, p->err))) return rc;
        r.kids_at = f->n_recs;
        f->n_recs += (size_t)n;
    }
    f->recs[rec_at] = r;
    for (uint64_t i = 0; i < n; i++) {
        f->offs[r.offs_at + i] = p->pos - data_pos;
        if (et == GGUF_STRING) {
            if ((rc = skip_str(p, "string element", ctx))) return rc;
        } else if ((rc = parse_arr(p, r.kids_at + i, depth + 1, ctx))) {
            return rc;
        }
    }
    return 0;
}

/* ---- hashing ------------------------------------------------------------ */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int hash_alloc(int32_t **tab, uint32_t *mask, int64_t n, hl_err *err) {
    uint32_t cap = 16;
    while ((int64_t)cap < 2 * n) cap *= 2;
    *tab = calloc(cap, sizeof **tab);
    if (!*tab) return hl_err_set(err, HL_ENOMEM, "out of memory indexing GGUF header");
    *mask = cap - 1;
    return 0;
}

/* Inserts entry idx under name; returns the index of an earlier entry with
 * the same name, or -1. */
static int64_t hash_insert(int32_t *tab, uint32_t mask, const char *name, int64_t idx, const char *(*name_of)(const gguf_file *, int64_t), const gguf_file *f) {
    uint32_t i = (uint32_t)hash_str(name) & mask;
    while (tab[i]) {
        if (strcmp(name_of(f, tab[i] - 1), name) == 0) return tab[i] - 1;
        i = (i + 1) & mask;
    }
    tab[i] = (int32_t)(idx + 1);
    return -1;
}

static int64_t hash_find(const int32_t *tab, uint32_t mask, const char *name, const char *(*name_of)(const gguf_file *, int64_t), const gguf_file *f) {
    if (!tab) return -1;
    uint32_t i = (uint32_t)hash_str(name) & mask;
    while (tab[i]) {
        if (strcmp(name_of(f, tab[i] - 1), name) == 0) return tab[i] - 1;
        i = (i + 1) & mask;
    }
    return -1;
}

static const char *kv_name(const gguf_file *f, int64_t i) { return f->kvs[i].key; }
static const char *t_name(const gguf_file *f, int64_t i) { return f->tensors[i].name; }

/* ---- the file ----------------------------------------------------------- */

static int parse_header(pctx *p) {
    gguf_file *f = p->f;
    if (p->size < 4)
        return hl_err_set(p->err, HL_EINVAL, "not a GGUF file: only %zu bytes long (a GGUF file starts with the 4 bytes 'GGUF')", p->size);
    uint32_t magic = gguf_ld32(p->b);
    if (magic != GGUF_MAGIC) {
        char m[20];
        int printable = 1;
        for (int i = 0; i < 4; i++) printable &= p->b[i] >= 0x20 && p->b[i] < 0x7f;
        if (printable) snprintf(m, sizeof m, "'%c%c%c%c'", p->b[0], p->b[1], p->b[2], p->b[3]);
        else snprintf(m, sizeof m, "%02x %02x %02x %02x", p->b[0], p->b[1], p->b[2], p->b[3]);
        return hl_err_set(p->err, HL_EINVAL, "not a GGUF file: it starts with %s instead of the magic 'GGUF'", m);
    }
    p->pos = 4;
    int rc;
    if ((rc = rd_u32(p, &f->version, "version", "header"))) return rc;
    uint32_t v = f->version, swapped = __builtin_bswap32(v);
    if (v != 2 && v != 3) {
        if (swapped >= 1 && swapped <= 3)
            return hl_err_set(p->err, HL_ENOTSUP,
                              "unsupported big-endian GGUF file (version %u in big-endian byte order); this reader "
                              "supports little-endian files only",
                              swapped);
        return hl_err_set(p->err, HL_ENOTSUP, "unsupported GGUF version %u (this reader supports versions 2 and 3)", v);
    }
    uint64_t nt, nkv;
    if ((rc = rd_u64(p, &nt, "tensor count", "header")) || (rc = rd_u64(p, &nkv, "metadata count", "header"))) return rc;
    /* the smallest kv is 13 bytes (key length, type, 1-byte value) and the
     * smallest tensor info 32 (name length, n_dims, one dim, type, offset) */
    size_t left = p->size - p->pos;
    if (nkv > GGUF_MAX_COUNT || nkv > left / 13)
        return hl_err_set(p->err, HL_EINVAL,
                          "corrupt GGUF file: header claims %llu metadata entries, which cannot fit in the %zu bytes "
                          "after the header (limit %u)",
                          (unsigned long long)nkv, left, GGUF_MAX_COUNT);
    if (nt > GGUF_MAX_COUNT || nt > left / 32)
        return hl_err_set(p->err, HL_EINVAL,
                          "corrupt GGUF file: header claims %llu tensors, which cannot fit in the %zu bytes after the "
                          "header (limit %u)",
                          (unsigned long long)nt, left, GGUF_MAX_COUNT);
    f->n_kv = (int64_t)nkv;
    f->n_tensors = (int64_t)nt;
    f->kvs = calloc(nkv ? nkv : 1, sizeof *f->kvs);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) return hl_err_set(p->err, HL_ENOMEM, "out of memory reading GGUF header");
    return 0;
}

static int parse_kvs(pctx *p) {
    gguf_file *f = p->f;
    char ctx[160];
    for (int64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kvs[i];
        snprintf(ctx, sizeof ctx, "metadata entry #%lld", (long long)i);
        uint64_t klen;
        int rc;
        if ((rc = rd_u64(p, &klen, "key length", ctx))) return rc;
        if (klen > GGUF_MAX_KEY_LEN)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: key length %llu at offset %zu exceeds the limit of %u",
                              ctx, (unsigned long long)klen, p->pos - 8, GGUF_MAX_KEY_LEN);
        if ((rc = need(p, klen, "key", ctx))) return rc;
        if ((rc = pool_name(p, p->b + p->pos, klen, &kv->key_at, "metadata key", i))) return rc;
        /* from here on, messages name the key (truncated to keep them short) */
        snprintf(ctx, sizeof ctx, "key '%.100s'", f->names + kv->key_at);
        p->pos += (size_t)klen;
        uint32_t t;
        if ((rc = rd_u32(p, &t, "value type", ctx))) return rc;
        kv->type = (gguf_vtype)t;
        size_t start = p->pos;
        if ((rc = parse_value(p, t, 0, ctx, &kv->arr_at))) return rc;
        kv->val_size = p->pos - start;
        kv->val = p->b + start;
    }
    return 0;
}

static int parse_tensors(pctx *p) {
    gguf_file *f = p->f;
    char ctx[160];
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        snprintf(ctx, sizeof ctx, "tensor info #%lld", (long long)i);
        uint64_t nlen;
        int rc;
        size_t at;
        if ((rc = rd_u64(p, &nlen, "name length", ctx))) return rc;
        if (nlen == 0) return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s has an empty name", ctx);
        if (nlen > GGUF_MAX_NAME_LEN)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: name length %llu at offset %zu exceeds the limit of %u",
                              ctx, (unsigned long long)nlen, p->pos - 8, GGUF_MAX_NAME_LEN);
        if ((rc = need(p, nlen, "name", ctx))) return rc;
        if ((rc = pool_name(p, p->b + p->pos, nlen, &at, "tensor name", i))) return rc;
        t->name = (const char *)(uintptr_t)at; /* resolved once the pool stops moving */
        snprintf(ctx, sizeof ctx, "tensor %.100s", f->names + at);
        p->pos += (size_t)nlen;
        if ((rc = rd_u32(p, &t->n_dims, "n_dims", ctx))) return rc;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: n_dims %u is out of range (1..%d)", ctx, t->n_dims,
                              GGUF_MAX_DIMS);
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if ((rc = rd_u64(p, &ne, "dimension", ctx))) return rc;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: dimension %u is %llu (must be 1..2^63-1)",
                                  ctx, d, (unsigned long long)ne);
            if (nel > (uint64_t)INT64_MAX / ne)
                return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: element count overflows (dimension %u is %llu)",
                                  ctx, d, (unsigned long long)ne);
            nel *= ne;
            t->ne[d] = (int64_t)ne;
        }
        uint32_t type;
        if ((rc = rd_u32(p, &type, "type", ctx))) return rc;
        const hl_type_traits *tr = hl_type_get((int)type);
        if (!tr || tr->blck == 0 || tr->size == 0)
            return hl_err_set(p->err, HL_ENOTSUP, "%s has unknown or unsupported tensor type %u", ctx, type);
        t->type = (hl_type)type;
        if ((uint64_t)t->ne[0] % tr->blck)
            return hl_err_set(p->err, HL_EINVAL, "%s: row length %lld is not a multiple of the %s block size %u", ctx,
                              (long long)t->ne[0], tr->name, tr->blck);
        uint64_t row = (uint64_t)t->ne[0] / tr->blck, rows = nel / (uint64_t)t->ne[0];
        if (row > UINT64_MAX / tr->size || row * tr->size > UINT64_MAX / rows)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: %s: byte size overflows", ctx);
        t->size = row * tr->size * rows;
        if ((rc = rd_u64(p, &t->offset, "offset", ctx))) return rc;
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b, void *arg) {
    const gguf_tensor *ts = arg;
    uint64_t x = ts[*(const int64_t *)a].offset, y = ts[*(const int64_t *)b].offset;
    return x < y ? -1 : x > y;
}

/* Alignment, data section, tensor bounds and overlaps. */
static int check_layout(pctx *p) {
    gguf_file *f = p->f;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *ak = gguf_find(f, "general.alignment");
    if (ak) {
        if (!gguf_vtype_is_int(ak->type) || ak->type == GGUF_BOOL)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: general.alignment has type %s (expected u32)",
                              gguf_vtype_name(ak->type));
        uint64_t a = gguf_kv_u64(ak);
        if (ak->type == GGUF_I8 || ak->type == GGUF_I16 || ak->type == GGUF_I32 || ak->type == GGUF_I64)
            if (gguf_kv_int(ak) < 0) a = 0;
        if (a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
            return hl_err_set(p->err, HL_EINVAL,
                              "corrupt GGUF file: general.alignment %lld is not a power of two between 1 and %u",
                              (long long)gguf_kv_int(ak), GGUF_MAX_ALIGNMENT);
        f->alignment = (uint32_t)a;
    }
    uint64_t a = f->alignment;
    f->data_offset = ((uint64_t)p->pos + a - 1) / a * a;
    if (f->n_tensors == 0) return 0; /* vocabulary-only files need no data section, nor its padding */
    if (f->data_offset > p->size)
        return hl_err_set(p->err, HL_EINVAL,
                          "model file truncated: the tensor data section should start at offset %llu, past the end of "
                          "the file (file size %zu)",
                          (unsigned long long)f->data_offset, p->size);
    uint64_t room = p->size - f->data_offset;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % a)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: tensor %s: data offset %llu is not a multiple of the alignment %u",
                              t->name, (unsigned long long)t->offset, f->alignment);
        if (t->offset > room || t->size > room - t->offset)
            return hl_err_set(p->err, HL_EINVAL,
                              "model file truncated: tensor %s extends past end of file (offset %llu, size %llu, file "
                              "size %zu)",
                              t->name, (unsigned long long)(f->data_offset + t->offset), (unsigned long long)t->size,
                              p->size);
        t->data = p->b + f->data_offset + t->offset;
    }
    int64_t *order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order) return hl_err_set(p->err, HL_ENOMEM, "out of memory checking tensor layout");
    for (int64_t i = 0; i < f->n_tensors; i++) order[i] = i;
    qsort_r(order, (size_t)f->n_tensors, sizeof *order, cmp_by_offset, f->tensors);
    int rc = 0;
    for (int64_t i = 1; i < f->n_tensors && !rc; i++) {
        const gguf_tensor *x = &f->tensors[order[i - 1]], *y = &f->tensors[order[i]];
        if (x->offset + x->size > y->offset)
            rc = hl_err_set(p->err, HL_EINVAL,
                            "corrupt GGUF file: tensors %s (offset %llu, size %llu) and %s (offset %llu) overlap",
                            x->name, (unsigned long long)x->offset, (unsigned long long)x->size, y->name,
                            (unsigned long long)y->offset);
    }
    free(order);
    return rc;
}

/* Turns pool positions into pointers (the pools no longer move). */
static void resolve(gguf_file *f) {
    for (size_t i = 0; i < f->n_recs; i++) {
        gguf_arr_rec *r = &f->recs[i];
        /* empty arrays may leave a pool unallocated: their index is never read */
        if ((r->type == GGUF_STRING || r->type == GGUF_ARRAY) && r->n) r->offs = f->offs + r->offs_at;
        if (r->type == GGUF_ARRAY && r->n) r->kids = f->recs + r->kids_at;
    }
    for (int64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kvs[i];
        kv->key = f->names + kv->key_at;
        if (kv->type == GGUF_ARRAY) kv->arr = &f->recs[kv->arr_at];
    }
}

static int index_names(pctx *p) {
    gguf_file *f = p->f;
    int rc;
    if ((rc = hash_alloc(&f->kv_hash, &f->kv_mask, f->n_kv, p->err))) return rc;
    for (int64_t i = 0; i < f->n_kv; i++) {
        int64_t dup = hash_insert(f->kv_hash, f->kv_mask, f->kvs[i].key, i, kv_name, f);
        if (dup >= 0)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: duplicate metadata key '%.200s' (entries #%lld and #%lld)",
                              f->kvs[i].key, (long long)dup, (long long)i);
    }
    if ((rc = hash_alloc(&f->t_hash, &f->t_mask, f->n_tensors, p->err))) return rc;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        int64_t dup = hash_insert(f->t_hash, f->t_mask, f->tensors[i].name, i, t_name, f);
        if (dup >= 0)
            return hl_err_set(p->err, HL_EINVAL, "corrupt GGUF file: duplicate tensor name '%s' (tensors #%lld and #%lld)",
                              f->tensors[i].name, (long long)dup, (long long)i);
    }
    return 0;
}

static int parse(gguf_file *f, hl_err *err) {
    pctx p = {.f = f, .b = f->base, .size = f->size, .err = err};
    int rc;
    if ((rc = parse_header(&p)) || (rc = parse_kvs(&p)) || (rc = parse_tensors(&p))) return rc;
    resolve(f);
    for (int64_t i = 0; i < f->n_tensors; i++) f->tensors[i].name = f->names + (uintptr_t)f->tensors[i].name;
    if ((rc = index_names(&p))) return rc;
    return check_layout(&p);
}

int gguf_open_memory(gguf_file **out, const void *data, size_t size, hl_err *err) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return hl_err_set(err, HL_ENOMEM, "out of memory opening GGUF file");
    f->base = data;
    f->size = size;
    int rc = parse(f, err);
    if (rc) {
        /* tensor names still hold pool positions if parsing stopped early */
        f->n_tensors = 0;
        gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int gguf_open(gguf_file **out, const char *path, hl_err *err) {
    *out = NULL;
    hl_mmap m;
    int rc = hl_mmap_open(&m, path, err);
    if (rc) return rc;
    gguf_file *f;
    if ((rc = gguf_open_memory(&f, m.data, m.size, err))) {
        hl_mmap_close(&m);
        return hl_err_prefix(err, "%s: ", path);
    }
    f->map = m;
    *out = f;
    return 0;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->map.data) hl_mmap_close(&f->map);
    free(f->kvs);
    free(f->tensors);
    free(f->names);
    free(f->recs);
    free(f->offs);
    free(f->kv_hash);
    free(f->t_hash);
    free(f);
}

/* ---- accessors ---------------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
const void *gguf_file_data(const gguf_file *f) { return f->base; }

int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    HL_ASSERT(i >= 0 && i < f->n_kv);
    return &f->kvs[i];
}
const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    int64_t i = hash_find(f->kv_hash, f->kv_mask, key, kv_name, f);
    return i < 0 ? NULL : &f->kvs[i];
}
const char *gguf_kv_key(const gguf_kv *kv) { return kv->key; }
gguf_vtype gguf_kv_type(const gguf_kv *kv) { return kv->type; }
const void *gguf_kv_raw(const gguf_kv *kv, uint64_t *size) {
    *size = kv->val_size;
    return kv->val;
}

int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    HL_ASSERT(i >= 0 && i < f->n_tensors);
    return &f->tensors[i];
}
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t i = hash_find(f->t_hash, f->t_mask, name, t_name, f);
    return i < 0 ? NULL : &f->tensors[i];
}
