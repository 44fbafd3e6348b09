/* The template parser: tokens -> syntax tree, following jinja2's grammar and
 * operator precedence (condexpr < or < and < not < comparisons < +,- < ~ <
 * *,/,//,% < ** < unary -,+ < postfix . [] () < filters | and tests `is`).
 * Statements: if/elif/else, for (with else, inline if-filter), set (plain,
 * tuple, namespace attribute, block), macro, call, filter blocks, break,
 * continue and transformers' generation blocks. Anything else is an error
 * naming its line and column. Nodes and strings live in the template arena. */
#include "chat/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct achunk {
    struct achunk *next;
    size_t used, cap;
    max_align_t data[];
} achunk;

void *chat_arena_alloc(chat_template *t, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    achunk *c = t->arena;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > 65536 ? n : 65536;
        achunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        t->arena = nc;
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void chat_arena_free(chat_template *t) {
    for (achunk *c = t->arena; c;) {
        achunk *next = c->next;
        free(c);
        c = next;
    }
    t->arena = NULL;
}

typedef struct parser {
    chat_template *t;
    const ctoks *tk;
    size_t i;
    hl_err *err;
    int depth;
    int loops; /* for loops open around the current statement (for break/continue) */
} parser;

#define MAX_NEST 200

static const ctok *cur(parser *P) { return &P->tk->v[P->i]; }
static const ctok *peek(parser *P, size_t k) {
    size_t j = P->i + k;
    return &P->tk->v[j < P->tk->n ? j : P->tk->n - 1];
}
static void next(parser *P) { if (P->i + 1 < P->tk->n) P->i++; }

static int perr(parser *P, const ctok *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *P, const ctok *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hl_err_set(P->err, HL_EINVAL, "template line %d, column %d: %s", at->line, at->col, msg);
}

static int is_op(const ctok *k, const char *op) {
    return k->t == CT_OP && k->n == strlen(op) && memcmp(k->s, op, k->n) == 0;
}
static int is_name(const ctok *k, const char *nm) {
    return k->t == CT_NAME && k->n == strlen(nm) && memcmp(k->s, nm, k->n) == 0;
}

static const char *tok_desc(const ctok *k, char *buf, size_t n) {
    switch (k->t) {
    case CT_EOF: return "end of template";
    case CT_VAR_END: return "'}}'";
    case CT_BLOCK_END: return "'%}'";
    case CT_TEXT: return "template text";
    default: snprintf(buf, n, "'%.*s'", (int)(k->n > 40 ? 40 : k->n), k->s ? k->s : ""); return buf;
    }
}

static int expect_op(parser *P, const char *op) {
    if (!is_op(cur(P), op)) {
        char b[64];
        return perr(P, cur(P), "expected '%s', found %s", op, tok_desc(cur(P), b, sizeof b));
    }
    next(P);
    return 0;
}

static cnode *mk(parser *P, cnode_kind k, const ctok *at) {
    cnode *n = chat_arena_alloc(P->t, sizeof *n);
    if (!n) return NULL;
    n->k = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static const char *dup(parser *P, const char *s, size_t n) {
    char *d = chat_arena_alloc(P->t, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Makes an immortal constant owned by the template. */
static int add_const(parser *P, cv v, cv *out) {
    chat_template *t = P->t;
    if (cv_is_oom(v)) return HL_ENOMEM;
    if (t->n_consts == t->cap_consts) {
        size_t nc = t->cap_consts ? t->cap_consts * 2 : 64;
        cv *nv = realloc(t->consts, nc * sizeof *nv);
        if (!nv) { cv_unref(v); return HL_ENOMEM; }
        t->consts = nv;
        t->cap_consts = nc;
    }
    t->consts[t->n_consts++] = v;
    if (v.t == CV_STR) v.u.s->rc = -1;
    *out = v;
    return 0;
}

/* growable node arrays used while parsing, copied into the arena at the end */
typedef struct nvec {
    cnode **v;
    const char **names;
    int n, cap;
} nvec;

static int nv_push(nvec *a, cnode *n, const char *name) {
    if (a->n == a->cap) {
        int nc = a->cap ? a->cap * 2 : 8;
        cnode **nv = realloc(a->v, (size_t)nc * sizeof *nv);
        if (!nv) return HL_ENOMEM;
        a->v = nv;
        const char **nn = realloc(a->names, (size_t)nc * sizeof *nn);
        if (!nn) return HL_ENOMEM;
        a->names = nn;
        a->cap = nc;
    }
    a->v[a->n] = n;
    a->names[a->n] = name;
    a->n++;
    return 0;
}

static int nv_take(parser *P, nvec *a, cnode ***items, const char ***names) {
    *items = NULL;
    if (names) *names = NULL;
    if (a->n) {
        *items = chat_arena_alloc(P->t, (size_t)a->n * sizeof(cnode *));
        if (!*items) return HL_ENOMEM;
        memcpy(*items, a->v, (size_t)a->n * sizeof(cnode *));
        if (names) {
            *names = chat_arena_alloc(P->t, (size_t)a->n * sizeof(char *));
            if (!*names) return HL_ENOMEM;
            memcpy(*names, a->names, (size_t)a->n * sizeof(char *));
        }
    }
    free(a->v);
    free(a->names);
    a->v = NULL;
    a->names = NULL;
    return 0;
}

static int parse_expr(parser *P, cnode **out);
static int parse_or(parser *P, cnode **out);
static int parse_unary(parser *P, cnode **out, int with_filter);
static int parse_primary(parser *P, cnode **out);

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)
#define NN(x) do { if (!(x)) return hl_err_set(P->err, HL_ENOMEM, "out of memory"); } while (0)

/* (args) of a call, filter or test: positional then keyword arguments */
static int parse_args(parser *P, cnode *n) {
    TRY(expect_op(P, "("));
    nvec pos = {0}, kw = {0};
    int rc = 0;
    while (!is_op(cur(P), ")")) {
        if (pos.n + kw.n) {
            if ((rc = expect_op(P, ","))) goto out;
            if (is_op(cur(P), ")")) break;
        }
        if (is_op(cur(P), "*") || is_op(cur(P), "**")) { rc = perr(P, cur(P), "*args and **kwargs in calls are not supported"); goto out; }
        cnode *e;
        if (cur(P)->t == CT_NAME && is_op(peek(P, 1), "=")) {
            const char *nm = dup(P, cur(P)->s, cur(P)->n);
            if (!nm) { rc = HL_ENOMEM; goto out; }
            next(P);
            next(P);
            if ((rc = parse_expr(P, &e))) goto out;
            if ((rc = nv_push(&kw, e, nm))) goto out;
        } else {
            if (kw.n) { rc = perr(P, cur(P), "positional argument after keyword argument"); goto out; }
            if ((rc = parse_expr(P, &e))) goto out;
            if ((rc = nv_push(&pos, e, NULL))) goto out;
        }
    }
    next(P);
    n->n_items = pos.n;
    n->n_kw = kw.n;
    if ((rc = nv_take(P, &pos, &n->items, NULL))) goto out;
    rc = nv_take(P, &kw, &n->kw_vals, &n->kw_names);
out:
    free(pos.v); free(pos.names); free(kw.v); free(kw.names);
    if (rc == HL_ENOMEM) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return rc;
}

static int parse_postfix(parser *P, cnode **io) {
    for (;;) {
        const ctok *k = cur(P);
        if (is_op(k, ".")) {
            next(P);
            const ctok *a = cur(P);
            cnode *n;
            if (a->t == CT_NAME) {
                NN(n = mk(P, CN_GETATTR, a));
                NN(n->name = dup(P, a->s, a->n));
            } else if (a->t == CT_INT) {
                NN(n = mk(P, CN_GETITEM, a));
                cnode *c;
                NN(c = mk(P, CN_CONST, a));
                c->val = cv_int(a->i);
                n->b = c;
            } else {
                char b[64];
                return perr(P, a, "expected an attribute name after '.', found %s", tok_desc(a, b, sizeof b));
            }
            next(P);
            n->a = *io;
            *io = n;
        } else if (is_op(k, "[")) {
            next(P);
            cnode *idx[3] = {0};
            int colons = 0;
            for (;;) {
                if (is_op(cur(P), ":")) {
                    if (++colons > 2) return perr(P, cur(P), "too many ':' in a slice");
                    next(P);
                    continue;
                }
                if (is_op(cur(P), "]")) break;
                if (idx[colons]) return perr(P, cur(P), "expected ':' or ']' in a subscript");
                TRY(parse_expr(P, &idx[colons]));
            }
            next(P);
            cnode *n;
            if (colons) {
                NN(n = mk(P, CN_SLICE, k));
                n->b = idx[0];
                n->c = idx[1];
                n->d = idx[2];
            } else {
                if (!idx[0]) return perr(P, k, "empty subscript '[]'");
                NN(n = mk(P, CN_GETITEM, k));
                n->b = idx[0];
            }
            n->a = *io;
            *io = n;
        } else if (is_op(k, "(")) {
            cnode *n;
            NN(n = mk(P, CN_CALL, k));
            n->a = *io;
            TRY(parse_args(P, n));
            *io = n;
        } else return 0;
    }
}

static int parse_dotted_name(parser *P, const char **out) {
    const ctok *k = cur(P);
    if (k->t != CT_NAME) {
        char b[64];
        return perr(P, k, "expected a name, found %s", tok_desc(k, b, sizeof b));
    }
    NN(*out = dup(P, k->s, k->n));
    next(P);
    return 0;
}

static int parse_filter_expr(parser *P, cnode **io) {
    for (;;) {
        const ctok *k = cur(P);
        if (is_op(k, "|")) {
            next(P);
            cnode *n;
            const ctok *fk = cur(P);
            NN(n = mk(P, CN_FILTER, fk));
            TRY(parse_dotted_name(P, &n->name));
            if (!chat_filter_known(n->name)) return perr(P, fk, "unknown filter '%s'", n->name);
            n->a = *io;
            if (is_op(cur(P), "(")) TRY(parse_args(P, n));
            *io = n;
        } else if (is_name(k, "is")) {
            next(P);
            cnode *n;
            NN(n = mk(P, CN_TEST, k));
            if (is_name(cur(P), "not")) { n->op = 1; next(P); }
            const ctok *tk = cur(P);
            TRY(parse_dotted_name(P, &n->name));
            if (!chat_test_known(n->name)) return perr(P, tk, "unknown test '%s'", n->name);
            n->a = *io;
            const ctok *c = cur(P);
            if (is_op(c, "(")) TRY(parse_args(P, n));
            else if ((c->t == CT_NAME || c->t == CT_STRING || c->t == CT_INT || c->t == CT_FLOAT || is_op(c, "[") ||
                      is_op(c, "{")) &&
                     !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
                /* `x is divisibleby 3`: one argument without parentheses */
                cnode *arg;
                TRY(parse_primary(P, &arg));
                TRY(parse_postfix(P, &arg));
                NN(n->items = chat_arena_alloc(P->t, sizeof(cnode *)));
                n->items[0] = arg;
                n->n_items = 1;
            }
            *io = n;
        } else if (is_op(k, "(")) {
            cnode *n;
            NN(n = mk(P, CN_CALL, k));
            n->a = *io;
            TRY(parse_args(P, n));
            *io = n;
        } else return 0;
    }
}

/* a list/tuple/dict literal body up to `close` */
static int parse_seq(parser *P, cnode *n, const char *close, int is_dict) {
    nvec items = {0}, vals = {0};
    int rc = 0;
    while (!is_op(cur(P), close)) {
        if (items.n) {
            if ((rc = expect_op(P, ","))) goto out;
            if (is_op(cur(P), close)) break;
        }
        cnode *e;
        if ((rc = parse_expr(P, &e))) goto out;
        if ((rc = nv_push(&items, e, NULL))) goto out;
        if (is_dict) {
            if ((rc = expect_op(P, ":"))) goto out;
            if ((rc = parse_expr(P, &e))) goto out;
            if ((rc = nv_push(&vals, e, NULL))) goto out;
        }
    }
    next(P);
    n->n_items = items.n;
    if ((rc = nv_take(P, &items, &n->items, NULL))) goto out;
    if (is_dict) {
        n->n_kw = vals.n;
        rc = nv_take(P, &vals, &n->kw_vals, NULL);
    }
out:
    free(items.v); free(items.names); free(vals.v); free(vals.names);
    if (rc == HL_ENOMEM) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return rc;
}

static int parse_primary(parser *P, cnode **out) {
    const ctok *k = cur(P);
    cnode *n;
    if (++P->depth > MAX_NEST) return perr(P, k, "expression nested too deeply");
    int rc = 0;
    if (k->t == CT_NAME) {
        if (is_name(k, "true") || is_name(k, "True") || is_name(k, "false") || is_name(k, "False")) {
            NN(n = mk(P, CN_CONST, k));
            n->val = cv_bool(k->s[0] == 't' || k->s[0] == 'T');
        } else if (is_name(k, "none") || is_name(k, "None")) {
            NN(n = mk(P, CN_CONST, k));
            n->val = cv_none();
        } else {
            NN(n = mk(P, CN_NAME, k));
            NN(n->name = dup(P, k->s, k->n));
        }
        next(P);
    } else if (k->t == CT_STRING) {
        /* adjacent string literals concatenate */
        hl_buf b = {0};
        while (cur(P)->t == CT_STRING) {
            hl_buf_append(&b, cur(P)->s, cur(P)->n);
            next(P);
        }
        NN(n = mk(P, CN_CONST, k));
        if (b.oom) { hl_buf_free(&b); return hl_err_set(P->err, HL_ENOMEM, "out of memory"); }
        rc = add_const(P, cv_str_new(b.data ? b.data : "", b.len), &n->val);
        hl_buf_free(&b);
        if (rc) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    } else if (k->t == CT_INT || k->t == CT_FLOAT) {
        NN(n = mk(P, CN_CONST, k));
        n->val = k->t == CT_INT ? cv_int(k->i) : cv_float(k->f);
        next(P);
    } else if (is_op(k, "(")) {
        next(P);
        if (is_op(cur(P), ")")) {
            next(P);
            NN(n = mk(P, CN_TUPLE, k));
        } else {
            TRY(parse_expr(P, &n));
            if (is_op(cur(P), ",")) {
                cnode *t;
                NN(t = mk(P, CN_TUPLE, k));
                nvec items = {0};
                if (nv_push(&items, n, NULL)) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
                while (is_op(cur(P), ",")) {
                    next(P);
                    if (is_op(cur(P), ")")) break;
                    cnode *e;
                    if ((rc = parse_expr(P, &e)) || (rc = nv_push(&items, e, NULL))) {
                        free(items.v); free(items.names);
                        return rc == HL_ENOMEM ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : rc;
                    }
                }
                t->n_items = items.n;
                if (nv_take(P, &items, &t->items, NULL)) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
                n = t;
            }
            TRY(expect_op(P, ")"));
        }
    } else if (is_op(k, "[")) {
        next(P);
        NN(n = mk(P, CN_LIST, k));
        TRY(parse_seq(P, n, "]", 0));
    } else if (is_op(k, "{")) {
        next(P);
        NN(n = mk(P, CN_DICT, k));
        TRY(parse_seq(P, n, "}", 1));
    } else {
        char b[64];
        return perr(P, k, "unexpected %s in an expression", tok_desc(k, b, sizeof b));
    }
    P->depth--;
    *out = n;
    return 0;
}

static int parse_unary(parser *P, cnode **out, int with_filter) {
    const ctok *k = cur(P);
    cnode *n;
    if (++P->depth > MAX_NEST) return perr(P, k, "expression nested too deeply");
    if (is_op(k, "-") || is_op(k, "+")) {
        next(P);
        NN(n = mk(P, k->s[0] == '-' ? CN_NEG : CN_POS, k));
        TRY(parse_unary(P, &n->a, 0));
    } else {
        TRY(parse_primary(P, &n));
    }
    TRY(parse_postfix(P, &n));
    if (with_filter) TRY(parse_filter_expr(P, &n));
    P->depth--;
    *out = n;
    return 0;
}

static int binop(parser *P, cnode **io, int op, const ctok *at, int (*rhs)(parser *, cnode **)) {
    cnode *n;
    NN(n = mk(P, CN_BINOP, at));
    n->op = op;
    n->a = *io;
    TRY(rhs(P, &n->b));
    *io = n;
    return 0;
}

static int parse_unary_f(parser *P, cnode **out) { return parse_unary(P, out, 1); }

static int parse_pow(parser *P, cnode **out) {
    TRY(parse_unary(P, out, 1));
    while (is_op(cur(P), "**")) {
        const ctok *k = cur(P);
        next(P);
        TRY(binop(P, out, COP_POW, k, parse_unary_f));
    }
    return 0;
}

static int parse_math2(parser *P, cnode **out) {
    TRY(parse_pow(P, out));
    for (;;) {
        const ctok *k = cur(P);
        int op = is_op(k, "*") ? COP_MUL : is_op(k, "/") ? COP_DIV : is_op(k, "//") ? COP_FLOORDIV : is_op(k, "%") ? COP_MOD : 0;
        if (!op) return 0;
        next(P);
        TRY(binop(P, out, op, k, parse_pow));
    }
}

static int parse_concat(parser *P, cnode **out) {
    TRY(parse_math2(P, out));
    while (is_op(cur(P), "~")) {
        const ctok *k = cur(P);
        next(P);
        TRY(binop(P, out, COP_CONCAT, k, parse_math2));
    }
    return 0;
}

static int parse_math1(parser *P, cnode **out) {
    TRY(parse_concat(P, out));
    for (;;) {
        const ctok *k = cur(P);
        int op = is_op(k, "+") ? COP_ADD : is_op(k, "-") ? COP_SUB : 0;
        if (!op) return 0;
        next(P);
        TRY(binop(P, out, op, k, parse_concat));
    }
}

static int parse_compare(parser *P, cnode **out) {
    TRY(parse_math1(P, out));
    for (;;) {
        const ctok *k = cur(P);
        int op = is_op(k, "==") ? COP_EQ : is_op(k, "!=") ? COP_NE : is_op(k, "<") ? COP_LT : is_op(k, "<=") ? COP_LE
               : is_op(k, ">") ? COP_GT : is_op(k, ">=") ? COP_GE : is_name(k, "in") ? COP_IN : 0;
        if (!op && is_name(k, "not") && is_name(peek(P, 1), "in")) {
            op = COP_NOTIN;
            next(P);
        }
        if (!op) return 0;
        next(P);
        cnode *n;
        NN(n = mk(P, CN_CMP, k));
        n->op = op;
        n->a = *out;
        TRY(parse_math1(P, &n->b));
        *out = n;
    }
}

static int parse_not(parser *P, cnode **out) {
    const ctok *k = cur(P);
    if (is_name(k, "not")) {
        if (++P->depth > MAX_NEST) return perr(P, k, "expression nested too deeply");
        next(P);
        cnode *n;
        NN(n = mk(P, CN_NOT, k));
        TRY(parse_not(P, &n->a));
        P->depth--;
        *out = n;
        return 0;
    }
    return parse_compare(P, out);
}

static int parse_and(parser *P, cnode **out) {
    TRY(parse_not(P, out));
    while (is_name(cur(P), "and")) {
        cnode *n;
        NN(n = mk(P, CN_AND, cur(P)));
        next(P);
        n->a = *out;
        TRY(parse_not(P, &n->b));
        *out = n;
    }
    return 0;
}

static int parse_or(parser *P, cnode **out) {
    TRY(parse_and(P, out));
    while (is_name(cur(P), "or")) {
        cnode *n;
        NN(n = mk(P, CN_OR, cur(P)));
        next(P);
        n->a = *out;
        TRY(parse_and(P, &n->b));
        *out = n;
    }
    return 0;
}

static int parse_expr(parser *P, cnode **out) {
    if (++P->depth > MAX_NEST) return perr(P, cur(P), "expression nested too deeply");
    TRY(parse_or(P, out));
    while (is_name(cur(P), "if")) {
        cnode *n;
        NN(n = mk(P, CN_COND, cur(P)));
        next(P);
        n->a = *out;
        TRY(parse_or(P, &n->b));
        if (is_name(cur(P), "else")) {
            next(P);
            TRY(parse_expr(P, &n->c));
        }
        *out = n;
    }
    P->depth--;
    return 0;
}

/* ---- statements ------------------------------------------------------------ */

static int expect_block_end(parser *P) {
    if (cur(P)->t != CT_BLOCK_END) {
        char b[64];
        return perr(P, cur(P), "expected end of statement '%%}', found %s", tok_desc(cur(P), b, sizeof b));
    }
    next(P);
    return 0;
}

static int parse_body(parser *P, cnode **out, const char *const *ends, int *which, const ctok *opener);


static int mk_body(parser *P, nvec *v, cnode *owner) {
    owner->n_items = v->n;
    if (nv_take(P, v, &owner->items, NULL)) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return 0;
}

/* names for `for` / `set` targets: a, b or (a, b) */
static int parse_targets(parser *P, cnode *n) {
    nvec names = {0};
    int paren = 0;
    if (is_op(cur(P), "(")) { paren = 1; next(P); }
    for (;;) {
        const ctok *k = cur(P);
        if (k->t != CT_NAME) {
            free(names.v); free(names.names);
            char b[64];
            return perr(P, k, "expected a variable name, found %s", tok_desc(k, b, sizeof b));
        }
        const char *nm = dup(P, k->s, k->n);
        if (!nm || nv_push(&names, NULL, nm)) { free(names.v); free(names.names); return hl_err_set(P->err, HL_ENOMEM, "out of memory"); }
        next(P);
        if (!is_op(cur(P), ",")) break;
        next(P);
    }
    if (paren && expect_op(P, ")")) { free(names.v); free(names.names); return HL_EINVAL; }
    n->n_kw = names.n;
    cnode **dummy;
    int rc = nv_take(P, &names, &dummy, &n->kw_names);
    if (rc) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return 0;
}

/* `| f(args) | g` after `set x` or `filter`: a chain whose innermost operand is NULL */
static int parse_filter_chain(parser *P, cnode **out, int need_first_bar) {
    cnode *chain = NULL;
    int first = 1;
    while (is_op(cur(P), "|") || (first && !need_first_bar)) {
        if (is_op(cur(P), "|")) next(P);
        first = 0;
        cnode *n;
        const ctok *fk = cur(P);
        NN(n = mk(P, CN_FILTER, fk));
        TRY(parse_dotted_name(P, &n->name));
        if (!chat_filter_known(n->name)) return perr(P, fk, "unknown filter '%s'", n->name);
        if (is_op(cur(P), "(")) TRY(parse_args(P, n));
        n->a = chain;
        chain = n;
    }
    *out = chain;
    return 0;
}

static int parse_stmt(parser *P, cnode **out) {
    const ctok *kw = cur(P);
    cnode *n = NULL;
    nvec body = {0};
    int which = -1;
    if (kw->t != CT_NAME) {
        char b[64];
        return perr(P, kw, "expected a statement name after '{%%', found %s", tok_desc(kw, b, sizeof b));
    }
    if (is_name(kw, "if")) {
        next(P);
        NN(n = mk(P, CN_IF, kw));
        TRY(parse_or(P, &n->a));
        TRY(expect_block_end(P));
        cnode *node = n;
        for (;;) {
            static const char *const ends[] = {"elif", "else", "endif", NULL};
            cnode *b;
            TRY(parse_body(P, &b, ends, &which, kw));
            node->items = b->items;
            node->n_items = b->n_items;
            if (which == 0) {
                cnode *e;
                NN(e = mk(P, CN_IF, cur(P)));
                TRY(parse_or(P, &e->a));
                TRY(expect_block_end(P));
                cnode *eb;
                NN(eb = mk(P, CN_BODY, cur(P)));
                NN(eb->items = chat_arena_alloc(P->t, sizeof(cnode *)));
                eb->items[0] = e;
                eb->n_items = 1;
                node->d = eb;
                node = e;
                continue;
            }
            if (which == 1) {
                TRY(expect_block_end(P));
                static const char *const ends2[] = {"endif", NULL};
                TRY(parse_body(P, &node->d, ends2, &which, kw));
            }
            TRY(expect_block_end(P));
            break;
        }
    } else if (is_name(kw, "for")) {
        next(P);
        NN(n = mk(P, CN_FOR, kw));
        TRY(parse_targets(P, n));
        if (!is_name(cur(P), "in")) return perr(P, cur(P), "expected 'in' in a for statement");
        next(P);
        TRY(parse_or(P, &n->a));
        if (is_name(cur(P), "if")) {
            next(P);
            TRY(parse_expr(P, &n->b));
        }
        if (is_name(cur(P), "recursive")) return perr(P, cur(P), "recursive for loops are not supported");
        TRY(expect_block_end(P));
        static const char *const ends[] = {"else", "endfor", NULL};
        cnode *b;
        P->loops++;
        TRY(parse_body(P, &b, ends, &which, kw));
        P->loops--;
        n->items = b->items;
        n->n_items = b->n_items;
        TRY(expect_block_end(P));
        if (which == 0) {
            static const char *const ends2[] = {"endfor", NULL};
            TRY(parse_body(P, &n->d, ends2, &which, kw));
            TRY(expect_block_end(P));
        }
    } else if (is_name(kw, "set")) {
        next(P);
        NN(n = mk(P, CN_SET, kw));
        if (cur(P)->t == CT_NAME && is_op(peek(P, 1), ".")) {
            /* namespace attribute assignment: set ns.attr = value */
            n->flag = 1;
            NN(n->kw_names = chat_arena_alloc(P->t, sizeof(char *)));
            NN(n->kw_names[0] = dup(P, cur(P)->s, cur(P)->n));
            n->n_kw = 1;
            next(P);
            next(P);
            if (cur(P)->t != CT_NAME) return perr(P, cur(P), "expected an attribute name after '.'");
            NN(n->name = dup(P, cur(P)->s, cur(P)->n));
            next(P);
        } else {
            TRY(parse_targets(P, n));
        }
        if (is_op(cur(P), "=")) {
            next(P);
            TRY(parse_expr(P, &n->a));
            if (is_op(cur(P), ",")) {
                cnode *t;
                NN(t = mk(P, CN_TUPLE, cur(P)));
                nvec items = {0};
                int rc = nv_push(&items, n->a, NULL);
                while (!rc && is_op(cur(P), ",")) {
                    next(P);
                    if (cur(P)->t == CT_BLOCK_END) break;
                    cnode *e;
                    rc = parse_expr(P, &e);
                    if (!rc) rc = nv_push(&items, e, NULL);
                }
                if (!rc) rc = mk_body(P, &items, t);
                free(items.v); free(items.names);
                if (rc) return rc == HL_ENOMEM ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : rc;
                n->a = t;
            }
            TRY(expect_block_end(P));
        } else {
            if (n->flag || n->n_kw != 1) return perr(P, cur(P), "a block set assigns exactly one name");
            n->k = CN_SETBLOCK;
            TRY(parse_filter_chain(P, &n->c, 1));
            TRY(expect_block_end(P));
            static const char *const ends[] = {"endset", NULL};
            cnode *b;
            TRY(parse_body(P, &b, ends, &which, kw));
            n->items = b->items;
            n->n_items = b->n_items;
            TRY(expect_block_end(P));
        }
    } else if (is_name(kw, "macro") || is_name(kw, "call")) {
        int is_call = is_name(kw, "call");
        next(P);
        NN(n = mk(P, is_call ? CN_CALLBLOCK : CN_MACRO, kw));
        if (!is_call) TRY(parse_dotted_name(P, &n->name));
        if (!is_call || is_op(cur(P), "(")) {
            TRY(expect_op(P, "("));
            nvec params = {0};
            int rc = 0;
            while (!rc && !is_op(cur(P), ")")) {
                if (params.n && (rc = expect_op(P, ","))) break;
                if (cur(P)->t != CT_NAME) { rc = perr(P, cur(P), "expected a parameter name"); break; }
                const char *nm = dup(P, cur(P)->s, cur(P)->n);
                next(P);
                cnode *def = NULL;
                if (is_op(cur(P), "=")) {
                    next(P);
                    rc = parse_expr(P, &def);
                } else if (params.n && params.v[params.n - 1]) {
                    rc = perr(P, cur(P), "parameter without a default after one with a default");
                }
                if (!rc) rc = (!nm || nv_push(&params, def, nm)) ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : 0;
            }
            if (!rc) {
                next(P);
                n->n_kw = params.n;
                rc = nv_take(P, &params, &n->kw_vals, &n->kw_names) ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : 0;
            }
            free(params.v); free(params.names);
            if (rc) return rc;
        }
        if (is_call) {
            TRY(parse_primary(P, &n->a));
            TRY(parse_postfix(P, &n->a));
            if (n->a->k != CN_CALL) return perr(P, kw, "expected a macro call after 'call'");
        }
        TRY(expect_block_end(P));
        static const char *const mends[] = {"endmacro", NULL}, *const cends[] = {"endcall", NULL};
        cnode *b;
        int saved = P->loops;
        P->loops = 0;
        TRY(parse_body(P, &b, is_call ? cends : mends, &which, kw));
        P->loops = saved;
        n->items = b->items;
        n->n_items = b->n_items;
        if (!is_call && cur(P)->t == CT_NAME) next(P); /* {% endmacro name %} */
        TRY(expect_block_end(P));
    } else if (is_name(kw, "filter")) {
        next(P);
        NN(n = mk(P, CN_FILTERBLOCK, kw));
        TRY(parse_filter_chain(P, &n->a, 0));
        TRY(expect_block_end(P));
        static const char *const ends[] = {"endfilter", NULL};
        cnode *b;
        TRY(parse_body(P, &b, ends, &which, kw));
        n->items = b->items;
        n->n_items = b->n_items;
        TRY(expect_block_end(P));
    } else if (is_name(kw, "generation")) {
        next(P);
        NN(n = mk(P, CN_GENERATION, kw));
        TRY(expect_block_end(P));
        static const char *const ends[] = {"endgeneration", NULL};
        cnode *b;
        TRY(parse_body(P, &b, ends, &which, kw));
        n->items = b->items;
        n->n_items = b->n_items;
        TRY(expect_block_end(P));
    } else if (is_name(kw, "break") || is_name(kw, "continue")) {
        if (!P->loops) return perr(P, kw, "'%.*s' outside of a for loop", (int)kw->n, kw->s);
        NN(n = mk(P, is_name(kw, "break") ? CN_BREAK : CN_CONTINUE, kw));
        next(P);
        TRY(expect_block_end(P));
    } else {
        static const char *const known_ends[] = {"endif", "endfor", "endset", "endmacro", "endcall", "endfilter",
                                                 "endgeneration", "elif", "else", NULL};
        for (int i = 0; known_ends[i]; i++)
            if (is_name(kw, known_ends[i]))
                return perr(P, kw, "unexpected '%s' (no open block it could close)", known_ends[i]);
        return perr(P, kw, "unknown or unsupported statement '%.*s'", (int)(kw->n > 40 ? 40 : kw->n), kw->s);
    }
    free(body.v);
    *out = n;
    return 0;
}

static int parse_body(parser *P, cnode **out, const char *const *ends, int *which, const ctok *opener) {
    nvec body = {0};
    int rc = 0;
    cnode *b = mk(P, CN_BODY, cur(P));
    if (!b) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    if (++P->depth > MAX_NEST) return perr(P, cur(P), "blocks nested too deeply");
    for (;;) {
        const ctok *k = cur(P);
        cnode *n = NULL;
        if (k->t == CT_EOF) {
            if (ends) {
                rc = perr(P, opener, "unexpected end of template: '%.*s' block is never closed (expected '%s')",
                          (int)opener->n, opener->s, ends[0][0] == 'e' && ends[0][1] == 'n' ? ends[0] : ends[1] ? ends[1] : ends[0]);
                if (strcmp(ends[0], "elif") == 0) {
                    rc = perr(P, opener, "unexpected end of template: '%.*s' block is never closed (expected 'endif')",
                              (int)opener->n, opener->s);
                }
            }
            break;
        }
        if (k->t == CT_TEXT) {
            if (!(n = mk(P, CN_TEXT, k))) { rc = HL_ENOMEM; break; }
            if ((rc = add_const(P, cv_str_new(k->s, k->n), &n->val))) break;
            next(P);
        } else if (k->t == CT_VAR_BEGIN) {
            next(P);
            if (!(n = mk(P, CN_OUTPUT, k))) { rc = HL_ENOMEM; break; }
            if ((rc = parse_expr(P, &n->a))) break;
            if (cur(P)->t != CT_VAR_END) {
                char bb[64];
                rc = perr(P, cur(P), "expected end of print statement '}}', found %s", tok_desc(cur(P), bb, sizeof bb));
                break;
            }
            next(P);
        } else if (k->t == CT_BLOCK_BEGIN) {
            const ctok *nm = peek(P, 1);
            int hit = -1;
            for (int i = 0; ends && ends[i]; i++)
                if (is_name(nm, ends[i])) hit = i;
            if (hit >= 0) {
                next(P);
                next(P);
                *which = hit;
                break;
            }
            next(P);
            if ((rc = parse_stmt(P, &n))) break;
        } else {
            char bb[64];
            rc = perr(P, k, "unexpected %s", tok_desc(k, bb, sizeof bb));
            break;
        }
        if ((rc = nv_push(&body, n, NULL))) break;
    }
    if (!rc) rc = mk_body(P, &body, b);
    free(body.v);
    free(body.names);
    if (rc == HL_ENOMEM) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    if (rc) return rc;
    P->depth--;
    *out = b;
    return 0;
}

int chat_parse(chat_template *t, const ctoks *toks, hl_err *err) {
    parser P = {t, toks, 0, err, 0, 0};
    return parse_body(&P, &t->root, NULL, NULL, NULL);
}
