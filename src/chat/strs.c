/* String helpers with Python str semantics (strip and split with Unicode
 * whitespace, case changes, find, replace, title), the string, dict and list
 * methods templates call (`x.strip()`, `d.items()`, `l.index(v)` ...), the
 * comparisons and `in`, iteration, and the global functions (range,
 * namespace, dict, raise_exception, strftime_now). Strings are UTF-8 and
 * indexed by code point, as Python does. */
#include "chat/internal.h"

#include "base/utf8.h"

#include <ctype.h>
#include <locale.h>
#include <wctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int oom(crender *r) { return hl_err_set(r->err, HL_ENOMEM, "out of memory while rendering the template"); }

static int py_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }

/* Python's str.isspace() for one code point */
static int py_space_cp(uint32_t c) {
    return c < 0x80 ? py_space((unsigned char)c)
                    : c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
                          c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* the code point starting at s[i] (byte length in *len; invalid bytes are
 * taken one at a time as U+FFFD-like values that never match) */
static uint32_t cp_at(const char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) { *len = 1; return c; }
    uint32_t cp;
    int l = hl_utf8_decode(s + i, n - i, &cp);
    if (l <= 0) { *len = 1; return 0xFFFFFFFFu; }
    *len = (size_t)l;
    return cp;
}

/* start of the code point that ends at s[e - 1] */
static size_t cp_start_before(const char *s, size_t e) {
    size_t b = e - 1;
    while (b > 0 && e - b < 4 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
    return b;
}

static int cp_in(uint32_t cp, const char *set, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l;
        if (cp_at(set, n, i, &l) == cp) return 1;
        i += l;
    }
    return 0;
}

/* byte length of the whitespace code point at s[i], 0 if none */
static size_t ws_at(const char *s, size_t n, size_t i) {
    size_t l;
    return py_space_cp(cp_at(s, n, i, &l)) ? l : 0;
}

static cv mkstr(hl_buf *b) {
    cv v = b->oom ? cv_undef("<out of memory>") : cv_str_new(b->data ? b->data : "", b->len);
    hl_buf_free(b);
    return v;
}

/* str.strip family: which = 1 left, 2 right, 3 both; chars NULL = whitespace */
cv chat_strip(const char *s, size_t n, const char *chars, size_t nc, int which) {
    size_t a = 0, b = n, l;
    if (which & 1)
        while (a < b) {
            uint32_t cp = cp_at(s, n, a, &l);
            if (!(chars ? cp_in(cp, chars, nc) : py_space_cp(cp))) break;
            a += l;
        }
    if (which & 2)
        while (b > a) {
            size_t st = cp_start_before(s, b);
            if (st < a) st = a;
            uint32_t cp = cp_at(s, b, st, &l);
            if (st + l != b) cp = 0xFFFFFFFFu; /* not a whole code point */
            if (!(chars ? cp_in(cp, chars, nc) : py_space_cp(cp))) break;
            b = st;
        }
    return cv_str_new(s + a, b - a);
}

/* Case changes: 0 lower, 1 upper, 2 str.capitalize, 3 str.title, 4 jinja's
 * title filter. ASCII is mapped directly; other code points through the C.UTF-8
 * locale's simple case mappings (made per call: no global state), plus
 * Python's 'ß'.upper() == 'SS'. Other special casings (final sigma, ligatures,
 * dotted I) are not reproduced. */
cv chat_case(const char *s, size_t n, int mode) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    locale_t loc = ascii ? (locale_t)0 : newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    hl_buf b = {0};
    int start = 1; /* at the start of a word (title) or of the string (capitalize) */
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t cp = cp_at(s, n, i, &l);
        if (cp == 0xFFFFFFFFu) { hl_buf_append(&b, s + i, l); i += l; start = mode == 2 ? 0 : 1; continue; }
        int up;
        switch (mode) {
        case 0: up = 0; break;
        case 1: up = 1; break;
        case 2: up = start; break;
        default: up = start; break;
        }
        uint32_t m = cp;
        if (cp < 0x80) m = (uint32_t)(up ? toupper((int)cp) : tolower((int)cp));
        else if (loc) m = (uint32_t)(up ? towupper_l((wint_t)cp, loc) : towlower_l((wint_t)cp, loc));
        if (cp == 0xdf && up) hl_buf_puts(&b, "SS");
        else {
            char enc[4];
            int el = hl_utf8_encode(m, enc);
            if (el > 0) hl_buf_append(&b, enc, (size_t)el);
            else hl_buf_append(&b, s + i, l);
        }
        if (mode == 2) start = 0;
        else if (mode == 3) {
            int cased = cp < 0x80 ? isalpha((int)cp) != 0
                                  : loc && (iswupper_l((wint_t)cp, loc) || iswlower_l((wint_t)cp, loc));
            start = !cased;
        } else if (mode == 4) start = py_space_cp(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        i += l;
    }
    if (loc) freelocale(loc);
    return mkstr(&b);
}

static const char *memmem_(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

cv chat_replace(const char *s, size_t n, const char *old, size_t on, const char *nw, size_t nn, int64_t count,
                size_t limit) {
    hl_buf b = {0};
    size_t i = 0;
    int64_t done = 0;
    if (on == 0) { /* Python inserts `new` between every character */
        size_t cps = cv_u8_len(s, n);
        for (size_t k = 0; k <= cps; k++) {
            if (count < 0 || done < count) { hl_buf_append(&b, nw, nn); done++; }
            if (k < cps) {
                size_t x = cv_u8_offset(s, n, k), y = cv_u8_offset(s, n, k + 1);
                hl_buf_append(&b, s + x, y - x);
            }
            if (b.len > limit) break;
        }
        return mkstr(&b);
    }
    while (i < n) {
        const char *p = (count < 0 || done < count) ? memmem_(s + i, n - i, old, on) : NULL;
        if (!p) break;
        hl_buf_append(&b, s + i, (size_t)(p - (s + i)));
        hl_buf_append(&b, nw, nn);
        i = (size_t)(p - s) + on;
        done++;
        if (b.len > limit) break;
    }
    hl_buf_append(&b, s + i, n - i);
    return mkstr(&b);
}

/* str.split(sep=None, maxsplit=-1) */
static cv split(const char *s, size_t n, const char *sep, size_t sn, int64_t maxsplit) {
    cv l = cv_list_new(0);
    if (l.t != CV_LIST) return l;
    size_t i = 0;
    int64_t splits = 0;
    if (!sep) {
        for (;;) {
            size_t w;
            while (i < n && (w = ws_at(s, n, i))) i += w;
            if (i >= n) break;
            size_t j = i;
            if (maxsplit >= 0 && splits >= maxsplit) {
                cv t = chat_strip(s + i, n - i, NULL, 0, 2);
                cv_list_push(l, t);
                break;
            }
            while (j < n && !ws_at(s, n, j)) {
                size_t cl;
                cp_at(s, n, j, &cl);
                j += cl;
            }
            cv_list_push(l, cv_str_new(s + i, j - i));
            splits++;
            i = j;
        }
        return l;
    }
    for (;;) {
        const char *p = (maxsplit < 0 || splits < maxsplit) ? memmem_(s + i, n - i, sep, sn) : NULL;
        if (!p) { cv_list_push(l, cv_str_new(s + i, n - i)); break; }
        cv_list_push(l, cv_str_new(s + i, (size_t)(p - (s + i))));
        splits++;
        i = (size_t)(p - s) + sn;
    }
    return l;
}

static cv splitlines(const char *s, size_t n) {
    cv l = cv_list_new(0);
    if (l.t != CV_LIST) return l;
    size_t i = 0, start = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
            cv_list_push(l, cv_str_new(s + start, i - start));
            i += (c == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
            start = i;
        } else i++;
    }
    if (start < n) cv_list_push(l, cv_str_new(s + start, n - start));
    return l;
}

cv chat_splitlines(const char *s, size_t n) { return splitlines(s, n); }

static int str_arg(crender *r, const cnode *at, cv *args, int nargs, int i, const char *m, cv *out) {
    if (i >= nargs) return chat_rerr(r, at, HL_EINVAL, "str.%s() is missing an argument", m);
    if (args[i].t != CV_STR) return chat_rerr(r, at, HL_EINVAL, "str.%s() argument must be str, not %s", m, cv_type_name(args[i]));
    *out = args[i];
    return 0;
}

static int prefix_match(cv self, cv p, int end) {
    size_t n = self.u.s->len, pn = p.u.s->len;
    if (pn > n) return 0;
    return memcmp(self.u.s->data + (end ? n - pn : 0), p.u.s->data, pn) == 0;
}

static const char *const STR_METHODS[] = {"strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper",
                                          "lower", "title", "capitalize", "replace", "find", "count", "join",
                                          "format", "splitlines", "isdigit", "isalpha", "isspace", "isalnum",
                                          "islower", "isupper", "rfind", "index", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};
static const char *const LIST_METHODS[] = {"index", "count", NULL};
static const char *const UNSAFE[] = {"append", "pop", "insert", "extend", "remove", "clear", "sort", "reverse",
                                     "update", "setdefault", "popitem", NULL};

static int in_list(const char *const *l, const char *n) {
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], n)) return 1;
    return 0;
}

int chat_is_method(cv self, const char *name) {
    switch (self.t) {
    case CV_STR: return in_list(STR_METHODS, name);
    case CV_DICT: return in_list(DICT_METHODS, name) || in_list(UNSAFE, name);
    case CV_LIST: return in_list(LIST_METHODS, name) || in_list(UNSAFE, name);
    case CV_LOOP: return !strcmp(name, "cycle") || !strcmp(name, "changed");
    default: return 0;
    }
}

static int str_format(crender *r, const cnode *at, cv self, cv *args, int nargs, const char **kwn, cv *kwv, int nkw,
                      cv *out) {
    hl_buf b = {0};
    const char *s = self.u.s->data;
    size_t n = self.u.s->len;
    int auto_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{' && i + 1 < n && s[i + 1] == '{') { hl_buf_putc(&b, '{'); i++; continue; }
        if (s[i] == '}' && i + 1 < n && s[i + 1] == '}') { hl_buf_putc(&b, '}'); i++; continue; }
        if (s[i] != '{') { hl_buf_putc(&b, s[i]); continue; }
        const char *e = memchr(s + i, '}', n - i);
        if (!e) { hl_buf_free(&b); return chat_rerr(r, at, HL_EINVAL, "str.format: single '{' encountered"); }
        size_t fl = (size_t)(e - (s + i + 1));
        const char *f = s + i + 1;
        if (memchr(f, ':', fl) || memchr(f, '!', fl) || memchr(f, '.', fl) || memchr(f, '[', fl)) {
            hl_buf_free(&b);
            return chat_rerr(r, at, HL_ENOTSUP, "str.format: format specs and field attributes are not supported");
        }
        cv *v = NULL;
        if (fl == 0) v = auto_i < nargs ? &args[auto_i++] : NULL;
        else if (isdigit((unsigned char)f[0])) { int k = atoi(f); v = k < nargs ? &args[k] : NULL; }
        else for (int k = 0; k < nkw; k++) if (strlen(kwn[k]) == fl && !memcmp(kwn[k], f, fl)) v = &kwv[k];
        if (!v) { hl_buf_free(&b); return chat_rerr(r, at, HL_EINVAL, "str.format: missing argument for '{%.*s}'", (int)fl, f); }
        cv_to_str(&b, *v);
        i = (size_t)(e - s);
    }
    *out = mkstr(&b);
    return cv_is_oom(*out) ? oom(r) : 0;
}

int chat_method(crender *r, const cnode *at, cv self, const char *name, cv *args, int nargs, const char **kwn,
                cv *kwv, int nkw, cv *out, int *rc) {
    cv a0 = {CV_UNDEF, {0}};
    *rc = 0;
    if (in_list(UNSAFE, name) && (self.t == CV_LIST || self.t == CV_DICT)) {
        *rc = chat_rerr(r, at, HL_EINVAL, "access to attribute '%s' of '%s' object is unsafe (templates cannot modify values)",
                        name, cv_type_name(self));
        return 1;
    }
    if (self.t == CV_LOOP) {
        cv_loop *L = self.u.loop;
        if (!strcmp(name, "cycle")) {
            if (!nargs) { *rc = chat_rerr(r, at, HL_EINVAL, "no items for cycling given"); return 1; }
            *out = cv_ref(args[L->idx % (size_t)nargs]);
            return 1;
        }
        cv l = cv_list_new((size_t)nargs);
        if (l.t != CV_LIST) { *rc = oom(r); return 1; }
        for (int i = 0; i < nargs; i++) cv_list_push(l, cv_ref(args[i]));
        int changed = !cv_equal(l, L->last_changed);
        cv_unref(L->last_changed);
        L->last_changed = l;
        *out = cv_bool(changed);
        return 1;
    }
    if (self.t == CV_DICT) {
        cv_dict *d = self.u.d;
        if (!strcmp(name, "get")) {
            if (nargs < 1) { *rc = chat_rerr(r, at, HL_EINVAL, "dict.get() takes at least 1 argument"); return 1; }
            cv *v = cv_dict_find(self, args[0]);
            *out = v ? cv_ref(*v) : nargs > 1 ? cv_ref(args[1]) : cv_none();
            return 1;
        }
        cv l = cv_list_new(d->n);
        if (l.t != CV_LIST) { *rc = oom(r); return 1; }
        for (size_t i = 0; i < d->n; i++) {
            if (!strcmp(name, "keys")) cv_list_push(l, cv_ref(d->k[i]));
            else if (!strcmp(name, "values")) cv_list_push(l, cv_ref(d->v[i]));
            else {
                cv pair = cv_list_new(2);
                if (pair.t != CV_LIST) { cv_unref(l); *rc = oom(r); return 1; }
                pair.u.l->tuple = 1;
                cv_list_push(pair, cv_ref(d->k[i]));
                cv_list_push(pair, cv_ref(d->v[i]));
                cv_list_push(l, pair);
            }
        }
        *out = l;
        return 1;
    }
    if (self.t == CV_LIST) {
        if (nargs < 1) { *rc = chat_rerr(r, at, HL_EINVAL, "list.%s() takes exactly one argument", name); return 1; }
        int64_t cnt = 0;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (cv_equal(self.u.l->v[i], args[0])) {
                if (!strcmp(name, "index")) { *out = cv_int((int64_t)i); return 1; }
                cnt++;
            }
        if (!strcmp(name, "index")) { *rc = chat_rerr(r, at, HL_EINVAL, "list.index(x): x not in list"); return 1; }
        *out = cv_int(cnt);
        return 1;
    }
    /* strings */
    const char *s = self.u.s->data;
    size_t n = self.u.s->len;
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        int which = name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3;
        if (nargs > 0 && args[0].t == CV_STR) *out = chat_strip(s, n, args[0].u.s->data, args[0].u.s->len, which);
        else *out = chat_strip(s, n, NULL, 0, which);
    } else if (!strcmp(name, "split")) {
        const char *sep = NULL;
        size_t sn = 0;
        int64_t maxsplit = -1;
        if (nargs > 0 && args[0].t == CV_STR) { sep = args[0].u.s->data; sn = args[0].u.s->len; }
        if (nargs > 1 && args[1].t == CV_INT) maxsplit = args[1].u.i;
        for (int k = 0; k < nkw; k++) {
            if (!strcmp(kwn[k], "sep") && kwv[k].t == CV_STR) { sep = kwv[k].u.s->data; sn = kwv[k].u.s->len; }
            if (!strcmp(kwn[k], "maxsplit") && kwv[k].t == CV_INT) maxsplit = kwv[k].u.i;
        }
        if (sep && sn == 0) { *rc = chat_rerr(r, at, HL_EINVAL, "str.split: empty separator"); return 1; }
        *out = split(s, n, sep, sn, maxsplit);
    } else if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        int end = name[0] == 'e';
        if (nargs < 1) { *rc = chat_rerr(r, at, HL_EINVAL, "str.%s() takes at least 1 argument", name); return 1; }
        int hit = 0;
        if (args[0].t == CV_STR) hit = prefix_match(self, args[0], end);
        else if (args[0].t == CV_LIST) {
            for (size_t i = 0; i < args[0].u.l->n; i++)
                if (args[0].u.l->v[i].t == CV_STR && prefix_match(self, args[0].u.l->v[i], end)) hit = 1;
        } else { *rc = chat_rerr(r, at, HL_EINVAL, "%s first arg must be str or a tuple of str, not %s", name, cv_type_name(args[0])); return 1; }
        *out = cv_bool(hit);
    } else if (!strcmp(name, "upper")) *out = chat_case(s, n, 1);
    else if (!strcmp(name, "lower")) *out = chat_case(s, n, 0);
    else if (!strcmp(name, "capitalize")) *out = chat_case(s, n, 2);
    else if (!strcmp(name, "title")) *out = chat_case(s, n, 3);
    else if (!strcmp(name, "replace")) {
        cv o, w;
        if ((*rc = str_arg(r, at, args, nargs, 0, name, &o)) || (*rc = str_arg(r, at, args, nargs, 1, name, &w))) return 1;
        int64_t count = nargs > 2 && args[2].t == CV_INT ? args[2].u.i : -1;
        *out = chat_replace(s, n, o.u.s->data, o.u.s->len, w.u.s->data, w.u.s->len, count, r->lim.max_output);
    } else if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") || !strcmp(name, "count")) {
        if ((*rc = str_arg(r, at, args, nargs, 0, name, &a0))) return 1;
        const char *nd = a0.u.s->data;
        size_t nn = a0.u.s->len;
        int64_t pos = -1, cnt = 0;
        for (size_t i = 0; i + nn <= n; i++)
            if (memcmp(s + i, nd, nn) == 0) {
                if (pos < 0 || name[0] == 'r') pos = (int64_t)i;
                cnt++;
                if (name[0] == 'c' && nn) i += nn - 1;
                if (name[0] != 'r' && name[0] != 'c') break;
            }
        if (!strcmp(name, "count")) *out = cv_int(cnt);
        else if (pos < 0 && name[0] == 'i') { *rc = chat_rerr(r, at, HL_EINVAL, "substring not found"); return 1; }
        else *out = cv_int(pos < 0 ? -1 : (int64_t)cv_u8_len(s, (size_t)pos));
    } else if (!strcmp(name, "join")) {
        if (nargs < 1) { *rc = chat_rerr(r, at, HL_EINVAL, "str.join() takes exactly one argument"); return 1; }
        cv items;
        if ((*rc = chat_iterate(r, at, args[0], &items))) return 1;
        hl_buf b = {0};
        for (size_t i = 0; i < items.u.l->n; i++) {
            if (items.u.l->v[i].t != CV_STR) {
                cv_unref(items);
                hl_buf_free(&b);
                *rc = chat_rerr(r, at, HL_EINVAL, "sequence item %zu: expected str instance, %s found", i, cv_type_name(items.u.l->v[i]));
                return 1;
            }
            if (i) hl_buf_append(&b, s, n);
            cv_to_str(&b, items.u.l->v[i]);
        }
        cv_unref(items);
        *out = mkstr(&b);
    } else if (!strcmp(name, "format")) {
        *rc = str_format(r, at, self, args, nargs, kwn, kwv, nkw, out);
        return 1;
    } else if (!strcmp(name, "splitlines")) *out = splitlines(s, n);
    else { /* is* predicates, per code point */
        int ascii = 1;
        for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
        locale_t loc = ascii ? (locale_t)0 : newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        int ok = n > 0, cased = 0;
        for (size_t i = 0, l; i < n; i += l) {
            uint32_t c = cp_at(s, n, i, &l);
            int lo, up, al, dg;
            if (c < 0x80) { lo = islower((int)c) != 0; up = isupper((int)c) != 0; al = isalpha((int)c) != 0; dg = isdigit((int)c) != 0; }
            else if (loc && c != 0xFFFFFFFFu) {
                lo = iswlower_l((wint_t)c, loc) != 0; up = iswupper_l((wint_t)c, loc) != 0;
                al = iswalpha_l((wint_t)c, loc) != 0; dg = 0;
            } else { lo = up = al = dg = 0; }
            if (!strcmp(name, "isdigit")) ok &= dg;
            else if (!strcmp(name, "isalpha")) ok &= al;
            else if (!strcmp(name, "isalnum")) ok &= al || dg;
            else if (!strcmp(name, "isspace")) ok &= py_space_cp(c);
            else if (!strcmp(name, "islower")) { ok &= !up; cased |= lo; }
            else if (!strcmp(name, "isupper")) { ok &= !lo; cased |= up; }
        }
        if (loc) freelocale(loc);
        if (!strcmp(name, "islower") || !strcmp(name, "isupper")) ok = n > 0 && ok && cased;
        *out = cv_bool(ok);
    }
    if (cv_is_oom(*out)) *rc = oom(r);
    return 1;
}

/* ---- comparison, iteration ------------------------------------------------ */

static int is_num(cv v) { return v.t == CV_INT || v.t == CV_FLOAT || v.t == CV_BOOL; }

/* three-way compare for <, sorting, min/max; -2 when the types do not order */
int chat_order(cv a, cv b, int fold_case) {
    if (is_num(a) && is_num(b)) {
        if (a.t != CV_FLOAT && b.t != CV_FLOAT) {
            int64_t x = a.t == CV_INT ? a.u.i : a.u.b, y = b.t == CV_INT ? b.u.i : b.u.b;
            return x < y ? -1 : x > y;
        }
        double x = a.t == CV_FLOAT ? a.u.f : a.t == CV_INT ? (double)a.u.i : a.u.b;
        double y = b.t == CV_FLOAT ? b.u.f : b.t == CV_INT ? (double)b.u.i : b.u.b;
        return x < y ? -1 : x > y;
    }
    if (a.t == CV_STR && b.t == CV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        for (size_t i = 0; i < n; i++) {
            unsigned char x = (unsigned char)a.u.s->data[i], y = (unsigned char)b.u.s->data[i];
            if (fold_case) { x = (unsigned char)tolower(x); y = (unsigned char)tolower(y); }
            if (x != y) return x < y ? -1 : 1;
        }
        return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
    }
    if (a.t == CV_LIST && b.t == CV_LIST && !a.u.l->gen && !b.u.l->gen && a.u.l->tuple == b.u.l->tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (cv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return chat_order(a.u.l->v[i], b.u.l->v[i], fold_case);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    return -2;
}

int chat_compare(crender *r, const cnode *at, int op, cv a, cv b, int *out) {
    if (op == COP_EQ || op == COP_NE) {
        *out = cv_equal(a, b) == (op == COP_EQ);
        return 0;
    }
    if (op == COP_IN || op == COP_NOTIN) {
        int hit = 0;
        if (b.t == CV_STR) {
            if (a.t != CV_STR) return chat_rerr(r, at, HL_EINVAL, "'in <string>' requires string as left operand, not %s", cv_type_name(a));
            hit = memmem_(b.u.s->data, b.u.s->len, a.u.s->data, a.u.s->len) != NULL;
        } else if (b.t == CV_LIST) {
            for (size_t i = 0; i < b.u.l->n && !hit; i++) hit = cv_equal(a, b.u.l->v[i]);
        } else if (b.t == CV_DICT || b.t == CV_NS) {
            if (a.t == CV_LIST || a.t == CV_DICT || a.t == CV_NS)
                return chat_rerr(r, at, HL_EINVAL, "unhashable type: '%s'", cv_type_name(a));
            hit = cv_dict_find(b, a) != NULL;
        } else if (b.t != CV_UNDEF) {
            return chat_rerr(r, at, HL_EINVAL, "argument of type '%s' is not iterable", cv_type_name(b));
        }
        *out = hit == (op == COP_IN);
        return 0;
    }
    if (a.t == CV_UNDEF || b.t == CV_UNDEF)
        return chat_rerr(r, at, HL_EINVAL, "'%s' is undefined", a.t == CV_UNDEF ? (a.u.uname ? a.u.uname : "value") : (b.u.uname ? b.u.uname : "value"));
    int c = chat_order(a, b, 0);
    static const char *const ops[] = {"<", "<=", ">", ">="};
    if (c == -2)
        return chat_rerr(r, at, HL_EINVAL, "'%s' not supported between instances of '%s' and '%s'", ops[op - COP_LT],
                         cv_type_name(a), cv_type_name(b));
    *out = op == COP_LT ? c < 0 : op == COP_LE ? c <= 0 : op == COP_GT ? c > 0 : c >= 0;
    return 0;
}

int chat_iterate(crender *r, const cnode *at, cv v, cv *out) {
    if (v.t == CV_LIST && !v.u.l->gen) { *out = cv_ref(v); return 0; }
    if (v.t == CV_LIST) { /* consuming a generator gives a plain list */
        cv l = cv_list_new(v.u.l->n);
        if (l.t != CV_LIST) return oom(r);
        for (size_t i = 0; i < v.u.l->n; i++) cv_list_push(l, cv_ref(v.u.l->v[i]));
        *out = l;
        return 0;
    }
    cv l = cv_list_new(0);
    if (l.t != CV_LIST) return oom(r);
    if (v.t == CV_DICT || v.t == CV_NS) {
        for (size_t i = 0; i < v.u.d->n; i++) cv_list_push(l, cv_ref(v.u.d->k[i]));
    } else if (v.t == CV_STR) {
        const char *s = v.u.s->data;
        size_t n = v.u.s->len, i = 0;
        while (i < n) {
            size_t j = i + 1;
            while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80) j++;
            if (cv_list_push(l, cv_str_new(s + i, j - i))) { cv_unref(l); return oom(r); }
            i = j;
        }
    } else if (v.t != CV_UNDEF) {
        cv_unref(l);
        return chat_rerr(r, at, HL_EINVAL, "'%s' object is not iterable", cv_type_name(v));
    }
    *out = l;
    return 0;
}

/* ---- globals ------------------------------------------------------------------ */

int chat_global_lookup(const char *name) {
    if (!strcmp(name, "range")) return CF_RANGE;
    if (!strcmp(name, "namespace")) return CF_NAMESPACE;
    if (!strcmp(name, "raise_exception")) return CF_RAISE;
    if (!strcmp(name, "strftime_now")) return CF_STRFTIME;
    if (!strcmp(name, "dict")) return CF_DICT;
    return -1;
}

int chat_global(crender *r, const cnode *at, int fn, cv *args, int nargs, const char **kwn, cv *kwv, int nkw,
                cv *out) {
    switch (fn) {
    case CF_RANGE: {
        int64_t a = 0, b = 0, st = 1;
        for (int i = 0; i < nargs; i++)
            if (args[i].t != CV_INT && args[i].t != CV_BOOL)
                return chat_rerr(r, at, HL_EINVAL, "range() arguments must be integers, not %s", cv_type_name(args[i]));
        if (nargs == 1) b = args[0].u.i;
        else if (nargs == 2 || nargs == 3) {
            a = args[0].u.i;
            b = args[1].u.i;
            if (nargs == 3) st = args[2].u.i;
        } else return chat_rerr(r, at, HL_EINVAL, "range expected 1 to 3 arguments, got %d", nargs);
        if (st == 0) return chat_rerr(r, at, HL_EINVAL, "range() arg 3 must not be zero");
        int64_t cnt = st > 0 ? (b > a ? (b - a + st - 1) / st : 0) : (a > b ? (a - b - st - 1) / -st : 0);
        if (cnt > 100000) /* jinja2's sandbox refuses the same */
            return chat_rerr(r, at, HL_ERANGE, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        cv l = cv_list_new((size_t)cnt);
        if (l.t != CV_LIST) return oom(r);
        for (int64_t i = 0; i < cnt; i++) cv_list_push(l, cv_int(a + i * st));
        *out = l;
        return 0;
    }
    case CF_NAMESPACE:
    case CF_DICT: {
        cv d = cv_dict_new();
        if (d.t != CV_DICT) return oom(r);
        for (int i = 0; i < nargs; i++) {
            if (args[i].t != CV_DICT) { cv_unref(d); return chat_rerr(r, at, HL_EINVAL, "namespace()/dict() positional argument must be a dict"); }
            for (size_t k = 0; k < args[i].u.d->n; k++) cv_dict_set(d, cv_ref(args[i].u.d->k[k]), cv_ref(args[i].u.d->v[k]));
        }
        for (int i = 0; i < nkw; i++) cv_dict_set(d, cv_str_cstr(kwn[i]), cv_ref(kwv[i]));
        if (fn == CF_NAMESPACE) d.t = CV_NS;
        *out = d;
        return 0;
    }
    case CF_RAISE: {
        hl_buf b = {0};
        if (nargs > 0) cv_to_str(&b, args[0]);
        int rc = hl_err_set(r->err, HL_EINVAL, "template error: %s", b.data ? b.data : "");
        hl_buf_free(&b);
        return rc;
    }
    case CF_STRFTIME: {
        if (nargs < 1 || args[0].t != CV_STR) return chat_rerr(r, at, HL_EINVAL, "strftime_now(format) needs a string");
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char buf[512];
        size_t k = strftime(buf, sizeof buf, args[0].u.s->data, &tm);
        *out = cv_str_new(buf, k);
        return cv_is_oom(*out) ? oom(r) : 0;
    }
    }
    return chat_rerr(r, at, HL_ENOTSUP, "unsupported function");
}
