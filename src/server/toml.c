/* The TOML-subset reader (toml.h): a single-pass recursive-descent parser over
 * the whole text, tracking line and column so every error points at the spot. */
#include "server/toml.h"
#include "base/buf.h"
#include "base/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tp {
    const char *s;
    size_t n, i;
    int line, col;
    const char *fname;
    hl_err *err;
} tp;

static int perr(tp *p, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return hl_err_set(p->err, HL_EINVAL, "%s:%d:%d: %s", p->fname, p->line, p->col, msg);
}

static int peek(const tp *p) { return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }
static void adv(tp *p) {
    if (p->i >= p->n) return;
    if (p->s[p->i] == '\n') {
        p->line++;
        p->col = 1;
    } else if (((unsigned char)p->s[p->i] & 0xC0) != 0x80) {
        p->col++; /* columns count characters: UTF-8 continuation bytes add none */
    }
    p->i++;
}
static void skip_ws(tp *p) {
    while (peek(p) == ' ' || peek(p) == '\t') adv(p);
}
/* whitespace, newlines and comments (inside arrays) */
static void skip_ws_nl(tp *p) {
    for (;;) {
        int c = peek(p);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') adv(p);
        else if (c == '#') {
            while (peek(p) != -1 && peek(p) != '\n') adv(p);
        } else break;
    }
}
/* after a value or header: optional comment, then end of line or file */
static int end_of_line(tp *p) {
    skip_ws(p);
    if (peek(p) == '#')
        while (peek(p) != -1 && peek(p) != '\n') adv(p);
    if (peek(p) == '\r') adv(p);
    if (peek(p) == -1) return 0;
    if (peek(p) != '\n') return perr(p, "expected the end of the line, found '%s'", (char[]){(char)peek(p), 0});
    adv(p);
    return 0;
}

static int is_bare(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int parse_basic_string(tp *p, hl_buf *out) {
    adv(p); /* opening quote */
    if (peek(p) == '"' && p->i + 1 < p->n && p->s[p->i + 1] == '"') return perr(p, "multi-line strings are not supported%s", "");
    for (;;) {
        int c = peek(p);
        if (c == -1 || c == '\n') return perr(p, "unterminated string%s", "");
        if (c == '"') {
            adv(p);
            return 0;
        }
        if (c == '\\') {
            adv(p);
            int e = peek(p);
            char ch = 0;
            switch (e) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case 'u':
            case 'U': {
                int nd = e == 'u' ? 4 : 8, eline = p->line, ecol = p->col - 1; /* the backslash */
                adv(p);
                uint32_t cp = 0;
                for (int k = 0; k < nd; k++) {
                    int h = peek(p);
                    int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (v < 0) return perr(p, "bad \\u escape: expected a hex digit%s", "");
                    cp = cp * 16 + (uint32_t)v;
                    adv(p);
                }
                char u[4];
                int ul = hl_utf8_encode(cp, u);
                if (!ul) {
                    p->line = eline, p->col = ecol; /* point at the escape, not past it */
                    return perr(p, "\\u escape is not a valid code point%s", "");
                }
                hl_buf_append(out, u, (size_t)ul);
                continue;
            }
            default: return perr(p, "unknown escape sequence%s", "");
            }
            hl_buf_putc(out, ch);
            adv(p);
            continue;
        }
        if (c < 0x20 && c != '\t') return perr(p, "control character in a string%s", "");
        hl_buf_putc(out, (char)c);
        adv(p);
    }
}

static int parse_literal_string(tp *p, hl_buf *out) {
    adv(p);
    if (peek(p) == '\'' && p->i + 1 < p->n && p->s[p->i + 1] == '\'') return perr(p, "multi-line strings are not supported%s", "");
    for (;;) {
        int c = peek(p);
        if (c == -1 || c == '\n') return perr(p, "unterminated string%s", "");
        adv(p);
        if (c == '\'') return 0;
        hl_buf_putc(out, (char)c);
    }
}

static int parse_key_part(tp *p, hl_buf *key) {
    int c = peek(p);
    if (c == '"' || c == '\'') {
        hl_buf part = {0};
        int rc = c == '"' ? parse_basic_string(p, &part) : parse_literal_string(p, &part);
        if (!rc) hl_buf_append(key, part.data ? part.data : "", part.len);
        hl_buf_free(&part);
        return rc;
    }
    if (!is_bare(c)) return perr(p, "expected a key%s", "");
    while (is_bare(peek(p))) {
        hl_buf_putc(key, (char)peek(p));
        adv(p);
    }
    return 0;
}

/* key ( '.' key )* */
static int parse_key(tp *p, hl_buf *key) {
    for (;;) {
        skip_ws(p);
        int rc = parse_key_part(p, key);
        if (rc) return rc;
        skip_ws(p);
        if (peek(p) != '.') return 0;
        hl_buf_putc(key, '.');
        adv(p);
    }
}

static void val_free(srv_toml_val *v) {
    free(v->s);
    for (size_t i = 0; i < v->n_items; i++) val_free(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

static int parse_value(tp *p, srv_toml_val *v, int depth);

static int parse_array(tp *p, srv_toml_val *v, int depth) {
    adv(p); /* [ */
    v->type = SRV_TOML_ARRAY;
    size_t cap = 0;
    for (;;) {
        skip_ws_nl(p);
        if (peek(p) == ']') {
            adv(p);
            return 0;
        }
        if (v->n_items == cap) {
            cap = cap ? cap * 2 : 4;
            if (cap > 65536) return perr(p, "array too long%s", "");
            srv_toml_val *ni = realloc(v->items, cap * sizeof *ni);
            if (!ni) return hl_err_set(p->err, HL_ENOMEM, "out of memory");
            v->items = ni;
        }
        srv_toml_val *it = &v->items[v->n_items];
        memset(it, 0, sizeof *it);
        int rc = parse_value(p, it, depth + 1);
        if (rc) {
            val_free(it);
            return rc;
        }
        v->n_items++;
        skip_ws_nl(p);
        if (peek(p) == ',') {
            adv(p);
            continue;
        }
        if (peek(p) == ']') {
            adv(p);
            return 0;
        }
        return perr(p, "expected ',' or ']' in an array%s", "");
    }
}

static int parse_number(tp *p, srv_toml_val *v) {
    char tmp[128];
    size_t k = 0;
    int is_float = 0;
    int startcol = p->col;
    while (p->i < p->n) {
        int c = peek(p);
        if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == '_' || c == 'e' || c == 'E' ||
              c == 'x' || c == 'o' || c == 'b' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == 'i' ||
              c == 'n'))
            break;
        if (k + 1 >= sizeof tmp) return perr(p, "number too long%s", "");
        if (c != '_') tmp[k++] = (char)c;
        adv(p);
    }
    tmp[k] = 0;
    (void)startcol;
    if (k == 0) return perr(p, "expected a value%s", "");
    const char *t = tmp;
    if (!strcmp(t, "inf") || !strcmp(t, "+inf") || !strcmp(t, "-inf") || !strcmp(t, "nan") || !strcmp(t, "+nan") ||
        !strcmp(t, "-nan")) {
        v->type = SRV_TOML_FLOAT;
        v->f = strstr(t, "nan") ? NAN : (t[0] == '-' ? -INFINITY : INFINITY);
        return 0;
    }
    int base = 10;
    const char *digits = t;
    if (t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
        base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
        digits = t + 2;
        /* strtoll would take a sign or spaces after the prefix: TOML allows neither */
        if (!*digits || *digits == '+' || *digits == '-') return perr(p, "not a valid number: '%s'", tmp);
    } else {
        /* TOML forbids leading zeros (0123 is not 123 or octal): refuse rather than misread */
        const char *q = t + (t[0] == '+' || t[0] == '-');
        if (q[0] == '0' && q[1] >= '0' && q[1] <= '9') return perr(p, "leading zeros are not allowed: '%s'", tmp);
        for (const char *q = t; *q; q++)
            if (*q == '.' || ((*q == 'e' || *q == 'E'))) is_float = 1;
    }
    char *end = NULL;
    errno = 0;
    if (is_float) {
        v->type = SRV_TOML_FLOAT;
        v->f = strtod(digits, &end);
    } else {
        v->type = SRV_TOML_INT;
        v->i = strtoll(digits, &end, base);
        v->f = (double)v->i;
    }
    if (!end || *end || end == digits) return perr(p, "not a valid number: '%s'", tmp);
    if (errno == ERANGE) return perr(p, "number out of range: '%s'", tmp);
    return 0;
}

static int parse_value(tp *p, srv_toml_val *v, int depth) {
    if (depth > 8) return perr(p, "arrays nested too deeply%s", "");
    v->line = p->line;
    v->col = p->col;
    int c = peek(p);
    if (c == '"' || c == '\'') {
        hl_buf b = {0};
        int rc = c == '"' ? parse_basic_string(p, &b) : parse_literal_string(p, &b);
        if (rc || b.oom) {
            hl_buf_free(&b);
            return rc ? rc : hl_err_set(p->err, HL_ENOMEM, "out of memory");
        }
        v->type = SRV_TOML_STR;
        v->s = b.data ? hl_buf_take(&b) : strdup("");
        if (!v->s) return hl_err_set(p->err, HL_ENOMEM, "out of memory");
        if (!hl_utf8_valid(v->s, strlen(v->s))) return perr(p, "string is not valid UTF-8%s", "");
        return 0;
    }
    if (c == '[') return parse_array(p, v, depth);
    if (c == '{') return perr(p, "inline tables are not supported%s", "");
    if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4) && !is_bare(p->i + 4 < p->n ? p->s[p->i + 4] : ' ')) {
        for (int k = 0; k < 4; k++) adv(p);
        v->type = SRV_TOML_BOOL;
        v->i = 1;
        return 0;
    }
    if (p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5) && !is_bare(p->i + 5 < p->n ? p->s[p->i + 5] : ' ')) {
        for (int k = 0; k < 5; k++) adv(p);
        v->type = SRV_TOML_BOOL;
        v->i = 0;
        return 0;
    }
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'i' || c == 'n') return parse_number(p, v);
    return perr(p, "expected a value (string, number, boolean or array)%s", "");
}

static int add_kv(tp *p, srv_toml *t, const char *key, srv_toml_val *v, int line, int col) {
    /* the duplicate check is quadratic: a bound keeps a hostile file from making it slow */
    if (t->n >= SRV_TOML_MAX_KEYS)
        return hl_err_set(p->err, HL_ERANGE, "%s:%d:%d: more than %d keys", p->fname, line, col, SRV_TOML_MAX_KEYS);
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->kvs[i].key, key))
            return hl_err_set(p->err, HL_EINVAL, "%s:%d:%d: key '%s' is defined twice", p->fname, line, col, key);
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        srv_toml_kv *nk = realloc(t->kvs, nc * sizeof *nk);
        if (!nk) return hl_err_set(p->err, HL_ENOMEM, "out of memory");
        t->kvs = nk;
        t->cap = nc;
    }
    char *k = strdup(key);
    if (!k) return hl_err_set(p->err, HL_ENOMEM, "out of memory");
    t->kvs[t->n].key = k;
    t->kvs[t->n].v = *v;
    t->n++;
    memset(v, 0, sizeof *v);
    return 0;
}

int srv_toml_parse(const char *text, size_t n, const char *fname, srv_toml *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    tp p = {.s = text, .n = n, .line = 1, .col = 1, .fname = fname ? fname : "config", .err = err};
    if (n > SRV_TOML_MAX_BYTES) return hl_err_set(err, HL_ERANGE, "%s: larger than %d bytes", p.fname, SRV_TOML_MAX_BYTES);
    if (memchr(text, 0, n)) return hl_err_set(err, HL_EINVAL, "%s: contains a NUL byte", p.fname);
    hl_buf table = {0}, seen = {0}; /* seen: table names so far, each followed by a NUL */
    int rc = 0, in_table = 0;
    while (!rc) {
        skip_ws_nl(&p);
        if (peek(&p) == -1) break;
        if (peek(&p) == '[') {
            adv(&p);
            if (peek(&p) == '[') {
                rc = perr(&p, "arrays of tables ([[...]]) are not supported%s", "");
                break;
            }
            hl_buf_reset(&table);
            rc = parse_key(&p, &table);
            if (rc) break;
            if (peek(&p) != ']') {
                rc = perr(&p, "expected ']' after the table name%s", "");
                break;
            }
            if (table.oom) {
                rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                break;
            }
            const char *tn = table.data ? table.data : ""; /* [""] is a valid, empty name */
            for (size_t k = 0; k < seen.len; k += strlen(seen.data + k) + 1)
                if (!strcmp(seen.data + k, tn)) rc = perr(&p, "table [%s] is defined twice", tn);
            if (rc) break;
            hl_buf_append(&seen, tn, strlen(tn) + 1);
            in_table = 1;
            adv(&p);
            rc = end_of_line(&p);
            continue;
        }
        int line = p.line, col = p.col;
        hl_buf key = {0};
        if (in_table) {
            hl_buf_append(&key, table.data, table.len);
            hl_buf_putc(&key, '.');
        }
        rc = parse_key(&p, &key);
        if (!rc && peek(&p) != '=') rc = perr(&p, "expected '=' after the key%s", "");
        if (!rc) {
            adv(&p);
            skip_ws(&p);
            srv_toml_val v = {0};
            rc = parse_value(&p, &v, 0);
            if (!rc) rc = end_of_line(&p);
            if (!rc && key.oom) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            if (!rc) rc = add_kv(&p, out, key.data ? key.data : "", &v, line, col);
            val_free(&v);
        }
        hl_buf_free(&key);
    }
    hl_buf_free(&table);
    hl_buf_free(&seen);
    if (rc) srv_toml_free(out);
    return rc;
}

const srv_toml_val *srv_toml_get(const srv_toml *t, const char *key) {
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->kvs[i].key, key)) return &t->kvs[i].v;
    return NULL;
}

void srv_toml_free(srv_toml *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->kvs[i].key);
        val_free(&t->kvs[i].v);
    }
    free(t->kvs);
    memset(t, 0, sizeof *t);
}

const char *srv_toml_type_name(srv_toml_type t) {
    switch (t) {
    case SRV_TOML_STR: return "a string";
    case SRV_TOML_INT: return "an integer";
    case SRV_TOML_FLOAT: return "a float";
    case SRV_TOML_BOOL: return "a boolean";
    case SRV_TOML_ARRAY: return "an array";
    }
    return "?";
}
