/* JSON Schema to GBNF. Each schema node becomes a rule (prefix + "n<k>"),
 * each $ref target one rule (prefix + "ref-<name>-<k>", made once, after
 * the node that first points at it, so recursive schemas are recursive
 * rules), plus the shared JSON primitives (prefix + ws, string, number, ...).
 *
 * Fail closed: every keyword is either understood, an annotation that does
 * not constrain (title, description, default, examples, ...), or an error
 * naming it and where it is. Where the grammar cannot say exactly what the
 * schema says it says less in the safe direction: properties beyond the
 * declared ones are never generated, objects keep the schema's property
 * order, and numbers with bounds carry no exponent. Integer ranges are exact
 * (digit-by-digit alternatives), as are number ranges with integer bounds. */
#include "grammar/internal.h"

#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REFS 512
#define NAME_CAP 128
#define MAX_ITEMS 1000

typedef struct sref {
    char *ref;
    char name[NAME_CAP];
    int done;
} sref;

typedef struct sctx {
    struct json_object *doc;
    const char *P;
    hl_buf *out;
    hl_err *err;
    int rc;
    int counter;
    sref refs[MAX_REFS];
    int n_refs;
    int depth;
    char path[512];
} sctx;

static const char *const ANNOTATIONS[] = {"title", "description", "default", "examples", "$schema", "$id", "$comment",
                                          "readOnly", "writeOnly", "deprecated", "$defs", "definitions", "example", NULL};
static const char *const KNOWN[] = {"type", "enum", "const", "properties", "required", "additionalProperties", "items",
                                    "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format",
                                    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf",
                                    "allOf", "$ref", "nullable", NULL};

static int in_list(const char *const *l, const char *k) {
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], k)) return 1;
    return 0;
}

__attribute__((format(printf, 3, 4))) static int fail(sctx *c, int code, const char *fmt, ...) {
    if (c->rc) return c->rc;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->rc = hl_err_set(c->err, code, "JSON Schema: %s at %s", msg, c->path[0] ? c->path : "/");
    return c->rc;
}

static size_t path_push(sctx *c, const char *seg) {
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, "/%s", seg);
    return n;
}

static void path_pop(sctx *c, size_t n) { c->path[n] = 0; }

/* ---- text helpers ---------------------------------------------------------------- */

/* A GBNF literal for these bytes. */
static void gbnf_lit(hl_buf *b, const char *s, size_t n) {
    hl_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') hl_buf_putc(b, '\\'), hl_buf_putc(b, (char)ch);
        else if (ch < 0x20 || ch == 0x7F) hl_buf_printf(b, "\\x%02X", ch);
        else hl_buf_putc(b, (char)ch);
    }
    hl_buf_putc(b, '"');
}

/* s as a JSON string (as json.dumps(ensure_ascii=False) writes it). */
static void json_str(hl_buf *b, const char *s, size_t n) {
    hl_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"') hl_buf_puts(b, "\\\"");
        else if (ch == '\\') hl_buf_puts(b, "\\\\");
        else if (ch == '\n') hl_buf_puts(b, "\\n");
        else if (ch == '\r') hl_buf_puts(b, "\\r");
        else if (ch == '\t') hl_buf_puts(b, "\\t");
        else if (ch == '\b') hl_buf_puts(b, "\\b");
        else if (ch == '\f') hl_buf_puts(b, "\\f");
        else if (ch < 0x20) hl_buf_printf(b, "\\u%04x", ch);
        else hl_buf_putc(b, (char)ch);
    }
    hl_buf_putc(b, '"');
}

/* A JSON value written compactly, as json.dumps(separators=(",", ":")) does. */
static void json_value(hl_buf *b, struct json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_null: hl_buf_puts(b, "null"); break;
    case json_type_boolean: hl_buf_puts(b, json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_int: hl_buf_printf(b, "%lld", (long long)json_object_get_int64(v)); break;
    case json_type_double: {
        double d = json_object_get_double(v);
        if (d == floor(d) && fabs(d) < 1e15) hl_buf_printf(b, "%.1f", d);
        else hl_buf_printf(b, "%.17g", d);
        break;
    }
    case json_type_string: json_str(b, json_object_get_string(v), (size_t)json_object_get_string_len(v)); break;
    case json_type_array: {
        hl_buf_putc(b, '[');
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i) hl_buf_putc(b, ',');
            json_value(b, json_object_array_get_idx(v, i));
        }
        hl_buf_putc(b, ']');
        break;
    }
    case json_type_object: {
        hl_buf_putc(b, '{');
        int first = 1;
        json_object_object_foreach(v, k, x) {
            if (!first) hl_buf_putc(b, ',');
            first = 0;
            json_str(b, k, strlen(k));
            hl_buf_putc(b, ':');
            json_value(b, x);
        }
        hl_buf_putc(b, '}');
        break;
    }
    }
}

static void new_name(sctx *c, const char *hint, char *name) {
    snprintf(name, NAME_CAP, "%s%s%d", c->P, hint, ++c->counter);
}

static void emit_rule(sctx *c, const char *name, const hl_buf *body) {
    hl_buf_printf(c->out, "%s ::= %s\n", name, body->len ? body->data : "\"\"");
}

/* ---- integer ranges ---------------------------------------------------------------- */

#define INF_BOUND INT64_MAX

static int ndigits(int64_t x) {
    int n = 1;
    while (x >= 10) x /= 10, n++;
    return n;
}

/* Alternatives for the decimal strings x..y of equal length (digits only). */
static void same_len(hl_buf *b, const char *x, const char *y, int n) {
    int i = 0;
    while (i < n && x[i] == y[i]) i++;
    if (i) gbnf_lit(b, x, (size_t)i);
    if (i == n) return;
    int k = n - i - 1;
    int low_zero = 1, high_nine = 1;
    for (int j = i + 1; j < n; j++) low_zero &= x[j] == '0', high_nine &= y[j] == '9';
    hl_buf_puts(b, i ? " (" : "(");
    if (low_zero && high_nine) {
        hl_buf_printf(b, "[%c-%c]", x[i], y[i]);
        if (k) hl_buf_printf(b, " [0-9]{%d}", k);
    } else {
        char nines[24], zeros[24];
        memset(nines, '9', (size_t)k), memset(zeros, '0', (size_t)k);
        hl_buf_printf(b, "\"%c\" (", x[i]);
        same_len(b, x + i + 1, nines, k);
        hl_buf_puts(b, ")");
        if (y[i] - x[i] > 1) {
            hl_buf_printf(b, " | [%c-%c]", x[i] + 1, y[i] - 1);
            if (k) hl_buf_printf(b, " [0-9]{%d}", k);
        }
        hl_buf_printf(b, " | \"%c\" (", y[i]);
        same_len(b, zeros, y + i + 1, k);
        hl_buf_puts(b, ")");
    }
    hl_buf_puts(b, ")");
}

/* Non-negative integers lo..hi (hi INF_BOUND: unbounded, up to 16 digits). */
static void nonneg_range(hl_buf *b, int64_t lo, int64_t hi) {
    hl_buf_puts(b, "(");
    int first = 1;
    int l0 = ndigits(lo), l1 = hi == INF_BOUND ? 16 : ndigits(hi);
    for (int L = l0; L <= l1; L++) {
        int64_t p = 1;
        for (int i = 1; i < L; i++) p *= 10;
        int64_t x = L == 1 ? 0 : p, y = p * 10 - 1;
        if (L == 16 && hi == INF_BOUND) y = 9999999999999999ll;
        if (x < lo) x = lo;
        if (hi != INF_BOUND && y > hi) y = hi;
        if (x > y) continue;
        char xs[24], ys[24];
        snprintf(xs, sizeof xs, "%lld", (long long)x), snprintf(ys, sizeof ys, "%lld", (long long)y);
        hl_buf_puts(b, first ? "(" : " | (");
        same_len(b, xs, ys, L);
        hl_buf_puts(b, ")");
        first = 0;
    }
    if (first) hl_buf_puts(b, "\"\"");
    hl_buf_puts(b, ")");
}

/* Integers lo..hi; INT64_MIN / INF_BOUND: unbounded on that side. */
static void int_range(hl_buf *b, int64_t lo, int64_t hi, const char *frac) {
    int first = 1;
    hl_buf_puts(b, "(");
    if (lo < 0) {
        /* -k for k in kmin..kmax */
        int64_t kmin = hi < 0 ? -hi : 1, kmax = lo == INT64_MIN ? INF_BOUND : -lo;
        if (kmin <= kmax) {
            hl_buf_puts(b, "\"-\" ");
            nonneg_range(b, kmin, kmax);
            if (frac) hl_buf_printf(b, " %s", frac);
            first = 0;
        }
    }
    if (hi >= 0) {
        hl_buf_puts(b, first ? "" : " | ");
        nonneg_range(b, lo < 0 ? 0 : lo, hi);
        if (frac) hl_buf_printf(b, " %s", frac);
        first = 0;
    }
    if (first) hl_buf_puts(b, "\"\"");
    hl_buf_puts(b, ")");
}

/* ---- the compiler ------------------------------------------------------------------ */

static int body_of(sctx *c, struct json_object *s, hl_buf *b);

/* Writes a new rule for s; its name to name. */
static int gen(sctx *c, struct json_object *s, const char *seg, char *name) {
    if (++c->depth > HL_GRAMMAR_MAX_NESTING) return fail(c, HL_ERANGE, "schema nested deeper than %d", HL_GRAMMAR_MAX_NESTING);
    size_t mark = seg ? path_push(c, seg) : strlen(c->path);
    hl_buf body = {0};
    new_name(c, "n", name);
    int rc = body_of(c, s, &body);
    if (!rc) emit_rule(c, name, &body);
    hl_buf_free(&body);
    path_pop(c, mark);
    c->depth--;
    return c->rc;
}

static struct json_object *resolve(sctx *c, const char *ref) {
    if (ref[0] != '#') return fail(c, HL_ENOTSUP, "$ref \"%s\" points outside the schema (only \"#...\" references are supported)", ref), NULL;
    struct json_object *cur = c->doc;
    const char *p = ref + 1;
    while (*p) {
        if (*p != '/') return fail(c, HL_EINVAL, "$ref \"%s\" is not a JSON pointer", ref), NULL;
        p++;
        char seg[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~' && (*p == '0' || *p == '1')) ch = *p++ == '0' ? '~' : '/';
            if (n + 1 < sizeof seg) seg[n++] = ch;
        }
        seg[n] = 0;
        struct json_object *next = NULL;
        if (json_object_is_type(cur, json_type_object)) json_object_object_get_ex(cur, seg, &next);
        else if (json_object_is_type(cur, json_type_array)) {
            char *e;
            long i = strtol(seg, &e, 10);
            if (!*e && i >= 0 && (size_t)i < json_object_array_length(cur)) next = json_object_array_get_idx(cur, (size_t)i);
        }
        if (!next) return fail(c, HL_EINVAL, "$ref \"%s\" does not resolve", ref), NULL;
        cur = next;
    }
    return cur;
}

static int ref_rule(sctx *c, const char *ref, hl_buf *b) {
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ref, ref)) {
            hl_buf_puts(b, c->refs[i].name);
            return 0;
        }
    if (c->n_refs == MAX_REFS) return fail(c, HL_ERANGE, "more than %d distinct $ref targets", MAX_REFS);
    if (!resolve(c, ref)) return c->rc;
    sref *r = &c->refs[c->n_refs];
    r->ref = strdup(ref);
    if (!r->ref) return fail(c, HL_ENOMEM, "out of memory");
    const char *tail = strrchr(ref, '/');
    tail = tail ? tail + 1 : "root";
    char hint[48];
    size_t k = 0;
    hint[k++] = 'r', hint[k++] = 'e', hint[k++] = 'f', hint[k++] = '-';
    for (; *tail && k < sizeof hint - 2; tail++)
        if ((*tail >= 'a' && *tail <= 'z') || (*tail >= 'A' && *tail <= 'Z') || (*tail >= '0' && *tail <= '9')) hint[k++] = *tail;
    hint[k++] = '-';
    hint[k] = 0;
    new_name(c, hint, r->name);
    r->done = 0;
    c->n_refs++;
    hl_buf_puts(b, r->name);
    return 0;
}

/* Keywords of s beyond type, nullable and annotations: one name, or NULL. */
static const char *constraint_other_than(struct json_object *s, const char *const *allowed) {
    json_object_object_foreach(s, k, v) {
        (void)v;
        if (in_list(ANNOTATIONS, k) || !strcmp(k, "nullable") || in_list(allowed, k)) continue;
        return k;
    }
    return NULL;
}

static int get_bound(sctx *c, struct json_object *s, const char *key, int *has, double *x) {
    struct json_object *v;
    *has = 0;
    if (!json_object_object_get_ex(s, key, &v)) return 0;
    if (json_object_is_type(v, json_type_boolean)) return fail(c, HL_ENOTSUP, "boolean \"%s\" (draft 4) is not supported; use a number", key);
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) return fail(c, HL_EINVAL, "\"%s\" must be a number", key);
    *x = json_object_get_double(v);
    if (!isfinite(*x) || fabs(*x) > 1e15) return fail(c, HL_ENOTSUP, "\"%s\" %g is beyond the supported range (|x| <= 1e15)", key, *x);
    *has = 1;
    return 0;
}

static int get_count(sctx *c, struct json_object *s, const char *key, int64_t dflt, int64_t *out) {
    struct json_object *v;
    *out = dflt;
    if (!json_object_object_get_ex(s, key, &v)) return 0;
    if (!json_object_is_type(v, json_type_int) && !(json_object_is_type(v, json_type_double) && json_object_get_double(v) == floor(json_object_get_double(v))))
        return fail(c, HL_EINVAL, "\"%s\" must be a non-negative integer", key);
    double d = json_object_get_double(v);
    if (d < 0) return fail(c, HL_EINVAL, "\"%s\" must be a non-negative integer", key);
    if (d > MAX_ITEMS) return fail(c, HL_ENOTSUP, "\"%s\" %g is above the supported %d", key, d, MAX_ITEMS);
    *out = (int64_t)d;
    return 0;
}

static int typed_integer(sctx *c, struct json_object *s, hl_buf *b) {
    int h1, h2, h3, h4;
    double mn, mx, emn, emx;
    if (get_bound(c, s, "minimum", &h1, &mn) || get_bound(c, s, "maximum", &h2, &mx) ||
        get_bound(c, s, "exclusiveMinimum", &h3, &emn) || get_bound(c, s, "exclusiveMaximum", &h4, &emx))
        return c->rc;
    if (!h1 && !h2 && !h3 && !h4) {
        hl_buf_printf(b, "%sinteger", c->P);
        return 0;
    }
    int64_t lo = INT64_MIN, hi = INF_BOUND;
    if (h1) lo = (int64_t)ceil(mn);
    if (h3 && (int64_t)floor(emn) + 1 > lo) lo = (int64_t)floor(emn) + 1;
    if (h2) hi = (int64_t)floor(mx);
    if (h4 && (int64_t)ceil(emx) - 1 < hi) hi = (int64_t)ceil(emx) - 1;
    if (lo != INT64_MIN && hi != INF_BOUND && lo > hi) return fail(c, HL_EINVAL, "no integer lies between the bounds");
    int_range(b, lo, hi, NULL);
    return 0;
}

static int typed_number(sctx *c, struct json_object *s, hl_buf *b) {
    int h1, h2, h3, h4;
    double mn, mx, e;
    if (get_bound(c, s, "minimum", &h1, &mn) || get_bound(c, s, "maximum", &h2, &mx) ||
        get_bound(c, s, "exclusiveMinimum", &h3, &e) || get_bound(c, s, "exclusiveMaximum", &h4, &e))
        return c->rc;
    if (h3 || h4) return fail(c, HL_ENOTSUP, "\"%s\" on a number is not supported (use minimum / maximum, or type integer)", h3 ? "exclusiveMinimum" : "exclusiveMaximum");
    if (!h1 && !h2) {
        hl_buf_printf(b, "%snumber", c->P);
        return 0;
    }
    if ((h1 && mn != floor(mn)) || (h2 && mx != floor(mx)))
        return fail(c, HL_ENOTSUP, "non-integer minimum / maximum on a number is not supported");
    int64_t a = h1 ? (int64_t)mn : INT64_MIN, z = h2 ? (int64_t)mx : INF_BOUND;
    if (h1 && h2 && a > z) return fail(c, HL_EINVAL, "minimum is above maximum");
    const char *frac = "(\".\" [0-9]{1,20})?", *zero = "(\".\" \"0\"{1,15})?";
    int first = 1;
    hl_buf_puts(b, "(");
    /* x >= 0: integer part i with a <= i <= z - 1 and any fraction, or i == z exactly */
    if (z >= 0) {
        int64_t lo = a < 0 ? 0 : a;
        if (z == INF_BOUND || lo <= z - 1) {
            nonneg_range(b, lo, z == INF_BOUND ? INF_BOUND : z - 1);
            hl_buf_printf(b, " %s", frac);
            first = 0;
        }
        if (z != INF_BOUND && z >= lo) {
            hl_buf_printf(b, "%s\"%lld\" %s", first ? "" : " | ", (long long)z, zero);
            first = 0;
        }
    }
    /* x < 0 as -(i.f): need i.f <= -a and i.f >= -z when z < 0 */
    if (a < 0) {
        int64_t A = a == INT64_MIN ? INF_BOUND : -a, B = z < 0 ? -z : 0;
        if (A == INF_BOUND || B <= A - 1) {
            hl_buf_puts(b, first ? "\"-\" " : " | \"-\" ");
            nonneg_range(b, B, A == INF_BOUND ? INF_BOUND : A - 1);
            hl_buf_printf(b, " %s", frac);
            first = 0;
        }
        if (A != INF_BOUND && A >= B && A > 0) {
            hl_buf_printf(b, "%s\"-%lld\" %s", first ? "" : " | ", (long long)A, zero);
            first = 0;
        }
    }
    if (first) return fail(c, HL_EINVAL, "no number lies between the bounds");
    hl_buf_puts(b, ")");
    return 0;
}

static int typed_string(sctx *c, struct json_object *s, hl_buf *b) {
    struct json_object *pat = NULL, *fmt = NULL;
    json_object_object_get_ex(s, "pattern", &pat);
    json_object_object_get_ex(s, "format", &fmt);
    int64_t mn, mx;
    if (get_count(c, s, "minLength", 0, &mn) || get_count(c, s, "maxLength", -1, &mx)) return c->rc;
    int has_len = json_object_object_get_ex(s, "minLength", NULL) || json_object_object_get_ex(s, "maxLength", NULL);
    if ((pat || fmt) && has_len) return fail(c, HL_ENOTSUP, "minLength / maxLength together with %s is not supported", pat ? "pattern" : "format");
    if (pat && fmt) return fail(c, HL_ENOTSUP, "pattern together with format is not supported");
    if (pat) {
        if (!json_object_is_type(pat, json_type_string)) return fail(c, HL_EINVAL, "\"pattern\" must be a string");
        char cr[NAME_CAP];
        snprintf(cr, sizeof cr, "%schar", c->P);
        hl_buf_puts(b, "\"\\\"\" ");
        hl_err e2;
        if (gram_regex_to_gbnf(json_object_get_string(pat), (size_t)json_object_get_string_len(pat), cr, b, &e2))
            return fail(c, e2.code, "%s", e2.msg);
        hl_buf_puts(b, " \"\\\"\"");
        return 0;
    }
    if (fmt) {
        if (!json_object_is_type(fmt, json_type_string)) return fail(c, HL_EINVAL, "\"format\" must be a string");
        const char *f = json_object_get_string(fmt);
        /* days that exist in every year: 31 / 30 / 28 by month (no Feb 29) */
        const char *date = "([1-9] [0-9]{3} | \"0\" ([1-9] [0-9]{2} | \"0\" ([1-9] [0-9] | \"0\" [1-9]))) \"-\" ((\"0\" [13578] | \"1\" [02]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01]) | "
                           "(\"0\" [469] | \"11\") \"-\" (\"0\" [1-9] | [12] [0-9] | \"30\") | \"02-\" (\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]))";
        const char *time = "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])";
        if (!strcmp(f, "date")) hl_buf_printf(b, "\"\\\"\" %s \"\\\"\"", date);
        else if (!strcmp(f, "time")) hl_buf_printf(b, "\"\\\"\" %s \"\\\"\"", time);
        else if (!strcmp(f, "date-time")) hl_buf_printf(b, "\"\\\"\" %s \"T\" %s \"\\\"\"", date, time);
        else if (!strcmp(f, "uuid")) hl_buf_puts(b, "\"\\\"\" [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12} \"\\\"\"");
        else if (!strcmp(f, "email")) hl_buf_puts(b, "\"\\\"\" [a-zA-Z0-9_+-] [a-zA-Z0-9._+-]{0,63} \"@\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,62} (\".\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,62}){1,4} \"\\\"\"");
        else return fail(c, HL_ENOTSUP, "string format \"%s\" is not supported (date, time, date-time, uuid, email are)", f);
        return 0;
    }
    if (mx >= 0 && mx < mn) return fail(c, HL_EINVAL, "maxLength is below minLength");
    if (!has_len) hl_buf_printf(b, "%sstring", c->P);
    else if (mx < 0) hl_buf_printf(b, "\"\\\"\" %schar{%lld,} \"\\\"\"", c->P, (long long)mn);
    else hl_buf_printf(b, "\"\\\"\" %schar{%lld,%lld} \"\\\"\"", c->P, (long long)mn, (long long)mx);
    return 0;
}

static int typed_array(sctx *c, struct json_object *s, hl_buf *b) {
    struct json_object *items = NULL, *prefix = NULL;
    json_object_object_get_ex(s, "items", &items);
    json_object_object_get_ex(s, "prefixItems", &prefix);
    int64_t mn, mx;
    if (get_count(c, s, "minItems", 0, &mn) || get_count(c, s, "maxItems", -1, &mx)) return c->rc;
    if (mx >= 0 && mx < mn) return fail(c, HL_EINVAL, "maxItems is below minItems");
    if (items && json_object_is_type(items, json_type_array)) return fail(c, HL_ENOTSUP, "\"items\" as an array (draft 4 tuples) is not supported; use prefixItems");
    if (prefix && !json_object_is_type(prefix, json_type_array)) return fail(c, HL_EINVAL, "\"prefixItems\" must be an array");
    int64_t k = prefix ? (int64_t)json_object_array_length(prefix) : 0;
    if (k > MAX_ITEMS) return fail(c, HL_ENOTSUP, "more than %d prefixItems", MAX_ITEMS);
    int items_false = items && json_object_is_type(items, json_type_boolean) && !json_object_get_boolean(items);
    char iname[NAME_CAP];
    if (items_false) {
        if (mx < 0 || mx > k) mx = k;
        if (mn > mx) return fail(c, HL_EINVAL, "minItems is above what items: false allows");
    } else if (items) {
        if (gen(c, items, "items", iname)) return c->rc;
    } else {
        snprintf(iname, sizeof iname, "%svalue", c->P);
    }
    const char *ws = c->P;
    /* the element at index i */
    char (*pn)[NAME_CAP] = k ? malloc((size_t)k * NAME_CAP) : NULL;
    if (k && !pn) return fail(c, HL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < k && !c->rc; i++) {
        char seg[32];
        snprintf(seg, sizeof seg, "prefixItems/%lld", (long long)i);
        gen(c, json_object_array_get_idx(prefix, (size_t)i), seg, pn[i]);
    }
    if (c->rc) { free(pn); return c->rc; }
    /* lengths L in mn..mx: alternatives by length through the prefix, then
     * the rest repeated */
    hl_buf_printf(b, "\"[\" %sws (", ws);
    int first = 1;
    if (mn == 0) hl_buf_puts(b, "\"\""), first = 0;
    /* lengths 1..k inside the prefix */
    for (int64_t L = mn < 1 ? 1 : mn; L <= k && (mx < 0 || L <= mx); L++) {
        hl_buf_puts(b, first ? "(" : " | (");
        for (int64_t i = 0; i < L; i++) {
            if (i) hl_buf_printf(b, " \",\" %sws ", ws);
            hl_buf_printf(b, "%s %sws", pn[i], ws);
        }
        hl_buf_puts(b, ")");
        first = 0;
    }
    if (!items_false && (mx < 0 || mx > k)) {
        /* the prefix in full, then items: at least max(mn - k, 1 if k == 0 ...) */
        int64_t rmin = mn > k ? mn - k : 0, rmax = mx < 0 ? -1 : mx - k;
        if (rmin == 0) rmin = 1; /* shorter arrays are the alternatives above */
        hl_buf_puts(b, first ? "(" : " | (");
        for (int64_t i = 0; i < k; i++) {
            if (i) hl_buf_printf(b, " \",\" %sws ", ws);
            hl_buf_printf(b, "%s %sws", pn[i], ws);
        }
        if (k == 0) {
            /* first element, then (", " element){rmin-1, rmax-1} */
            hl_buf_printf(b, "%s %sws", iname, ws);
            rmin--;
            if (rmax > 0) rmax--;
        }
        if (rmax < 0) hl_buf_printf(b, " (\",\" %sws %s %sws){%lld,}", ws, iname, ws, (long long)rmin);
        else if (rmax > 0 || rmin > 0) hl_buf_printf(b, " (\",\" %sws %s %sws){%lld,%lld}", ws, iname, ws, (long long)rmin, (long long)rmax);
        hl_buf_puts(b, ")");
        first = 0;
    }
    free(pn);
    if (first) return fail(c, HL_EINVAL, "no array length satisfies minItems / maxItems");
    hl_buf_puts(b, ") \"]\"");
    return 0;
}

typedef struct prop {
    const char *name;
    struct json_object *schema; /* NULL: any value */
    int required;
} prop;

static int typed_object_props(sctx *c, prop *ps, int n, struct json_object *addl, hl_buf *b) {
    const char *P = c->P;
    if (n == 0) {
        if (addl && json_object_is_type(addl, json_type_boolean) && !json_object_get_boolean(addl)) {
            hl_buf_printf(b, "\"{\" %sws \"}\"", P);
        } else if (addl && json_object_is_type(addl, json_type_object)) {
            char vn[NAME_CAP];
            if (gen(c, addl, "additionalProperties", vn)) return c->rc;
            hl_buf_printf(b, "\"{\" %sws (%sstring %sws \":\" %sws %s (%sws \",\" %sws %sstring %sws \":\" %sws %s)* %sws)? \"}\"",
                          P, P, P, P, vn, P, P, P, P, P, vn, P);
        } else {
            hl_buf_printf(b, "%sobject", P);
        }
        return c->rc;
    }
    /* kv_i and the chain rest_i(first) described at the top of the file */
    char (*kv)[NAME_CAP] = malloc((size_t)n * NAME_CAP);
    if (!kv) return fail(c, HL_ENOMEM, "out of memory");
    for (int i = 0; i < n && !c->rc; i++) {
        char vn[NAME_CAP];
        if (ps[i].schema) {
            char seg[300];
            snprintf(seg, sizeof seg, "properties/%s", ps[i].name);
            if (gen(c, ps[i].schema, seg, vn)) break;
        } else {
            snprintf(vn, sizeof vn, "%svalue", P);
        }
        hl_buf body = {0};
        hl_buf key = {0};
        json_str(&key, ps[i].name, strlen(ps[i].name));
        gbnf_lit(&body, key.data, key.len);
        hl_buf_printf(&body, " %sws \":\" %sws %s", P, P, vn);
        new_name(c, "kv", kv[i]);
        emit_rule(c, kv[i], &body);
        hl_buf_free(&body), hl_buf_free(&key);
    }
    if (c->rc) { free(kv); return c->rc; }
    /* rest rules from the last property backwards: rest[i][first] */
    char (*rest)[2][NAME_CAP] = malloc((size_t)(n + 1) * sizeof *rest);
    if (!rest) { free(kv); return fail(c, HL_ENOMEM, "out of memory"); }
    rest[n][0][0] = rest[n][1][0] = 0;
    for (int i = n - 1; i >= 0; i--) {
        for (int f = 0; f < 2; f++) {
            hl_buf body = {0};
            if (!f) hl_buf_printf(&body, "\",\" %sws ", P);
            hl_buf_printf(&body, "%s %sws", kv[i], P);
            const char *nx = rest[i + 1][0];
            if (*nx) hl_buf_printf(&body, " %s", nx);
            if (!ps[i].required) {
                const char *skip = rest[i + 1][f];
                hl_buf_printf(&body, " | %s", *skip ? skip : "\"\"");
            }
            new_name(c, "rest", rest[i][f]);
            emit_rule(c, rest[i][f], &body);
            hl_buf_free(&body);
        }
    }
    hl_buf_printf(b, "\"{\" %sws %s \"}\"", P, rest[0][1]);
    free(kv), free(rest);
    return 0;
}

/* Collects properties (in order) and required names of one object schema
 * into ps (growing it); addl receives additionalProperties. */
static int collect_object(sctx *c, struct json_object *s, prop **ps, int *n, int *cap, struct json_object **addl) {
    struct json_object *props = NULL, *req = NULL, *ad = NULL;
    json_object_object_get_ex(s, "properties", &props);
    json_object_object_get_ex(s, "required", &req);
    if (json_object_object_get_ex(s, "additionalProperties", &ad)) {
        if (*addl && json_object_is_type(*addl, json_type_boolean) && !json_object_get_boolean(*addl)) {
            /* false stays false */
        } else {
            *addl = ad;
        }
    }
    if (props && !json_object_is_type(props, json_type_object)) return fail(c, HL_EINVAL, "\"properties\" must be an object");
    if (req && !json_object_is_type(req, json_type_array)) return fail(c, HL_EINVAL, "\"required\" must be an array");
    if (props) {
        json_object_object_foreach(props, k, v) {
            for (int i = 0; i < *n; i++)
                if (!strcmp((*ps)[i].name, k)) return fail(c, HL_ENOTSUP, "property \"%s\" is declared twice (allOf)", k);
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 8;
                prop *q = realloc(*ps, (size_t)*cap * sizeof *q);
                if (!q) return fail(c, HL_ENOMEM, "out of memory");
                *ps = q;
            }
            (*ps)[(*n)++] = (prop){k, v, 0};
        }
    }
    for (size_t j = 0; req && j < json_object_array_length(req); j++) {
        struct json_object *r = json_object_array_get_idx(req, j);
        if (!json_object_is_type(r, json_type_string)) return fail(c, HL_EINVAL, "\"required\" must list strings");
        const char *k = json_object_get_string(r);
        int found = 0;
        for (int i = 0; i < *n; i++)
            if (!strcmp((*ps)[i].name, k)) (*ps)[i].required = 1, found = 1;
        if (!found) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 8;
                prop *q = realloc(*ps, (size_t)*cap * sizeof *q);
                if (!q) return fail(c, HL_ENOMEM, "out of memory");
                *ps = q;
            }
            (*ps)[(*n)++] = (prop){k, NULL, 1};
        }
    }
    return 0;
}

static int typed_object(sctx *c, struct json_object *s, hl_buf *b) {
    prop *ps = NULL;
    int n = 0, cap = 0;
    struct json_object *addl = NULL;
    if (!collect_object(c, s, &ps, &n, &cap, &addl)) typed_object_props(c, ps, n, addl, b);
    free(ps);
    return c->rc;
}

/* allOf: the objects merged (properties in order of appearance, required
 * united). A part with additionalProperties false allows only its own
 * properties, so the others are dropped (an error when one is required). */
static int addl_false(struct json_object *x) {
    struct json_object *a;
    return json_object_object_get_ex(x, "additionalProperties", &a) && json_object_is_type(a, json_type_boolean) && !json_object_get_boolean(a);
}

static int declares(struct json_object *x, const char *name) {
    struct json_object *props;
    return json_object_object_get_ex(x, "properties", &props) && json_object_is_type(props, json_type_object) &&
           json_object_object_get_ex(props, name, NULL);
}

static int all_of(sctx *c, struct json_object *s, struct json_object *all, hl_buf *b) {
    const char *other = constraint_other_than(s, (const char *const[]){"allOf", "type", "properties", "required", "additionalProperties", NULL});
    if (other) return fail(c, HL_ENOTSUP, "\"%s\" beside allOf is not supported", other);
    if (!json_object_is_type(all, json_type_array) || !json_object_array_length(all)) return fail(c, HL_EINVAL, "\"allOf\" must be a non-empty array");
    size_t np = json_object_array_length(all) + 1;
    struct json_object **parts = calloc(np, sizeof *parts);
    if (!parts) return fail(c, HL_ENOMEM, "out of memory");
    parts[0] = s;
    prop *ps = NULL;
    int n = 0, cap = 0;
    struct json_object *addl = NULL;
    collect_object(c, s, &ps, &n, &cap, &addl);
    for (size_t i = 0; i + 1 < np && !c->rc; i++) {
        struct json_object *x = json_object_array_get_idx(all, i);
        for (int hops = 0; json_object_is_type(x, json_type_object) && hops < 64; hops++) {
            struct json_object *r;
            if (!json_object_object_get_ex(x, "$ref", &r)) break;
            if (!json_object_is_type(r, json_type_string)) { fail(c, HL_EINVAL, "\"$ref\" must be a string"); break; }
            x = resolve(c, json_object_get_string(r));
            if (!x) break;
        }
        if (c->rc) break;
        if (!json_object_is_type(x, json_type_object)) { fail(c, HL_ENOTSUP, "allOf of something other than object schemas"); break; }
        const char *o = constraint_other_than(x, (const char *const[]){"type", "properties", "required", "additionalProperties", NULL});
        struct json_object *t;
        if (o || (json_object_object_get_ex(x, "type", &t) && !(json_object_is_type(t, json_type_string) && !strcmp(json_object_get_string(t), "object")))) {
            fail(c, HL_ENOTSUP, "allOf is supported for object schemas only (found \"%s\")", o ? o : "type");
            break;
        }
        struct json_object *ad;
        if (json_object_object_get_ex(x, "additionalProperties", &ad) && !json_object_is_type(ad, json_type_boolean)) {
            fail(c, HL_ENOTSUP, "additionalProperties as a schema inside allOf is not supported");
            break;
        }
        parts[i + 1] = x;
        collect_object(c, x, &ps, &n, &cap, &addl);
    }
    for (size_t k = 0; k < np && !c->rc; k++) {
        if (!parts[k] || !addl_false(parts[k])) continue;
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (declares(parts[k], ps[i].name)) ps[m++] = ps[i];
            else if (ps[i].required) {
                fail(c, HL_EINVAL, "allOf cannot be satisfied: \"%s\" is required but a part with additionalProperties false does not declare it", ps[i].name);
                break;
            }
        }
        n = m;
    }
    if (!c->rc) typed_object_props(c, ps, n, n ? NULL : addl, b);
    free(ps), free(parts);
    return c->rc;
}

static int type_matches(struct json_object *v, const char *t) {
    enum json_type jt = json_object_get_type(v);
    if (!strcmp(t, "string")) return jt == json_type_string;
    if (!strcmp(t, "integer")) return jt == json_type_int || (jt == json_type_double && json_object_get_double(v) == floor(json_object_get_double(v)));
    if (!strcmp(t, "number")) return jt == json_type_int || jt == json_type_double;
    if (!strcmp(t, "boolean")) return jt == json_type_boolean;
    if (!strcmp(t, "null")) return jt == json_type_null;
    if (!strcmp(t, "object")) return jt == json_type_object;
    if (!strcmp(t, "array")) return jt == json_type_array;
    return 0;
}

static int body_of(sctx *c, struct json_object *s, hl_buf *b) {
    if (json_object_is_type(s, json_type_boolean)) {
        if (!json_object_get_boolean(s)) return fail(c, HL_EINVAL, "the schema false accepts nothing");
        hl_buf_printf(b, "%svalue", c->P);
        return 0;
    }
    if (!json_object_is_type(s, json_type_object)) return fail(c, HL_EINVAL, "a schema must be an object or a boolean");
    json_object_object_foreach(s, key, val) {
        (void)val;
        if (!in_list(KNOWN, key) && !in_list(ANNOTATIONS, key)) return fail(c, HL_ENOTSUP, "unsupported JSON Schema keyword \"%s\"", key);
    }
    struct json_object *v, *types = NULL;
    int nullable = json_object_object_get_ex(s, "nullable", &v) && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
    json_object_object_get_ex(s, "type", &types);
    if (types && !json_object_is_type(types, json_type_string) && !json_object_is_type(types, json_type_array))
        return fail(c, HL_EINVAL, "\"type\" must be a string or an array of strings");

    if (json_object_object_get_ex(s, "$ref", &v)) {
        const char *o = constraint_other_than(s, (const char *const[]){"$ref", NULL});
        if (o) return fail(c, HL_ENOTSUP, "\"%s\" beside $ref is not supported", o);
        if (!json_object_is_type(v, json_type_string)) return fail(c, HL_EINVAL, "\"$ref\" must be a string");
        if (nullable) hl_buf_puts(b, "(");
        if (ref_rule(c, json_object_get_string(v), b)) return c->rc;
        if (nullable) hl_buf_printf(b, " | %snull)", c->P);
        return 0;
    }
    struct json_object *en = NULL;
    int is_const = json_object_object_get_ex(s, "const", &en);
    if (is_const || json_object_object_get_ex(s, "enum", &en)) {
        const char *o = constraint_other_than(s, (const char *const[]){"enum", "const", "type", NULL});
        if (o) return fail(c, HL_ENOTSUP, "\"%s\" beside %s is not supported", o, is_const ? "const" : "enum");
        if (!is_const && (!json_object_is_type(en, json_type_array) || !json_object_array_length(en)))
            return fail(c, HL_EINVAL, "\"enum\" must be a non-empty array");
        size_t nv = is_const ? 1 : json_object_array_length(en);
        int first = 1;
        hl_buf_puts(b, "(");
        for (size_t i = 0; i < nv; i++) {
            struct json_object *x = is_const ? en : json_object_array_get_idx(en, i);
            int ok = !types;
            if (types && json_object_is_type(types, json_type_string)) ok = type_matches(x, json_object_get_string(types));
            else if (types)
                for (size_t j = 0; j < json_object_array_length(types); j++) {
                    struct json_object *t = json_object_array_get_idx(types, j);
                    ok |= json_object_is_type(t, json_type_string) && type_matches(x, json_object_get_string(t));
                }
            if (nullable && json_object_is_type(x, json_type_null)) ok = 1;
            if (!ok) continue;
            hl_buf tx = {0};
            json_value(&tx, x);
            if (!first) hl_buf_puts(b, " | ");
            if (json_object_is_type(x, json_type_object) || json_object_is_type(x, json_type_array)) {
                hl_buf_free(&tx);
                return fail(c, HL_ENOTSUP, "objects and arrays inside enum / const are not supported");
            }
            gbnf_lit(b, tx.data, tx.len);
            hl_buf_free(&tx);
            first = 0;
        }
        if (nullable) hl_buf_printf(b, "%s%snull", first ? "" : " | ", c->P), first = 0;
        if (first) return fail(c, HL_EINVAL, "no enum value has the schema's type");
        hl_buf_puts(b, ")");
        return 0;
    }
    struct json_object *any = NULL;
    int one = json_object_object_get_ex(s, "oneOf", &any);
    if (one || json_object_object_get_ex(s, "anyOf", &any)) {
        const char *o = constraint_other_than(s, (const char *const[]){"anyOf", "oneOf", NULL});
        if (o) return fail(c, HL_ENOTSUP, "\"%s\" beside %s is not supported", o, one ? "oneOf" : "anyOf");
        if (!json_object_is_type(any, json_type_array) || !json_object_array_length(any)) return fail(c, HL_EINVAL, "\"%s\" must be a non-empty array", one ? "oneOf" : "anyOf");
        hl_buf_puts(b, "(");
        for (size_t i = 0; i < json_object_array_length(any); i++) {
            char seg[32], nm[NAME_CAP];
            snprintf(seg, sizeof seg, "%s/%zu", one ? "oneOf" : "anyOf", i);
            if (gen(c, json_object_array_get_idx(any, i), seg, nm)) return c->rc;
            hl_buf_printf(b, "%s%s", i ? " | " : "", nm);
        }
        if (nullable) hl_buf_printf(b, " | %snull", c->P);
        hl_buf_puts(b, ")");
        return 0;
    }
    if (json_object_object_get_ex(s, "allOf", &any)) return all_of(c, s, any, b);

    /* by type: the listed ones, or those the keywords imply */
    const char *tl[8];
    int nt = 0;
    if (types && json_object_is_type(types, json_type_string)) tl[nt++] = json_object_get_string(types);
    else if (types) {
        for (size_t j = 0; j < json_object_array_length(types) && nt < 8; j++) {
            struct json_object *t = json_object_array_get_idx(types, j);
            if (!json_object_is_type(t, json_type_string)) return fail(c, HL_EINVAL, "\"type\" must list strings");
            tl[nt++] = json_object_get_string(t);
        }
        if (!nt) return fail(c, HL_EINVAL, "\"type\" is an empty list");
    } else {
        static const char *const OBJ[] = {"properties", "required", "additionalProperties", NULL};
        static const char *const ARR[] = {"items", "prefixItems", "minItems", "maxItems", NULL};
        static const char *const STR[] = {"minLength", "maxLength", "pattern", "format", NULL};
        static const char *const NUM[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
        json_object_object_foreach(s, k, x) {
            (void)x;
            const char *t = in_list(OBJ, k) ? "object" : in_list(ARR, k) ? "array" : in_list(STR, k) ? "string" : in_list(NUM, k) ? "number" : NULL;
            int dup = 0;
            for (int i = 0; i < nt; i++) dup |= t && !strcmp(tl[i], t);
            if (t && !dup) tl[nt++] = t;
        }
        if (!nt) {
            hl_buf_printf(b, "%svalue", c->P);
            return 0;
        }
    }
    hl_buf_puts(b, "(");
    for (int i = 0; i < nt && !c->rc; i++) {
        if (i) hl_buf_puts(b, " | ");
        const char *t = tl[i];
        if (!strcmp(t, "string")) typed_string(c, s, b);
        else if (!strcmp(t, "integer")) typed_integer(c, s, b);
        else if (!strcmp(t, "number")) typed_number(c, s, b);
        else if (!strcmp(t, "boolean")) hl_buf_printf(b, "%sboolean", c->P);
        else if (!strcmp(t, "null")) hl_buf_printf(b, "%snull", c->P);
        else if (!strcmp(t, "object")) typed_object(c, s, b);
        else if (!strcmp(t, "array")) typed_array(c, s, b);
        else return fail(c, HL_EINVAL, "unknown type \"%s\"", t);
    }
    if (nullable) hl_buf_printf(b, " | %snull", c->P);
    hl_buf_puts(b, ")");
    return c->rc;
}

/* ---- primitives and entry points ------------------------------------------------------ */

/* escape: code points (UTF-8) a string never holds raw (they are written
 * as \u escapes instead). */
static void primitives(hl_buf *o, const char *P, const char *escape) {
    hl_buf_printf(o, "%sws ::= [ \\t\\n]{0,20}\n", P);
    hl_buf_printf(o, "%schar ::= [^\"\\\\\\x00-\\x1F", P);
    for (const unsigned char *e = (const unsigned char *)(escape ? escape : ""); *e;) {
        uint32_t cp = *e++;
        int more = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
        if (more) cp &= 0x3Fu >> more;
        for (; more && (*e & 0xC0) == 0x80; more--) cp = cp << 6 | (*e++ & 0x3F);
        hl_buf_printf(o, "\\U%08X", (unsigned)cp);
    }
    hl_buf_printf(o, "] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n");
    hl_buf_printf(o, "%sstring ::= \"\\\"\" %schar* \"\\\"\"\n", P, P);
    hl_buf_printf(o, "%sinteger ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n", P);
    hl_buf_printf(o, "%snumber ::= %sinteger (\".\" [0-9]{1,20})? ([eE] [-+]? [0-9]{1,3})?\n", P, P);
    hl_buf_printf(o, "%sboolean ::= \"true\" | \"false\"\n", P);
    hl_buf_printf(o, "%snull ::= \"null\"\n", P);
    hl_buf_printf(o, "%svalue ::= %sobject | %sarray | %sstring | %snumber | %sboolean | %snull\n", P, P, P, P, P, P, P);
    hl_buf_printf(o, "%sobject ::= \"{\" %sws (%sstring %sws \":\" %sws %svalue %sws (\",\" %sws %sstring %sws \":\" %sws %svalue %sws)*)? \"}\"\n",
                  P, P, P, P, P, P, P, P, P, P, P, P, P);
    hl_buf_printf(o, "%sarray ::= \"[\" %sws (%svalue %sws (\",\" %sws %svalue %sws)*)? \"]\"\n", P, P, P, P, P, P, P);
}

void hl_grammar_json_any_gbnf(int object_only, hl_buf *out) {
    hl_buf_printf(out, "root ::= %s\n", object_only ? "object" : "value");
    primitives(out, "", NULL);
}

int hl_json_schema_to_gbnf(const char *schema, size_t n, const char *prefix, hl_buf *out, hl_err *err) {
    if (!prefix) prefix = "";
    if (strlen(prefix) > 40) return hl_err_set(err, HL_EINVAL, "rule prefix longer than 40 characters");
    for (const char *p = prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return hl_err_set(err, HL_EINVAL, "rule prefix must be letters, digits, - and _");
    struct json_tokener *tk = json_tokener_new_ex(HL_GRAMMAR_MAX_NESTING);
    if (!tk) return hl_err_set(err, HL_ENOMEM, "out of memory");
    json_tokener_set_flags(tk, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *doc = json_tokener_parse_ex(tk, schema, (int)n);
    enum json_tokener_error je = json_tokener_get_error(tk);
    if (je == json_tokener_continue && !doc) {
        /* a bare literal ("false", 12) waits for more input: end it */
        doc = json_tokener_parse_ex(tk, "", 1);
        je = json_tokener_get_error(tk);
        n = json_tokener_get_parse_end(tk); /* nothing trails */
    }
    if (je == json_tokener_success && json_tokener_get_parse_end(tk) < n) {
        size_t k = json_tokener_get_parse_end(tk);
        while (k < n && (schema[k] == ' ' || schema[k] == '\n' || schema[k] == '\t' || schema[k] == '\r')) k++;
        if (k < n) je = json_tokener_error_parse_unexpected;
    }
    json_tokener_free(tk);
    if (je != json_tokener_success || !doc) {
        json_object_put(doc);
        return hl_err_set(err, HL_EINVAL, "JSON Schema is not valid JSON: %s", je != json_tokener_success ? json_tokener_error_desc(je) : "empty");
    }
    int rc = hl_json_schema_to_gbnf_obj(doc, prefix, out, err);
    json_object_put(doc);
    return rc;
}

int hl_json_schema_to_gbnf_obj(struct json_object *doc, const char *prefix, hl_buf *out, hl_err *err) {
    hl_schema_opts o = {.prefix = prefix};
    return hl_json_schema_to_gbnf_opts(doc, &o, out, err);
}

int hl_json_schema_to_gbnf_opts(struct json_object *doc, const hl_schema_opts *o, hl_buf *out, hl_err *err) {
    sctx *c = calloc(1, sizeof *c);
    if (!c) return hl_err_set(err, HL_ENOMEM, "out of memory");
    c->doc = doc, c->P = o->prefix ? o->prefix : "", c->out = out, c->err = err;
    if (o->path) snprintf(c->path, sizeof c->path, "%s", o->path);
    hl_buf body = {0};
    if (!body_of(c, o->at ? o->at : doc, &body)) {
        hl_buf_printf(out, "%sroot ::= %s\n", c->P, body.data ? body.data : "\"\"");
        /* $ref targets, including those found while generating others */
        for (int i = 0; i < c->n_refs && !c->rc; i++) {
            sref *r = &c->refs[i];
            struct json_object *t = resolve(c, r->ref);
            if (!t) break;
            snprintf(c->path, sizeof c->path, "%s", r->ref + 1);
            hl_buf rb = {0};
            if (!body_of(c, t, &rb)) emit_rule(c, r->name, &rb);
            hl_buf_free(&rb);
            r->done = 1;
        }
        if (!c->rc) primitives(out, c->P, o->escape);
    }
    hl_buf_free(&body);
    for (int i = 0; i < c->n_refs; i++) free(c->refs[i].ref);
    int rc = c->rc;
    if (!rc && out->oom) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    free(c);
    return rc;
}

int hl_grammar_from_json_schema(hl_grammar **out, const char *schema, size_t n, hl_err *err) {
    *out = NULL;
    hl_buf b = {0};
    int rc = hl_json_schema_to_gbnf(schema, n, "", &b, err);
    if (!rc) {
        rc = hl_grammar_parse(out, b.data, b.len, err);
        if (rc) hl_err_prefix(err, "compiling the JSON Schema's grammar: ");
    }
    hl_buf_free(&b);
    return rc;
}

int hl_grammar_json_any(hl_grammar **out, int object_only, hl_err *err) {
    hl_buf b = {0};
    hl_grammar_json_any_gbnf(object_only, &b);
    int rc = b.oom ? hl_err_set(err, HL_ENOMEM, "out of memory") : hl_grammar_parse(out, b.data, b.len, err);
    hl_buf_free(&b);
    return rc;
}

int hl_grammar_from_format(struct json_object *v, hl_grammar **out, hl_err *err) {
    *out = NULL;
    if (!v || json_object_is_type(v, json_type_null)) return 0;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        if (!*s) return 0;
        if (!strcmp(s, "json")) return hl_grammar_json_any(out, 0, err);
        return hl_err_set(err, HL_EINVAL, "\"format\" must be \"json\" or a JSON Schema object (got \"%.200s\")", s);
    }
    if (!json_object_is_type(v, json_type_object)) return hl_err_set(err, HL_EINVAL, "\"format\" must be \"json\" or a JSON Schema object");
    hl_buf b = {0};
    int rc = hl_json_schema_to_gbnf_obj(v, "", &b, err);
    if (!rc) rc = hl_grammar_parse(out, b.data, b.len, err);
    hl_buf_free(&b);
    return rc;
}
