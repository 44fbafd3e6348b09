/* A regular-expression subset (JSON Schema "pattern") to a GBNF expression
 * over the content of a JSON string: what the characters look like once
 * escaped, so a `"` in the pattern is `\"` in the output and \n is `\n`.
 *
 * Supported: literals, `.`, classes [a-z] [^...] with \d \w \s inside,
 * \d \w \s \D \W \S, escapes of punctuation and \n \r \t \uHHHH, groups
 * ( ) and (?: ), alternation |, quantifiers * + ? {m} {m,} {m,n} (lazy `?`
 * after them changes nothing here), ^ at the very start and $ at the very
 * end. A pattern without ^ / $ may match anywhere (JSON Schema's search
 * semantics), so any characters (char_rule) are allowed around it.
 * Anything else (lookaround, backreferences, \b, flags, \p{...}, anchors
 * elsewhere) is HL_ENOTSUP naming it. Classes drop control characters
 * (only their escapes \n \r \t remain for \s), so the grammar matches a
 * subset of what the pattern does. */
#include "grammar/internal.h"

#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

typedef struct rctx {
    const char *s, *end, *start;
    hl_buf *out;
    const char *char_rule;
    hl_err *err;
    int rc, depth;
} rctx;

static int unsup(rctx *c, const char *what) {
    if (!c->rc) c->rc = hl_err_set(c->err, HL_ENOTSUP, "pattern /%.*s/: %s is not supported", (int)(c->end - c->start), c->start, what);
    return c->rc;
}

/* One code point as a GBNF class item. */
static void put_cp(hl_buf *b, uint32_t cp) {
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) hl_buf_putc(b, (char)cp);
    else if (cp <= 0xFFFF) hl_buf_printf(b, "\\u%04X", cp);
    else hl_buf_printf(b, "\\U%08X", cp);
}

typedef struct ranges {
    uint32_t v[512];
    int n; /* pairs */
} ranges;

static int add_range(rctx *c, ranges *r, uint32_t lo, uint32_t hi) {
    if (r->n >= 256) return unsup(c, "a class this large");
    r->v[2 * r->n] = lo, r->v[2 * r->n + 1] = hi;
    r->n++;
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static int class_escape(rctx *c, char e, ranges *r) {
    switch (e) {
    case 'd': return add_range(c, r, '0', '9');
    case 'w':
        if (add_range(c, r, '0', '9') || add_range(c, r, 'a', 'z') || add_range(c, r, 'A', 'Z')) return c->rc;
        return add_range(c, r, '_', '_');
    case 's':
        if (add_range(c, r, ' ', ' ') || add_range(c, r, '\t', '\r')) return c->rc;
        return 0;
    default: return 1; /* not a class escape */
    }
}

/* Writes the set (normalized, complemented if negate) as GBNF: a class of
 * the raw characters JSON allows unescaped, plus the escaped forms of ", \
 * and \n \r \t when the set has them. */
static int emit_set(rctx *c, ranges *r, int negate) {
    qsort(r->v, (size_t)r->n, 2 * sizeof *r->v, cmp_pair);
    uint32_t m[1024];
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        if (n && r->v[2 * i] <= m[2 * (n - 1) + 1] + 1) {
            if (r->v[2 * i + 1] > m[2 * (n - 1) + 1]) m[2 * (n - 1) + 1] = r->v[2 * i + 1];
        } else {
            m[2 * n] = r->v[2 * i], m[2 * n + 1] = r->v[2 * i + 1];
            n++;
        }
    }
    uint32_t s[1040];
    int ns = 0;
    if (negate) {
        uint32_t lo = 0;
        for (int i = 0; i < n; i++) {
            if (m[2 * i] > lo) s[2 * ns] = lo, s[2 * ns + 1] = m[2 * i] - 1, ns++;
            lo = m[2 * i + 1] + 1;
        }
        if (lo <= 0x10FFFF) s[2 * ns] = lo, s[2 * ns + 1] = 0x10FFFF, ns++;
    } else {
        memcpy(s, m, (size_t)n * 2 * sizeof *m);
        ns = n;
    }
    int has[128] = {0};
    hl_buf cls = {0};
    for (int i = 0; i < ns; i++) {
        uint32_t lo = s[2 * i], hi = s[2 * i + 1];
        for (uint32_t x = lo; x <= hi && x < 128; x++) has[x] = 1;
        /* cut out the controls, " and \ */
        uint32_t cuts[3][2] = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
        uint32_t a = lo;
        for (int k = 0; k < 3 && a <= hi; k++) {
            if (cuts[k][1] < a) continue;
            if (cuts[k][0] > hi) break;
            if (cuts[k][0] > a) {
                put_cp(&cls, a);
                if (cuts[k][0] - 1 > a) hl_buf_putc(&cls, '-'), put_cp(&cls, cuts[k][0] - 1);
            }
            a = cuts[k][1] + 1;
        }
        if (a <= hi) {
            put_cp(&cls, a);
            if (hi > a) hl_buf_putc(&cls, '-'), put_cp(&cls, hi);
        }
    }
    hl_buf_puts(c->out, "(");
    int first = 1;
    if (cls.len) hl_buf_printf(c->out, "[%s]", cls.data), first = 0;
    hl_buf_free(&cls);
    static const struct { int ch; const char *esc; } E[] = {{'"', "\"\\\\\\\"\""}, {'\\', "\"\\\\\\\\\""}, {'\n', "\"\\\\n\""}, {'\r', "\"\\\\r\""}, {'\t', "\"\\\\t\""}};
    for (size_t k = 0; k < sizeof E / sizeof *E; k++)
        if (has[E[k].ch]) hl_buf_printf(c->out, "%s%s", first ? "" : " | ", E[k].esc), first = 0;
    if (first) return unsup(c, "a class that matches no printable character");
    hl_buf_puts(c->out, ")");
    return 0;
}

static int parse_alt(rctx *c);

static int parse_class(rctx *c) {
    ranges r = {.n = 0};
    int negate = 0;
    c->s++; /* [ */
    if (c->s < c->end && *c->s == '^') negate = 1, c->s++;
    int first = 1;
    for (;;) {
        if (c->s >= c->end) return unsup(c, "an unterminated class");
        if (*c->s == ']' && !first) { c->s++; break; }
        first = 0;
        uint32_t lo;
        if (*c->s == '\\') {
            if (c->s + 1 >= c->end) return unsup(c, "a trailing \\");
            char e = c->s[1];
            c->s += 2;
            int k = class_escape(c, e, &r);
            if (k <= 0) {
                if (k < 0) return c->rc;
                continue;
            }
            if (e == 'n') lo = '\n';
            else if (e == 't') lo = '\t';
            else if (e == 'r') lo = '\r';
            else if (strchr("\\]^-[.$*+?(){}|/\"'", e)) lo = (uint32_t)(unsigned char)e;
            else return unsup(c, "this escape in a class");
        } else {
            int len = hl_utf8_decode(c->s, (size_t)(c->end - c->s), &lo);
            if (!len) return unsup(c, "invalid UTF-8");
            c->s += len;
        }
        uint32_t hi = lo;
        if (c->s + 1 < c->end && *c->s == '-' && c->s[1] != ']') {
            c->s++;
            if (*c->s == '\\') {
                if (c->s + 1 >= c->end || !strchr("\\]^-[.$*+?(){}|/\"'", c->s[1])) return unsup(c, "this range end");
                hi = (uint32_t)(unsigned char)c->s[1];
                c->s += 2;
            } else {
                int len = hl_utf8_decode(c->s, (size_t)(c->end - c->s), &hi);
                if (!len) return unsup(c, "invalid UTF-8");
                c->s += len;
            }
            if (hi < lo) return unsup(c, "a reversed range");
        }
        if (add_range(c, &r, lo, hi)) return c->rc;
    }
    return emit_set(c, &r, negate);
}

static int emit_literal(rctx *c, uint32_t cp) {
    if (cp == '"') hl_buf_puts(c->out, "\"\\\\\\\"\"");
    else if (cp == '\\') hl_buf_puts(c->out, "\"\\\\\\\\\"");
    else if (cp == '\n') hl_buf_puts(c->out, "\"\\\\n\"");
    else if (cp == '\t') hl_buf_puts(c->out, "\"\\\\t\"");
    else if (cp == '\r') hl_buf_puts(c->out, "\"\\\\r\"");
    else if (cp < 0x20) return unsup(c, "a control character");
    else {
        hl_buf_puts(c->out, "[");
        put_cp(c->out, cp);
        hl_buf_puts(c->out, "]");
    }
    return 0;
}

static int parse_atom(rctx *c) {
    char ch = *c->s;
    if (ch == '(') {
        c->s++;
        if (c->s < c->end && *c->s == '?') {
            if (c->s + 1 < c->end && c->s[1] == ':') c->s += 2;
            else return unsup(c, "(? groups other than (?:");
        }
        if (++c->depth > HL_GRAMMAR_MAX_NESTING) return unsup(c, "nesting this deep");
        hl_buf_puts(c->out, "(");
        if (parse_alt(c)) return c->rc;
        if (c->s >= c->end || *c->s != ')') return unsup(c, "an unclosed group");
        c->s++;
        c->depth--;
        hl_buf_puts(c->out, ")");
        return 0;
    }
    if (ch == '[') return parse_class(c);
    if (ch == '.') {
        c->s++;
        hl_buf_printf(c->out, "([^\"\\\\\\x00-\\x1F] | \"\\\\\\\"\" | \"\\\\\\\\\" | \"\\\\t\")");
        return 0;
    }
    if (ch == '\\') {
        if (c->s + 1 >= c->end) return unsup(c, "a trailing \\");
        char e = c->s[1];
        c->s += 2;
        ranges r = {.n = 0};
        char lower = (char)(e | 0x20);
        if ((lower == 'd' || lower == 'w' || lower == 's') && (e == 'd' || e == 'w' || e == 's' || e == 'D' || e == 'W' || e == 'S')) {
            class_escape(c, lower, &r);
            if (c->rc) return c->rc;
            return emit_set(c, &r, e != lower);
        }
        if (e == 'n') return emit_literal(c, '\n');
        if (e == 't') return emit_literal(c, '\t');
        if (e == 'r') return emit_literal(c, '\r');
        if (e == 'u') {
            uint32_t v = 0;
            for (int i = 0; i < 4; i++) {
                char h = c->s < c->end ? *c->s : 0;
                int d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : -1;
                if (d < 0) return unsup(c, "a short \\u escape");
                v = v * 16 + (uint32_t)d;
                c->s++;
            }
            return emit_literal(c, v);
        }
        if (strchr("\\^$.|?*+()[]{}/-\"'#&~,:;<=>@!%`", e)) return emit_literal(c, (uint32_t)(unsigned char)e);
        return unsup(c, "this escape (\\b, backreferences, \\p and the like)");
    }
    if (ch == '^' || ch == '$') return unsup(c, "an anchor other than a leading ^ or trailing $");
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{') return unsup(c, "a quantifier with nothing to repeat");
    uint32_t cp;
    int len = hl_utf8_decode(c->s, (size_t)(c->end - c->s), &cp);
    if (!len) return unsup(c, "invalid UTF-8");
    c->s += len;
    return emit_literal(c, cp);
}

static int parse_quant(rctx *c) {
    if (c->s >= c->end) return 0;
    char ch = *c->s;
    if (ch == '*' || ch == '+' || ch == '?') {
        c->s++;
        hl_buf_putc(c->out, ch);
    } else if (ch == '{') {
        const char *q = c->s + 1;
        long m = -1, n = -2;
        char *e;
        m = strtol(q, &e, 10);
        if (e == q || m < 0 || m > 1000) return unsup(c, "this {m,n} quantifier");
        q = e;
        if (*q == ',') {
            q++;
            if (*q == '}') n = -1;
            else {
                n = strtol(q, &e, 10);
                if (e == q || n < m || n > 1000) return unsup(c, "this {m,n} quantifier");
                q = e;
            }
        } else n = m;
        if (q >= c->end || *q != '}') return unsup(c, "this {m,n} quantifier");
        c->s = q + 1;
        if (n == -1) hl_buf_printf(c->out, "{%ld,}", m);
        else hl_buf_printf(c->out, "{%ld,%ld}", m, n);
    } else return 0;
    if (c->s < c->end && *c->s == '?') c->s++; /* lazy: same language */
    else if (c->s < c->end && *c->s == '+') return unsup(c, "a possessive quantifier");
    if (c->s < c->end && (*c->s == '*' || *c->s == '+' || *c->s == '?' || *c->s == '{')) return unsup(c, "a quantifier on a quantifier");
    return 0;
}

static int parse_concat(rctx *c) {
    hl_buf_puts(c->out, "(");
    int any = 0;
    while (c->s < c->end && *c->s != '|' && *c->s != ')') {
        if (*c->s == '$' && c->s + 1 == c->end && c->depth == 0) break;
        hl_buf_puts(c->out, any ? " (" : "(");
        if (parse_atom(c)) return c->rc;
        hl_buf_puts(c->out, ")");
        if (parse_quant(c)) return c->rc;
        any = 1;
    }
    if (!any) hl_buf_puts(c->out, "\"\"");
    hl_buf_puts(c->out, ")");
    return 0;
}

static int parse_alt(rctx *c) {
    if (parse_concat(c)) return c->rc;
    while (c->s < c->end && *c->s == '|') {
        c->s++;
        hl_buf_puts(c->out, " | ");
        if (parse_concat(c)) return c->rc;
    }
    return 0;
}

int gram_regex_to_gbnf(const char *re, size_t n, const char *char_rule, hl_buf *out, hl_err *err) {
    rctx c = {.s = re, .end = re + n, .start = re, .out = out, .char_rule = char_rule, .err = err};
    int head = n && re[0] == '^';
    int tail = n >= 2 && re[n - 1] == '$' && re[n - 2] != '\\';
    if (head) c.s++;
    hl_buf_puts(out, "(");
    if (!head) hl_buf_printf(out, "%s* ", char_rule);
    hl_buf_puts(out, "(");
    if (parse_alt(&c)) return c.rc;
    if (c.s < c.end && *c.s == '$' && tail && c.s + 1 == c.end) c.s++;
    if (c.s < c.end) return unsup(&c, *c.s == ')' ? "an unbalanced )" : "an anchor other than a leading ^ or trailing $");
    hl_buf_puts(out, ")");
    if (!tail) hl_buf_printf(out, " %s*", char_rule);
    hl_buf_puts(out, ")");
    return out->oom ? hl_err_set(err, HL_ENOMEM, "out of memory") : 0;
}
