/* Error values: formatting and prefixing of hl_err messages. */
#include "base/err.h"

#include <stdio.h>
#include <string.h>

int hl_err_setv(hl_err *err, int code, const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int hl_err_set(hl_err *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_err_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int hl_err_prefix(hl_err *err, const char *fmt, ...) {
    if (!err) return HL_EINVAL;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
    return err->code;
}

void hl_err_clear(hl_err *err) {
    if (err) {
        err->code = 0;
        err->msg[0] = 0;
    }
}
