/* Typed access to GGUF metadata values: scalar conversions with range
 * checks, the typed getters by key, and array element access through the
 * offset index built at load (O(1) per element, strings and nested arrays
 * included). Values were validated by the reader, so loads here need no
 * bounds checks beyond the caller's index. */
#include "gguf/gguf_internal.h"

#include "base/assert.h"

#include <stdint.h>

const char *gguf_vtype_name(gguf_vtype t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t <= GGUF_F64 ? names[t] : "?";
}

int gguf_vtype_is_int(gguf_vtype t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_U16: case GGUF_I16: case GGUF_U32:
    case GGUF_I32: case GGUF_U64: case GGUF_I64: case GGUF_BOOL: return 1;
    default: return 0;
    }
}

int64_t gguf_load_int(gguf_vtype t, const uint8_t *p) {
    switch (t) {
    case GGUF_U8: case GGUF_BOOL: return p[0];
    case GGUF_I8: return (int8_t)p[0];
    case GGUF_U16: return gguf_ld16(p);
    case GGUF_I16: return (int16_t)gguf_ld16(p);
    case GGUF_U32: return gguf_ld32(p);
    case GGUF_I32: return (int32_t)gguf_ld32(p);
    case GGUF_U64: case GGUF_I64: return (int64_t)gguf_ld64(p);
    default: return 0;
    }
}

double gguf_load_float(gguf_vtype t, const uint8_t *p) {
    if (t == GGUF_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (t == GGUF_F64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    if (t == GGUF_U64) return (double)gguf_ld64(p);
    return (double)gguf_load_int(t, p);
}

static gguf_str load_str(const uint8_t *p) {
    return (gguf_str){.ptr = (const char *)p + 8, .len = gguf_ld64(p)};
}

/* ---- scalar kvs --------------------------------------------------------- */

int64_t gguf_kv_int(const gguf_kv *kv) { return gguf_vtype_is_int(kv->type) ? gguf_load_int(kv->type, kv->val) : 0; }
uint64_t gguf_kv_u64(const gguf_kv *kv) { return (uint64_t)gguf_kv_int(kv); }
double gguf_kv_float(const gguf_kv *kv) {
    return kv->type == GGUF_F32 || kv->type == GGUF_F64 || gguf_vtype_is_int(kv->type) ? gguf_load_float(kv->type, kv->val) : 0;
}
gguf_str gguf_kv_str(const gguf_kv *kv) { return kv->type == GGUF_STRING ? load_str(kv->val) : (gguf_str){"", 0}; }

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return HL_ENOENT;
    if (!gguf_vtype_is_int(kv->type) || kv->type == GGUF_BOOL) return HL_EINVAL;
    if (kv->type == GGUF_U64 && gguf_ld64(kv->val) > (uint64_t)INT64_MAX) return HL_EINVAL;
    *out = gguf_load_int(kv->type, kv->val);
    return 0;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return HL_ENOENT;
    if (kv->type == GGUF_F32 || kv->type == GGUF_F64) {
        *out = gguf_load_float(kv->type, kv->val);
        return 0;
    }
    if (!gguf_vtype_is_int(kv->type) || kv->type == GGUF_BOOL) return HL_EINVAL;
    /* integers convert when exact: a float field written as an int is common */
    int64_t v = gguf_load_int(kv->type, kv->val);
    if (kv->type == GGUF_U64 && gguf_ld64(kv->val) > (1ull << 53)) return HL_EINVAL;
    if (v > (1ll << 53) || v < -(1ll << 53)) return HL_EINVAL;
    *out = (double)v;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return HL_ENOENT;
    if (kv->type != GGUF_BOOL) return HL_EINVAL;
    *out = kv->val[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return HL_ENOENT;
    if (kv->type != GGUF_STRING) return HL_EINVAL;
    *out = load_str(kv->val);
    return 0;
}

/* ---- arrays ------------------------------------------------------------- */

static void from_rec(const gguf_arr_rec *r, gguf_arr *out) {
    out->type = r->type;
    out->n = r->n;
    out->data = r->data;
    out->index = r;
}

int gguf_kv_arr(const gguf_kv *kv, gguf_arr *out) {
    if (kv->type != GGUF_ARRAY) return HL_EINVAL;
    from_rec(kv->arr, out);
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_arr *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return HL_ENOENT;
    return gguf_kv_arr(kv, out);
}

gguf_str gguf_arr_str(const gguf_arr *a, uint64_t i) {
    HL_ASSERT(a->type == GGUF_STRING && i < a->n);
    const gguf_arr_rec *r = a->index;
    return load_str(a->data + r->offs[i]);
}

int64_t gguf_arr_int(const gguf_arr *a, uint64_t i) {
    HL_ASSERT(gguf_vtype_is_int(a->type) && i < a->n);
    return gguf_load_int(a->type, a->data + i * gguf_vtype_size(a->type));
}

double gguf_arr_float(const gguf_arr *a, uint64_t i) {
    HL_ASSERT((gguf_vtype_is_int(a->type) || a->type == GGUF_F32 || a->type == GGUF_F64) && i < a->n);
    return gguf_load_float(a->type, a->data + i * gguf_vtype_size(a->type));
}

int gguf_arr_get_arr(const gguf_arr *a, uint64_t i, gguf_arr *out) {
    if (a->type != GGUF_ARRAY) return HL_EINVAL;
    HL_ASSERT(i < a->n);
    const gguf_arr_rec *r = a->index;
    from_rec(&r->kids[i], out);
    return 0;
}
