/* Logging: level filter, timestamp, pretty or JSON lines on stderr; also the
 * assertion failure reporter. */
#include "base/log.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/json_write.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int g_level = HL_LOG_INFO;
static _Atomic int g_json = 0;

void hl_log_set_level(hl_log_level level) { atomic_store(&g_level, (int)level); }
hl_log_level hl_log_get_level(void) { return (hl_log_level)atomic_load(&g_level); }
void hl_log_set_json(int json) { atomic_store(&g_json, json); }

void hl_log(hl_log_level level, const char *fmt, ...) {
    if ((int)level < atomic_load(&g_level)) return;
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (atomic_load(&g_json)) {
        hl_buf b = {0};
        hl_jw w;
        hl_jw_init(&w, &b);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "time"); hl_jw_str(&w, when);
        hl_jw_key(&w, "level"); hl_jw_str(&w, names[level]);
        hl_jw_key(&w, "msg"); hl_jw_str(&w, msg);
        hl_jw_obj_end(&w);
        fprintf(stderr, "%s\n", b.data ? b.data : "{}");
        hl_buf_free(&b);
    } else {
        fprintf(stderr, "%s %-5s %s\n", when, names[level], msg);
    }
}

_Noreturn void hl_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
