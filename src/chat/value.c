/* Template values: refcounted strings, lists and insertion-ordered dicts,
 * Python truthiness and equality, and the three ways a value becomes text as
 * Python would write it: str() (what {{ x }} prints), repr() (inside lists and
 * dicts) and json.dumps (the tojson filter transformers installs). Immortal
 * objects (rc < 0) are template constants shared between renders. */
#include "chat/internal.h"

#include "base/utf8.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cv cv_str_new(const char *s, size_t n) {
    cv_str *p = malloc(sizeof *p + n + 1);
    if (!p) return cv_undef("<out of memory>");
    p->rc = 1;
    p->len = n;
    if (n) memcpy(p->data, s, n);
    p->data[n] = 0;
    cv v = {CV_STR, {0}};
    v.u.s = p;
    return v;
}

cv cv_str_cstr(const char *s) { return cv_str_new(s, strlen(s)); }

int cv_is_oom(cv v) { return v.t == CV_UNDEF && v.u.uname && strcmp(v.u.uname, "<out of memory>") == 0; }

cv cv_list_new(size_t cap) {
    cv_list *p = calloc(1, sizeof *p);
    if (!p) return cv_undef("<out of memory>");
    p->rc = 1;
    if (cap) {
        p->v = malloc(cap * sizeof(cv));
        if (!p->v) { free(p); return cv_undef("<out of memory>"); }
        p->cap = cap;
    }
    cv v = {CV_LIST, {0}};
    v.u.l = p;
    return v;
}

cv cv_dict_new(void) {
    cv_dict *p = calloc(1, sizeof *p);
    if (!p) return cv_undef("<out of memory>");
    p->rc = 1;
    cv v = {CV_DICT, {0}};
    v.u.d = p;
    return v;
}

static int *rc_of(cv v) {
    switch (v.t) {
    case CV_STR: return &v.u.s->rc;
    case CV_LIST: return &v.u.l->rc;
    case CV_DICT:
    case CV_NS: return &v.u.d->rc;
    default: return NULL;
    }
}

cv cv_ref(cv v) {
    int *rc = rc_of(v);
    if (rc && *rc > 0) (*rc)++;
    return v;
}

void cv_unref(cv v) {
    int *rc = rc_of(v);
    if (!rc || *rc < 0) return;
    if (--*rc > 0) return;
    switch (v.t) {
    case CV_STR: free(v.u.s); break;
    case CV_LIST:
        for (size_t i = 0; i < v.u.l->n; i++) cv_unref(v.u.l->v[i]);
        free(v.u.l->v);
        free(v.u.l);
        break;
    case CV_DICT:
    case CV_NS:
        for (size_t i = 0; i < v.u.d->n; i++) {
            cv_unref(v.u.d->k[i]);
            cv_unref(v.u.d->v[i]);
        }
        free(v.u.d->k);
        free(v.u.d->v);
        free(v.u.d);
        break;
    default: break;
    }
}

int cv_list_push(cv list, cv item) {
    cv_list *l = list.u.l;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        cv *nv = realloc(l->v, nc * sizeof(cv));
        if (!nv) { cv_unref(item); return HL_ENOMEM; }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = item;
    return 0;
}

cv *cv_dict_find(cv dict, cv key) {
    cv_dict *d = dict.u.d;
    for (size_t i = 0; i < d->n; i++)
        if (cv_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

cv *cv_dict_get(cv dict, const char *key, size_t klen) {
    cv_dict *d = dict.u.d;
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == CV_STR && d->k[i].u.s->len == klen && memcmp(d->k[i].u.s->data, key, klen) == 0)
            return &d->v[i];
    return NULL;
}

int cv_dict_set(cv dict, cv key, cv val) {
    cv *slot = cv_dict_find(dict, key);
    if (slot) {
        cv_unref(*slot);
        *slot = val;
        cv_unref(key);
        return 0;
    }
    cv_dict *d = dict.u.d;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        cv *nk = realloc(d->k, nc * sizeof(cv));
        if (!nk) goto oom;
        d->k = nk;
        cv *nv = realloc(d->v, nc * sizeof(cv));
        if (!nv) goto oom;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = key;
    d->v[d->n] = val;
    d->n++;
    return 0;
oom:
    cv_unref(key);
    cv_unref(val);
    return HL_ENOMEM;
}

int cv_truthy(cv v) {
    switch (v.t) {
    case CV_UNDEF:
    case CV_NONE: return 0;
    case CV_BOOL: return v.u.b;
    case CV_INT: return v.u.i != 0;
    case CV_FLOAT: return v.u.f != 0.0;
    case CV_STR: return v.u.s->len != 0;
    case CV_LIST: return v.u.l->gen || v.u.l->n != 0;
    case CV_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

static int is_num(cv v) { return v.t == CV_INT || v.t == CV_FLOAT || v.t == CV_BOOL; }
static double num_f(cv v) { return v.t == CV_FLOAT ? v.u.f : v.t == CV_INT ? (double)v.u.i : (double)v.u.b; }

int cv_equal(cv a, cv b) {
    if (is_num(a) && is_num(b)) {
        if (a.t != CV_FLOAT && b.t != CV_FLOAT) {
            int64_t x = a.t == CV_INT ? a.u.i : a.u.b, y = b.t == CV_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return num_f(a) == num_f(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case CV_UNDEF:
    case CV_NONE: return 1;
    case CV_STR: return a.u.s->len == b.u.s->len && memcmp(a.u.s->data, b.u.s->data, a.u.s->len) == 0;
    case CV_LIST:
        if (a.u.l->gen || b.u.l->gen) return a.u.l == b.u.l;
        if (a.u.l->n != b.u.l->n || a.u.l->tuple != b.u.l->tuple) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!cv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
        return 1;
    case CV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            cv *o = cv_dict_find(b, a.u.d->k[i]);
            if (!o || !cv_equal(a.u.d->v[i], *o)) return 0;
        }
        return 1;
    case CV_NS: return a.u.d == b.u.d;
    case CV_MACRO: return a.u.macro == b.u.macro;
    case CV_FUNC: return a.u.fn == b.u.fn;
    case CV_LOOP: return a.u.loop == b.u.loop;
    default: return 0;
    }
}

const char *cv_type_name(cv v) {
    switch (v.t) {
    case CV_UNDEF: return "Undefined";
    case CV_NONE: return "NoneType";
    case CV_BOOL: return "bool";
    case CV_INT: return "int";
    case CV_FLOAT: return "float";
    case CV_STR: return "str";
    case CV_LIST: return v.u.l->gen ? "generator" : v.u.l->tuple ? "tuple" : "list";
    case CV_DICT: return "dict";
    case CV_NS: return "Namespace";
    case CV_MACRO: return "Macro";
    case CV_FUNC: return "function";
    case CV_LOOP: return "LoopContext";
    }
    return "object";
}

/* Python's float repr: the shortest digits that round-trip, written in
 * positional form for exponents in [-4, 16) and in scientific form otherwise. */
void cv_float_repr(hl_buf *b, double f) {
    if (isnan(f)) { hl_buf_puts(b, "nan"); return; }
    if (isinf(f)) { hl_buf_puts(b, f < 0 ? "-inf" : "inf"); return; }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d.ddde[+-]XX */
    char digits[32];
    int nd = 0, neg = 0;
    const char *p = tmp;
    if (*p == '-') { neg = 1; p++; }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) hl_buf_putc(b, '-');
    if (exp >= 16 || exp < -4) {
        hl_buf_putc(b, digits[0]);
        if (nd > 1) { hl_buf_putc(b, '.'); hl_buf_append(b, digits + 1, (size_t)nd - 1); }
        hl_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        hl_buf_puts(b, "0.");
        for (int i = 0; i < -exp - 1; i++) hl_buf_putc(b, '0');
        hl_buf_append(b, digits, (size_t)nd);
    } else {
        for (int i = 0; i <= exp; i++) hl_buf_putc(b, i < nd ? digits[i] : '0');
        hl_buf_putc(b, '.');
        if (nd > exp + 1) hl_buf_append(b, digits + exp + 1, (size_t)(nd - exp - 1));
        else hl_buf_putc(b, '0');
    }
}

/* Python's str.isprintable() for the code points templates meet: separators
 * and format/private-use characters are escaped by repr() */
static int py_printable(uint32_t cp) {
    if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f)) return 0;
    if (cp == 0x1680 || cp == 0x3000 || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) || cp == 0x061c) return 0;
    if ((cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000 || (cp >= 0xe0000 && cp <= 0xe007f)) return 0;
    return 1;
}

static void str_repr(hl_buf *b, const char *s, size_t n) {
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    hl_buf_putc(b, q);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') hl_buf_puts(b, "\\\\");
        else if (c == (unsigned char)q) { hl_buf_putc(b, '\\'); hl_buf_putc(b, q); }
        else if (c == '\n') hl_buf_puts(b, "\\n");
        else if (c == '\r') hl_buf_puts(b, "\\r");
        else if (c == '\t') hl_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f) hl_buf_printf(b, "\\x%02x", c);
        else if (c < 0x80) hl_buf_putc(b, (char)c);
        else {
            uint32_t cp;
            int l = hl_utf8_decode(s + i, n - i, &cp);
            if (l <= 0) { hl_buf_printf(b, "\\x%02x", c); i++; continue; }
            if (cp <= 0xa0 || cp == 0xad) hl_buf_printf(b, "\\x%02x", cp);
            else if (!py_printable(cp)) hl_buf_printf(b, cp > 0xffff ? "\\U%08x" : "\\u%04x", cp);
            else hl_buf_append(b, s + i, (size_t)l);
            i += (size_t)l;
            continue;
        }
        i++;
    }
    hl_buf_putc(b, q);
}

void cv_repr(hl_buf *b, cv v) {
    switch (v.t) {
    case CV_STR: str_repr(b, v.u.s->data, v.u.s->len); return;
    case CV_LIST:
        if (v.u.l->gen) { hl_buf_puts(b, "<generator object>"); return; }
        hl_buf_putc(b, v.u.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) hl_buf_puts(b, ", ");
            cv_repr(b, v.u.l->v[i]);
        }
        if (v.u.l->tuple && v.u.l->n == 1) hl_buf_putc(b, ',');
        hl_buf_putc(b, v.u.l->tuple ? ')' : ']');
        return;
    case CV_DICT:
        hl_buf_putc(b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) hl_buf_puts(b, ", ");
            cv_repr(b, v.u.d->k[i]);
            hl_buf_puts(b, ": ");
            cv_repr(b, v.u.d->v[i]);
        }
        hl_buf_putc(b, '}');
        return;
    default: cv_to_str(b, v); return;
    }
}

void cv_to_str(hl_buf *b, cv v) {
    switch (v.t) {
    case CV_UNDEF: return;
    case CV_NONE: hl_buf_puts(b, "None"); return;
    case CV_BOOL: hl_buf_puts(b, v.u.b ? "True" : "False"); return;
    case CV_INT: hl_buf_printf(b, "%lld", (long long)v.u.i); return;
    case CV_FLOAT: cv_float_repr(b, v.u.f); return;
    case CV_STR: hl_buf_append(b, v.u.s->data, v.u.s->len); return;
    case CV_LIST:
    case CV_DICT: cv_repr(b, v); return;
    case CV_NS: hl_buf_puts(b, "<Namespace>"); return;
    case CV_MACRO: hl_buf_printf(b, "<Macro '%s'>", v.u.macro->name ? v.u.macro->name : "caller"); return;
    case CV_FUNC: hl_buf_puts(b, "<function>"); return;
    case CV_LOOP: hl_buf_puts(b, "<LoopContext>"); return;
    }
}

/* json.dumps string escaping with ensure_ascii=False */
static void json_str(hl_buf *b, const char *s, size_t n) {
    hl_buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        if (esc) {
            hl_buf_append(b, s + run, i - run);
            hl_buf_puts(b, esc);
            run = i + 1;
        }
    }
    hl_buf_append(b, s + run, n - run);
    hl_buf_putc(b, '"');
}

static void json_nl(hl_buf *b, int indent, int level) {
    hl_buf_putc(b, '\n');
    for (int i = 0; i < indent * level; i++) hl_buf_putc(b, ' ');
}

static int key_cmp(const void *x, const void *y) {
    const cv *a = *(const cv *const *)x, *c = *(const cv *const *)y;
    if (a->t == CV_STR && c->t == CV_STR) {
        size_t n = a->u.s->len < c->u.s->len ? a->u.s->len : c->u.s->len;
        int r = memcmp(a->u.s->data, c->u.s->data, n);
        if (r) return r;
        return a->u.s->len < c->u.s->len ? -1 : a->u.s->len > c->u.s->len;
    }
    return 0;
}

static int json_rec(hl_buf *b, cv v, int indent, const char *isep, const char *ksep, int sort, int level,
                    hl_err *err) {
    if (level > 200) return hl_err_set(err, HL_ERANGE, "tojson: value nested too deeply");
    switch (v.t) {
    case CV_NONE: hl_buf_puts(b, "null"); return 0;
    case CV_BOOL: hl_buf_puts(b, v.u.b ? "true" : "false"); return 0;
    case CV_INT: hl_buf_printf(b, "%lld", (long long)v.u.i); return 0;
    case CV_FLOAT:
        if (isnan(v.u.f)) hl_buf_puts(b, "NaN");
        else if (isinf(v.u.f)) hl_buf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else cv_float_repr(b, v.u.f);
        return 0;
    case CV_STR: json_str(b, v.u.s->data, v.u.s->len); return 0;
    case CV_LIST:
        if (v.u.l->gen) return hl_err_set(err, HL_EINVAL, "tojson: Object of type generator is not JSON serializable");
        if (v.u.l->n == 0) { hl_buf_puts(b, "[]"); return 0; }
        hl_buf_putc(b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) hl_buf_puts(b, isep);
            if (indent >= 0) json_nl(b, indent, level + 1);
            int rc = json_rec(b, v.u.l->v[i], indent, isep, ksep, sort, level + 1, err);
            if (rc) return rc;
        }
        if (indent >= 0) json_nl(b, indent, level);
        hl_buf_putc(b, ']');
        return 0;
    case CV_DICT: {
        size_t n = v.u.d->n;
        if (n == 0) { hl_buf_puts(b, "{}"); return 0; }
        const cv **order = malloc(n * sizeof *order);
        if (!order) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) order[i] = &v.u.d->k[i];
        if (sort) qsort(order, n, sizeof *order, key_cmp);
        hl_buf_putc(b, '{');
        int rc = 0;
        for (size_t j = 0; j < n && !rc; j++) {
            size_t i = (size_t)(order[j] - v.u.d->k);
            cv k = v.u.d->k[i];
            if (j) hl_buf_puts(b, isep);
            if (indent >= 0) json_nl(b, indent, level + 1);
            if (k.t == CV_STR) json_str(b, k.u.s->data, k.u.s->len);
            else if (k.t == CV_INT || k.t == CV_FLOAT || k.t == CV_BOOL || k.t == CV_NONE) {
                hl_buf_putc(b, '"');
                json_rec(b, k, -1, isep, ksep, sort, level + 1, err);
                hl_buf_putc(b, '"');
            } else {
                rc = hl_err_set(err, HL_EINVAL, "tojson: keys must be str, int, float, bool or None, not %s",
                                cv_type_name(k));
                break;
            }
            hl_buf_puts(b, ksep);
            rc = json_rec(b, v.u.d->v[i], indent, isep, ksep, sort, level + 1, err);
        }
        free(order);
        if (rc) return rc;
        if (indent >= 0) json_nl(b, indent, level);
        hl_buf_putc(b, '}');
        return 0;
    }
    default:
        return hl_err_set(err, HL_EINVAL, "tojson: Object of type %s is not JSON serializable", cv_type_name(v));
    }
}

int cv_to_json(hl_buf *b, cv v, int indent, const char *isep, const char *ksep, int sort, hl_err *err) {
    return json_rec(b, v, indent, isep, ksep, sort, 0, err);
}

cv cv_from_json(struct json_object *j) {
    if (!j) return cv_none();
    switch (json_object_get_type(j)) {
    case json_type_null: return cv_none();
    case json_type_boolean: return cv_bool(json_object_get_boolean(j));
    case json_type_int: return cv_int(json_object_get_int64(j));
    case json_type_double: return cv_float(json_object_get_double(j));
    case json_type_string: return cv_str_new(json_object_get_string(j), (size_t)json_object_get_string_len(j));
    case json_type_array: {
        size_t n = json_object_array_length(j);
        cv l = cv_list_new(n);
        if (l.t != CV_LIST) return l;
        for (size_t i = 0; i < n; i++) {
            cv it = cv_from_json(json_object_array_get_idx(j, i));
            if (cv_is_oom(it) || cv_list_push(l, it)) { cv_unref(l); return cv_undef("<out of memory>"); }
        }
        return l;
    }
    case json_type_object: {
        cv d = cv_dict_new();
        if (d.t != CV_DICT) return d;
        json_object_object_foreach(j, key, val) {
            cv k = cv_str_cstr(key);
            cv x = cv_from_json(val);
            if (cv_is_oom(k) || cv_is_oom(x) || cv_dict_set(d, k, x)) { cv_unref(d); return cv_undef("<out of memory>"); }
        }
        return d;
    }
    }
    return cv_none();
}

size_t cv_u8_len(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

size_t cv_u8_offset(const char *s, size_t n, size_t i) {
    size_t c = 0;
    for (size_t p = 0; p < n; p++) {
        if (((unsigned char)s[p] & 0xC0) != 0x80) {
            if (c == i) return p;
            c++;
        }
    }
    return n;
}
