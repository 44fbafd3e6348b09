/* The template lexer: splits template source into text and tag tokens the way
 * jinja2's lexer does in transformers' environment (trim_blocks and
 * lstrip_blocks on, keep_trailing_newline off): newlines are normalized to
 * \n, one trailing newline is dropped, `-` on a tag strips whitespace on that
 * side, `+` disables lstrip, and comments and {% raw %} are handled here so
 * the parser sees only text, expressions and statement tags. */
#include "chat/internal.h"

#include "base/utf8.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    const char *s;
    size_t n, p;
    size_t lc_pos; /* line/column are tracked incrementally up to lc_pos */
    int line, col;
    ctoks *out;
    hl_err *err;
} lexer;

static void advance_lc(lexer *L, size_t to) {
    for (; L->lc_pos < to && L->lc_pos < L->n; L->lc_pos++) {
        if (L->s[L->lc_pos] == '\n') { L->line++; L->col = 1; }
        else if (((unsigned char)L->s[L->lc_pos] & 0xC0) != 0x80) L->col++;
    }
}

static int lerr(lexer *L, size_t at, const char *fmt, const char *arg) {
    advance_lc(L, at);
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return hl_err_set(L->err, HL_EINVAL, "template line %d, column %d: %s", L->line, L->col, msg);
}

static ctok *push(lexer *L, ctok_type t, size_t at, const char *s, size_t n) {
    ctoks *o = L->out;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        ctok *nv = realloc(o->v, nc * sizeof *nv);
        if (!nv) return NULL;
        o->v = nv;
        o->cap = nc;
    }
    advance_lc(L, at);
    ctok *k = &o->v[o->n++];
    memset(k, 0, sizeof *k);
    k->t = t;
    k->line = L->line;
    k->col = L->col;
    k->s = s;
    k->n = n;
    return k;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Python's unicode-escape decoding of a string literal body. */
static int unescape(lexer *L, size_t at, const char *s, size_t n, char **out, size_t *out_n) {
    char *o = malloc(n + 1);
    if (!o) return hl_err_set(L->err, HL_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { o[k++] = s[i]; continue; }
        char c = s[++i];
        uint32_t cp = 0;
        int hex = 0;
        switch (c) {
        case '\\': o[k++] = '\\'; continue;
        case '\'': o[k++] = '\''; continue;
        case '"': o[k++] = '"'; continue;
        case 'a': o[k++] = 7; continue;
        case 'b': o[k++] = 8; continue;
        case 'f': o[k++] = 12; continue;
        case 'n': o[k++] = 10; continue;
        case 'r': o[k++] = 13; continue;
        case 't': o[k++] = 9; continue;
        case 'v': o[k++] = 11; continue;
        case '\n': continue; /* line continuation */
        case 'x': hex = 2; break;
        case 'u': hex = 4; break;
        case 'U': hex = 8; break;
        case 'N':
            free(o);
            return lerr(L, at, "%s", "\\N{...} escapes in strings are not supported");
        default:
            if (c >= '0' && c <= '7') {
                int d = 0;
                while (d < 3 && i < n && s[i] >= '0' && s[i] <= '7') { cp = cp * 8 + (uint32_t)(s[i] - '0'); i++; d++; }
                i--;
                k += (size_t)hl_utf8_encode(cp, o + k) ; /* octal escapes are at most \777 = U+01FF */
                continue;
            }
            o[k++] = '\\';
            o[k++] = c;
            continue;
        }
        for (int d = 0; d < hex; d++) {
            if (i + 1 >= n || !isxdigit((unsigned char)s[i + 1])) {
                free(o);
                return lerr(L, at, "%s", "truncated \\x, \\u or \\U escape in a string literal");
            }
            char h = s[++i];
            cp = cp * 16 + (uint32_t)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
        }
        char enc[4];
        int l = hl_utf8_encode(cp, enc);
        if (l <= 0) { free(o); return lerr(L, at, "%s", "escape is not a valid Unicode scalar value"); }
        /* the encoding is never longer than the escape that produced it */
        memcpy(o + k, enc, (size_t)l);
        k += (size_t)l;
    }
    o[k] = 0;
    *out = o;
    *out_n = k;
    return 0;
}

static const char *const OPS2[] = {"//", "**", "==", "!=", ">=", "<=", NULL};
static const char OPS1[] = "+-/*%~[](){}><=.:|,;";

/* Lexes the inside of a {{ }} or {% %} tag; p is just past the opener (and its
 * sign). Returns 0 with L->p past the closer. */
static int lex_tag(lexer *L, int is_block, size_t open_at) {
    int depth = 0; /* brackets open: a closer inside them is an operator (jinja2 does the same) */
    const char close = is_block ? '%' : '}';
    for (;;) {
        size_t p = L->p;
        if (p >= L->n) return lerr(L, open_at, "%s", is_block ? "unexpected end of template: '{%' is never closed with '%}'" : "unexpected end of template: '{{' is never closed with '}}'");
        const char *s = L->s;
        if (depth == 0) {
            int sign = (s[p] == '-' || s[p] == '+') ? 1 : 0;
            if (p + sign + 1 < L->n + 0 && s[p + sign] == close && s[p + sign + 1] == '}' &&
                !(sign && s[p] == '+' && !is_block)) {
                if (!push(L, is_block ? CT_BLOCK_END : CT_VAR_END, p, NULL, 0)) goto oom;
                L->p = p + sign + 2;
                if (sign && s[p] == '-') {
                    while (L->p < L->n && is_ws(s[L->p])) L->p++;
                } else if (!sign && is_block && L->p < L->n && s[L->p] == '\n') {
                    L->p++; /* trim_blocks */
                }
                return 0;
            }
        }
        char c = s[p];
        if (is_ws(c)) { L->p++; continue; }
        if (isdigit((unsigned char)c)) {
            size_t q = p;
            while (q < L->n && (isdigit((unsigned char)s[q]) || s[q] == '_')) q++;
            int is_float = 0;
            if (!(p > 0 && s[p - 1] == '.')) {
                if (q + 1 < L->n && s[q] == '.' && isdigit((unsigned char)s[q + 1])) {
                    is_float = 1;
                    q++;
                    while (q < L->n && (isdigit((unsigned char)s[q]) || s[q] == '_')) q++;
                }
                if (q < L->n && (s[q] == 'e' || s[q] == 'E')) {
                    size_t r = q + 1;
                    if (r < L->n && (s[r] == '+' || s[r] == '-')) r++;
                    if (r < L->n && isdigit((unsigned char)s[r])) {
                        is_float = 1;
                        q = r;
                        while (q < L->n && (isdigit((unsigned char)s[q]) || s[q] == '_')) q++;
                    }
                }
            }
            char num[64];
            size_t k = 0;
            for (size_t i = p; i < q && k < sizeof num - 1; i++)
                if (s[i] != '_') num[k++] = s[i];
            num[k] = 0;
            ctok *t = push(L, is_float ? CT_FLOAT : CT_INT, p, s + p, q - p);
            if (!t) goto oom;
            if (is_float) t->f = strtod(num, NULL);
            else {
                if (k > 18) return lerr(L, p, "%s", "integer literal too large");
                t->i = strtoll(num, NULL, 10);
            }
            L->p = q;
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            size_t q = p;
            while (q < L->n && (isalnum((unsigned char)s[q]) || s[q] == '_')) q++;
            if (!push(L, CT_NAME, p, s + p, q - p)) goto oom;
            L->p = q;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t q = p + 1;
            while (q < L->n && s[q] != c) q += (s[q] == '\\') ? 2 : 1;
            if (q >= L->n) return lerr(L, p, "%s", "unterminated string literal");
            char *str = NULL;
            size_t sn = 0;
            int rc = unescape(L, p, s + p + 1, q - p - 1, &str, &sn);
            if (rc) return rc;
            ctok *t = push(L, CT_STRING, p, str, sn);
            if (!t) { free(str); goto oom; }
            t->owned = 1;
            L->p = q + 1;
            continue;
        }
        size_t oplen = 0;
        for (int i = 0; OPS2[i]; i++)
            if (p + 1 < L->n && s[p] == OPS2[i][0] && s[p + 1] == OPS2[i][1]) oplen = 2;
        if (!oplen && strchr(OPS1, c) && c) oplen = 1;
        if (!oplen) {
            char what[8] = {c, 0};
            return lerr(L, p, "unexpected character '%s' in a tag", what);
        }
        if (c == '(' || c == '[' || c == '{') depth++;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        if (!push(L, CT_OP, p, s + p, oplen)) goto oom;
        L->p = p + oplen;
    }
oom:
    return hl_err_set(L->err, HL_ENOMEM, "out of memory");
}

/* Finds "{% [-+]? endraw [-]? %}" at or after p; returns its start or n. */
static size_t find_endraw(lexer *L, size_t p, size_t *end) {
    const char *s = L->s;
    for (; p + 1 < L->n; p++) {
        if (s[p] != '{' || s[p + 1] != '%') continue;
        size_t q = p + 2;
        if (q < L->n && (s[q] == '-' || s[q] == '+')) q++;
        while (q < L->n && is_ws(s[q])) q++;
        if (q + 6 > L->n || memcmp(s + q, "endraw", 6) != 0) continue;
        q += 6;
        while (q < L->n && is_ws(s[q])) q++;
        int minus = 0;
        if (q < L->n && (s[q] == '-' || s[q] == '+')) { minus = s[q] == '-'; q++; }
        if (q + 1 < L->n && s[q] == '%' && s[q + 1] == '}') {
            q += 2;
            if (minus) while (q < L->n && is_ws(s[q])) q++;
            else if (q < L->n && s[q] == '\n' && !(s[p + 2] == '+')) q++;
            *end = q;
            return p;
        }
    }
    return L->n;
}

int chat_lex(ctoks *out, const char *src, size_t len, hl_err *err) {
    memset(out, 0, sizeof *out);
    char *s = malloc(len + 1);
    if (!s) return hl_err_set(err, HL_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else s[n++] = src[i];
    }
    if (n && s[n - 1] == '\n') n--; /* keep_trailing_newline=False */
    s[n] = 0;
    out->src = s;
    lexer L = {s, n, 0, 0, 1, 1, out, err};
    int line_starting = 1;
    while (L.p < n) {
        /* find the next tag opener */
        size_t q = L.p;
        int kind = 0; /* '{', '%', '#' */
        for (; q + 1 < n; q++) {
            if (s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')) { kind = s[q + 1]; break; }
        }
        if (!kind) q = n;
        size_t text_end = q;
        char sign = (kind && q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+')) ? s[q + 2] : 0;
        int is_raw = 0;
        if (kind == '%') {
            size_t r = q + 2 + (sign ? 1 : 0);
            while (r < n && is_ws(s[r])) r++;
            if (r + 3 <= n && memcmp(s + r, "raw", 3) == 0 && (r + 3 == n || !isalnum((unsigned char)s[r + 3]))) {
                size_t r2 = r + 3;
                while (r2 < n && is_ws(s[r2])) r2++;
                if (r2 < n && s[r2] == '-') r2++;
                if (r2 + 1 < n && s[r2] == '%' && s[r2 + 1] == '}') is_raw = 1;
            }
        }
        if (kind) {
            if (sign == '-') {
                while (text_end > L.p && is_ws(s[text_end - 1])) text_end--;
            } else if (sign != '+' && kind != '{') {
                size_t l_pos = text_end;
                while (l_pos > L.p && s[l_pos - 1] != '\n') l_pos--;
                int has_nl = l_pos > L.p;
                if (has_nl || line_starting) {
                    int all_ws = text_end > l_pos;
                    for (size_t i = l_pos; i < text_end; i++)
                        if (!is_ws(s[i])) all_ws = 0;
                    if (all_ws) text_end = l_pos;
                }
            }
        }
        if (text_end > L.p && !push(&L, CT_TEXT, L.p, s + L.p, text_end - L.p)) goto oom;
        if (!kind) break;
        size_t open_at = q;
        L.p = q + 2 + (sign ? 1 : 0);
        if (is_raw) {
            size_t r = L.p;
            while (s[r] != '%') r++;
            size_t body = r + 2, end = 0;
            if (s[r - 1] == '-') while (body < n && is_ws(s[body])) body++;
            size_t e = find_endraw(&L, body, &end);
            if (e >= n) return lerr(&L, open_at, "%s", "'{% raw %}' is never closed with '{% endraw %}'");
            size_t be = e;
            if (s[e + 2] == '-') while (be > body && is_ws(s[be - 1])) be--;
            if (be > body && !push(&L, CT_TEXT, body, s + body, be - body)) goto oom;
            L.p = end;
            line_starting = end > 0 && s[end - 1] == '\n';
            continue;
        }
        if (kind == '#') {
            size_t r = L.p;
            for (; r + 1 < n; r++)
                if (s[r] == '#' && s[r + 1] == '}') break;
            if (r + 1 >= n) return lerr(&L, open_at, "%s", "unexpected end of template: comment '{#' is never closed with '#}'");
            char before = r > L.p ? s[r - 1] : 0;
            r += 2;
            if (before == '-') while (r < n && is_ws(s[r])) r++;
            else if (before != '+' && r < n && s[r] == '\n') r++;
            L.p = r;
            line_starting = s[r - 1] == '\n';
            continue;
        }
        if (!push(&L, kind == '%' ? CT_BLOCK_BEGIN : CT_VAR_BEGIN, open_at, NULL, 0)) goto oom;
        int rc = lex_tag(&L, kind == '%', open_at);
        if (rc) return rc;
        line_starting = s[L.p - 1] == '\n';
    }
    if (!push(&L, CT_EOF, L.p, NULL, 0)) goto oom;
    return 0;
oom:
    return hl_err_set(err, HL_ENOMEM, "out of memory");
}

void chat_toks_free(ctoks *t) {
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].owned) free((char *)t->v[i].s);
    free(t->v);
    free(t->src);
    memset(t, 0, sizeof *t);
}
