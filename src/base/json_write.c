/* Streaming JSON writer. */
#include "base/json_write.h"
#include "base/utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void hl_jw_init(hl_jw *w, hl_buf *out) {
    memset(w, 0, sizeof *w);
    w->out = out;
}

static void before_value(hl_jw *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0 && w->need_comma[w->depth]) hl_buf_putc(w->out, ',');
    if (w->depth > 0) w->need_comma[w->depth] = 1;
}

static void open(hl_jw *w, char c) {
    before_value(w);
    hl_buf_putc(w->out, c);
    if (w->depth < (int)sizeof w->need_comma - 1) w->depth++;
    w->need_comma[w->depth] = 0;
}

static void close_(hl_jw *w, char c) {
    hl_buf_putc(w->out, c);
    if (w->depth > 0) w->depth--;
}

void hl_jw_obj_begin(hl_jw *w) { open(w, '{'); }
void hl_jw_obj_end(hl_jw *w) { close_(w, '}'); }
void hl_jw_arr_begin(hl_jw *w) { open(w, '['); }
void hl_jw_arr_end(hl_jw *w) { close_(w, ']'); }

void hl_jw_key(hl_jw *w, const char *key) {
    before_value(w);
    hl_json_escape(w->out, key, strlen(key));
    hl_buf_putc(w->out, ':');
    w->after_key = 1;
}

void hl_json_escape(hl_buf *out, const char *s, size_t n) {
    hl_buf_putc(out, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n) {
                unsigned char d = (unsigned char)s[j];
                if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
                j++;
            }
            hl_buf_append(out, s + i, j - i);
            i = j;
            continue;
        }
        if (c >= 0x80) {
            int len = hl_utf8_valid_prefix(s + i, n - i);
            if (len > 0) {
                hl_buf_append(out, s + i, (size_t)len);
                i += (size_t)len;
            } else {
                hl_buf_puts(out, "\xEF\xBF\xBD");
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': hl_buf_puts(out, "\\\""); break;
        case '\\': hl_buf_puts(out, "\\\\"); break;
        case '\n': hl_buf_puts(out, "\\n"); break;
        case '\r': hl_buf_puts(out, "\\r"); break;
        case '\t': hl_buf_puts(out, "\\t"); break;
        case '\b': hl_buf_puts(out, "\\b"); break;
        case '\f': hl_buf_puts(out, "\\f"); break;
        default: hl_buf_printf(out, "\\u%04x", c); break;
        }
        i++;
    }
    hl_buf_putc(out, '"');
}

void hl_jw_strn(hl_jw *w, const char *s, size_t n) {
    before_value(w);
    hl_json_escape(w->out, s, n);
}
void hl_jw_str(hl_jw *w, const char *s) {
    if (!s) {
        hl_jw_null(w);
        return;
    }
    hl_jw_strn(w, s, strlen(s));
}
void hl_jw_int(hl_jw *w, int64_t v) {
    before_value(w);
    hl_buf_printf(w->out, "%" PRId64, v);
}
void hl_jw_uint(hl_jw *w, uint64_t v) {
    before_value(w);
    hl_buf_printf(w->out, "%" PRIu64, v);
}
void hl_jw_double(hl_jw *w, double v) {
    before_value(w);
    if (!isfinite(v)) {
        hl_buf_puts(w->out, "null");
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.9g", v);
    hl_buf_puts(w->out, tmp);
}
void hl_jw_bool(hl_jw *w, int v) {
    before_value(w);
    hl_buf_puts(w->out, v ? "true" : "false");
}
void hl_jw_null(hl_jw *w) {
    before_value(w);
    hl_buf_puts(w->out, "null");
}
void hl_jw_raw(hl_jw *w, const char *json, size_t n) {
    before_value(w);
    hl_buf_append(w->out, json, n);
}
