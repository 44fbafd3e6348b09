/* A growable byte buffer (string builder). The buffer owns its memory; it is
 * always NUL-terminated after any append so data can be used as a C string.
 * Allocation failure is sticky: `oom` is set and further appends are ignored,
 * so builders can check once at the end. */
#ifndef HL_BASE_BUF_H
#define HL_BASE_BUF_H

#include <stddef.h>

typedef struct hl_buf {
    char *data;
    size_t len, cap;
    int oom;
} hl_buf;

void hl_buf_append(hl_buf *b, const void *p, size_t n);
void hl_buf_puts(hl_buf *b, const char *s);
void hl_buf_putc(hl_buf *b, char c);
void hl_buf_printf(hl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int hl_buf_reserve(hl_buf *b, size_t extra);
void hl_buf_reset(hl_buf *b);  /* len = 0, keeps the memory */
void hl_buf_free(hl_buf *b);
/* Hands the memory to the caller (free with free()); the buffer becomes empty. */
char *hl_buf_take(hl_buf *b);

#endif
