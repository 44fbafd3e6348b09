/* Stop strings over streamed text. Each stop string runs a Knuth-Morris-Pratt
 * automaton whose state is the length of the longest suffix of the text so far
 * that is a prefix of the string. A state equal to the length is a match (the
 * earliest end, found byte by byte, hence the same for any split into pieces);
 * the largest state below it is how many trailing bytes must be held back.
 * Emitted text can never be part of a later match: any suffix that might grow
 * into one is, by construction, still held. */
#include "sample/sample.h"

#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

typedef struct stop_str {
    char *s;       /* owned copy */
    int32_t len;   /* > 0 */
    int32_t *fail; /* [len] KMP failure function: fail[i] = border of s[0..i] */
    int32_t state; /* matched prefix length */
    int32_t index; /* position in the caller's list */
} stop_str;

struct hl_stop_matcher {
    stop_str *stops;
    int32_t n_stops;
    char *buf; /* pending bytes: the text not yet emitted */
    size_t len, cap;
    size_t emitted; /* bytes at the front of buf handed out by the last call */
    int32_t matched; /* caller's index of the stop that matched, or -1 */
};

static void build_fail(stop_str *st) {
    st->fail[0] = 0;
    for (int32_t i = 1, k = 0; i < st->len; i++) {
        while (k > 0 && st->s[i] != st->s[k]) k = st->fail[k - 1];
        if (st->s[i] == st->s[k]) k++;
        st->fail[i] = k;
    }
}

int hl_stop_new(hl_stop_matcher **out, const char *const *stops, const size_t *lens, int32_t n_stops,
                hl_err *err) {
    *out = NULL;
    if (n_stops < 0 || n_stops > HL_STOP_MAX_STRINGS)
        return hl_err_set(err, HL_ERANGE, "%d stop strings given; at most %d are allowed", n_stops,
                          HL_STOP_MAX_STRINGS);
    for (int32_t i = 0; i < n_stops; i++) {
        if (!stops[i]) return hl_err_set(err, HL_EINVAL, "stop string %d is missing", i);
        size_t l = lens ? lens[i] : strlen(stops[i]);
        if (l > HL_STOP_MAX_LEN)
            return hl_err_set(err, HL_ERANGE, "stop string %d is %zu bytes long; the limit is %d", i, l,
                              HL_STOP_MAX_LEN);
    }
    hl_stop_matcher *m = calloc(1, sizeof *m);
    if (!m) return hl_err_set(err, HL_ENOMEM, "stop matcher: out of memory");
    m->matched = -1;
    size_t longest = 0;
    if (n_stops > 0 && !(m->stops = calloc((size_t)n_stops, sizeof *m->stops))) goto oom;
    for (int32_t i = 0; i < n_stops; i++) {
        size_t l = lens ? lens[i] : strlen(stops[i]);
        if (l == 0) continue; /* an empty stop would match everywhere: ignore it */
        stop_str *st = &m->stops[m->n_stops++];
        st->len = (int32_t)l;
        st->index = i;
        st->s = malloc(l);
        st->fail = malloc(l * sizeof *st->fail);
        if (!st->s || !st->fail) goto oom;
        memcpy(st->s, stops[i], l);
        build_fail(st);
        longest = l > longest ? l : longest;
    }
    /* room for the longest hold-back plus a typical piece; grows if needed */
    m->cap = longest + 256;
    if (!(m->buf = malloc(m->cap))) goto oom;
    *out = m;
    return 0;
oom:
    hl_stop_free(m);
    return hl_err_set(err, HL_ENOMEM, "stop matcher: out of memory");
}

void hl_stop_free(hl_stop_matcher *m) {
    if (!m) return;
    for (int32_t i = 0; i < m->n_stops; i++) {
        free(m->stops[i].s);
        free(m->stops[i].fail);
    }
    free(m->stops);
    free(m->buf);
    free(m);
}

void hl_stop_reset(hl_stop_matcher *m) {
    for (int32_t i = 0; i < m->n_stops; i++) m->stops[i].state = 0;
    m->len = m->emitted = 0;
    m->matched = -1;
}

int32_t hl_stop_matched(const hl_stop_matcher *m) {
    return m->matched;
}

/* Drops the bytes handed out by the previous call. */
static void consume_emitted(hl_stop_matcher *m) {
    if (m->emitted == 0) return;
    memmove(m->buf, m->buf + m->emitted, m->len - m->emitted);
    m->len -= m->emitted;
    m->emitted = 0;
}

static inline int32_t kmp_step(const stop_str *st, int32_t k, char c) {
    if (k == st->len) k = st->fail[k - 1]; /* only after a match; kept for safety */
    while (k > 0 && st->s[k] != c) k = st->fail[k - 1];
    return st->s[k] == c ? k + 1 : 0;
}

int hl_stop_push(hl_stop_matcher *m, const char *piece, size_t n, const char **emit, size_t *n_emit) {
    *emit = m->buf;
    *n_emit = 0;
    consume_emitted(m);
    if (m->matched >= 0) return 1;
    if (n > SIZE_MAX / 2 - m->len) return HL_ENOMEM;
    if (m->len + n > m->cap) {
        size_t cap = m->cap * 2 > m->len + n ? m->cap * 2 : m->len + n;
        char *nb = realloc(m->buf, cap);
        if (!nb) return HL_ENOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    if (n > 0) memcpy(m->buf + m->len, piece, n);
    const size_t start = m->len;
    m->len += n;
    *emit = m->buf;

    for (size_t pos = start; pos < m->len; pos++) {
        const stop_str *best = NULL;
        for (int32_t i = 0; i < m->n_stops; i++) {
            stop_str *st = &m->stops[i];
            st->state = kmp_step(st, st->state, m->buf[pos]);
            if (st->state == st->len && (!best || st->len > best->len)) best = st;
        }
        if (best) {
            /* the match began inside the pending bytes: they held its prefix */
            size_t match_start = pos + 1 - (size_t)best->len;
            m->matched = best->index;
            m->len = match_start;
            m->emitted = match_start;
            *n_emit = match_start;
            return 1;
        }
    }
    int32_t hold = 0;
    for (int32_t i = 0; i < m->n_stops; i++) hold = m->stops[i].state > hold ? m->stops[i].state : hold;
    size_t safe = hl_utf8_complete_len(m->buf, m->len - (size_t)hold);
    m->emitted = safe;
    *n_emit = safe;
    return 0;
}

int hl_stop_flush(hl_stop_matcher *m, const char **emit, size_t *n_emit) {
    consume_emitted(m);
    *emit = m->buf;
    if (m->matched >= 0) {
        *n_emit = 0;
        return 1;
    }
    *n_emit = m->len;
    m->emitted = m->len;
    for (int32_t i = 0; i < m->n_stops; i++) m->stops[i].state = 0;
    return 0;
}
