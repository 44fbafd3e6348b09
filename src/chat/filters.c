/* Filters (`x | name(args)`) and tests (`x is name`) with jinja2 3.1's
 * behaviour, plus transformers' tojson (json.dumps with ensure_ascii=False).
 * Names jinja2 knows but we do not implement fail at render time with a clear
 * message; names jinja2 does not know fail at parse time, as in jinja2. */
#include "chat/internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cv chat_strip(const char *s, size_t n, const char *chars, size_t nc, int which);
cv chat_case(const char *s, size_t n, int mode);
cv chat_replace(const char *s, size_t n, const char *old, size_t on, const char *nw, size_t nn, int64_t count, size_t limit);
cv chat_splitlines(const char *s, size_t n);
int chat_order(cv a, cv b, int fold_case);

static int oom(crender *r) { return hl_err_set(r->err, HL_ENOMEM, "out of memory while rendering the template"); }

static const char *const JINJA_FILTERS[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join", "last",
    "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr", "replace", "reverse",
    "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim",
    "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr", NULL};
static const char *const JINJA_TESTS[] = {
    "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
    "integer", "float", "number", "lower", "upper", "string", "mapping", "sequence", "iterable", "callable",
    "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt",
    "lessthan", "<=", "le", NULL};

static int in_list(const char *const *l, const char *n) {
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], n)) return 1;
    return 0;
}
int chat_filter_known(const char *name) { return in_list(JINJA_FILTERS, name); }
int chat_test_known(const char *name) { return in_list(JINJA_TESTS, name); }

/* argument i by position or by keyword name; NULL when absent */
static cv *arg(cv *args, int nargs, const char **kwn, cv *kwv, int nkw, int i, const char *name) {
    if (i < nargs) return &args[i];
    for (int k = 0; k < nkw; k++)
        if (!strcmp(kwn[k], name)) return &kwv[k];
    return NULL;
}
#define ARG(i, nm) arg(args, nargs, kwn, kwv, nkw, i, nm)

static cv str_of(cv v) {
    if (v.t == CV_STR) return cv_ref(v);
    hl_buf b = {0};
    cv_to_str(&b, v);
    cv s = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
    hl_buf_free(&b);
    return s;
}

static cv json_ascii(const char *s, size_t n) {
    hl_buf b = {0};
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) { hl_buf_putc(&b, (char)c); i++; continue; }
        uint32_t cp = 0;
        int l = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : 2;
        cp = c & (0xFF >> (l + 1));
        for (int k = 1; k < l && i + (size_t)k < n; k++) cp = (cp << 6) | ((unsigned char)s[i + (size_t)k] & 0x3F);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            hl_buf_printf(&b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else hl_buf_printf(&b, "\\u%04x", cp);
        i += (size_t)l;
    }
    cv v = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
    hl_buf_free(&b);
    return v;
}

static int tojson(crender *r, const cnode *at, cv self, cv *args, int nargs, const char **kwn, cv *kwv, int nkw, cv *out) {
    cv *ea = ARG(0, "ensure_ascii"), *ind = ARG(1, "indent"), *sep = ARG(2, "separators"), *sk = ARG(3, "sort_keys");
    int indent = -1;
    if (ind && ind->t == CV_INT) indent = (int)(ind->u.i < 0 ? 0 : ind->u.i > 64 ? 64 : ind->u.i);
    else if (ind && ind->t != CV_NONE) return chat_rerr(r, at, HL_ENOTSUP, "tojson: indent must be an integer");
    const char *isep = indent >= 0 ? "," : ", ", *ksep = ": ";
    char ib[64], kb[64];
    if (sep && sep->t == CV_LIST && sep->u.l->n == 2 && sep->u.l->v[0].t == CV_STR && sep->u.l->v[1].t == CV_STR) {
        snprintf(ib, sizeof ib, "%s", sep->u.l->v[0].u.s->data);
        snprintf(kb, sizeof kb, "%s", sep->u.l->v[1].u.s->data);
        isep = ib;
        ksep = kb;
    } else if (sep && sep->t != CV_NONE) return chat_rerr(r, at, HL_EINVAL, "tojson: separators must be a pair of strings");
    hl_buf b = {0};
    int rc = cv_to_json(&b, self, indent, isep, ksep, sk && cv_truthy(*sk), r->err);
    if (rc) {
        hl_buf_free(&b);
        return chat_rerr(r, at, rc, "%s", r->err->msg);
    }
    if (b.oom) { hl_buf_free(&b); return oom(r); }
    if (b.len > r->lim.max_output) { hl_buf_free(&b); return chat_rerr(r, at, HL_ERANGE, "tojson output exceeds the output limit"); }
    *out = (ea && cv_truthy(*ea)) ? json_ascii(b.data, b.len) : cv_str_new(b.data ? b.data : "", b.len);
    hl_buf_free(&b);
    return cv_is_oom(*out) ? oom(r) : 0;
}

static int getattr_path(cv obj, const char *path, cv *out) {
    /* "a.b" attribute paths as in map(attribute=...) and sort(attribute=...) */
    cv cur = cv_ref(obj);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t l = dot ? (size_t)(dot - path) : strlen(path);
        cv next = cv_undef(NULL);
        if (cur.t == CV_DICT || cur.t == CV_NS) {
            cv *v = cv_dict_get(cur, path, l);
            if (v) next = cv_ref(*v);
        } else if (cur.t == CV_LIST) {
            char *end;
            long k = strtol(path, &end, 10);
            if (end == path + l && k >= 0 && (size_t)k < cur.u.l->n) next = cv_ref(cur.u.l->v[k]);
        }
        cv_unref(cur);
        cur = next;
        path += l + (dot ? 1 : 0);
        if (!dot) break;
    }
    *out = cur;
    return 0;
}

static int length_of(crender *r, const cnode *at, cv v, int64_t *n) {
    switch (v.t) {
    case CV_STR: *n = (int64_t)cv_u8_len(v.u.s->data, v.u.s->len); return 0;
    case CV_LIST:
        if (v.u.l->gen) return chat_rerr(r, at, HL_EINVAL, "object of type 'generator' has no len()");
        *n = (int64_t)v.u.l->n;
        return 0;
    case CV_DICT:
    case CV_NS: *n = (int64_t)v.u.d->n; return 0;
    case CV_UNDEF: *n = 0; return 0;
    default: return chat_rerr(r, at, HL_EINVAL, "object of type '%s' has no len()", cv_type_name(v));
    }
}

/* select/reject/selectattr/rejectattr/map share this: apply a test or filter per item */
static int seq_apply(crender *r, const cnode *at, const char *fname, cv self, cv *args, int nargs, const char **kwn,
                     cv *kwv, int nkw, cv *out) {
    int is_attr = !strcmp(fname, "selectattr") || !strcmp(fname, "rejectattr");
    int is_map = !strcmp(fname, "map");
    int keep_when = !strcmp(fname, "select") || !strcmp(fname, "selectattr");
    cv items;
    int rc = chat_iterate(r, at, self, &items);
    if (rc) return rc;
    cv res = cv_list_new(items.u.l->n);
    if (res.t != CV_LIST) { cv_unref(items); return oom(r); }
    const char *attr = NULL;
    int a0 = 0;
    if (is_attr || (is_map && nargs == 0)) {
        cv *at_ = is_attr ? ARG(0, "attribute") : ARG(99, "attribute");
        if (!at_ || at_->t != CV_STR) { rc = chat_rerr(r, at, HL_EINVAL, "%s needs an attribute name", fname); goto out; }
        attr = at_->u.s->data;
        a0 = is_attr ? 1 : 0;
    }
    cv *dflt = is_map ? ARG(99, "default") : NULL;
    const char *name = NULL;
    if (!(is_map && attr)) {
        if (a0 < nargs) {
            if (args[a0].t != CV_STR) { rc = chat_rerr(r, at, HL_EINVAL, "%s: the test or filter name must be a string", fname); goto out; }
            name = args[a0].u.s->data;
            a0++;
        } else if (is_map) { rc = chat_rerr(r, at, HL_EINVAL, "map needs a filter name or attribute="); goto out; }
    }
    for (size_t i = 0; i < items.u.l->n && !rc; i++) {
        cv it = items.u.l->v[i], val;
        if (attr) getattr_path(it, attr, &val);
        else val = cv_ref(it);
        if (is_map) {
            if (attr) {
                if (val.t == CV_UNDEF && dflt) { cv_unref(val); val = cv_ref(*dflt); }
                cv_list_push(res, val);
                continue;
            }
            cv o;
            rc = chat_filter(r, at, name, val, args + a0, nargs - a0, kwn, kwv, nkw, &o);
            cv_unref(val);
            if (!rc) cv_list_push(res, o);
            continue;
        }
        int t;
        if (name) {
            if (!chat_test_known(name)) { cv_unref(val); rc = chat_rerr(r, at, HL_EINVAL, "no test named '%s'", name); break; }
            rc = chat_test(r, at, name, val, args + a0, nargs - a0, &t);
        } else t = cv_truthy(val);
        cv_unref(val);
        if (!rc && t == keep_when) cv_list_push(res, cv_ref(it));
    }
out:
    cv_unref(items);
    if (rc) { cv_unref(res); return rc; }
    res.u.l->gen = 1;
    *out = res;
    return 0;
}

typedef struct sort_ctx { cv *keys; int fold; int bad; } sort_ctx;

static int sort_items(crender *r, const cnode *at, cv list, const char *attr, int fold, int reverse, cv *out) {
    size_t n = list.u.l->n;
    cv res = cv_list_new(n), keys = cv_list_new(n);
    if (res.t != CV_LIST || keys.t != CV_LIST) { cv_unref(res); cv_unref(keys); return oom(r); }
    for (size_t i = 0; i < n; i++) {
        cv k;
        if (attr) getattr_path(list.u.l->v[i], attr, &k);
        else k = cv_ref(list.u.l->v[i]);
        cv_list_push(keys, k);
        cv_list_push(res, cv_ref(list.u.l->v[i]));
    }
    /* stable insertion sort (lists in templates are short) */
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            int c = chat_order(keys.u.l->v[j - 1], keys.u.l->v[j], fold);
            if (c == -2) {
                int rc = chat_rerr(r, at, HL_EINVAL, "sort: '<' not supported between instances of '%s' and '%s'",
                                   cv_type_name(keys.u.l->v[j - 1]), cv_type_name(keys.u.l->v[j]));
                cv_unref(res);
                cv_unref(keys);
                return rc;
            }
            if (reverse ? c >= 0 : c <= 0) break;
            cv t = keys.u.l->v[j]; keys.u.l->v[j] = keys.u.l->v[j - 1]; keys.u.l->v[j - 1] = t;
            t = res.u.l->v[j]; res.u.l->v[j] = res.u.l->v[j - 1]; res.u.l->v[j - 1] = t;
        }
    }
    cv_unref(keys);
    *out = res;
    return 0;
}

/* Python's round(x, nd): correctly rounded from the exact binary value, which
 * printf also does (half to even on exact ties) */
static double py_round(double x, int64_t nd) {
    if (nd >= 0 && nd < 300 && isfinite(x)) {
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", (int)nd, x);
        return strtod(buf, NULL);
    }
    double p = pow(10.0, (double)nd);
    double y = x * p, f = floor(y), d = y - f;
    double rnd = d > 0.5 ? f + 1 : d < 0.5 ? f : (fmod(f, 2.0) == 0 ? f : f + 1);
    return rnd / p;
}

int chat_filter(crender *r, const cnode *at, const char *name, cv self, cv *args, int nargs, const char **kwn,
                cv *kwv, int nkw, cv *out) {
    int rc = 0;
#define IS(x) (!strcmp(name, x))
    if (IS("default") || IS("d")) {
        cv *dv = ARG(0, "default_value"), *bo = ARG(1, "boolean");
        int use = self.t == CV_UNDEF || (bo && cv_truthy(*bo) && !cv_truthy(self));
        *out = use ? (dv ? cv_ref(*dv) : cv_str_cstr("")) : cv_ref(self);
    } else if (IS("tojson")) return tojson(r, at, self, args, nargs, kwn, kwv, nkw, out);
    else if (IS("length") || IS("count")) {
        int64_t n = 0;
        if ((rc = length_of(r, at, self, &n))) return rc;
        *out = cv_int(n);
    } else if (IS("safe") || (IS("string") && self.t == CV_STR)) *out = cv_ref(self);
    else if (IS("string")) *out = str_of(self);
    else if (IS("trim") || IS("lower") || IS("upper") || IS("capitalize") || IS("title") || IS("escape") || IS("e") ||
             IS("replace") || IS("center") || IS("indent") || IS("wordcount")) {
        cv s = str_of(self);
        if (cv_is_oom(s)) return oom(r);
        const char *d = s.u.s->data;
        size_t n = s.u.s->len;
        if (IS("trim")) {
            cv *ch = ARG(0, "chars");
            *out = (ch && ch->t == CV_STR) ? chat_strip(d, n, ch->u.s->data, ch->u.s->len, 3) : chat_strip(d, n, NULL, 0, 3);
        } else if (IS("lower")) *out = chat_case(d, n, 0);
        else if (IS("upper")) *out = chat_case(d, n, 1);
        else if (IS("capitalize")) *out = chat_case(d, n, 2);
        else if (IS("title")) *out = chat_case(d, n, 4);
        else if (IS("replace")) {
            cv *o = ARG(0, "old"), *w = ARG(1, "new"), *c = ARG(2, "count");
            if (!o || !w || o->t != CV_STR || w->t != CV_STR) { cv_unref(s); return chat_rerr(r, at, HL_EINVAL, "replace needs two strings"); }
            *out = chat_replace(d, n, o->u.s->data, o->u.s->len, w->u.s->data, w->u.s->len,
                                c && c->t == CV_INT ? c->u.i : -1, r->lim.max_output);
        } else if (IS("escape") || IS("e")) {
            hl_buf b = {0};
            for (size_t i = 0; i < n; i++) {
                switch (d[i]) {
                case '&': hl_buf_puts(&b, "&amp;"); break;
                case '<': hl_buf_puts(&b, "&lt;"); break;
                case '>': hl_buf_puts(&b, "&gt;"); break;
                case '"': hl_buf_puts(&b, "&#34;"); break;
                case '\'': hl_buf_puts(&b, "&#39;"); break;
                default: hl_buf_putc(&b, d[i]);
                }
            }
            *out = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
            hl_buf_free(&b);
        } else if (IS("center")) {
            cv *w = ARG(0, "width");
            int64_t width = w && w->t == CV_INT ? w->u.i : 80, len = (int64_t)cv_u8_len(d, n);
            if (width > 1 << 20) width = 1 << 20;
            hl_buf b = {0};
            int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
            for (int64_t i = 0; i < left; i++) hl_buf_putc(&b, ' ');
            hl_buf_append(&b, d, n);
            for (int64_t i = left; i < pad; i++) hl_buf_putc(&b, ' ');
            *out = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
            hl_buf_free(&b);
        } else if (IS("indent") && self.t != CV_STR) {
            cv_unref(s);
            return chat_rerr(r, at, HL_EINVAL, "indent needs a string, not %s", cv_type_name(self));
        } else if (IS("indent")) {
            cv *w = ARG(0, "width"), *first = ARG(1, "first"), *blank = ARG(2, "blank");
            hl_buf ind = {0}, b = {0};
            if (w && w->t == CV_STR) hl_buf_append(&ind, w->u.s->data, w->u.s->len);
            else for (int64_t i = 0; i < (w && w->t == CV_INT ? (w->u.i > 256 ? 256 : w->u.i) : 4); i++) hl_buf_putc(&ind, ' ');
            hl_buf t = {0};
            hl_buf_append(&t, d, n);
            hl_buf_putc(&t, '\n');
            cv lines = chat_splitlines(t.data, t.len);
            hl_buf_free(&t);
            if (lines.t != CV_LIST) { cv_unref(s); hl_buf_free(&ind); return oom(r); }
            if (first && cv_truthy(*first)) hl_buf_append(&b, ind.data, ind.len);
            for (size_t i = 0; i < lines.u.l->n; i++) {
                cv ln = lines.u.l->v[i];
                if (i) {
                    hl_buf_putc(&b, '\n');
                    if ((blank && cv_truthy(*blank)) || ln.u.s->len) hl_buf_append(&b, ind.data, ind.len);
                }
                hl_buf_append(&b, ln.u.s->data, ln.u.s->len);
            }
            cv_unref(lines);
            hl_buf_free(&ind);
            *out = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
            hl_buf_free(&b);
        } else { /* wordcount */
            int64_t words = 0;
            int in = 0;
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)d[i];
                int w = c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
                if (w && !in) words++;
                in = w;
            }
            *out = cv_int(words);
        }
        cv_unref(s);
    } else if (IS("items")) {
        if (self.t == CV_UNDEF) { *out = cv_list_new(0); }
        else if (self.t != CV_DICT && self.t != CV_NS) return chat_rerr(r, at, HL_EINVAL, "items: can only iterate a mapping, not %s", cv_type_name(self));
        else {
            int mrc = 0;
            cv d = self;
            d.t = CV_DICT;
            chat_method(r, at, d, "items", NULL, 0, NULL, NULL, 0, out, &mrc);
            if (!mrc) out->u.l->gen = 1;
            return mrc;
        }
    } else if (IS("dictsort")) {
        if (self.t != CV_DICT) return chat_rerr(r, at, HL_EINVAL, "dictsort needs a mapping");
        cv *cs = ARG(0, "case_sensitive"), *by = ARG(1, "by"), *rev = ARG(2, "reverse");
        int by_value = by && by->t == CV_STR && !strcmp(by->u.s->data, "value");
        int mrc = 0;
        cv pairs;
        chat_method(r, at, self, "items", NULL, 0, NULL, NULL, 0, &pairs, &mrc);
        if (mrc) return mrc;
        rc = sort_items(r, at, pairs, by_value ? "1" : "0", !(cs && cv_truthy(*cs)), rev && cv_truthy(*rev), out);
        cv_unref(pairs);
        return rc;
    } else if (IS("join")) {
        cv *sep = ARG(0, "d"), *attr = ARG(1, "attribute");
        cv items;
        if ((rc = chat_iterate(r, at, self, &items))) return rc;
        hl_buf b = {0};
        for (size_t i = 0; i < items.u.l->n; i++) {
            if (i && sep) cv_to_str(&b, *sep);
            if (attr && attr->t == CV_STR) {
                cv v;
                getattr_path(items.u.l->v[i], attr->u.s->data, &v);
                cv_to_str(&b, v);
                cv_unref(v);
            } else cv_to_str(&b, items.u.l->v[i]);
        }
        cv_unref(items);
        if (b.len > r->lim.max_output) { hl_buf_free(&b); return chat_rerr(r, at, HL_ERANGE, "join output exceeds the output limit"); }
        *out = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
        hl_buf_free(&b);
    } else if (IS("first") || IS("last")) {
        if (IS("last") && self.t == CV_LIST && self.u.l->gen)
            return chat_rerr(r, at, HL_EINVAL, "'generator' object is not reversible");
        cv items;
        if ((rc = chat_iterate(r, at, self, &items))) return rc;
        size_t n = items.u.l->n;
        *out = n ? cv_ref(items.u.l->v[IS("first") ? 0 : n - 1]) : cv_undef("sequence is empty");
        cv_unref(items);
    } else if (IS("list")) return chat_iterate(r, at, self, out);
    else if (IS("reverse")) {
        if (self.t == CV_STR) {
            hl_buf b = {0};
            const char *s = self.u.s->data;
            size_t e = self.u.s->len;
            while (e > 0) {
                size_t st = e - 1;
                while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                hl_buf_append(&b, s + st, e - st);
                e = st;
            }
            *out = b.oom ? cv_undef("<out of memory>") : cv_str_new(b.data ? b.data : "", b.len);
            hl_buf_free(&b);
        } else {
            cv items;
            if ((rc = chat_iterate(r, at, self, &items))) return rc;
            cv l = cv_list_new(items.u.l->n);
            if (l.t == CV_LIST) {
                /* reversed(list) is an iterator; a generator is listed and reversed */
                l.u.l->gen = !(self.t == CV_LIST && self.u.l->gen);
                for (size_t i = items.u.l->n; i > 0; i--) cv_list_push(l, cv_ref(items.u.l->v[i - 1]));
            }
            cv_unref(items);
            *out = l;
        }
    } else if (IS("unique")) {
        cv *cs = ARG(0, "case_sensitive"), *attr = ARG(1, "attribute");
        cv items;
        if ((rc = chat_iterate(r, at, self, &items))) return rc;
        cv l = cv_list_new(0), seen = cv_list_new(0);
        for (size_t i = 0; i < items.u.l->n && l.t == CV_LIST && seen.t == CV_LIST; i++) {
            cv k;
            if (attr && attr->t == CV_STR) getattr_path(items.u.l->v[i], attr->u.s->data, &k);
            else k = cv_ref(items.u.l->v[i]);
            if (k.t == CV_STR && !(cs && cv_truthy(*cs))) {
                cv lo = chat_case(k.u.s->data, k.u.s->len, 0);
                cv_unref(k);
                k = lo;
            }
            int dup = 0;
            for (size_t j = 0; j < seen.u.l->n && !dup; j++) dup = cv_equal(seen.u.l->v[j], k);
            if (!dup) {
                cv_list_push(seen, k);
                cv_list_push(l, cv_ref(items.u.l->v[i]));
            } else cv_unref(k);
        }
        cv_unref(seen);
        cv_unref(items);
        if (l.t == CV_LIST) l.u.l->gen = 1;
        *out = l;
    } else if (IS("sort")) {
        cv *rev = ARG(0, "reverse"), *cs = ARG(1, "case_sensitive"), *attr = ARG(2, "attribute");
        cv items;
        if ((rc = chat_iterate(r, at, self, &items))) return rc;
        rc = sort_items(r, at, items, attr && attr->t == CV_STR ? attr->u.s->data : NULL, !(cs && cv_truthy(*cs)),
                        rev && cv_truthy(*rev), out);
        cv_unref(items);
        return rc;
    } else if (IS("min") || IS("max") || IS("sum")) {
        cv items;
        if ((rc = chat_iterate(r, at, self, &items))) return rc;
        cv *attr = IS("sum") ? ARG(0, "attribute") : ARG(1, "attribute");
        if (IS("sum")) {
            cv *start = ARG(1, "start");
            cv acc = start ? cv_ref(*start) : cv_int(0);
            for (size_t i = 0; i < items.u.l->n && !rc; i++) {
                cv v, nx;
                if (attr && attr->t == CV_STR) getattr_path(items.u.l->v[i], attr->u.s->data, &v);
                else v = cv_ref(items.u.l->v[i]);
                if (acc.t == CV_FLOAT || v.t == CV_FLOAT) {
                    double x = acc.t == CV_FLOAT ? acc.u.f : (double)acc.u.i;
                    double y = v.t == CV_FLOAT ? v.u.f : v.t == CV_INT ? (double)v.u.i : v.t == CV_BOOL ? v.u.b : NAN;
                    if (isnan(y) && v.t != CV_FLOAT) rc = chat_rerr(r, at, HL_EINVAL, "sum: cannot add %s", cv_type_name(v));
                    nx = cv_float(x + y);
                } else if ((acc.t == CV_INT || acc.t == CV_BOOL) && (v.t == CV_INT || v.t == CV_BOOL)) {
                    nx = cv_int((acc.t == CV_INT ? acc.u.i : acc.u.b) + (v.t == CV_INT ? v.u.i : v.u.b));
                } else {
                    rc = chat_rerr(r, at, HL_EINVAL, "sum: unsupported operand types '%s' and '%s'", cv_type_name(acc), cv_type_name(v));
                    nx = cv_none();
                }
                cv_unref(v);
                cv_unref(acc);
                acc = nx;
            }
            cv_unref(items);
            if (rc) return rc;
            *out = acc;
            return 0;
        }
        cv *cs = ARG(0, "case_sensitive");
        int best = -1;
        for (size_t i = 0; i < items.u.l->n; i++) {
            if (best < 0) { best = (int)i; continue; }
            int c = chat_order(items.u.l->v[i], items.u.l->v[best], !(cs && cv_truthy(*cs)));
            if (c == -2) { cv_unref(items); return chat_rerr(r, at, HL_EINVAL, "%s: values do not compare", name); }
            if (IS("min") ? c < 0 : c > 0) best = (int)i;
        }
        *out = best >= 0 ? cv_ref(items.u.l->v[best]) : cv_undef("No aggregated item, sequence was empty.");
        cv_unref(items);
    } else if (IS("select") || IS("reject") || IS("selectattr") || IS("rejectattr") || IS("map")) {
        return seq_apply(r, at, name, self, args, nargs, kwn, kwv, nkw, out);
    } else if (IS("batch")) {
        cv *cnt = ARG(0, "linecount"), *fill = ARG(1, "fill_with");
        if (!cnt || cnt->t != CV_INT || cnt->u.i <= 0) return chat_rerr(r, at, HL_EINVAL, "batch needs a positive count");
        cv items;
        if ((rc = chat_iterate(r, at, self, &items))) return rc;
        size_t per = (size_t)cnt->u.i, n = items.u.l->n;
        cv res = cv_list_new(0);
        for (size_t i = 0; i < n && res.t == CV_LIST; i += per) {
            cv row = cv_list_new(0);
            if (row.t != CV_LIST) break;
            for (size_t j = i; j < i + per && (j < n || fill) && j - i < 1000000; j++)
                cv_list_push(row, j < n ? cv_ref(items.u.l->v[j]) : cv_ref(*fill));
            cv_list_push(res, row);
        }
        cv_unref(items);
        if (res.t == CV_LIST) res.u.l->gen = 1;
        *out = res;
    } else if (IS("attr")) {
        cv *a = ARG(0, "name");
        if (!a || a->t != CV_STR) return chat_rerr(r, at, HL_EINVAL, "attr needs a name");
        if (self.t == CV_DICT || self.t == CV_NS) *out = cv_undef(a->u.s->data); /* attr() never reads items */
        else *out = cv_undef(a->u.s->data);
    } else if (IS("int") || IS("float")) {
        int is_int = IS("int");
        if (self.t == CV_UNDEF) return chat_rerr(r, at, HL_EINVAL, "'%s' is undefined", self.u.uname ? self.u.uname : "value");
        cv *dv = ARG(0, "default");
        double f = 0;
        int ok = 1;
        if (self.t == CV_INT || self.t == CV_BOOL) f = (double)(self.t == CV_INT ? self.u.i : self.u.b);
        else if (self.t == CV_FLOAT) f = self.u.f;
        else if (self.t == CV_STR) {
            /* Python's int(s, base) / float(s): surrounding whitespace and
             * underscores between digits are allowed */
            char buf[128];
            size_t k = 0, n = self.u.s->len;
            const char *s = self.u.s->data;
            if (n >= sizeof buf) ok = 0;
            for (size_t i = 0; ok && i < n; i++)
                if (!(s[i] == '_' && i > 0 && i + 1 < n && isalnum((unsigned char)s[i - 1]) && isalnum((unsigned char)s[i + 1])))
                    buf[k++] = s[i];
            buf[k] = 0;
            char *end, *b = buf;
            while (*b == ' ' || (*b >= 9 && *b <= 13)) b++;
            if (ok && is_int) {
                cv *base = ARG(1, "base");
                int bs = base && base->t == CV_INT ? (int)base->u.i : 10;
                if (bs < 0 || bs == 1 || bs > 36) return chat_rerr(r, at, HL_EINVAL, "int() base must be >= 2 and <= 36, or 0");
                long long iv = strtoll(b, &end, bs);
                while (*end == ' ' || (*end >= 9 && *end <= 13)) end++;
                if (end != b && *end == 0 && (isdigit((unsigned char)b[0]) || ((b[0] == '-' || b[0] == '+') && b[1]))) { *out = cv_int(iv); return 0; }
            }
            if (ok) {
                f = strtod(b, &end);
                while (*end == ' ' || (*end >= 9 && *end <= 13)) end++;
                ok = end != b && *end == 0 && !(b[0] == '0' && (b[1] == 'x' || b[1] == 'X'));
            }
            if (ok && !is_int) { *out = cv_float(f); return 0; }
        } else ok = 0;
        if (!ok || isnan(f) || (is_int && isinf(f))) {
            *out = dv ? cv_ref(*dv) : is_int ? cv_int(0) : cv_float(0.0);
            return 0;
        }
        *out = is_int ? cv_int((int64_t)f) : cv_float(f);
        if (is_int && self.t == CV_INT) *out = self;
    } else if (IS("abs")) {
        if (self.t == CV_INT) *out = cv_int(self.u.i < 0 ? -self.u.i : self.u.i);
        else if (self.t == CV_BOOL) *out = cv_int(self.u.b);
        else if (self.t == CV_FLOAT) *out = cv_float(fabs(self.u.f));
        else return chat_rerr(r, at, HL_EINVAL, "bad operand type for abs(): '%s'", cv_type_name(self));
    } else if (IS("round")) {
        cv *p = ARG(0, "precision"), *m = ARG(1, "method");
        int64_t prec = p && p->t == CV_INT ? p->u.i : 0;
        if (self.t != CV_INT && self.t != CV_FLOAT && self.t != CV_BOOL)
            return chat_rerr(r, at, HL_EINVAL, "round needs a number, not %s", cv_type_name(self));
        double x = self.t == CV_FLOAT ? self.u.f : (double)(self.t == CV_INT ? self.u.i : self.u.b);
        const char *meth = m && m->t == CV_STR ? m->u.s->data : "common";
        double pw = pow(10.0, (double)prec);
        if (!strcmp(meth, "common")) *out = self.t == CV_FLOAT ? cv_float(py_round(x, prec)) : cv_int((int64_t)x);
        else if (!strcmp(meth, "ceil")) *out = cv_float(ceil(x * pw) / pw);
        else if (!strcmp(meth, "floor")) *out = cv_float(floor(x * pw) / pw);
        else return chat_rerr(r, at, HL_EINVAL, "method must be common, ceil or floor");
    } else if (chat_filter_known(name)) {
        return chat_rerr(r, at, HL_ENOTSUP, "filter '%s' is not supported", name);
    } else {
        return chat_rerr(r, at, HL_EINVAL, "unknown filter '%s'", name);
    }
#undef IS
    if (out->t == CV_UNDEF && out->u.uname && !strcmp(out->u.uname, "<out of memory>")) return oom(r);
    return 0;
}

int chat_test(crender *r, const cnode *at, const char *name, cv v, cv *args, int nargs, int *out) {
#define IS(x) (!strcmp(name, x))
    cv a = nargs > 0 ? args[0] : cv_undef(NULL);
    if (IS("defined")) *out = v.t != CV_UNDEF;
    else if (IS("undefined")) *out = v.t == CV_UNDEF;
    else if (IS("none")) *out = v.t == CV_NONE;
    else if (IS("string")) *out = v.t == CV_STR;
    else if (IS("number")) *out = v.t == CV_INT || v.t == CV_FLOAT || v.t == CV_BOOL;
    else if (IS("integer")) *out = v.t == CV_INT;
    else if (IS("float")) *out = v.t == CV_FLOAT;
    else if (IS("boolean")) *out = v.t == CV_BOOL;
    else if (IS("true")) *out = v.t == CV_BOOL && v.u.b;
    else if (IS("false")) *out = v.t == CV_BOOL && !v.u.b;
    else if (IS("mapping")) *out = v.t == CV_DICT;
    else if (IS("iterable")) *out = v.t == CV_STR || v.t == CV_LIST || v.t == CV_DICT || v.t == CV_UNDEF || v.t == CV_NS;
    else if (IS("sequence")) *out = v.t == CV_STR || (v.t == CV_LIST && !v.u.l->gen) || v.t == CV_DICT || v.t == CV_UNDEF;
    else if (IS("callable")) *out = v.t == CV_MACRO || v.t == CV_FUNC;
    else if (IS("sameas")) *out = v.t == a.t && (v.t == CV_NONE || v.t == CV_UNDEF || (v.t == CV_BOOL && v.u.b == a.u.b) ||
                                                (v.t == CV_INT && v.u.i == a.u.i) || ((v.t == CV_STR || v.t == CV_LIST || v.t == CV_DICT) && v.u.s == a.u.s));
    else if (IS("escaped")) *out = 0;
    else if (IS("lower") || IS("upper")) { /* str(value).islower() */
        cv sv = str_of(v);
        if (cv_is_oom(sv)) return oom(r);
        int mrc = 0;
        cv res;
        chat_method(r, at, sv, IS("lower") ? "islower" : "isupper", NULL, 0, NULL, NULL, 0, &res, &mrc);
        cv_unref(sv);
        if (mrc) return mrc;
        *out = res.u.b;
    } else if (IS("odd") || IS("even") || IS("divisibleby")) {
        /* value % 2 == 1, value % 2 == 0, value % num == 0, with Python's modulo */
        cv d = IS("divisibleby") ? a : cv_int(2);
        int isnum = (v.t == CV_INT || v.t == CV_BOOL || v.t == CV_FLOAT) && (d.t == CV_INT || d.t == CV_BOOL || d.t == CV_FLOAT);
        if (!isnum) return chat_rerr(r, at, HL_EINVAL, "test '%s': unsupported operand types '%s' and '%s'", name, cv_type_name(v), cv_type_name(d));
        double x = v.t == CV_FLOAT ? v.u.f : (double)(v.t == CV_INT ? v.u.i : v.u.b);
        double y = d.t == CV_FLOAT ? d.u.f : (double)(d.t == CV_INT ? d.u.i : d.u.b);
        if (y == 0) return chat_rerr(r, at, HL_EINVAL, "test '%s': modulo by zero", name);
        double m;
        if (v.t != CV_FLOAT && d.t != CV_FLOAT) {
            int64_t xi = v.t == CV_INT ? v.u.i : v.u.b, yi = d.t == CV_INT ? d.u.i : d.u.b, mi = yi == -1 ? 0 : xi % yi;
            if (mi != 0 && ((mi < 0) != (yi < 0))) mi += yi;
            m = (double)mi;
        } else {
            m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
        }
        *out = IS("odd") ? m == 1 : m == 0;
    } else if (IS("==") || IS("eq") || IS("equalto") || IS("!=") || IS("ne") || IS("<") || IS("lt") || IS("lessthan") ||
               IS("<=") || IS("le") || IS(">") || IS("gt") || IS("greaterthan") || IS(">=") || IS("ge") || IS("in")) {
        if (nargs < 1) return chat_rerr(r, at, HL_EINVAL, "test '%s' needs an argument", name);
        int op = (IS("==") || IS("eq") || IS("equalto")) ? COP_EQ : (IS("!=") || IS("ne")) ? COP_NE
               : (IS("<") || IS("lt") || IS("lessthan")) ? COP_LT : (IS("<=") || IS("le")) ? COP_LE
               : (IS(">") || IS("gt") || IS("greaterthan")) ? COP_GT : (IS(">=") || IS("ge")) ? COP_GE : COP_IN;
        return chat_compare(r, at, op, v, a, out);
    } else if (chat_test_known(name)) {
        return chat_rerr(r, at, HL_ENOTSUP, "test '%s' is not supported", name);
    } else {
        return chat_rerr(r, at, HL_EINVAL, "unknown test '%s'", name);
    }
#undef IS
    return 0;
}
