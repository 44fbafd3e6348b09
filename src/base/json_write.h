/* A small streaming JSON writer into an hl_buf: no DOM, suitable for the
 * per-token hot path of streaming responses. Commas are inserted
 * automatically; strings are escaped per RFC 8259 (invalid UTF-8 bytes are
 * replaced with U+FFFD so output is always valid JSON). */
#ifndef HL_BASE_JSON_WRITE_H
#define HL_BASE_JSON_WRITE_H

#include "base/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hl_jw {
    hl_buf *out;
    int depth;
    unsigned char need_comma[64]; /* per nesting level */
    int after_key;
} hl_jw;

void hl_jw_init(hl_jw *w, hl_buf *out);
void hl_jw_obj_begin(hl_jw *w);
void hl_jw_obj_end(hl_jw *w);
void hl_jw_arr_begin(hl_jw *w);
void hl_jw_arr_end(hl_jw *w);
void hl_jw_key(hl_jw *w, const char *key);
void hl_jw_str(hl_jw *w, const char *s);
void hl_jw_strn(hl_jw *w, const char *s, size_t n);
void hl_jw_int(hl_jw *w, int64_t v);
void hl_jw_uint(hl_jw *w, uint64_t v);
void hl_jw_double(hl_jw *w, double v); /* non-finite values are written as null */
void hl_jw_bool(hl_jw *w, int v);
void hl_jw_null(hl_jw *w);
/* Inserts already-serialized JSON verbatim as one value. */
void hl_jw_raw(hl_jw *w, const char *json, size_t n);

/* Appends s escaped as a JSON string literal, quotes included. */
void hl_json_escape(hl_buf *out, const char *s, size_t n);

#endif
