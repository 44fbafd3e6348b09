/* Evaluating a parsed Go template over JSON data. Values are json-c objects
 * (NULL is nil); printing follows Go's fmt %v for what encoding/json decodes
 * into (float64 numbers, map[string]any printed as map[k:v] with sorted keys,
 * []any as [a b]), truthiness and comparisons follow text/template. */
#include "gotmpl/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct var {
    const char *name;
    json_object *val; /* owned reference */
} var;

typedef struct ev {
    hl_buf *out;
    hl_err *err;
    var vars[256];
    int n_vars;
    long iters;
    int failed;
    int brk, cont;
} ev;

static int efail(ev *e, const char *fmt, const char *a) {
    if (!e->failed) {
        char m[512];
        snprintf(m, sizeof m, fmt, a ? a : "");
        hl_err_set(e->err, HL_EINVAL, "template: %s", m);
    }
    e->failed = 1;
    return -1;
}

static int truth(json_object *v) {
    if (!v) return 0;
    switch (json_object_get_type(v)) {
    case json_type_boolean: return json_object_get_boolean(v);
    case json_type_int: return json_object_get_int64(v) != 0;
    case json_type_double: return json_object_get_double(v) != 0;
    case json_type_string: return json_object_get_string_len(v) > 0;
    case json_type_array: return json_object_array_length(v) > 0;
    case json_type_object: return json_object_object_length(v) > 0;
    default: return 0;
    }
}

/* Go's %v of a float64: shortest round-trip digits, %e form when the
 * exponent is < -4 or >= 21. */
static void put_float(hl_buf *b, double d) {
    if (isnan(d)) { hl_buf_puts(b, "NaN"); return; }
    if (isinf(d)) { hl_buf_puts(b, d > 0 ? "+Inf" : "-Inf"); return; }
    char s[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*e", prec - 1, d);
        if (strtod(s, NULL) == d) break;
    }
    int exp = d == 0 ? 0 : (int)floor(log10(fabs(d)));
    snprintf(s, sizeof s, "%.*e", prec - 1, d);
    char *epos = strchr(s, 'e');
    if (epos) exp = atoi(epos + 1);
    if (exp < -4 || exp >= 21) {
        /* Go: mantissa without trailing zeros, exponent at least 2 digits */
        *epos = 0;
        hl_buf_puts(b, s);
        hl_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
        return;
    }
    int decimals = prec - 1 - exp;
    if (decimals < 0) decimals = 0;
    hl_buf_printf(b, "%.*f", decimals, d);
}

static double num(json_object *v) {
    return json_object_is_type(v, json_type_int) ? (double)json_object_get_int64(v) : json_object_get_double(v);
}

static int by_key(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int sorted_keys(json_object *o, char ***out) {
    int n = json_object_object_length(o), i = 0;
    char **k = calloc((size_t)(n ? n : 1), sizeof *k);
    if (!k) return -1;
    json_object_object_foreach(o, key, val) {
        (void)val;
        k[i++] = key;
    }
    qsort(k, (size_t)n, sizeof *k, by_key);
    *out = k;
    return n;
}

/* A Go value with its own JSON form (a Stringer / Marshaler in Ollama's api
 * types): the text rides along as userdata, tagged by a magic number. */
typedef struct json_text {
    unsigned magic;
    char text[];
} json_text;
#define JSON_TEXT_MAGIC 0x6a736f6eu

static void free_json_text(json_object *o, void *p) {
    (void)o;
    free(p);
}

int gt_set_json_text(json_object *v, const char *text, size_t len) {
    if (!v || !(json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))) return -1;
    json_text *t = malloc(sizeof *t + len + 1);
    if (!t) return -1;
    t->magic = JSON_TEXT_MAGIC;
    memcpy(t->text, text, len);
    t->text[len] = 0;
    json_object_set_userdata(v, t, free_json_text);
    return 0;
}

const char *gt_json_text(json_object *v) {
    if (!v || !(json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))) return NULL;
    json_text *t = json_object_get_userdata(v);
    return t && t->magic == JSON_TEXT_MAGIC ? t->text : NULL;
}

static void put_json(hl_buf *b, json_object *v, int sorted);

static void print_value(hl_buf *b, json_object *v, int top) {
    const char *jt = gt_json_text(v);
    if (jt) { /* a Go Stringer: fmt prints String(), which is JSON */
        hl_buf_puts(b, jt);
        return;
    }
    if (!v) {
        hl_buf_puts(b, top ? "<no value>" : "<nil>");
        return;
    }
    switch (json_object_get_type(v)) {
    case json_type_string: hl_buf_append(b, json_object_get_string(v), (size_t)json_object_get_string_len(v)); break;
    case json_type_boolean: hl_buf_puts(b, json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_int:
    case json_type_double: put_float(b, num(v)); break;
    case json_type_array:
        hl_buf_putc(b, '[');
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i) hl_buf_putc(b, ' ');
            print_value(b, json_object_array_get_idx(v, i), 0);
        }
        hl_buf_putc(b, ']');
        break;
    case json_type_object: {
        char **k;
        int n = sorted_keys(v, &k);
        hl_buf_puts(b, "map[");
        for (int i = 0; i < n; i++) {
            if (i) hl_buf_putc(b, ' ');
            hl_buf_puts(b, k[i]);
            hl_buf_putc(b, ':');
            print_value(b, json_object_object_get(v, k[i]), 0);
        }
        hl_buf_putc(b, ']');
        free(k);
        break;
    }
    default: hl_buf_puts(b, "<nil>"); break;
    }
}

/* Go's json.Marshal: map keys sorted (insertion order when !sorted, for
 * struct-shaped objects), HTML-safe escapes. */
static void put_json(hl_buf *b, json_object *v, int sorted) {
    if (!v) { hl_buf_puts(b, "null"); return; }
    const char *jt = gt_json_text(v);
    if (jt) { hl_buf_puts(b, jt); return; }
    switch (json_object_get_type(v)) {
    case json_type_string: {
        const unsigned char *s = (const unsigned char *)json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        hl_buf_putc(b, '"');
        for (size_t i = 0; i < n; i++) {
            unsigned char c = s[i];
            if (c == '"' || c == '\\') { hl_buf_putc(b, '\\'); hl_buf_putc(b, (char)c); }
            else if (c == '\n') hl_buf_puts(b, "\\n");
            else if (c == '\r') hl_buf_puts(b, "\\r");
            else if (c == '\t') hl_buf_puts(b, "\\t");
            else if (c < 0x20 || c == '<' || c == '>' || c == '&') hl_buf_printf(b, "\\u%04x", c);
            else if (c == 0xE2 && i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                hl_buf_printf(b, "\\u%04x", s[i + 2] == 0xA8 ? 0x2028 : 0x2029);
                i += 2;
            } else hl_buf_putc(b, (char)c);
        }
        hl_buf_putc(b, '"');
        break;
    }
    case json_type_boolean: hl_buf_puts(b, json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_int:
    case json_type_double: {
        double d = num(v);
        if (fabs(d) < 1e21 && (fabs(d) >= 1e-6 || d == 0)) {
            char s[64];
            int prec;
            for (prec = 1; prec <= 17; prec++) {
                snprintf(s, sizeof s, "%.*g", prec, d);
                if (strtod(s, NULL) == d) break;
            }
            int exp = d == 0 ? 0 : (int)floor(log10(fabs(d)));
            int dec = prec - 1 - exp;
            hl_buf_printf(b, "%.*f", dec < 0 ? 0 : dec, d);
        } else put_float(b, d);
        break;
    }
    case json_type_array:
        hl_buf_putc(b, '[');
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i) hl_buf_putc(b, ',');
            put_json(b, json_object_array_get_idx(v, i), sorted);
        }
        hl_buf_putc(b, ']');
        break;
    case json_type_object: {
        if (!sorted) {
            int i = 0;
            hl_buf_putc(b, '{');
            json_object_object_foreach(v, key, val) {
                if (i++) hl_buf_putc(b, ',');
                json_object *ks = json_object_new_string(key);
                put_json(b, ks, 1);
                json_object_put(ks);
                hl_buf_putc(b, ':');
                put_json(b, val, sorted);
            }
            hl_buf_putc(b, '}');
            break;
        }
        char **k;
        int n = sorted_keys(v, &k);
        hl_buf_putc(b, '{');
        for (int i = 0; i < n; i++) {
            if (i) hl_buf_putc(b, ',');
            json_object *ks = json_object_new_string(k[i]);
            put_json(b, ks, 1);
            json_object_put(ks);
            hl_buf_putc(b, ':');
            put_json(b, json_object_object_get(v, k[i]), sorted);
        }
        hl_buf_putc(b, '}');
        free(k);
        break;
    }
    default: hl_buf_puts(b, "null"); break;
    }
}

static json_object *field(ev *e, json_object *v, const char *name) {
    if (!v) return NULL;
    if (!json_object_is_type(v, json_type_object)) {
        efail(e, "can't evaluate field %s in a non-object value", name);
        return NULL;
    }
    return json_object_object_get(v, name);
}

static json_object *lookup_var(ev *e, const char *name) {
    for (int i = e->n_vars - 1; i >= 0; i--)
        if (!strcmp(e->vars[i].name, name)) return e->vars[i].val;
    efail(e, "undefined variable: %s", name);
    return NULL;
}

static json_object *eval_pipe(ev *e, const gt_pipe *p, json_object *dot);

static int cmp_values(ev *e, json_object *a, json_object *b, int *res) {
    int ta = a ? (int)json_object_get_type(a) : -1, tb = b ? (int)json_object_get_type(b) : -1;
    int na = ta == json_type_int || ta == json_type_double, nb = tb == json_type_int || tb == json_type_double;
    if (na && nb) {
        double x = num(a), y = num(b);
        *res = x < y ? -1 : x > y;
        return 0;
    }
    if (ta == json_type_string && tb == json_type_string) {
        int c = strcmp(json_object_get_string(a), json_object_get_string(b));
        *res = c < 0 ? -1 : c > 0;
        return 0;
    }
    if (ta == json_type_boolean && tb == json_type_boolean) {
        *res = json_object_get_boolean(a) != json_object_get_boolean(b);
        return 1; /* equality only */
    }
    if (ta == -1 && tb == -1) { *res = 0; return 1; }
    return efail(e, "incompatible types for comparison", NULL) - 1;
}

/* returns a new reference */
static json_object *call(ev *e, const char *fn, json_object **a, int n) {
    if (!strcmp(fn, "and") || !strcmp(fn, "or")) {
        if (n < 1) { efail(e, "wrong number of args for %s", fn); return NULL; }
        int want = fn[0] == 'a' ? 0 : 1;
        for (int i = 0; i < n; i++)
            if (truth(a[i]) == want || i == n - 1) return json_object_get(a[i]);
    }
    if (!strcmp(fn, "not")) {
        if (n != 1) { efail(e, "wrong number of args for not", NULL); return NULL; }
        return json_object_new_boolean(!truth(a[0]));
    }
    if (!strcmp(fn, "len")) {
        if (n != 1 || !a[0]) { efail(e, "len of nil pointer", NULL); return NULL; }
        switch (json_object_get_type(a[0])) {
        case json_type_string: return json_object_new_int64(json_object_get_string_len(a[0]));
        case json_type_array: return json_object_new_int64((int64_t)json_object_array_length(a[0]));
        case json_type_object: return json_object_new_int64(json_object_object_length(a[0]));
        default: efail(e, "len of type without length", NULL); return NULL;
        }
    }
    if (!strcmp(fn, "eq") || !strcmp(fn, "ne") || !strcmp(fn, "lt") || !strcmp(fn, "le") || !strcmp(fn, "gt") ||
        !strcmp(fn, "ge")) {
        if (n < 2 || (fn[0] != 'e' && n != 2)) { efail(e, "wrong number of args for %s", fn); return NULL; }
        int r = 0;
        if (!strcmp(fn, "eq")) {
            for (int i = 1; i < n; i++) {
                if (cmp_values(e, a[0], a[i], &r) < -1 || e->failed) return NULL;
                if (r == 0) return json_object_new_boolean(1);
            }
            return json_object_new_boolean(0);
        }
        int k = cmp_values(e, a[0], a[1], &r);
        if (e->failed) return NULL;
        if (k == 1 && fn[0] != 'n') { efail(e, "invalid type for comparison", NULL); return NULL; }
        int v = !strcmp(fn, "ne") ? r != 0 : !strcmp(fn, "lt") ? r < 0 : !strcmp(fn, "le") ? r <= 0 : !strcmp(fn, "gt") ? r > 0 : r >= 0;
        return json_object_new_boolean(v);
    }
    if (!strcmp(fn, "index")) {
        if (n < 1) { efail(e, "wrong number of args for index", NULL); return NULL; }
        json_object *v = a[0];
        for (int i = 1; i < n; i++) {
            if (!v) { efail(e, "index of untyped nil", NULL); return NULL; }
            if (json_object_is_type(v, json_type_array)) {
                if (!a[i] || (!json_object_is_type(a[i], json_type_int) && !json_object_is_type(a[i], json_type_double))) {
                    efail(e, "cannot index slice/array with non-integer", NULL);
                    return NULL;
                }
                double d = num(a[i]);
                if (d < 0 || d >= (double)json_object_array_length(v)) { efail(e, "index out of range", NULL); return NULL; }
                v = json_object_array_get_idx(v, (size_t)d);
            } else if (json_object_is_type(v, json_type_object) && a[i] && json_object_is_type(a[i], json_type_string)) {
                v = json_object_object_get(v, json_object_get_string(a[i]));
            } else {
                efail(e, "can't index item", NULL);
                return NULL;
            }
        }
        return json_object_get(v);
    }
    if (!strcmp(fn, "slice")) {
        if (n < 1 || n > 3 || !a[0]) { efail(e, "wrong args for slice", NULL); return NULL; }
        int is_str = json_object_is_type(a[0], json_type_string);
        if (!is_str && !json_object_is_type(a[0], json_type_array)) { efail(e, "can't slice item", NULL); return NULL; }
        size_t len = is_str ? (size_t)json_object_get_string_len(a[0]) : json_object_array_length(a[0]);
        double lo = n > 1 ? num(a[1]) : 0, hi = n > 2 ? num(a[2]) : (double)len;
        if (lo < 0 || hi < lo || hi > (double)len) { efail(e, "slice index out of range", NULL); return NULL; }
        if (is_str) return json_object_new_string_len(json_object_get_string(a[0]) + (size_t)lo, (int)(hi - lo));
        json_object *r = json_object_new_array();
        for (size_t i = (size_t)lo; i < (size_t)hi; i++) json_object_array_add(r, json_object_get(json_object_array_get_idx(a[0], i)));
        return r;
    }
    if (!strcmp(fn, "json") || !strcmp(fn, "toJson")) {
        if (n != 1) { efail(e, "wrong number of args for json", NULL); return NULL; }
        hl_buf b = {0};
        put_json(&b, a[0], 1);
        json_object *r = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
        hl_buf_free(&b);
        return r;
    }
    if (!strcmp(fn, "print") || !strcmp(fn, "println")) {
        hl_buf b = {0};
        for (int i = 0; i < n; i++) {
            int is_s = a[i] && json_object_is_type(a[i], json_type_string);
            int prev_s = i > 0 && a[i - 1] && json_object_is_type(a[i - 1], json_type_string);
            if (i > 0 && (fn[5] == 'l' || (!is_s && !prev_s))) hl_buf_putc(&b, ' ');
            print_value(&b, a[i], 0);
        }
        if (fn[5] == 'l') hl_buf_putc(&b, '\n');
        json_object *r = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
        hl_buf_free(&b);
        return r;
    }
    if (!strcmp(fn, "printf")) {
        if (n < 1 || !a[0] || !json_object_is_type(a[0], json_type_string)) { efail(e, "printf needs a format string", NULL); return NULL; }
        const char *f = json_object_get_string(a[0]);
        hl_buf b = {0};
        int k = 1;
        for (const char *p = f; *p; p++) {
            if (*p != '%') { hl_buf_putc(&b, *p); continue; }
            char c = *++p;
            if (!c) break;
            if (c == '%') { hl_buf_putc(&b, '%'); continue; }
            json_object *v = k < n ? a[k++] : NULL;
            if (c == 'q') put_json(&b, v, 1);
            else if (c == 'd' && v) hl_buf_printf(&b, "%lld", (long long)num(v));
            else print_value(&b, v, 0);
        }
        json_object *r = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
        hl_buf_free(&b);
        return r;
    }
    efail(e, "function %s not defined", fn);
    return NULL;
}

/* returns a new reference */
static json_object *eval_operand(ev *e, const gt_operand *o, json_object *dot) {
    json_object *v = NULL;
    switch (o->kind) {
    case O_DOT: v = json_object_get(dot); break;
    case O_FIELD: v = json_object_get(dot); break;
    case O_VAR: v = json_object_get(lookup_var(e, o->name)); break;
    case O_STRING: return json_object_new_string_len(o->name, (int)o->name_len);
    case O_NUMBER: /* integers beyond int64 stay doubles (the cast would be undefined) */
        return o->is_int && fabs(o->num) < 9.2e18 ? json_object_new_int64((int64_t)o->num) : json_object_new_double(o->num);
    case O_BOOL: return json_object_new_boolean(o->boolean);
    case O_NIL: return NULL;
    case O_FUNC: return call(e, o->name, NULL, 0);
    case O_PIPE: v = eval_pipe(e, o->pipe, dot); break;
    }
    for (int i = 0; i < o->n_fields && !e->failed; i++) {
        json_object *nv = json_object_get(field(e, v, o->fields[i]));
        json_object_put(v);
        v = nv;
    }
    return v;
}

static json_object *eval_cmd(ev *e, const gt_cmd *c, json_object *dot, json_object *prev, int has_prev) {
    const gt_operand *f = &c->args[0];
    if (f->kind == O_FUNC) {
        int n = c->n_args - 1 + (has_prev ? 1 : 0);
        json_object *args[64];
        if (n > 64) { efail(e, "too many arguments", NULL); return NULL; }
        /* and/or short-circuit: evaluate lazily */
        int k = 0;
        for (int i = 1; i < c->n_args && !e->failed; i++) {
            args[k++] = eval_operand(e, &c->args[i], dot);
            if ((!strcmp(f->name, "and") && !truth(args[k - 1])) || (!strcmp(f->name, "or") && truth(args[k - 1]))) {
                if (!has_prev) { n = k; break; }
            }
        }
        if (has_prev) args[k++] = json_object_get(prev);
        json_object *r = e->failed ? NULL : call(e, f->name, args, k < n ? k : n);
        for (int i = 0; i < k; i++) json_object_put(args[i]);
        return r;
    }
    if (c->n_args > 1 || has_prev) {
        efail(e, "can't give argument to non-function", NULL);
        return NULL;
    }
    return eval_operand(e, f, dot);
}

static void set_var(ev *e, const char *name, json_object *v, int assign) {
    if (assign) {
        for (int i = e->n_vars - 1; i >= 0; i--)
            if (!strcmp(e->vars[i].name, name)) {
                json_object_put(e->vars[i].val);
                e->vars[i].val = json_object_get(v);
                return;
            }
        efail(e, "undefined variable: %s", name);
        return;
    }
    if (e->n_vars >= 256) { efail(e, "too many variables", NULL); return; }
    e->vars[e->n_vars].name = name;
    e->vars[e->n_vars].val = json_object_get(v);
    e->n_vars++;
}

static void pop_vars(ev *e, int to) {
    while (e->n_vars > to) json_object_put(e->vars[--e->n_vars].val);
}

static json_object *eval_pipe(ev *e, const gt_pipe *p, json_object *dot) {
    json_object *v = NULL;
    for (int i = 0; i < p->n_cmds && !e->failed; i++) {
        json_object *nv = eval_cmd(e, &p->cmds[i], dot, v, i > 0);
        json_object_put(v);
        v = nv;
    }
    return v;
}

static void exec(ev *e, const gt_node *n, json_object *dot);

static void exec_list(ev *e, const gt_node *n, json_object *dot) {
    if (!n) return;
    for (int i = 0; i < n->n_kids && !e->failed && !e->brk && !e->cont; i++) exec(e, n->kids[i], dot);
}

static void exec(ev *e, const gt_node *n, json_object *dot) {
    if (e->out->len > GT_MAX_OUT) { efail(e, "output too large", NULL); return; }
    int mark = e->n_vars;
    switch (n->kind) {
    case N_LIST: exec_list(e, n, dot); return;
    case N_TEXT: hl_buf_append(e->out, n->text, n->text_len); return;
    case N_BREAK: e->brk = 1; return;
    case N_CONTINUE: e->cont = 1; return;
    case N_ACTION: {
        json_object *v = eval_pipe(e, n->pipe, dot);
        if (n->pipe->n_vars) set_var(e, n->pipe->vars[0], v, n->pipe->assign);
        else if (!e->failed) print_value(e->out, v, 1);
        json_object_put(v);
        return; /* declarations stay in scope until the enclosing block ends */
    }
    case N_IF:
    case N_WITH: {
        json_object *v = eval_pipe(e, n->pipe, dot);
        if (n->pipe->n_vars && !e->failed) set_var(e, n->pipe->vars[0], v, n->pipe->assign);
        if (e->failed) { json_object_put(v); break; }
        if (truth(v)) exec_list(e, n->body, n->kind == N_WITH ? v : dot);
        else { pop_vars(e, mark); exec_list(e, n->else_body, dot); }
        json_object_put(v);
        break;
    }
    case N_RANGE: {
        json_object *v = eval_pipe(e, n->pipe, dot);
        if (e->failed) { json_object_put(v); break; }
        size_t len = 0;
        char **keys = NULL;
        int is_arr = v && json_object_is_type(v, json_type_array), is_obj = v && json_object_is_type(v, json_type_object);
        if (is_arr) len = json_object_array_length(v);
        else if (is_obj) len = (size_t)sorted_keys(v, &keys);
        else if (v) { efail(e, "range can't iterate over value", NULL); json_object_put(v); break; }
        for (size_t i = 0; i < len && !e->failed; i++) {
            if (++e->iters > GT_MAX_ITERS) { efail(e, "too many range iterations", NULL); break; }
            json_object *elem = is_arr ? json_object_array_get_idx(v, i) : json_object_object_get(v, keys[i]);
            int m2 = e->n_vars;
            if (n->pipe->n_vars == 1) set_var(e, n->pipe->vars[0], elem, 0);
            else if (n->pipe->n_vars == 2) {
                json_object *k = is_arr ? json_object_new_int64((int64_t)i) : json_object_new_string(keys[i]);
                set_var(e, n->pipe->vars[0], k, 0);
                json_object_put(k);
                set_var(e, n->pipe->vars[1], elem, 0);
            }
            exec_list(e, n->body, elem);
            pop_vars(e, m2);
            e->cont = 0;
            if (e->brk) { e->brk = 0; break; }
        }
        if (len == 0) exec_list(e, n->else_body, dot);
        free(keys);
        json_object_put(v);
        break;
    }
    }
    pop_vars(e, mark);
}

int gotmpl_render(const gotmpl *t, struct json_object *data, hl_buf *out, hl_err *err) {
    ev *e = calloc(1, sizeof *e);
    if (!e) return hl_err_set(err, HL_ENOMEM, "out of memory");
    e->out = out;
    e->err = err;
    set_var(e, "$", data, 0);
    exec_list(e, t->root, data);
    pop_vars(e, 0);
    int rc = e->failed ? HL_EINVAL : out->oom ? hl_err_set(err, HL_ENOMEM, "out of memory") : HL_OK;
    free(e);
    return rc;
}

void gt_put_json(hl_buf *b, json_object *v, int sorted) { put_json(b, v, sorted); }
