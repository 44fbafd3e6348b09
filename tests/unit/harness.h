/* The unit-test harness: TEST(name) registers a test, CHECK* macros record
 * failures without stopping the test, and main runs every test (or those whose
 * name contains argv[1]), prints one verdict line per test and closes with
 * "N passed, N failed, N skipped".
 *
 * Test data: hl_test_shared(path) resolves a file under the shared models
 * folder ($HL_SHARED_DIR, default ../shared next to the repository);
 * hl_test_model(name) a downloaded model under $HL_MODELS_DIR (default
 * ~/.cache/hyperlama/models), or NULL after failing the test with the command
 * that fetches it (scripts/setup.sh --test fetches every test model).
 *
 * `BINARY --list` prints the test names, one a line; the per-test output
 * format is described above main in harness.c. tests/test_unit_binaries.py
 * makes each test its own pytest item: passed, failed (with its lines) or
 * skipped (with the hl_test_skip reason). hl_test_skip is for what is
 * legitimately optional (a CPU feature this machine lacks), never for
 * missing test data. */
#ifndef HL_TEST_HARNESS_H
#define HL_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*hl_test_fn)(void);
void hl_test_register(const char *name, hl_test_fn fn);
void hl_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void hl_test_skip(const char *why);
const char *hl_test_shared(const char *rel); /* static buffer, valid until next call */
/* NULL (and a failure at the caller's line) when missing */
const char *hl_test_model_at(const char *src, int line, const char *file);
#define hl_test_model(file) hl_test_model_at(__FILE__, __LINE__, (file))

#define TEST(name)                                                                    \
    static void name(void);                                                           \
    __attribute__((constructor)) static void hl_test_reg_##name(void) {               \
        hl_test_register(#name, name);                                                \
    }                                                                                 \
    static void name(void)

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) hl_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);           \
    } while (0)
#define CHECK_EQ(a, b)                                                                \
    do {                                                                              \
        long long hl_a_ = (long long)(a), hl_b_ = (long long)(b);                     \
        if (hl_a_ != hl_b_)                                                           \
            hl_test_fail(__FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b, hl_a_, hl_b_); \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                         \
    do {                                                                              \
        double hl_a_ = (double)(a), hl_b_ = (double)(b);                              \
        if (!(fabs(hl_a_ - hl_b_) <= (tol)))                                          \
            hl_test_fail(__FILE__, __LINE__, "%s ~ %s (%.9g vs %.9g, tol %g)", #a, #b, hl_a_, hl_b_, (double)(tol)); \
    } while (0)
#define CHECK_STREQ(a, b)                                                             \
    do {                                                                              \
        const char *hl_a_ = (a), *hl_b_ = (b);                                        \
        if (!hl_a_ || !hl_b_ || strcmp(hl_a_, hl_b_) != 0)                            \
            hl_test_fail(__FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, #b,    \
                         hl_a_ ? hl_a_ : "(null)", hl_b_ ? hl_b_ : "(null)");          \
    } while (0)

#endif
