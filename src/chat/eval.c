/* The evaluator: walks the syntax tree with a chain of variable scopes and
 * writes text into a buffer. Scoping follows jinja2: a for loop gives every
 * iteration a fresh scope (assignments inside do not leak out, and reads
 * before an assignment see the outer value), `if` opens none, macros see the
 * render's top-level variables at call time. Every value is refcounted; every
 * function that produces a cv hands the caller one reference. Limits on loop
 * iterations, call depth and output size turn runaway templates into errors. */
#include "chat/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cscope {
    cscope *parent;
    int n, cap;
    char **names; /* owned copies */
    cv *vals;     /* owned references */
};

static void scope_free(cscope *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->names[i]);
        cv_unref(s->vals[i]);
    }
    free(s->names);
    free(s->vals);
}

static cv *scope_find_local(cscope *s, const char *name) {
    for (int i = s->n - 1; i >= 0; i--)
        if (strcmp(s->names[i], name) == 0) return &s->vals[i];
    return NULL;
}

static cv *scope_find(cscope *s, const char *name) {
    for (; s; s = s->parent) {
        cv *v = scope_find_local(s, name);
        if (v) return v;
    }
    return NULL;
}

/* Takes ownership of v. */
static int scope_set(cscope *s, const char *name, cv v) {
    cv *slot = scope_find_local(s, name);
    if (slot) {
        cv_unref(*slot);
        *slot = v;
        return 0;
    }
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 8;
        char **nn = realloc(s->names, (size_t)nc * sizeof *nn);
        if (!nn) { cv_unref(v); return HL_ENOMEM; }
        s->names = nn;
        cv *nv = realloc(s->vals, (size_t)nc * sizeof *nv);
        if (!nv) { cv_unref(v); return HL_ENOMEM; }
        s->vals = nv;
        s->cap = nc;
    }
    char *d = strdup(name);
    if (!d) { cv_unref(v); return HL_ENOMEM; }
    s->names[s->n] = d;
    s->vals[s->n] = v;
    s->n++;
    return 0;
}

int chat_rerr(crender *r, const cnode *at, int code, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) return hl_err_set(r->err, code, "template line %d, column %d: %s", at->line, at->col, msg);
    return hl_err_set(r->err, code, "%s", msg);
}

static int oom(crender *r) { return hl_err_set(r->err, HL_ENOMEM, "out of memory while rendering the template"); }

static int undef_err(crender *r, const cnode *at, cv v) {
    return chat_rerr(r, at, HL_EINVAL, "'%s' is undefined", v.u.uname ? v.u.uname : "value");
}

static int ev(crender *r, cscope *s, const cnode *n, cv *out);

/* Counts the size of a value just built against the render's work budget, so
 * a loop that keeps rebuilding big strings or lists stops with an error
 * instead of running for minutes. On failure *v is released. */
static int charge(crender *r, const cnode *at, int rc, cv *v) {
    if (rc) return rc;
    size_t w = v->t == CV_STR ? v->u.s->len : v->t == CV_LIST ? v->u.l->n * sizeof(cv)
             : (v->t == CV_DICT || v->t == CV_NS) ? v->u.d->n * 2 * sizeof(cv) : 0;
    r->work += w;
    if (r->work > r->lim.max_work) {
        cv_unref(*v);
        *v = cv_none();
        return chat_rerr(r, at, HL_ERANGE, "template builds more than %zu bytes of strings and lists (runaway template?)",
                         r->lim.max_work);
    }
    return 0;
}

static int check_out(crender *r, const cnode *at, hl_buf *out) {
    if (out->oom) return oom(r);
    if (out->len > r->lim.max_output)
        return chat_rerr(r, at, HL_ERANGE, "rendered text exceeds the limit of %zu bytes", r->lim.max_output);
    return 0;
}

/* ---- arithmetic --------------------------------------------------------------- */

static int is_num(cv v) { return v.t == CV_INT || v.t == CV_FLOAT || v.t == CV_BOOL; }
static double as_f(cv v) { return v.t == CV_FLOAT ? v.u.f : v.t == CV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t as_i(cv v) { return v.t == CV_INT ? v.u.i : v.u.b; }

static const char *op_str(int op) {
    static const char *const s[] = {"?", "+", "-", "*", "/", "//", "%", "**", "~"};
    return op >= 1 && op <= 8 ? s[op] : "?";
}

/* "fmt" % args for the conversions templates use: %s %r %d %i %f %.Nf %% */
static int str_percent(crender *r, const cnode *at, cv fmt, cv args, cv *out) {
    cv one = args;
    cv *av = &one;
    size_t na = 1, ai = 0;
    if (args.t == CV_LIST && args.u.l->tuple) { av = args.u.l->v; na = args.u.l->n; }
    hl_buf b = {0};
    const char *s = fmt.u.s->data;
    size_t n = fmt.u.s->len;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (s[i] != '%') { hl_buf_putc(&b, s[i]); continue; }
        if (++i >= n) { rc = chat_rerr(r, at, HL_EINVAL, "incomplete format"); break; }
        int prec = -1;
        if (s[i] == '.') {
            prec = 0;
            while (++i < n && s[i] >= '0' && s[i] <= '9') prec = prec * 10 + (s[i] - '0');
            if (i >= n || prec > 50) { rc = chat_rerr(r, at, HL_EINVAL, "incomplete format"); break; }
        }
        char c = s[i];
        if (c == '%') { hl_buf_putc(&b, '%'); continue; }
        if (ai >= na) { rc = chat_rerr(r, at, HL_EINVAL, "not enough arguments for format string"); break; }
        cv v = av[ai++];
        if (c == 's' && prec < 0) cv_to_str(&b, v);
        else if (c == 'r' && prec < 0) cv_repr(&b, v);
        else if ((c == 'd' || c == 'i') && prec < 0 && is_num(v))
            hl_buf_printf(&b, "%lld", (long long)(v.t == CV_FLOAT ? (int64_t)v.u.f : as_i(v)));
        else if (c == 'f' && is_num(v)) hl_buf_printf(&b, "%.*f", prec < 0 ? 6 : prec, as_f(v));
        else rc = chat_rerr(r, at, HL_ENOTSUP, "unsupported %% format '%c' (or argument type %s)", c, cv_type_name(v));
    }
    /* Python lets a list or dict argument go unused (it could be a mapping) */
    if (!rc && ai < na && !(av == &one && (args.t == CV_LIST || args.t == CV_DICT))) rc = chat_rerr(r, at, HL_EINVAL, "not all arguments converted during string formatting");
    if (!rc && b.oom) rc = oom(r);
    if (!rc) {
        *out = cv_str_new(b.data ? b.data : "", b.len);
        if (cv_is_oom(*out)) rc = oom(r);
    }
    hl_buf_free(&b);
    return rc;
}

static int binop(crender *r, const cnode *at, int op, cv a, cv b, cv *out) {
    if (op == COP_CONCAT) {
        hl_buf t = {0};
        cv_to_str(&t, a);
        cv_to_str(&t, b);
        if (t.oom) { hl_buf_free(&t); return oom(r); }
        if (t.len > r->lim.max_output) { hl_buf_free(&t); return chat_rerr(r, at, HL_ERANGE, "string exceeds the output limit"); }
        *out = cv_str_new(t.data ? t.data : "", t.len);
        hl_buf_free(&t);
        return cv_is_oom(*out) ? oom(r) : 0;
    }
    if (a.t == CV_UNDEF) return undef_err(r, at, a);
    if (b.t == CV_UNDEF) return undef_err(r, at, b);
    if (is_num(a) && is_num(b)) {
        int fl = a.t == CV_FLOAT || b.t == CV_FLOAT;
        if (!fl) {
            int64_t x = as_i(a), y = as_i(b), z;
            switch (op) {
            case COP_ADD: if (__builtin_add_overflow(x, y, &z)) goto ovf; *out = cv_int(z); return 0;
            case COP_SUB: if (__builtin_sub_overflow(x, y, &z)) goto ovf; *out = cv_int(z); return 0;
            case COP_MUL: if (__builtin_mul_overflow(x, y, &z)) goto ovf; *out = cv_int(z); return 0;
            case COP_DIV:
                if (y == 0) return chat_rerr(r, at, HL_EINVAL, "division by zero");
                *out = cv_float((double)x / (double)y);
                return 0;
            case COP_FLOORDIV:
            case COP_MOD: {
                if (y == 0) return chat_rerr(r, at, HL_EINVAL, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) goto ovf;
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
                *out = cv_int(op == COP_MOD ? m : q);
                return 0;
            }
            case COP_POW:
                if (y >= 0) {
                    int64_t acc = 1;
                    for (int64_t i = 0; i < y; i++) {
                        if (__builtin_mul_overflow(acc, x, &acc)) goto ovf;
                        if (acc == 0 || acc == 1) break;
                    }
                    if (acc == 1 && x == -1) acc = (y % 2) ? -1 : 1;
                    *out = cv_int(acc);
                    return 0;
                }
                *out = cv_float(pow((double)x, (double)y));
                return 0;
            }
        } else {
            double x = as_f(a), y = as_f(b);
            switch (op) {
            case COP_ADD: *out = cv_float(x + y); return 0;
            case COP_SUB: *out = cv_float(x - y); return 0;
            case COP_MUL: *out = cv_float(x * y); return 0;
            case COP_DIV:
                if (y == 0) return chat_rerr(r, at, HL_EINVAL, "float division by zero");
                *out = cv_float(x / y);
                return 0;
            case COP_FLOORDIV:
            case COP_MOD: {
                if (y == 0) return chat_rerr(r, at, HL_EINVAL, "float modulo by zero");
                /* Python's float divmod */
                double m = fmod(x, y), d = (x - m) / y, q;
                if (m != 0) {
                    if ((y < 0) != (m < 0)) { m += y; d -= 1.0; }
                } else m = copysign(0.0, y);
                if (d != 0) {
                    q = floor(d);
                    if (d - q > 0.5) q += 1.0;
                } else q = copysign(0.0, x / y);
                *out = cv_float(op == COP_MOD ? m : q);
                return 0;
            }
            case COP_POW: *out = cv_float(pow(x, y)); return 0;
            }
        }
    }
    if (op == COP_MOD && a.t == CV_STR) return str_percent(r, at, a, b, out);
    if (op == COP_ADD && a.t == CV_STR && b.t == CV_STR) {
        size_t n = a.u.s->len + b.u.s->len;
        if (n > r->lim.max_output) return chat_rerr(r, at, HL_ERANGE, "string exceeds the output limit");
        cv_str *p = malloc(sizeof *p + n + 1);
        if (!p) return oom(r);
        p->rc = 1;
        p->len = n;
        memcpy(p->data, a.u.s->data, a.u.s->len);
        memcpy(p->data + a.u.s->len, b.u.s->data, b.u.s->len);
        p->data[n] = 0;
        out->t = CV_STR;
        out->u.s = p;
        return 0;
    }
    if (op == COP_ADD && a.t == CV_LIST && b.t == CV_LIST && !a.u.l->gen && !b.u.l->gen) {
        if (a.u.l->tuple != b.u.l->tuple)
            return chat_rerr(r, at, HL_EINVAL, "can only concatenate %s (not \"%s\") to %s", a.u.l->tuple ? "tuple" : "list",
                             b.u.l->tuple ? "tuple" : "list", a.u.l->tuple ? "tuple" : "list");
        cv l = cv_list_new(a.u.l->n + b.u.l->n);
        if (l.t != CV_LIST) return oom(r);
        l.u.l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++) cv_list_push(l, cv_ref(a.u.l->v[i]));
        for (size_t i = 0; i < b.u.l->n; i++) cv_list_push(l, cv_ref(b.u.l->v[i]));
        *out = l;
        return 0;
    }
    if (op == COP_MUL && ((a.t == CV_LIST && !a.u.l->gen && (b.t == CV_INT || b.t == CV_BOOL)) ||
                          (b.t == CV_LIST && !b.u.l->gen && (a.t == CV_INT || a.t == CV_BOOL)))) {
        cv src = a.t == CV_LIST ? a : b;
        int64_t k = a.t == CV_LIST ? as_i(b) : as_i(a);
        if (k < 0) k = 0;
        if (src.u.l->n && (uint64_t)k > 1000000 / src.u.l->n)
            return chat_rerr(r, at, HL_ERANGE, "list repetition longer than 1000000 items");
        cv l = cv_list_new(0);
        if (l.t != CV_LIST) return oom(r);
        l.u.l->tuple = src.u.l->tuple;
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < src.u.l->n; j++)
                if (cv_list_push(l, cv_ref(src.u.l->v[j]))) { cv_unref(l); return oom(r); }
        *out = l;
        return 0;
    }
    if (op == COP_MUL && ((a.t == CV_STR && (b.t == CV_INT || b.t == CV_BOOL)) || (b.t == CV_STR && (a.t == CV_INT || a.t == CV_BOOL)))) {
        cv s = a.t == CV_STR ? a : b;
        int64_t k = a.t == CV_STR ? as_i(b) : as_i(a);
        if (k < 0) k = 0;
        if (s.u.s->len && (uint64_t)k > r->lim.max_output / s.u.s->len)
            return chat_rerr(r, at, HL_ERANGE, "string exceeds the output limit");
        hl_buf t = {0};
        for (int64_t i = 0; i < k; i++) hl_buf_append(&t, s.u.s->data, s.u.s->len);
        if (t.oom) { hl_buf_free(&t); return oom(r); }
        *out = cv_str_new(t.data ? t.data : "", t.len);
        hl_buf_free(&t);
        return cv_is_oom(*out) ? oom(r) : 0;
    }
    return chat_rerr(r, at, HL_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'", op_str(op), cv_type_name(a),
                     cv_type_name(b));
ovf:
    return chat_rerr(r, at, HL_ERANGE, "integer overflow in '%s'", op_str(op));
}

/* ---- attribute and item access ------------------------------------------- */

static cv loop_attr(cv_loop *L, const char *name, const char *uname_hint) {
    size_t n = L->items.u.l->n, i = L->idx;
    if (!strcmp(name, "index")) return cv_int((int64_t)i + 1);
    if (!strcmp(name, "index0")) return cv_int((int64_t)i);
    if (!strcmp(name, "revindex")) return cv_int((int64_t)(n - i));
    if (!strcmp(name, "revindex0")) return cv_int((int64_t)(n - i - 1));
    if (!strcmp(name, "first")) return cv_bool(i == 0);
    if (!strcmp(name, "last")) return cv_bool(i + 1 == n);
    if (!strcmp(name, "length")) return cv_int((int64_t)n);
    if (!strcmp(name, "depth")) return cv_int(L->depth);
    if (!strcmp(name, "depth0")) return cv_int(L->depth - 1);
    if (!strcmp(name, "previtem")) return i > 0 ? cv_ref(L->items.u.l->v[i - 1]) : cv_undef("there is no previous item");
    if (!strcmp(name, "nextitem")) return i + 1 < n ? cv_ref(L->items.u.l->v[i + 1]) : cv_undef("there is no next item");
    return cv_undef(uname_hint);
}

/* obj.name: jinja2 tries the attribute first, then the item */
static int getattr(crender *r, const cnode *at, cv obj, const char *name, cv *out) {
    if (obj.t == CV_UNDEF) return undef_err(r, at, obj);
    if (obj.t == CV_DICT || obj.t == CV_NS) {
        cv *v = cv_dict_get(obj, name, strlen(name));
        *out = v ? cv_ref(*v) : cv_undef(name);
        return 0;
    }
    if (obj.t == CV_LOOP) {
        *out = loop_attr(obj.u.loop, name, name);
        return 0;
    }
    *out = cv_undef(name);
    return 0;
}

static int norm_index(int64_t i, size_t n, size_t *out) {
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return 0;
    *out = (size_t)i;
    return 1;
}

static int getitem(crender *r, const cnode *at, cv obj, cv key, cv *out) {
    if (obj.t == CV_UNDEF) return undef_err(r, at, obj);
    if (obj.t == CV_LIST && obj.u.l->gen) return chat_rerr(r, at, HL_EINVAL, "'generator' object is not subscriptable");
    if ((obj.t == CV_LIST || obj.t == CV_STR) && (key.t == CV_INT || key.t == CV_BOOL)) {
        size_t i;
        if (obj.t == CV_LIST) {
            *out = norm_index(as_i(key), obj.u.l->n, &i) ? cv_ref(obj.u.l->v[i]) : cv_undef("index out of range");
            return 0;
        }
        size_t n = cv_u8_len(obj.u.s->data, obj.u.s->len);
        if (!norm_index(as_i(key), n, &i)) { *out = cv_undef("index out of range"); return 0; }
        size_t b = cv_u8_offset(obj.u.s->data, obj.u.s->len, i), e = cv_u8_offset(obj.u.s->data, obj.u.s->len, i + 1);
        *out = cv_str_new(obj.u.s->data + b, e - b);
        return cv_is_oom(*out) ? oom(r) : 0;
    }
    if (obj.t == CV_DICT || obj.t == CV_NS) {
        cv *v = cv_dict_find(obj, key);
        *out = v ? cv_ref(*v) : cv_undef("missing key");
        return 0;
    }
    if (obj.t == CV_LOOP && key.t == CV_STR) {
        *out = loop_attr(obj.u.loop, key.u.s->data, "loop attribute");
        return 0;
    }
    *out = cv_undef("item");
    return 0;
}

static int slice_bound(crender *r, cscope *s, const cnode *n, int64_t *v, int *set) {
    *set = 0;
    if (!n) return 0;
    cv x;
    int rc = ev(r, s, n, &x);
    if (rc) return rc;
    if (x.t == CV_NONE) return 0;
    if (x.t != CV_INT && x.t != CV_BOOL) {
        cv_unref(x);
        return chat_rerr(r, n, HL_EINVAL, "slice indices must be integers or None");
    }
    *v = as_i(x);
    *set = 1;
    return 0;
}

static int do_slice(crender *r, cscope *s, const cnode *n, cv obj, cv *out) {
    int64_t a = 0, b = 0, st = 1;
    int has_a, has_b, has_st, rc;
    if ((rc = slice_bound(r, s, n->b, &a, &has_a)) || (rc = slice_bound(r, s, n->c, &b, &has_b)) ||
        (rc = slice_bound(r, s, n->d, &st, &has_st)))
        return rc;
    if (!has_st) st = 1;
    if (st == 0) return chat_rerr(r, n, HL_EINVAL, "slice step cannot be zero");
    if (obj.t == CV_UNDEF) return undef_err(r, n, obj);
    if ((obj.t != CV_LIST && obj.t != CV_STR) || (obj.t == CV_LIST && obj.u.l->gen))
        return chat_rerr(r, n, HL_EINVAL, "'%s' object is not subscriptable", cv_type_name(obj));
    int64_t len = obj.t == CV_LIST ? (int64_t)obj.u.l->n : (int64_t)cv_u8_len(obj.u.s->data, obj.u.s->len);
    /* Python's slice.indices() */
    int64_t lo = st < 0 ? -1 : 0, hi = st < 0 ? len - 1 : len;
    if (!has_a) a = st < 0 ? hi : lo;
    else { if (a < 0) { a += len; if (a < lo) a = lo; } else if (a > hi) a = hi; }
    if (!has_b) b = st < 0 ? lo : hi;
    else { if (b < 0) { b += len; if (b < lo) b = lo; } else if (b > hi) b = hi; }
    if (obj.t == CV_LIST) {
        cv l = cv_list_new(0);
        if (l.t != CV_LIST) return oom(r);
        l.u.l->tuple = obj.u.l->tuple;
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
            if (cv_list_push(l, cv_ref(obj.u.l->v[i]))) { cv_unref(l); return oom(r); }
        *out = l;
        return 0;
    }
    hl_buf t = {0};
    const char *d = obj.u.s->data;
    size_t dn = obj.u.s->len;
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
        size_t x = cv_u8_offset(d, dn, (size_t)i), y = cv_u8_offset(d, dn, (size_t)i + 1);
        hl_buf_append(&t, d + x, y - x);
    }
    if (t.oom) { hl_buf_free(&t); return oom(r); }
    *out = cv_str_new(t.data ? t.data : "", t.len);
    hl_buf_free(&t);
    return cv_is_oom(*out) ? oom(r) : 0;
}

/* ---- calls ------------------------------------------------------------------- */

typedef struct argv_ {
    cv pos[16];
    cv kw[16];
    int np, nk;
} argv_;

static void args_free(argv_ *a) {
    for (int i = 0; i < a->np; i++) cv_unref(a->pos[i]);
    for (int i = 0; i < a->nk; i++) cv_unref(a->kw[i]);
}

static int eval_args(crender *r, cscope *s, const cnode *n, argv_ *a) {
    a->np = a->nk = 0;
    if (n->n_items > 16 || n->n_kw > 16) return chat_rerr(r, n, HL_ENOTSUP, "more than 16 arguments in one call");
    for (int i = 0; i < n->n_items; i++) {
        int rc = ev(r, s, n->items[i], &a->pos[a->np]);
        if (rc) { args_free(a); return rc; }
        a->np++;
    }
    for (int i = 0; i < n->n_kw; i++) {
        int rc = ev(r, s, n->kw_vals[i], &a->kw[a->nk]);
        if (rc) { args_free(a); return rc; }
        a->nk++;
    }
    return 0;
}

static int call_value(crender *r, cscope *s, const cnode *n, cv callee, argv_ *a, cv *out) {
    if (callee.t == CV_MACRO)
        return chat_call_macro(r, n, callee.u.macro, a->pos, a->np, n->kw_names, a->kw, a->nk, NULL, out);
    if (callee.t == CV_FUNC) return chat_global(r, n, callee.u.fn, a->pos, a->np, n->kw_names, a->kw, a->nk, out);
    if (callee.t == CV_UNDEF) return undef_err(r, n, callee);
    return chat_rerr(r, n, HL_EINVAL, "'%s' object is not callable", cv_type_name(callee));
}

static int eval_call(crender *r, cscope *s, const cnode *n, cv *out) {
    argv_ a;
    int rc;
    if (n->a->k == CN_GETATTR) {
        cv obj;
        if ((rc = ev(r, s, n->a->a, &obj))) return rc;
        if (obj.t != CV_UNDEF && chat_is_method(obj, n->a->name)) {
            if ((rc = eval_args(r, s, n, &a))) { cv_unref(obj); return rc; }
            int mrc = 0;
            chat_method(r, n, obj, n->a->name, a.pos, a.np, n->kw_names, a.kw, a.nk, out, &mrc);
            args_free(&a);
            cv_unref(obj);
            return charge(r, n, mrc, out);
        }
        cv callee;
        rc = getattr(r, n->a, obj, n->a->name, &callee);
        cv_unref(obj);
        if (rc) return rc;
        if ((rc = eval_args(r, s, n, &a))) { cv_unref(callee); return rc; }
        rc = charge(r, n, call_value(r, s, n, callee, &a, out), out);
        args_free(&a);
        cv_unref(callee);
        return rc;
    }
    cv callee;
    if ((rc = ev(r, s, n->a, &callee))) return rc;
    if ((rc = eval_args(r, s, n, &a))) { cv_unref(callee); return rc; }
    rc = charge(r, n, call_value(r, s, n, callee, &a, out), out);
    args_free(&a);
    cv_unref(callee);
    return rc;
}

/* applies a filter chain whose innermost operand is NULL to `in` (borrowed) */
static int apply_filters(crender *r, cscope *s, const cnode *f, cv in, cv *out) {
    cv base;
    int rc;
    if (f->a) {
        if ((rc = apply_filters(r, s, f->a, in, &base))) return rc;
    } else base = cv_ref(in);
    argv_ a;
    if ((rc = eval_args(r, s, f, &a))) { cv_unref(base); return rc; }
    rc = charge(r, f, chat_filter(r, f, f->name, base, a.pos, a.np, f->kw_names, a.kw, a.nk, out), out);
    args_free(&a);
    cv_unref(base);
    return rc;
}

static int ev(crender *r, cscope *s, const cnode *n, cv *out) {
    int rc;
    cv a, b;
    switch (n->k) {
    case CN_CONST: *out = n->val; return 0; /* immortal or scalar */
    case CN_NAME: {
        cv *v = scope_find(s, n->name);
        if (v) { *out = cv_ref(*v); return 0; }
        int fn = chat_global_lookup(n->name);
        if (fn > 0) { out->t = CV_FUNC; out->u.fn = fn; return 0; }
        *out = cv_undef(n->name);
        return 0;
    }
    case CN_GETATTR:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        rc = getattr(r, n, a, n->name, out);
        cv_unref(a);
        return rc;
    case CN_GETITEM:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        if ((rc = ev(r, s, n->b, &b))) { cv_unref(a); return rc; }
        rc = getitem(r, n, a, b, out);
        cv_unref(a);
        cv_unref(b);
        return rc;
    case CN_SLICE:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        rc = do_slice(r, s, n, a, out);
        cv_unref(a);
        return rc;
    case CN_CALL: return eval_call(r, s, n, out);
    case CN_FILTER: {
        if ((rc = ev(r, s, n->a, &a))) return rc;
        argv_ args;
        if ((rc = eval_args(r, s, n, &args))) { cv_unref(a); return rc; }
        rc = charge(r, n, chat_filter(r, n, n->name, a, args.pos, args.np, n->kw_names, args.kw, args.nk, out), out);
        args_free(&args);
        cv_unref(a);
        return rc;
    }
    case CN_TEST: {
        if ((rc = ev(r, s, n->a, &a))) return rc;
        argv_ args;
        if ((rc = eval_args(r, s, n, &args))) { cv_unref(a); return rc; }
        int res = 0;
        rc = chat_test(r, n, n->name, a, args.pos, args.np, &res);
        args_free(&args);
        cv_unref(a);
        if (!rc) *out = cv_bool(n->op ? !res : res);
        return rc;
    }
    case CN_NEG:
    case CN_POS:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        if (a.t == CV_UNDEF) return undef_err(r, n, a);
        if (!is_num(a)) {
            rc = chat_rerr(r, n, HL_EINVAL, "bad operand type for unary %c: '%s'", n->k == CN_NEG ? '-' : '+', cv_type_name(a));
            cv_unref(a);
            return rc;
        }
        if (n->k == CN_POS) *out = a.t == CV_BOOL ? cv_int(a.u.b) : a;
        else if (a.t == CV_FLOAT) *out = cv_float(-a.u.f);
        else if (as_i(a) == INT64_MIN) return chat_rerr(r, n, HL_ERANGE, "integer overflow");
        else *out = cv_int(-as_i(a));
        return 0;
    case CN_NOT:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        *out = cv_bool(!cv_truthy(a));
        cv_unref(a);
        return 0;
    case CN_AND:
    case CN_OR:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        if (cv_truthy(a) == (n->k == CN_OR)) { *out = a; return 0; }
        cv_unref(a);
        return ev(r, s, n->b, out);
    case CN_BINOP:
        if ((rc = ev(r, s, n->a, &a))) return rc;
        if ((rc = ev(r, s, n->b, &b))) { cv_unref(a); return rc; }
        rc = charge(r, n, binop(r, n, n->op, a, b, out), out);
        cv_unref(a);
        cv_unref(b);
        return rc;
    case CN_CMP: {
        if ((rc = ev(r, s, n->a, &a))) return rc;
        if ((rc = ev(r, s, n->b, &b))) { cv_unref(a); return rc; }
        int res = 0;
        rc = chat_compare(r, n, n->op, a, b, &res);
        cv_unref(a);
        cv_unref(b);
        if (!rc) *out = cv_bool(res);
        return rc;
    }
    case CN_COND:
        if ((rc = ev(r, s, n->b, &a))) return rc;
        int t = cv_truthy(a);
        cv_unref(a);
        if (t) return ev(r, s, n->a, out);
        if (n->c) return ev(r, s, n->c, out);
        *out = cv_undef("the inline if-expression had no else branch");
        return 0;
    case CN_LIST:
    case CN_TUPLE: {
        cv l = cv_list_new((size_t)n->n_items);
        if (l.t != CV_LIST) return oom(r);
        l.u.l->tuple = n->k == CN_TUPLE;
        for (int i = 0; i < n->n_items; i++) {
            if ((rc = ev(r, s, n->items[i], &a))) { cv_unref(l); return rc; }
            if (cv_list_push(l, a)) { cv_unref(l); return oom(r); }
        }
        *out = l;
        return 0;
    }
    case CN_DICT: {
        cv d = cv_dict_new();
        if (d.t != CV_DICT) return oom(r);
        for (int i = 0; i < n->n_items; i++) {
            if ((rc = ev(r, s, n->items[i], &a))) { cv_unref(d); return rc; }
            if ((rc = ev(r, s, n->kw_vals[i], &b))) { cv_unref(a); cv_unref(d); return rc; }
            if (cv_dict_set(d, a, b)) { cv_unref(d); return oom(r); }
        }
        *out = d;
        return 0;
    }
    default: return chat_rerr(r, n, HL_EINVAL, "internal: node %d is not an expression", (int)n->k);
    }
}

/* ---- entry points for stmt.c ---------------------------------------------- */

int chat_ev(crender *r, cscope *s, const cnode *n, cv *out) {
    if (++r->depth > r->lim.max_depth) {
        r->depth--;
        return chat_rerr(r, n, HL_ERANGE, "template nesting deeper than %d (recursive macro?)", r->lim.max_depth);
    }
    int rc = ev(r, s, n, out);
    r->depth--;
    return rc;
}
int chat_scope_set(cscope *s, const char *name, cv v) { return scope_set(s, name, v); }
cv *chat_scope_find(cscope *s, const char *name) { return scope_find(s, name); }
void chat_scope_free(cscope *s) { scope_free(s); }
cscope *chat_scope_new(cscope *parent) {
    cscope *s = calloc(1, sizeof *s);
    if (s) s->parent = parent;
    return s;
}
void chat_scope_destroy(cscope *s) {
    if (!s) return;
    scope_free(s);
    free(s);
}
int chat_apply_filters(crender *r, cscope *s, const cnode *f, cv in, cv *out) { return apply_filters(r, s, f, in, out); }
int chat_check_out(crender *r, const cnode *at, hl_buf *out) { return check_out(r, at, out); }
int chat_unpack_err(crender *r, const cnode *at, cv v) { return undef_err(r, at, v); }
