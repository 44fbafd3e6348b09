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

/* The scripts/fetch_models.py name of each downloaded test model, for the
 * message when one is missing. */
static const char *fetch_name(const char *file) {
    static const struct {
        const char *prefix, *name;
    } known[] = {{"smollm2-", "smollm2"}, {"qwen2.5-coder-", "qwen2.5-coder"}, {"gemma-3-", "gemma3"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strncmp(file, known[i].prefix, strlen(known[i].prefix)) == 0) return known[i].name;
    return NULL;
}

const char *hl_test_model_at(const char *src, int line, const char *file) {
    static char path[4096];
    const char *dir = getenv("HL_MODELS_DIR");
    const char *home = getenv("HOME");
    if (dir && *dir)
        snprintf(path, sizeof path, "%s/%s", dir, file);
    else
        snprintf(path, sizeof path, "%s/.cache/hyperlama/models/%s", home ? home : ".", file);
    if (access(path, R_OK) != 0) {
        /* a failure, not a skip: scripts/setup.sh --test fetches every test model */
        const char *name = fetch_name(file);
        hl_test_fail(src, line, "test model %s missing (%s): fetch it with scripts/fetch_models.py %s "
                     "(scripts/setup.sh --test fetches every test model)", file, path, name ? name : "NAME");
        return NULL;
    }
    return path;
}

/* Output, one line per test in registration order, after whatever the test
 * printed (its CHECK failures as "    file:line: ...", a skip's reason as
 * "    skipped: why"):
 *   "ok   NAME", "FAIL NAME" or "skip NAME"
 * then "N passed, N failed, N skipped"; exit status 1 when any test failed.
 * `--list` prints the names only, one a line, in the same order (so a runner
 * knows which verdict line comes next: tests/test_unit_binaries.py). Both
 * take an optional FILTER: only tests whose name contains it. */
int main(int argc, char **argv) {
    int list = argc > 1 && strcmp(argv[1], "--list") == 0;
    const char *filter = argc > 1 + list ? argv[1 + list] : NULL;
    if (list) {
        for (int i = 0; i < n_tests; i++)
            if (!filter || strstr(tests[i].name, filter)) printf("%s\n", tests[i].name);
        return 0;
    }
    /* line-buffered, so what a test prints to stdout stays in order with
     * what it (or a sanitizer) writes to stderr */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        cur_failed = 0;
        cur_skipped = 0;
        tests[i].fn();
        fflush(stderr);
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
