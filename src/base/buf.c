/* Growable byte buffer. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hl_buf_reserve(hl_buf *b, size_t extra) {
    if (b->oom) return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void hl_buf_append(hl_buf *b, const void *p, size_t n) {
    if (hl_buf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void hl_buf_puts(hl_buf *b, const char *s) { hl_buf_append(b, s, strlen(s)); }
void hl_buf_putc(hl_buf *b, char c) { hl_buf_append(b, &c, 1); }

void hl_buf_printf(hl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        hl_buf_append(b, small, (size_t)n);
        return;
    }
    if (hl_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void hl_buf_reset(hl_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void hl_buf_free(hl_buf *b) {
    free(b->data);
    *b = (hl_buf){0};
}

char *hl_buf_take(hl_buf *b) {
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    *b = (hl_buf){0};
    return p;
}
