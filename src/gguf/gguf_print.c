/* Presenting a parsed GGUF file: the human-readable listing behind
 * `hyperlama inspect` (arrays summarized, long strings cut) and the JSON dump
 * behind `inspect --json` and the reference tests, which compare it with the
 * `gguf` Python package. Uses only the public reader API. */
#include "gguf/gguf.h"

#include "base/json_write.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PRINT_STR_MAX 64  /* characters of a string value shown */
#define PRINT_ARR_MAX 8   /* elements of an array shown */

/* Appends s quoted, control characters escaped, cut after max bytes. */
static void put_quoted(hl_buf *b, gguf_str s, size_t max) {
    hl_buf_putc(b, '"');
    size_t n = s.len < max ? (size_t)s.len : max;
    while (n < s.len && n > 0 && ((unsigned char)s.ptr[n] & 0xC0) == 0x80) n--; /* cut between characters */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n') hl_buf_puts(b, "\\n");
        else if (c == '\t') hl_buf_puts(b, "\\t");
        else if (c == '\r') hl_buf_puts(b, "\\r");
        else if (c == '"' || c == '\\') hl_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f) hl_buf_printf(b, "\\x%02x", c);
        else hl_buf_putc(b, (char)c);
    }
    hl_buf_putc(b, '"');
    if (s.len > n) hl_buf_printf(b, "... (%" PRIu64 " bytes)", s.len);
}

static void put_scalar(hl_buf *b, gguf_vtype t, const gguf_kv *kv, const gguf_arr *a, uint64_t i) {
    switch (t) {
    case GGUF_F32: case GGUF_F64:
        hl_buf_printf(b, "%.9g", kv ? gguf_kv_float(kv) : gguf_arr_float(a, i));
        break;
    case GGUF_BOOL:
        hl_buf_puts(b, (kv ? gguf_kv_int(kv) : gguf_arr_int(a, i)) ? "true" : "false");
        break;
    case GGUF_U64:
        hl_buf_printf(b, "%" PRIu64, (uint64_t)(kv ? gguf_kv_int(kv) : gguf_arr_int(a, i)));
        break;
    case GGUF_STRING:
        put_quoted(b, kv ? gguf_kv_str(kv) : gguf_arr_str(a, i), PRINT_STR_MAX);
        break;
    default:
        hl_buf_printf(b, "%" PRId64, kv ? gguf_kv_int(kv) : gguf_arr_int(a, i));
    }
}

static void put_arr_summary(hl_buf *b, const gguf_arr *a, int depth) {
    hl_buf_printf(b, "[%s x %" PRIu64 "]", gguf_vtype_name(a->type), a->n);
    if (a->n == 0) return;
    hl_buf_puts(b, " [");
    uint64_t show = a->n < PRINT_ARR_MAX ? a->n : PRINT_ARR_MAX;
    for (uint64_t i = 0; i < show; i++) {
        if (i) hl_buf_puts(b, ", ");
        if (a->type == GGUF_ARRAY) {
            gguf_arr sub;
            gguf_arr_get_arr(a, i, &sub);
            if (depth < 2) put_arr_summary(b, &sub, depth + 1);
            else hl_buf_printf(b, "[%s x %" PRIu64 "]", gguf_vtype_name(sub.type), sub.n);
        } else {
            put_scalar(b, a->type, NULL, a, i);
        }
    }
    hl_buf_puts(b, a->n > show ? ", ...]" : "]");
}

int gguf_print(FILE *out, const gguf_file *f, int show_tensors) {
    hl_buf b = {0};
    hl_buf_printf(&b, "GGUF version %u, %zu bytes, alignment %u, data section at offset %" PRIu64 "\n",
                  gguf_version(f), gguf_file_size(f), gguf_alignment(f), gguf_data_offset(f));
    hl_buf_printf(&b, "metadata (%" PRId64 " entries):\n", gguf_n_kv(f));
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        gguf_vtype t = gguf_kv_type(kv);
        hl_buf_printf(&b, "  %-44s %-6s ", gguf_kv_key(kv), gguf_vtype_name(t));
        if (t == GGUF_ARRAY) {
            gguf_arr a;
            gguf_kv_arr(kv, &a);
            put_arr_summary(&b, &a, 0);
        } else {
            put_scalar(&b, t, kv, NULL, 0);
        }
        hl_buf_putc(&b, '\n');
    }
    if (show_tensors) {
        uint64_t total = 0;
        hl_buf_printf(&b, "tensors (%" PRId64 "):\n", gguf_n_tensors(f));
        hl_buf_printf(&b, "  %-40s %-6s %-24s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            char shape[96];
            int n = 0;
            for (uint32_t d = 0; d < t->n_dims && n < (int)sizeof shape; d++)
                n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? " x " : "", t->ne[d]);
            hl_buf_printf(&b, "  %-40s %-6s %-24s %12" PRIu64 " %12" PRIu64 "\n", t->name, hl_type_name(t->type), shape,
                          t->offset, t->size);
            total += t->size;
        }
        hl_buf_printf(&b, "  total tensor data: %" PRIu64 " bytes\n", total);
    }
    int rc = b.oom ? HL_ENOMEM : 0;
    if (!rc && fwrite(b.data, 1, b.len, out) != b.len) rc = HL_EIO;
    hl_buf_free(&b);
    return rc;
}

/* ---- JSON --------------------------------------------------------------- */

static void jw_f64(hl_jw *w, double v) {
    char tmp[40];
    if (v != v || v - v != 0) { /* nan or inf: JSON has no literal */
        hl_jw_null(w);
        return;
    }
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);
    hl_jw_raw(w, tmp, (size_t)n);
}

static void jw_elem(hl_jw *w, gguf_vtype t, const gguf_kv *kv, const gguf_arr *a, uint64_t i) {
    switch (t) {
    case GGUF_F32: hl_jw_double(w, kv ? gguf_kv_float(kv) : gguf_arr_float(a, i)); break;
    case GGUF_F64: jw_f64(w, kv ? gguf_kv_float(kv) : gguf_arr_float(a, i)); break;
    case GGUF_BOOL: hl_jw_bool(w, (int)(kv ? gguf_kv_int(kv) : gguf_arr_int(a, i))); break;
    case GGUF_U64: hl_jw_uint(w, (uint64_t)(kv ? gguf_kv_int(kv) : gguf_arr_int(a, i))); break;
    case GGUF_STRING: {
        gguf_str s = kv ? gguf_kv_str(kv) : gguf_arr_str(a, i);
        hl_jw_strn(w, s.ptr, (size_t)s.len);
        break;
    }
    default: hl_jw_int(w, kv ? gguf_kv_int(kv) : gguf_arr_int(a, i));
    }
}

static void jw_arr(hl_jw *w, const gguf_arr *a, int64_t max_elems) {
    hl_jw_obj_begin(w);
    hl_jw_key(w, "type");
    hl_jw_str(w, gguf_vtype_name(a->type));
    hl_jw_key(w, "count");
    hl_jw_uint(w, a->n);
    hl_jw_key(w, "values");
    hl_jw_arr_begin(w);
    uint64_t show = max_elems < 0 || (uint64_t)max_elems > a->n ? a->n : (uint64_t)max_elems;
    for (uint64_t i = 0; i < show; i++) {
        if (a->type == GGUF_ARRAY) {
            gguf_arr sub;
            gguf_arr_get_arr(a, i, &sub);
            jw_arr(w, &sub, max_elems);
        } else {
            jw_elem(w, a->type, NULL, a, i);
        }
    }
    hl_jw_arr_end(w);
    hl_jw_obj_end(w);
}

int gguf_dump_json(hl_buf *out, const gguf_file *f, int64_t max_elems) {
    hl_jw w;
    hl_jw_init(&w, out);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "version");
    hl_jw_uint(&w, gguf_version(f));
    hl_jw_key(&w, "alignment");
    hl_jw_uint(&w, gguf_alignment(f));
    hl_jw_key(&w, "data_offset");
    hl_jw_uint(&w, gguf_data_offset(f));
    hl_jw_key(&w, "file_size");
    hl_jw_uint(&w, gguf_file_size(f));
    hl_jw_key(&w, "kv");
    hl_jw_arr_begin(&w);
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        gguf_vtype t = gguf_kv_type(kv);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "key");
        hl_jw_str(&w, gguf_kv_key(kv));
        hl_jw_key(&w, "type");
        hl_jw_str(&w, gguf_vtype_name(t));
        hl_jw_key(&w, "value");
        if (t == GGUF_ARRAY) {
            gguf_arr a;
            gguf_kv_arr(kv, &a);
            jw_arr(&w, &a, max_elems);
        } else {
            jw_elem(&w, t, kv, NULL, 0);
        }
        hl_jw_obj_end(&w);
    }
    hl_jw_arr_end(&w);
    hl_jw_key(&w, "tensors");
    hl_jw_arr_begin(&w);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "name");
        hl_jw_str(&w, t->name);
        hl_jw_key(&w, "type");
        hl_jw_str(&w, hl_type_name(t->type));
        hl_jw_key(&w, "type_id");
        hl_jw_int(&w, t->type);
        hl_jw_key(&w, "ne");
        hl_jw_arr_begin(&w);
        for (uint32_t d = 0; d < t->n_dims; d++) hl_jw_int(&w, t->ne[d]);
        hl_jw_arr_end(&w);
        hl_jw_key(&w, "offset");
        hl_jw_uint(&w, t->offset);
        hl_jw_key(&w, "size");
        hl_jw_uint(&w, t->size);
        hl_jw_obj_end(&w);
    }
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    return out->oom ? HL_ENOMEM : 0;
}
