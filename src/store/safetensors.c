/* SafeTensors reader: header parsing and bounds checks for one file image,
 * and directory opening (single file or sharded via
 * model.safetensors.index.json) with every shard mapped read-only. The
 * format and the checks are described in safetensors.h. */
#include "store/safetensors.h"

#include "base/file.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER (100u << 20) /* the format's own limit */
#define ST_MAX_TENSORS 1000000
#define ST_MAX_FILES 4096

struct st_map {
    hl_mmap m;
    char *name;
};

size_t st_type_size(hl_type t) {
    return t == HL_TYPE_I64 ? 8 : t == HL_TYPE_F32 || t == HL_TYPE_I32 ? 4 : t == ST_TYPE_U8 ? 1 : 2;
}

int st_is_float(hl_type t) { return t == HL_TYPE_F32 || t == HL_TYPE_F16 || t == HL_TYPE_BF16; }

static int parse_dtype(const char *s, hl_type *t) {
    if (!strcmp(s, "F32")) *t = HL_TYPE_F32;
    else if (!strcmp(s, "F16")) *t = HL_TYPE_F16;
    else if (!strcmp(s, "BF16")) *t = HL_TYPE_BF16;
    else if (!strcmp(s, "U8")) *t = ST_TYPE_U8;
    else if (!strcmp(s, "I64")) *t = HL_TYPE_I64; /* buffers (position_ids): listed, never weights */
    else if (!strcmp(s, "I32")) *t = HL_TYPE_I32;
    else return -1;
    return 0;
}

static int get_u64(json_object *v, uint64_t *out) {
    if (!v || !json_object_is_type(v, json_type_int)) return -1;
    int64_t x = json_object_get_int64(v);
    /* json-c clamps to INT64_MAX on overflow; reject negatives */
    if (x < 0) return -1;
    if (x == INT64_MAX) return -1;
    *out = (uint64_t)x;
    return 0;
}

static int add_tensor(st_set *s, const char *name, json_object *e, const uint8_t *data, uint64_t data_size, int file,
                      const char *label, hl_err *err) {
    if (!json_object_is_type(e, json_type_object))
        return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': entry is not an object", label, name);
    json_object *jd, *js, *jo;
    if (!json_object_object_get_ex(e, "dtype", &jd) || !json_object_is_type(jd, json_type_string) ||
        !json_object_object_get_ex(e, "shape", &js) || !json_object_is_type(js, json_type_array) ||
        !json_object_object_get_ex(e, "data_offsets", &jo) || !json_object_is_type(jo, json_type_array) ||
        json_object_array_length(jo) != 2)
        return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': needs dtype (string), shape (array) and data_offsets ([begin, end])",
                          label, name);
    hl_type type;
    if (parse_dtype(json_object_get_string(jd), &type))
        return hl_err_set(err, HL_ENOTSUP, "%s: tensor '%s' has dtype %.16s (supported: F32, F16, BF16, U8)", label, name,
                          json_object_get_string(jd));
    size_t nd = json_object_array_length(js);
    if (nd > ST_MAX_DIMS) return hl_err_set(err, HL_EINVAL, "%s: tensor '%s' has %zu dims (max %d)", label, name, nd, ST_MAX_DIMS);
    st_tensor t = {.type = type, .n_dims = (int)nd, .file = file, .n_elems = 1};
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (get_u64(json_object_array_get_idx(js, i), &d) || d > (uint64_t)INT64_MAX)
            return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': dim %zu is not a non-negative integer", label, name, i);
        if (d && (uint64_t)t.n_elems > (uint64_t)(INT64_MAX / 4) / d)
            return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': shape is too large", label, name);
        t.shape[i] = (int64_t)d;
        t.n_elems *= (int64_t)d;
    }
    uint64_t b, en;
    if (get_u64(json_object_array_get_idx(jo, 0), &b) || get_u64(json_object_array_get_idx(jo, 1), &en) || en < b)
        return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': bad data_offsets", label, name);
    uint64_t want = (uint64_t)t.n_elems * st_type_size(type);
    if (en - b != want)
        return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': shape x dtype is %llu bytes but data_offsets span %llu", label,
                          name, (unsigned long long)want, (unsigned long long)(en - b));
    if (en > data_size)
        return hl_err_set(err, HL_EINVAL, "%s: tensor '%s': data [%llu, %llu) lies outside the file's %llu data bytes (truncated?)",
                          label, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size);
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return hl_err_set(err, HL_EINVAL, "%s: duplicate tensor '%s'", label, name);
    if (s->n >= ST_MAX_TENSORS) return hl_err_set(err, HL_ERANGE, "%s: too many tensors", label);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        st_tensor *nt = realloc(s->t, cap * sizeof *nt);
        if (!nt) return hl_err_set(err, HL_ENOMEM, "out of memory");
        s->t = nt, s->cap = cap;
    }
    t.data = data + b;
    t.size = (size_t)want;
    if (!(t.name = strdup(name))) return hl_err_set(err, HL_ENOMEM, "out of memory");
    s->t[s->n++] = t;
    return HL_OK;
}

/* Number of keys of the top-level object, counted on the text: json-c keeps
 * only the last of duplicate keys, and a duplicate tensor name must be an
 * error, not a silently dropped tensor. The text is already known to be
 * valid JSON. */
static size_t count_top_keys(const char *p, size_t n) {
    size_t keys = 0;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && p[j] != '"') j += p[j] == '\\' ? 2 : 1;
            i = j;
            if (depth == 1) {
                size_t k = j + 1;
                while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r')) k++;
                if (k < n && p[k] == ':') keys++;
            }
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return keys;
}

int st_parse_image(st_set *s, const void *image, size_t size, int file, const char *label, hl_err *err) {
    const uint8_t *p = image;
    if (size < 8) return hl_err_set(err, HL_EINVAL, "%s: %zu bytes is too short for a SafeTensors file (truncated?)", label, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > ST_MAX_HEADER || hlen > size - 8)
        return hl_err_set(err, HL_EINVAL, "%s: header length %llu does not fit the %zu-byte file (truncated or not SafeTensors)",
                          label, (unsigned long long)hlen, size);
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) return hl_err_set(err, HL_ENOMEM, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, (const char *)p + 8, (int)hlen);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = HL_OK;
    if (!root || je != json_tokener_success) {
        rc = hl_err_set(err, HL_EINVAL, "%s: header is not valid JSON (%s)", label,
                        je == json_tokener_continue ? "incomplete" : json_tokener_error_desc(je));
    } else if (!json_object_is_type(root, json_type_object)) {
        rc = hl_err_set(err, HL_EINVAL, "%s: header is not a JSON object", label);
    } else {
        for (size_t i = used; i < hlen; i++)
            if (p[8 + i] != ' ' && p[8 + i] != '\t' && p[8 + i] != '\n' && p[8 + i] != '\r' && p[8 + i] != 0) {
                rc = hl_err_set(err, HL_EINVAL, "%s: trailing bytes after the JSON header", label);
                break;
            }
        const uint8_t *data = p + 8 + hlen;
        uint64_t data_size = size - 8 - hlen;
        if (rc == HL_OK && count_top_keys((const char *)p + 8, used) != (size_t)json_object_object_length(root))
            rc = hl_err_set(err, HL_EINVAL, "%s: duplicate tensor names in the header", label);
        if (rc == HL_OK) {
            json_object_object_foreach(root, k, v) {
                if (!strcmp(k, "__metadata__")) continue;
                if ((rc = add_tensor(s, k, v, data, data_size, file, label, err))) break;
            }
        }
    }
    json_object_put(root);
    return rc;
}

const st_tensor *st_find(const st_set *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

void st_close(st_set *s) {
    for (size_t i = 0; i < s->n; i++) free(s->t[i].name);
    for (int i = 0; i < s->n_files; i++) {
        hl_mmap_close(&s->files[i].m);
        free(s->files[i].name);
    }
    free(s->t);
    free(s->files);
    memset(s, 0, sizeof *s);
}

static int open_file(st_set *s, const char *dir, const char *fname, hl_err *err) {
    if (strchr(fname, '/') || !strcmp(fname, "..") || !*fname)
        return hl_err_set(err, HL_EINVAL, "shard name '%s' must be a plain file name in the directory", fname);
    if (s->n_files >= ST_MAX_FILES) return hl_err_set(err, HL_ERANGE, "too many shards");
    struct st_map *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
    if (!nf) return hl_err_set(err, HL_ENOMEM, "out of memory");
    s->files = nf;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    struct st_map *f = &s->files[s->n_files];
    memset(f, 0, sizeof *f);
    struct stat st;
    if (stat(path, &st) != 0) return hl_err_set(err, HL_ENOENT, "%s: shard is missing", path);
    int rc = hl_mmap_open(&f->m, path, err);
    if (rc) return rc;
    if (!(f->name = strdup(fname))) {
        hl_mmap_close(&f->m);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    int idx = s->n_files++;
    return st_parse_image(s, f->m.data, f->m.size, idx, fname, err);
}

static int open_index(st_set *s, const char *dir, const char *ipath, hl_err *err) {
    json_object *root = json_object_from_file(ipath), *wm;
    if (!root || !json_object_object_get_ex(root, "weight_map", &wm) || !json_object_is_type(wm, json_type_object)) {
        json_object_put(root);
        return hl_err_set(err, HL_EINVAL, "%s: not JSON with a \"weight_map\" object", ipath);
    }
    int rc = HL_OK;
    /* open each distinct shard once, in first-mention order */
    json_object_object_foreach(wm, k, v) {
        (void)k;
        if (!json_object_is_type(v, json_type_string)) {
            rc = hl_err_set(err, HL_EINVAL, "%s: weight_map value for '%s' is not a file name", ipath, k);
            break;
        }
        const char *fn = json_object_get_string(v);
        int seen = 0;
        for (int i = 0; i < s->n_files && !seen; i++) seen = !strcmp(s->files[i].name, fn);
        if (!seen && (rc = open_file(s, dir, fn, err))) break;
    }
    /* the index and the shards must agree */
    if (rc == HL_OK) {
        json_object_object_foreach(wm, k2, v2) {
            const st_tensor *t = st_find(s, k2);
            if (!t) {
                rc = hl_err_set(err, HL_EINVAL, "tensor '%s' is in the index but not in %s", k2, json_object_get_string(v2));
                break;
            }
            if (strcmp(s->files[t->file].name, json_object_get_string(v2))) {
                rc = hl_err_set(err, HL_EINVAL, "tensor '%s' is in %s, the index says %s", k2, s->files[t->file].name,
                                json_object_get_string(v2));
                break;
            }
        }
        if (rc == HL_OK && (size_t)json_object_object_length(wm) != s->n)
            rc = hl_err_set(err, HL_EINVAL, "the shards hold %zu tensors, the index names %d", s->n, json_object_object_length(wm));
    }
    json_object_put(root);
    return rc;
}

int st_open_dir(st_set *s, const char *dir, hl_err *err) {
    memset(s, 0, sizeof *s);
    char path[4096];
    struct stat st;
    int rc;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &st) == 0) rc = open_index(s, dir, path, err);
    else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (stat(path, &st) != 0)
            return hl_err_set(err, HL_ENOENT, "%s: no model.safetensors or model.safetensors.index.json", dir);
        rc = open_file(s, dir, "model.safetensors", err);
    }
    if (rc) st_close(s);
    return rc;
}
