/* The GBNF parser: llama.cpp's grammar notation to a compiled hl_grammar.
 *
 *   root  ::= item ("," ws item)*     # a rule; the start rule is root
 *   item  ::= "lit\n" | [a-z0-9_] | [^"\\] | . | (a | b)? | x{2,5}
 *
 * Literals and classes take escapes \n \r \t \\ \" \[ \] \- \^ \xHH \uHHHH
 * \UHHHHHHHH and raw UTF-8. A rule ends at a newline outside parentheses;
 * after `|` or inside ( ) lines may continue. Repetitions are rewritten into
 * helper rules (x* → R ::= x R | ε, x{m,n} → m copies then nested optionals),
 * so the matcher only sees sequences, alternatives and references. Errors
 * carry line:col; sizes and nesting are bounded (grammar.h). After parsing,
 * undefined rules and left recursion (which the stack-based matcher cannot
 * run) are errors naming the rule. */
#include "grammar/internal.h"

#include "base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vec_elem {
    gram_elem *v;
    int32_t n, cap;
} vec_elem;

typedef struct rule_b {
    char *name;       /* NULL for helper rules */
    int defined;
    size_t ref_at;    /* offset of the first reference (for "undefined rule") */
    vec_elem body;    /* alternatives, each closed by GRAM_END */
} rule_b;

typedef struct pctx {
    const char *start, *s, *end;
    hl_err *err;
    int rc;
    rule_b *rules;
    int32_t n_rules, cap_rules;
    uint32_t *ranges;
    int32_t n_ranges, cap_ranges;
    gram_set *sets;
    int32_t n_sets, cap_sets;
    int64_t n_elems;
    int depth;
} pctx;

static void where(const pctx *c, const char *at, int *line, int *col) {
    *line = 1, *col = 1;
    for (const char *p = c->start; p < at && p < c->end; p++) {
        if (*p == '\n') (*line)++, *col = 1;
        else if (((unsigned char)*p & 0xC0) != 0x80) (*col)++;
    }
}

__attribute__((format(printf, 3, 4))) static int fail_at(pctx *c, const char *at, const char *fmt, ...) {
    if (c->rc) return c->rc;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    where(c, at, &line, &col);
    c->rc = hl_err_set(c->err, HL_EINVAL, "grammar:%d:%d: %s", line, col, msg);
    return c->rc;
}

static int oom(pctx *c) {
    if (!c->rc) c->rc = hl_err_set(c->err, HL_ENOMEM, "out of memory compiling the grammar");
    return c->rc;
}

static int grow(void **p, int32_t *cap, int32_t need, size_t size) {
    if (need <= *cap) return 0;
    int32_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * size);
    if (!q) return -1;
    *p = q, *cap = nc;
    return 0;
}

static int push_elem(pctx *c, vec_elem *b, int32_t kind, int32_t arg) {
    if (++c->n_elems > HL_GRAMMAR_MAX_ELEMS) return fail_at(c, c->s, "grammar too large (more than %d elements after expanding repetitions)", HL_GRAMMAR_MAX_ELEMS);
    if (grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v)) return oom(c);
    b->v[b->n].kind = kind;
    b->v[b->n].arg = arg;
    b->n++;
    return 0;
}

static int new_rule(pctx *c, const char *name, size_t len) {
    if (grow((void **)&c->rules, &c->cap_rules, c->n_rules + 1, sizeof *c->rules)) return oom(c);
    rule_b *r = &c->rules[c->n_rules];
    memset(r, 0, sizeof *r);
    if (name) {
        r->name = malloc(len + 1);
        if (!r->name) return oom(c);
        memcpy(r->name, name, len);
        r->name[len] = 0;
    }
    return c->n_rules++;
}

static int find_rule(pctx *c, const char *name, size_t len) {
    for (int32_t i = 0; i < c->n_rules; i++)
        if (c->rules[i].name && strlen(c->rules[i].name) == len && !memcmp(c->rules[i].name, name, len)) return i;
    return -1;
}

/* ---- character sets --------------------------------------------------------- */

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Sorts and merges pairs[0..n) in place (n pairs); negate takes the complement
 * over all code points. Appends the result as a new set; returns its index. */
static int add_set(pctx *c, uint32_t *pairs, int32_t n, int negate) {
    qsort(pairs, (size_t)n, 2 * sizeof *pairs, cmp_range);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (m && pairs[2 * i] <= pairs[2 * (m - 1) + 1] + 1) {
            if (pairs[2 * i + 1] > pairs[2 * (m - 1) + 1]) pairs[2 * (m - 1) + 1] = pairs[2 * i + 1];
        } else {
            pairs[2 * m] = pairs[2 * i], pairs[2 * m + 1] = pairs[2 * i + 1];
            m++;
        }
    }
    if (grow((void **)&c->ranges, &c->cap_ranges, c->n_ranges + 2 * (m + 1), sizeof *c->ranges)) return oom(c);
    if (grow((void **)&c->sets, &c->cap_sets, c->n_sets + 1, sizeof *c->sets)) return oom(c);
    int32_t off = c->n_ranges;
    if (negate) {
        uint32_t lo = 0;
        for (int32_t i = 0; i < m; i++) {
            if (pairs[2 * i] > lo) c->ranges[c->n_ranges++] = lo, c->ranges[c->n_ranges++] = pairs[2 * i] - 1;
            lo = pairs[2 * i + 1] + 1;
        }
        if (lo <= 0x10FFFF) c->ranges[c->n_ranges++] = lo, c->ranges[c->n_ranges++] = 0x10FFFF;
    } else {
        memcpy(c->ranges + off, pairs, (size_t)m * 2 * sizeof *pairs);
        c->n_ranges += 2 * m;
    }
    c->sets[c->n_sets].off = off / 2;
    c->sets[c->n_sets].n = (c->n_ranges - off) / 2;
    return c->n_sets++;
}

/* ---- lexing ------------------------------------------------------------------- */

static int is_name_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* Skips blanks and comments; newlines too when newline_ok. */
static void skip_space(pctx *c, int newline_ok) {
    while (c->s < c->end) {
        char ch = *c->s;
        if (ch == ' ' || ch == '\t' || ch == '\r') c->s++;
        else if (ch == '\n' && newline_ok) c->s++;
        else if (ch == '#') {
            while (c->s < c->end && *c->s != '\n') c->s++;
        } else break;
    }
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* One (possibly escaped) character of a literal or class. */
static int parse_char(pctx *c, uint32_t *cp) {
    const char *at = c->s;
    if (c->s >= c->end) return fail_at(c, at, "unexpected end of grammar");
    if (*c->s == '\\') {
        c->s++;
        if (c->s >= c->end) return fail_at(c, at, "unexpected end of grammar after \\");
        char e = *c->s++;
        int nhex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (nhex) {
            uint32_t v = 0;
            for (int i = 0; i < nhex; i++) {
                int h = c->s < c->end ? hexval(*c->s) : -1;
                if (h < 0) return fail_at(c, at, "\\%c needs %d hex digits", e, nhex);
                v = v * 16 + (uint32_t)h;
                c->s++;
            }
            if (v > 0x10FFFF) return fail_at(c, at, "code point U+%X is out of range", v);
            *cp = v;
            return 0;
        }
        switch (e) {
        case 'n': *cp = '\n'; return 0;
        case 'r': *cp = '\r'; return 0;
        case 't': *cp = '\t'; return 0;
        case '0': *cp = 0; return 0;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '\'': case '/': case '.':
        case '(': case ')': case '|': case '*': case '+': case '?': case '{': case '}':
            *cp = (uint32_t)(unsigned char)e;
            return 0;
        default:
            return fail_at(c, at, "unknown escape \\%c", e);
        }
    }
    int len = hl_utf8_decode(c->s, (size_t)(c->end - c->s), cp);
    if (!len) return fail_at(c, at, "invalid UTF-8 in the grammar");
    c->s += len;
    return 0;
}

/* ---- sequences and alternatives ------------------------------------------------- */

static int parse_alternatives(pctx *c, int32_t rule, int nested);

/* Repeats body[from..) (one symbol) min..max times (max -1: unbounded). */
static int repeat(pctx *c, int32_t rule, int32_t from, int64_t min, int64_t max) {
    vec_elem *body = &c->rules[rule].body;
    int32_t n = body->n - from;
    gram_elem sym[64];
    gram_elem *s = n <= 64 ? sym : malloc((size_t)n * sizeof *s);
    if (!s) return oom(c);
    memcpy(s, body->v + from, (size_t)n * sizeof *s);
    body->n = from;
    c->n_elems -= n;
    int rc = 0;
    for (int64_t i = 0; i < min && !rc; i++)
        for (int32_t j = 0; j < n && !rc; j++) rc = push_elem(c, &c->rules[rule].body, s[j].kind, s[j].arg);
    if (!rc && max != min) {
        /* max < 0: R ::= s R | ε;  else R_1 ::= s | ε, R_k ::= s R_{k-1} | ε */
        int64_t k_end = max < 0 ? 1 : max - min;
        int32_t prev = -1;
        for (int64_t k = 1; k <= k_end && !rc; k++) {
            int32_t r = new_rule(c, NULL, 0);
            if (r < 0) { rc = r; break; }
            vec_elem *rb = &c->rules[r].body;
            c->rules[r].defined = 1;
            for (int32_t j = 0; j < n && !rc; j++) rc = push_elem(c, rb, s[j].kind, s[j].arg);
            if (!rc && max < 0) rc = push_elem(c, rb, GRAM_REF, r);
            else if (!rc && prev >= 0) rc = push_elem(c, rb, GRAM_REF, prev);
            if (!rc) rc = push_elem(c, rb, GRAM_END, 0);
            if (!rc) rc = push_elem(c, rb, GRAM_END, 0); /* the empty alternative */
            prev = r;
        }
        if (!rc) rc = push_elem(c, &c->rules[rule].body, GRAM_REF, prev);
    }
    if (s != sym) free(s);
    return rc;
}

static int parse_int(pctx *c, int64_t *out) {
    const char *at = c->s;
    int64_t v = 0;
    int any = 0;
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
        v = v * 10 + (*c->s++ - '0');
        any = 1;
        if (v > HL_GRAMMAR_MAX_REPEAT) return fail_at(c, at, "repetition count above %d", HL_GRAMMAR_MAX_REPEAT);
    }
    if (!any) return fail_at(c, at, "expected a number");
    *out = v;
    return 0;
}

static int parse_sequence(pctx *c, int32_t rule, int nested) {
    int32_t last = -1; /* where the last symbol starts in the body */
    while (!c->rc) {
        skip_space(c, nested);
        if (c->s >= c->end) break;
        const char *at = c->s;
        char ch = *c->s;
        vec_elem *body = &c->rules[rule].body;
        if (ch == '"') {
            c->s++;
            last = body->n;
            while (!c->rc) {
                if (c->s >= c->end || *c->s == '\n') return fail_at(c, at, "unterminated literal");
                if (*c->s == '"') { c->s++; break; }
                uint32_t cp, pair[2];
                if (parse_char(c, &cp)) return c->rc;
                pair[0] = pair[1] = cp;
                int set = add_set(c, pair, 1, 0);
                if (set < 0) return set;
                if (push_elem(c, &c->rules[rule].body, GRAM_CHARS, set)) return c->rc;
            }
            if (c->rules[rule].body.n == last) last = -1; /* "" is nothing to repeat */
        } else if (ch == '[') {
            c->s++;
            int negate = 0;
            if (c->s < c->end && *c->s == '^') negate = 1, c->s++;
            uint32_t *pairs = NULL;
            int32_t np = 0, cap = 0;
            while (!c->rc) {
                if (c->s >= c->end || *c->s == '\n') { fail_at(c, at, "unterminated character class"); break; }
                if (*c->s == ']') { c->s++; break; }
                uint32_t lo, hi;
                if (parse_char(c, &lo)) break;
                hi = lo;
                if (c->s + 1 < c->end && *c->s == '-' && c->s[1] != ']') {
                    c->s++;
                    if (parse_char(c, &hi)) break;
                    if (hi < lo) { fail_at(c, at, "character range is reversed"); break; }
                }
                if (grow((void **)&pairs, &cap, 2 * (np + 1), sizeof *pairs)) { oom(c); break; }
                pairs[2 * np] = lo, pairs[2 * np + 1] = hi;
                np++;
            }
            if (!c->rc && np == 0) fail_at(c, at, "empty character class");
            int set = c->rc ? -1 : add_set(c, pairs, np, negate);
            free(pairs);
            if (set < 0) return c->rc;
            last = c->rules[rule].body.n;
            if (push_elem(c, &c->rules[rule].body, GRAM_CHARS, set)) return c->rc;
        } else if (ch == '.') {
            c->s++;
            uint32_t pair[2] = {0, 0x10FFFF};
            int set = add_set(c, pair, 1, 0);
            if (set < 0) return set;
            last = body->n;
            if (push_elem(c, body, GRAM_CHARS, set)) return c->rc;
        } else if (is_name_char(ch)) {
            const char *name = c->s;
            while (c->s < c->end && is_name_char(*c->s)) c->s++;
            size_t len = (size_t)(c->s - name);
            const char *save = c->s;
            skip_space(c, 0);
            if (c->end - c->s >= 3 && !memcmp(c->s, "::=", 3)) return fail_at(c, name, "expected a newline before the next rule");
            c->s = save;
            int r = find_rule(c, name, len);
            if (r < 0) {
                r = new_rule(c, name, len);
                if (r < 0) return r;
                c->rules[r].ref_at = (size_t)(name - c->start);
            }
            last = c->rules[rule].body.n;
            if (push_elem(c, &c->rules[rule].body, GRAM_REF, r)) return c->rc;
        } else if (ch == '(') {
            c->s++;
            if (++c->depth > HL_GRAMMAR_MAX_NESTING) return fail_at(c, at, "parentheses nested deeper than %d", HL_GRAMMAR_MAX_NESTING);
            int32_t r = new_rule(c, NULL, 0);
            if (r < 0) return r;
            c->rules[r].defined = 1;
            if (parse_alternatives(c, r, 1)) return c->rc;
            skip_space(c, 1);
            if (c->s >= c->end || *c->s != ')') return fail_at(c, at, "unclosed (");
            c->s++;
            c->depth--;
            last = c->rules[rule].body.n;
            if (push_elem(c, &c->rules[rule].body, GRAM_REF, r)) return c->rc;
        } else if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
            if (last < 0) return fail_at(c, at, "'%c' has nothing to repeat", ch);
            c->s++;
            int64_t min = 0, max = -1;
            if (ch == '+') min = 1;
            else if (ch == '?') max = 1;
            else if (ch == '{') {
                skip_space(c, 0);
                if (parse_int(c, &min)) return c->rc;
                skip_space(c, 0);
                max = min;
                if (c->s < c->end && *c->s == ',') {
                    c->s++;
                    skip_space(c, 0);
                    max = -1;
                    if (c->s < c->end && *c->s >= '0' && *c->s <= '9' && parse_int(c, &max)) return c->rc;
                    skip_space(c, 0);
                }
                if (c->s >= c->end || *c->s != '}') return fail_at(c, at, "expected } to close the repetition");
                c->s++;
                if (max >= 0 && max < min) return fail_at(c, at, "repetition {%lld,%lld} has max below min", (long long)min, (long long)max);
            }
            if (repeat(c, rule, last, min, max)) return c->rc;
            last = -1;
        } else {
            break;
        }
    }
    return c->rc;
}

static int parse_alternatives(pctx *c, int32_t rule, int nested) {
    for (;;) {
        if (parse_sequence(c, rule, nested)) return c->rc;
        if (push_elem(c, &c->rules[rule].body, GRAM_END, 0)) return c->rc;
        skip_space(c, nested);
        if (c->s < c->end && *c->s == '|') {
            c->s++;
            skip_space(c, 1);
            continue;
        }
        return 0;
    }
}

static int parse_rules(pctx *c) {
    for (;;) {
        skip_space(c, 1);
        if (c->s >= c->end) return 0;
        const char *at = c->s;
        if (!is_name_char(*c->s)) return fail_at(c, at, "expected a rule name");
        while (c->s < c->end && is_name_char(*c->s)) c->s++;
        size_t len = (size_t)(c->s - at);
        skip_space(c, 0);
        if (c->end - c->s < 3 || memcmp(c->s, "::=", 3)) return fail_at(c, c->s, "expected ::= after the rule name");
        c->s += 3;
        int r = find_rule(c, at, len);
        if (r >= 0 && c->rules[r].defined) return fail_at(c, at, "rule %.*s is defined twice", (int)len, at);
        if (r < 0 && (r = new_rule(c, at, len)) < 0) return r;
        c->rules[r].defined = 1;
        skip_space(c, 1);
        if (parse_alternatives(c, r, 0)) return c->rc;
        skip_space(c, 0);
        if (c->s < c->end && *c->s != '\n') return fail_at(c, c->s, "unexpected '%c'", *c->s);
    }
}

/* ---- checks ----------------------------------------------------------------------- */

/* Left recursion: rule r reaches itself through the first symbols of its
 * alternatives, skipping nullable ones. Found by DFS over that relation. */
static int check_left_recursion(pctx *c, const hl_grammar *g) {
    int32_t nr = g->n_rules;
    uint8_t *nullable = calloc((size_t)nr, 1);
    uint8_t *color = calloc((size_t)nr, 1);
    int32_t *stack = malloc((size_t)nr * 2 * sizeof *stack); /* (rule, next alt/elem cursor) */
    if (!nullable || !color || !stack) {
        free(nullable), free(color), free(stack);
        return oom(c);
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int32_t r = 0; r < nr; r++) {
            if (nullable[r]) continue;
            for (int32_t a = g->rule_alt0[r]; a < g->rule_alt0[r + 1] && !nullable[r]; a++) {
                int32_t p = g->alts[a];
                while (g->elems[p].kind == GRAM_REF && nullable[g->elems[p].arg]) p++;
                if (g->elems[p].kind == GRAM_END) nullable[r] = 1, changed = 1;
            }
        }
    }
    /* iterative DFS: color 1 on the path, 2 done */
    int rc = 0;
    for (int32_t s0 = 0; s0 < nr && !rc; s0++) {
        if (color[s0]) continue;
        int32_t sp = 0;
        stack[0] = s0, stack[1] = 0;
        color[s0] = 1;
        sp = 1;
        while (sp && !rc) {
            int32_t r = stack[2 * (sp - 1)];
            int32_t *cur = &stack[2 * (sp - 1) + 1];
            /* cursor enumerates (alt, offset) pairs flattened as positions */
            int32_t next = -1;
            while (next < 0) {
                int32_t a0 = g->rule_alt0[r], a1 = g->rule_alt0[r + 1];
                int32_t k = *cur;
                /* k counts leftmost refs visited: walk alternatives in order */
                int32_t seen = 0, found = -1;
                for (int32_t a = a0; a < a1 && found < 0; a++) {
                    for (int32_t p = g->alts[a]; g->elems[p].kind == GRAM_REF; p++) {
                        if (seen++ == k) { found = g->elems[p].arg; break; }
                        if (!nullable[g->elems[p].arg]) break;
                    }
                }
                if (found < 0) break;
                (*cur)++;
                if (color[found] == 1) {
                    const char *nm = c->rules[found].name;
                    rc = nm ? hl_err_set(c->err, HL_EINVAL, "grammar: rule %s is left-recursive (it can reach itself before matching any text); rewrite it with repetition", nm)
                            : hl_err_set(c->err, HL_EINVAL, "grammar: a group or repetition is left-recursive (it can reach itself before matching any text)");
                    break;
                }
                if (!color[found]) next = found;
            }
            if (rc) break;
            if (next >= 0) {
                color[next] = 1;
                stack[2 * sp] = next, stack[2 * sp + 1] = 0;
                sp++;
            } else {
                color[r] = 2;
                sp--;
            }
        }
    }
    free(nullable), free(color), free(stack);
    return rc;
}

/* ---- assembling ---------------------------------------------------------------------- */

static int assemble(pctx *c, hl_grammar **out) {
    hl_grammar *g = calloc(1, sizeof *g);
    if (!g) return oom(c);
    int64_t ne = 0, na = 0;
    for (int32_t r = 0; r < c->n_rules; r++) {
        ne += c->rules[r].body.n;
        for (int32_t i = 0; i < c->rules[r].body.n; i++) na += c->rules[r].body.v[i].kind == GRAM_END;
    }
    g->elems = malloc((size_t)(ne + 1) * sizeof *g->elems);
    g->alts = malloc((size_t)(na + 1) * sizeof *g->alts);
    g->rule_alt0 = malloc((size_t)(c->n_rules + 1) * sizeof *g->rule_alt0);
    if (!g->elems || !g->alts || !g->rule_alt0) {
        hl_grammar_free(g);
        return oom(c);
    }
    int32_t pe = 0, pa = 0;
    for (int32_t r = 0; r < c->n_rules; r++) {
        g->rule_alt0[r] = pa;
        const vec_elem *b = &c->rules[r].body;
        int at_start = 1;
        for (int32_t i = 0; i < b->n; i++) {
            if (at_start) g->alts[pa++] = pe;
            g->elems[pe++] = b->v[i];
            at_start = b->v[i].kind == GRAM_END;
        }
    }
    g->rule_alt0[c->n_rules] = pa;
    g->n_elems = pe;
    g->n_rules = c->n_rules;
    g->sets = c->sets, c->sets = NULL;
    g->n_sets = c->n_sets;
    g->ranges = c->ranges, c->ranges = NULL;
    g->n_ranges = c->n_ranges / 2;
    g->root = find_rule(c, "root", 4);
    *out = g;
    return 0;
}

int hl_grammar_parse(hl_grammar **out, const char *text, size_t n, hl_err *err) {
    *out = NULL;
    if (n > HL_GRAMMAR_MAX_TEXT) return hl_err_set(err, HL_ERANGE, "grammar is too long (%zu bytes; the limit is %d)", n, HL_GRAMMAR_MAX_TEXT);
    pctx c = {.start = text, .s = text, .end = text + n, .err = err};
    hl_grammar *g = NULL;
    if (!parse_rules(&c)) {
        for (int32_t r = 0; r < c.n_rules && !c.rc; r++)
            if (!c.rules[r].defined) fail_at(&c, text + c.rules[r].ref_at, "rule %s is not defined", c.rules[r].name);
        if (!c.rc && find_rule(&c, "root", 4) < 0) c.rc = hl_err_set(err, HL_EINVAL, "grammar has no root rule (the start rule must be named root)");
        if (!c.rc) assemble(&c, &g);
        if (!c.rc && (c.rc = check_left_recursion(&c, g))) {
            hl_grammar_free(g);
            g = NULL;
        }
    }
    for (int32_t r = 0; r < c.n_rules; r++) free(c.rules[r].name), free(c.rules[r].body.v);
    free(c.rules), free(c.sets), free(c.ranges);
    if (c.rc) return c.rc;
    *out = g;
    return 0;
}

void hl_grammar_free(hl_grammar *g) {
    if (!g) return;
    free(g->elems), free(g->sets), free(g->ranges), free(g->alts), free(g->rule_alt0);
    free(g);
}
