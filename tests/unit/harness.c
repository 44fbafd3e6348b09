/* Unit-test harness: registration, failure recording, the runner's main. */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_TESTS 1024

static struct {
    const char *name;
    hl_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static int cur_failed, cur_skipped;

void hl_test_register(const char *name, hl_test_fn fn) {
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

void hl_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    cur_failed++;
}

void hl_test_skip(const char *why) {
    fprintf(stdout, "    skipped: %s\n", why);
    cur_skipped = 1;
}

const char *hl_test_shared(const char *rel) {
    static char path[4096];
    const char *dir = getenv("HL_SHARED_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "../shared", rel);
    return path;
}

const char *hl_test_model(const char *file) {
    static char path[4096];
    const char *dir = getenv("HL_MODELS_DIR");
    const char *home = getenv("HOME");
    if (dir && *dir)
        snprintf(path, sizeof path, "%s/%s", dir, file);
    else
        snprintf(path, sizeof path, "%s/.cache/hyperlama/models/%s", home ? home : ".", file);
    if (access(path, R_OK) != 0) {
        char why[4200];
        snprintf(why, sizeof why, "model %s not present (run scripts/fetch_models.py)", path);
        hl_test_skip(why);
        return NULL;
    }
    return path;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        cur_failed = 0;
        cur_skipped = 0;
        tests[i].fn();
        if (cur_failed) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else if (cur_skipped) {
            printf("skip %s\n", tests[i].name);
            skipped++;
        } else {
            printf("ok   %s\n", tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
