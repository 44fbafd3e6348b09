/* Errors as values. A function that can fail returns an int status (0 on
 * success, negative on failure) and, on failure, fills a caller-provided hl_err
 * with a message a user can act on, written where the facts are known. Callers
 * may pass NULL when they do not care about the message. */
#ifndef HL_BASE_ERR_H
#define HL_BASE_ERR_H

#include <stdarg.h>

enum {
    HL_OK = 0,
    HL_EINVAL = -1,  /* bad input: malformed file, request, template ... */
    HL_ENOMEM = -2,  /* allocation failed */
    HL_EIO = -3,     /* read/write/mmap failed */
    HL_ENOTSUP = -4, /* well-formed but not supported (yet) */
    HL_ENOENT = -5,  /* no such file / model / key */
    HL_ERANGE = -6,  /* a limit was exceeded (context, size) */
};

typedef struct hl_err {
    int code;
    char msg[1024];
} hl_err;

/* Sets the message (printf-style) and returns code, so callers can write
 * `return hl_err_set(err, HL_EINVAL, "tensor %s ...", name);`. */
int hl_err_set(hl_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int hl_err_setv(hl_err *err, int code, const char *fmt, va_list ap);
/* Prefixes an existing message with context ("loading x.gguf: " + msg). */
int hl_err_prefix(hl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hl_err_clear(hl_err *err);

#endif
