/* Tests for the stop-string matcher (src/sample/stop.c). The reference is a
 * naive scan written here: the first end position at which any stop string is
 * complete (longest string on ties), and, while no stop has matched, the
 * longest text tail that is a proper prefix of some stop string (which must be
 * held back, and nothing more apart from an incomplete UTF-8 character). */
#include "harness.h"

#include "base/utf8.h"
#include "sample/sample.h"

#include <stdlib.h>

/* naive: first end e (1-based) where a stop ends; *which = its index */
static long ref_match_end(const char *t, size_t n, const char *const *stops, int ns, int *which) {
    for (size_t e = 1; e <= n; e++) {
        int best = -1;
        size_t blen = 0;
        for (int i = 0; i < ns; i++) {
            size_t l = strlen(stops[i]);
            if (l == 0 || l > e) continue;
            if (memcmp(t + e - l, stops[i], l) == 0 && l > blen) best = i, blen = l;
        }
        if (best >= 0) {
            *which = best;
            return (long)e;
        }
    }
    return -1;
}

/* naive: longest suffix of t[0..n) that is a proper prefix of a stop string */
static size_t ref_hold(const char *t, size_t n, const char *const *stops, int ns) {
    size_t h = 0;
    for (int i = 0; i < ns; i++) {
        size_t l = strlen(stops[i]);
        for (size_t k = 1; k < l && k <= n; k++)
            if (memcmp(t + n - k, stops[i], k) == 0 && k > h) h = k;
    }
    return h;
}

/* Streams text split at the given cut points and checks every step against
 * the reference. Returns the matched index (or -1); out gets all emitted text. */
static int stream_check(const char *text, const size_t *cuts, int ncuts, const char *const *stops, int ns,
                        char *out, size_t *out_len) {
    hl_stop_matcher *m = NULL;
    hl_err err;
    int rc = hl_stop_new(&m, stops, NULL, ns, &err);
    CHECK_EQ(rc, 0);
    if (rc) return -2;
    size_t n = strlen(text), pos = 0, olen = 0;
    int which = -1;
    long end = ref_match_end(text, n, stops, ns, &which);
    int stopped = 0;
    for (int c = 0; c <= ncuts && !stopped; c++) {
        size_t next = c < ncuts ? cuts[c] : n;
        if (next < pos) next = pos;
        const char *e;
        size_t ne;
        int r = hl_stop_push(m, text + pos, next - pos, &e, &ne);
        memcpy(out + olen, e, ne);
        olen += ne;
        pos = next;
        if (end >= 0 && (long)pos >= end) {
            CHECK_EQ(r, 1);
            CHECK_EQ(olen, (size_t)end - strlen(stops[which]));
            CHECK_EQ(hl_stop_matched(m), which);
            stopped = 1;
        } else {
            CHECK_EQ(r, 0);
            /* exactly the stop-prefix tail is held back, plus an incomplete char */
            size_t safe = pos - ref_hold(text, pos, stops, ns);
            CHECK_EQ(olen, hl_utf8_complete_len(text, safe));
        }
        CHECK(memcmp(out, text, olen) == 0);
    }
    const char *e;
    size_t ne;
    int r = hl_stop_flush(m, &e, &ne);
    CHECK_EQ(r, stopped);
    memcpy(out + olen, e, ne);
    olen += ne;
    if (!stopped) {
        CHECK_EQ(olen, n); /* no false hold-back at the end */
        CHECK_EQ(hl_stop_matched(m), -1);
    }
    /* after the end nothing more comes out */
    r = hl_stop_push(m, "xyz", 3, &e, &ne);
    if (stopped) {
        CHECK_EQ(r, 1);
        CHECK_EQ(ne, 0);
    }
    *out_len = olen;
    hl_stop_free(m);
    return stopped ? which : -1;
}

TEST(stop_split_across_many_pieces) {
    const char *stops[] = {"</answer>"};
    const char *text = "The result is 42</answer> trailing";
    size_t cuts[40];
    for (int i = 0; i < 34; i++) cuts[i] = (size_t)i + 1; /* one byte per piece */
    char out[128];
    size_t n;
    CHECK_EQ(stream_check(text, cuts, 34, stops, 1, out, &n), 0);
    CHECK_EQ(n, 16);
    CHECK(memcmp(out, "The result is 42", 16) == 0);
}

TEST(stop_overlapping_partial_matches) {
    /* "aab": after "aa" the tail "a" must stay held, and the KMP fallback must
     * still find "aab" inside "aaab" */
    const char *stops[] = {"aab"};
    char out[64];
    size_t n;
    size_t cuts[] = {1, 2, 3};
    CHECK_EQ(stream_check("xaaab!", cuts, 3, stops, 1, out, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(memcmp(out, "xa", 2) == 0);
    const char *stops2[] = {"ab", "aab"};
    /* both end at the same byte: the longer one wins, less text shows */
    CHECK_EQ(stream_check("zaab", NULL, 0, stops2, 2, out, &n), 1);
    CHECK_EQ(n, 1);
}

TEST(stop_at_very_start_and_multiple) {
    const char *stops[] = {"User:", "###", "\n\n"};
    char out[64];
    size_t n;
    CHECK_EQ(stream_check("###hello", NULL, 0, stops, 3, out, &n), 1);
    CHECK_EQ(n, 0);
    size_t cuts[] = {3, 5, 9};
    CHECK_EQ(stream_check("hi\n\nUser: x", cuts, 3, stops, 3, out, &n), 2);
    CHECK_EQ(n, 2);
    /* the earliest end wins even when another stop started earlier */
    const char *stops2[] = {"abcd", "bc"};
    CHECK_EQ(stream_check("xabcd", NULL, 0, stops2, 2, out, &n), 1);
    CHECK_EQ(n, 2);
}

TEST(stop_utf8_pieces_never_split) {
    const char *stops[] = {"\xc3\xa9t\xc3\xa9"}; /* "été" */
    /* "café été" with cuts inside the multi-byte characters */
    const char *text = "caf\xc3\xa9 \xc3\xa9t\xc3\xa9 x";
    size_t cuts[] = {4, 5, 7, 8, 10};
    char out[64];
    size_t n;
    CHECK_EQ(stream_check(text, cuts, 5, stops, 1, out, &n), 0);
    CHECK_EQ(n, 6);
    /* no stops: only whole characters come out; flush releases a broken tail */
    hl_stop_matcher *m;
    CHECK_EQ(hl_stop_new(&m, NULL, NULL, 0, NULL), 0);
    const char *e;
    size_t ne;
    CHECK_EQ(hl_stop_push(m, "a\xe2\x82", 3, &e, &ne), 0);
    CHECK_EQ(ne, 1);
    CHECK_EQ(hl_stop_push(m, "\xac", 1, &e, &ne), 0);
    CHECK_EQ(ne, 3);
    CHECK(memcmp(e, "\xe2\x82\xac", 3) == 0);
    CHECK_EQ(hl_stop_push(m, "\xf0\x9f", 2, &e, &ne), 0);
    CHECK_EQ(ne, 0);
    CHECK_EQ(hl_stop_flush(m, &e, &ne), 0);
    CHECK_EQ(ne, 2);
    hl_stop_reset(m);
    CHECK_EQ(hl_stop_push(m, "ok", 2, &e, &ne), 0);
    CHECK_EQ(ne, 2);
    hl_stop_free(m);
}

TEST(stop_random_splits_match_reference) {
    const char *stops[] = {"ab", "aab", "abca", "bcb", "cccc"};
    uint64_t x = 12345;
    char text[64], out[128];
    int matched = 0;
    for (int iter = 0; iter < 3000; iter++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int len = (int)((x >> 33) % 40);
        for (int i = 0; i < len; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            text[i] = "abc"[(x >> 33) % 3];
        }
        text[len] = 0;
        int ns = 1 + (int)(iter % 5);
        size_t cuts[40];
        int nc = 0;
        for (int i = 1; i < len; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            if ((x >> 33) % 3 == 0) cuts[nc++] = (size_t)i;
        }
        size_t n;
        int r = stream_check(text, cuts, nc, stops + (5 - ns), ns, out, &n);
        matched += r >= 0;
    }
    CHECK(matched > 1000); /* the cases exercise matches, not only misses */
}

TEST(stop_limits_and_empty) {
    hl_stop_matcher *m = NULL;
    hl_err err;
    const char *empty[] = {"", "end"};
    CHECK_EQ(hl_stop_new(&m, empty, NULL, 2, &err), 0);
    const char *e;
    size_t ne;
    CHECK_EQ(hl_stop_push(m, "abc", 3, &e, &ne), 0);
    CHECK_EQ(ne, 3);
    CHECK_EQ(hl_stop_push(m, "xend", 4, &e, &ne), 1);
    CHECK_EQ(hl_stop_matched(m), 1); /* index in the caller's list */
    CHECK_EQ(ne, 1);
    hl_stop_free(m);

    static char longstop[HL_STOP_MAX_LEN + 2];
    memset(longstop, 'a', HL_STOP_MAX_LEN + 1);
    const char *ls[] = {longstop};
    CHECK_EQ(hl_stop_new(&m, ls, NULL, 1, &err), HL_ERANGE);
    CHECK(m == NULL);
    CHECK_EQ(hl_stop_new(&m, ls, NULL, HL_STOP_MAX_STRINGS + 1, &err), HL_ERANGE);
    /* explicit lengths allow NUL bytes inside a stop string */
    const char *nul[] = {"a\0b"};
    size_t lens[] = {3};
    CHECK_EQ(hl_stop_new(&m, nul, lens, 1, &err), 0);
    CHECK_EQ(hl_stop_push(m, "xa\0b", 4, &e, &ne), 1);
    CHECK_EQ(ne, 1);
    hl_stop_free(m);
}

TEST(stop_large_piece_grows_buffer) {
    const char *stops[] = {"STOP"};
    hl_stop_matcher *m;
    CHECK_EQ(hl_stop_new(&m, stops, NULL, 1, NULL), 0);
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    memcpy(big + 99990, "STO", 3);
    const char *e;
    size_t ne;
    CHECK_EQ(hl_stop_push(m, big, 99993, &e, &ne), 0);
    CHECK_EQ(ne, 99990);
    CHECK_EQ(hl_stop_push(m, "P", 1, &e, &ne), 1);
    CHECK_EQ(ne, 0);
    free(big);
    hl_stop_free(m);
}
