/* The expression half of the template parser (statements are in
 * parse_stmt.c): tokens -> syntax tree following jinja2's grammar and operator
 * precedence (condexpr < or < and < not < comparisons < +,- < ~ < *,/,//,% <
 * ** < unary -,+ < postfix . [] () < filters | and tests `is`), plus the
 * template arena every node and string lives in and the shared token helpers.
 * Unknown filter and test names are parse errors, as in jinja2. */
#include "chat/parse.h"

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



const ctok *chat_p_cur(parser *P) { return &P->tk->v[P->i]; }
const ctok *chat_p_peek(parser *P, size_t k) {
    size_t j = P->i + k;
    return &P->tk->v[j < P->tk->n ? j : P->tk->n - 1];
}
void chat_p_next(parser *P) { if (P->i + 1 < P->tk->n) P->i++; }

int chat_p_perr(parser *P, const ctok *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hl_err_set(P->err, HL_EINVAL, "template line %d, column %d: %s", at->line, at->col, msg);
}

int chat_p_is_op(const ctok *k, const char *op) {
    return k->t == CT_OP && k->n == strlen(op) && memcmp(k->s, op, k->n) == 0;
}
int chat_p_is_name(const ctok *k, const char *nm) {
    return k->t == CT_NAME && k->n == strlen(nm) && memcmp(k->s, nm, k->n) == 0;
}

const char *chat_p_tok_desc(const ctok *k, char *buf, size_t n) {
    switch (k->t) {
    case CT_EOF: return "end of template";
    case CT_VAR_END: return "'}}'";
    case CT_BLOCK_END: return "'%}'";
    case CT_TEXT: return "template text";
    default: snprintf(buf, n, "'%.*s'", (int)(k->n > 40 ? 40 : k->n), k->s ? k->s : ""); return buf;
    }
}

int chat_p_expect_op(parser *P, const char *op) {
    if (!chat_p_is_op(chat_p_cur(P), op)) {
        char b[64];
        return chat_p_perr(P, chat_p_cur(P), "expected '%s', found %s", op, chat_p_tok_desc(chat_p_cur(P), b, sizeof b));
    }
    chat_p_next(P);
    return 0;
}

cnode *chat_p_mk(parser *P, cnode_kind k, const ctok *at) {
    cnode *n = chat_arena_alloc(P->t, sizeof *n);
    if (!n) return NULL;
    n->k = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

const char *chat_p_dup(parser *P, const char *s, size_t n) {
    char *d = chat_arena_alloc(P->t, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Makes an immortal constant owned by the template. */
int chat_p_add_const(parser *P, cv v, cv *out) {
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


int chat_p_nv_push(nvec *a, cnode *n, const char *name) {
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

int chat_p_nv_take(parser *P, nvec *a, cnode ***items, const char ***names) {
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



/* (args) of a call, filter or test: positional then keyword arguments */
int chat_p_parse_args(parser *P, cnode *n) {
    TRY(chat_p_expect_op(P, "("));
    nvec pos = {0}, kw = {0};
    int rc = 0;
    while (!chat_p_is_op(chat_p_cur(P), ")")) {
        if (pos.n + kw.n) {
            if ((rc = chat_p_expect_op(P, ","))) goto out;
            if (chat_p_is_op(chat_p_cur(P), ")")) break;
        }
        if (chat_p_is_op(chat_p_cur(P), "*") || chat_p_is_op(chat_p_cur(P), "**")) { rc = chat_p_perr(P, chat_p_cur(P), "*args and **kwargs in calls are not supported"); goto out; }
        cnode *e;
        if (chat_p_cur(P)->t == CT_NAME && chat_p_is_op(chat_p_peek(P, 1), "=")) {
            const char *nm = chat_p_dup(P, chat_p_cur(P)->s, chat_p_cur(P)->n);
            if (!nm) { rc = HL_ENOMEM; goto out; }
            chat_p_next(P);
            chat_p_next(P);
            if ((rc = chat_p_parse_expr(P, &e))) goto out;
            if ((rc = chat_p_nv_push(&kw, e, nm))) goto out;
        } else {
            if (kw.n) { rc = chat_p_perr(P, chat_p_cur(P), "positional argument after keyword argument"); goto out; }
            if ((rc = chat_p_parse_expr(P, &e))) goto out;
            if ((rc = chat_p_nv_push(&pos, e, NULL))) goto out;
        }
    }
    chat_p_next(P);
    n->n_items = pos.n;
    n->n_kw = kw.n;
    if ((rc = chat_p_nv_take(P, &pos, &n->items, NULL))) goto out;
    rc = chat_p_nv_take(P, &kw, &n->kw_vals, &n->kw_names);
out:
    free(pos.v); free(pos.names); free(kw.v); free(kw.names);
    if (rc == HL_ENOMEM) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return rc;
}

int chat_p_parse_postfix(parser *P, cnode **io) {
    for (;;) {
        const ctok *k = chat_p_cur(P);
        if (chat_p_is_op(k, ".")) {
            chat_p_next(P);
            const ctok *a = chat_p_cur(P);
            cnode *n;
            if (a->t == CT_NAME) {
                NN(n = chat_p_mk(P, CN_GETATTR, a));
                NN(n->name = chat_p_dup(P, a->s, a->n));
            } else if (a->t == CT_INT) {
                NN(n = chat_p_mk(P, CN_GETITEM, a));
                cnode *c;
                NN(c = chat_p_mk(P, CN_CONST, a));
                c->val = cv_int(a->i);
                n->b = c;
            } else {
                char b[64];
                return chat_p_perr(P, a, "expected an attribute name after '.', found %s", chat_p_tok_desc(a, b, sizeof b));
            }
            chat_p_next(P);
            n->a = *io;
            *io = n;
        } else if (chat_p_is_op(k, "[")) {
            chat_p_next(P);
            cnode *idx[3] = {0};
            int colons = 0;
            for (;;) {
                if (chat_p_is_op(chat_p_cur(P), ":")) {
                    if (++colons > 2) return chat_p_perr(P, chat_p_cur(P), "too many ':' in a slice");
                    chat_p_next(P);
                    continue;
                }
                if (chat_p_is_op(chat_p_cur(P), "]")) break;
                if (idx[colons]) return chat_p_perr(P, chat_p_cur(P), "expected ':' or ']' in a subscript");
                TRY(chat_p_parse_expr(P, &idx[colons]));
            }
            chat_p_next(P);
            cnode *n;
            if (colons) {
                NN(n = chat_p_mk(P, CN_SLICE, k));
                n->b = idx[0];
                n->c = idx[1];
                n->d = idx[2];
            } else {
                if (!idx[0]) return chat_p_perr(P, k, "empty subscript '[]'");
                NN(n = chat_p_mk(P, CN_GETITEM, k));
                n->b = idx[0];
            }
            n->a = *io;
            *io = n;
        } else if (chat_p_is_op(k, "(")) {
            cnode *n;
            NN(n = chat_p_mk(P, CN_CALL, k));
            n->a = *io;
            TRY(chat_p_parse_args(P, n));
            *io = n;
        } else return 0;
    }
}

int chat_p_parse_dotted_name(parser *P, const char **out) {
    const ctok *k = chat_p_cur(P);
    if (k->t != CT_NAME) {
        char b[64];
        return chat_p_perr(P, k, "expected a name, found %s", chat_p_tok_desc(k, b, sizeof b));
    }
    NN(*out = chat_p_dup(P, k->s, k->n));
    chat_p_next(P);
    return 0;
}

static int parse_filter_expr(parser *P, cnode **io) {
    for (;;) {
        const ctok *k = chat_p_cur(P);
        if (chat_p_is_op(k, "|")) {
            chat_p_next(P);
            cnode *n;
            const ctok *fk = chat_p_cur(P);
            NN(n = chat_p_mk(P, CN_FILTER, fk));
            TRY(chat_p_parse_dotted_name(P, &n->name));
            if (!chat_filter_known(n->name)) return chat_p_perr(P, fk, "unknown filter '%s'", n->name);
            n->a = *io;
            if (chat_p_is_op(chat_p_cur(P), "(")) TRY(chat_p_parse_args(P, n));
            *io = n;
        } else if (chat_p_is_name(k, "is")) {
            chat_p_next(P);
            cnode *n;
            NN(n = chat_p_mk(P, CN_TEST, k));
            if (chat_p_is_name(chat_p_cur(P), "not")) { n->op = 1; chat_p_next(P); }
            const ctok *tk = chat_p_cur(P);
            TRY(chat_p_parse_dotted_name(P, &n->name));
            if (!chat_test_known(n->name)) return chat_p_perr(P, tk, "unknown test '%s'", n->name);
            n->a = *io;
            const ctok *c = chat_p_cur(P);
            if (chat_p_is_op(c, "(")) TRY(chat_p_parse_args(P, n));
            else if ((c->t == CT_NAME || c->t == CT_STRING || c->t == CT_INT || c->t == CT_FLOAT || chat_p_is_op(c, "[") ||
                      chat_p_is_op(c, "{")) &&
                     !chat_p_is_name(c, "else") && !chat_p_is_name(c, "or") && !chat_p_is_name(c, "and")) {
                /* `x is divisibleby 3`: one argument without parentheses */
                cnode *arg;
                TRY(chat_p_parse_primary(P, &arg));
                TRY(chat_p_parse_postfix(P, &arg));
                NN(n->items = chat_arena_alloc(P->t, sizeof(cnode *)));
                n->items[0] = arg;
                n->n_items = 1;
            }
            *io = n;
        } else if (chat_p_is_op(k, "(")) {
            cnode *n;
            NN(n = chat_p_mk(P, CN_CALL, k));
            n->a = *io;
            TRY(chat_p_parse_args(P, n));
            *io = n;
        } else return 0;
    }
}

/* a list/tuple/dict literal body up to `close` */
static int parse_seq(parser *P, cnode *n, const char *close, int is_dict) {
    nvec items = {0}, vals = {0};
    int rc = 0;
    while (!chat_p_is_op(chat_p_cur(P), close)) {
        if (items.n) {
            if ((rc = chat_p_expect_op(P, ","))) goto out;
            if (chat_p_is_op(chat_p_cur(P), close)) break;
        }
        cnode *e;
        if ((rc = chat_p_parse_expr(P, &e))) goto out;
        if ((rc = chat_p_nv_push(&items, e, NULL))) goto out;
        if (is_dict) {
            if ((rc = chat_p_expect_op(P, ":"))) goto out;
            if ((rc = chat_p_parse_expr(P, &e))) goto out;
            if ((rc = chat_p_nv_push(&vals, e, NULL))) goto out;
        }
    }
    chat_p_next(P);
    n->n_items = items.n;
    if ((rc = chat_p_nv_take(P, &items, &n->items, NULL))) goto out;
    if (is_dict) {
        n->n_kw = vals.n;
        rc = chat_p_nv_take(P, &vals, &n->kw_vals, NULL);
    }
out:
    free(items.v); free(items.names); free(vals.v); free(vals.names);
    if (rc == HL_ENOMEM) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return rc;
}

int chat_p_parse_primary(parser *P, cnode **out) {
    const ctok *k = chat_p_cur(P);
    cnode *n;
    if (++P->depth > MAX_NEST) return chat_p_perr(P, k, "expression nested too deeply");
    int rc = 0;
    if (k->t == CT_NAME) {
        if (chat_p_is_name(k, "true") || chat_p_is_name(k, "True") || chat_p_is_name(k, "false") || chat_p_is_name(k, "False")) {
            NN(n = chat_p_mk(P, CN_CONST, k));
            n->val = cv_bool(k->s[0] == 't' || k->s[0] == 'T');
        } else if (chat_p_is_name(k, "none") || chat_p_is_name(k, "None")) {
            NN(n = chat_p_mk(P, CN_CONST, k));
            n->val = cv_none();
        } else {
            NN(n = chat_p_mk(P, CN_NAME, k));
            NN(n->name = chat_p_dup(P, k->s, k->n));
        }
        chat_p_next(P);
    } else if (k->t == CT_STRING) {
        /* adjacent string literals concatenate */
        hl_buf b = {0};
        while (chat_p_cur(P)->t == CT_STRING) {
            hl_buf_append(&b, chat_p_cur(P)->s, chat_p_cur(P)->n);
            chat_p_next(P);
        }
        NN(n = chat_p_mk(P, CN_CONST, k));
        if (b.oom) { hl_buf_free(&b); return hl_err_set(P->err, HL_ENOMEM, "out of memory"); }
        rc = chat_p_add_const(P, cv_str_new(b.data ? b.data : "", b.len), &n->val);
        hl_buf_free(&b);
        if (rc) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    } else if (k->t == CT_INT || k->t == CT_FLOAT) {
        NN(n = chat_p_mk(P, CN_CONST, k));
        n->val = k->t == CT_INT ? cv_int(k->i) : cv_float(k->f);
        chat_p_next(P);
    } else if (chat_p_is_op(k, "(")) {
        chat_p_next(P);
        if (chat_p_is_op(chat_p_cur(P), ")")) {
            chat_p_next(P);
            NN(n = chat_p_mk(P, CN_TUPLE, k));
        } else {
            TRY(chat_p_parse_expr(P, &n));
            if (chat_p_is_op(chat_p_cur(P), ",")) {
                cnode *t;
                NN(t = chat_p_mk(P, CN_TUPLE, k));
                nvec items = {0};
                if (chat_p_nv_push(&items, n, NULL)) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
                while (chat_p_is_op(chat_p_cur(P), ",")) {
                    chat_p_next(P);
                    if (chat_p_is_op(chat_p_cur(P), ")")) break;
                    cnode *e;
                    if ((rc = chat_p_parse_expr(P, &e)) || (rc = chat_p_nv_push(&items, e, NULL))) {
                        free(items.v); free(items.names);
                        return rc == HL_ENOMEM ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : rc;
                    }
                }
                t->n_items = items.n;
                if (chat_p_nv_take(P, &items, &t->items, NULL)) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
                n = t;
            }
            TRY(chat_p_expect_op(P, ")"));
        }
    } else if (chat_p_is_op(k, "[")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_LIST, k));
        TRY(parse_seq(P, n, "]", 0));
    } else if (chat_p_is_op(k, "{")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_DICT, k));
        TRY(parse_seq(P, n, "}", 1));
    } else {
        char b[64];
        return chat_p_perr(P, k, "unexpected %s in an expression", chat_p_tok_desc(k, b, sizeof b));
    }
    P->depth--;
    *out = n;
    return 0;
}

int chat_p_parse_unary(parser *P, cnode **out, int with_filter) {
    const ctok *k = chat_p_cur(P);
    cnode *n;
    if (++P->depth > MAX_NEST) return chat_p_perr(P, k, "expression nested too deeply");
    if (chat_p_is_op(k, "-") || chat_p_is_op(k, "+")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, k->s[0] == '-' ? CN_NEG : CN_POS, k));
        TRY(chat_p_parse_unary(P, &n->a, 0));
    } else {
        TRY(chat_p_parse_primary(P, &n));
    }
    TRY(chat_p_parse_postfix(P, &n));
    if (with_filter) TRY(parse_filter_expr(P, &n));
    P->depth--;
    *out = n;
    return 0;
}

static int binop(parser *P, cnode **io, int op, const ctok *at, int (*rhs)(parser *, cnode **)) {
    cnode *n;
    NN(n = chat_p_mk(P, CN_BINOP, at));
    n->op = op;
    n->a = *io;
    TRY(rhs(P, &n->b));
    *io = n;
    return 0;
}

static int parse_unary_f(parser *P, cnode **out) { return chat_p_parse_unary(P, out, 1); }

static int parse_pow(parser *P, cnode **out) {
    TRY(chat_p_parse_unary(P, out, 1));
    while (chat_p_is_op(chat_p_cur(P), "**")) {
        const ctok *k = chat_p_cur(P);
        chat_p_next(P);
        TRY(binop(P, out, COP_POW, k, parse_unary_f));
    }
    return 0;
}

static int parse_math2(parser *P, cnode **out) {
    TRY(parse_pow(P, out));
    for (;;) {
        const ctok *k = chat_p_cur(P);
        int op = chat_p_is_op(k, "*") ? COP_MUL : chat_p_is_op(k, "/") ? COP_DIV : chat_p_is_op(k, "//") ? COP_FLOORDIV : chat_p_is_op(k, "%") ? COP_MOD : 0;
        if (!op) return 0;
        chat_p_next(P);
        TRY(binop(P, out, op, k, parse_pow));
    }
}

static int parse_concat(parser *P, cnode **out) {
    TRY(parse_math2(P, out));
    while (chat_p_is_op(chat_p_cur(P), "~")) {
        const ctok *k = chat_p_cur(P);
        chat_p_next(P);
        TRY(binop(P, out, COP_CONCAT, k, parse_math2));
    }
    return 0;
}

static int parse_math1(parser *P, cnode **out) {
    TRY(parse_concat(P, out));
    for (;;) {
        const ctok *k = chat_p_cur(P);
        int op = chat_p_is_op(k, "+") ? COP_ADD : chat_p_is_op(k, "-") ? COP_SUB : 0;
        if (!op) return 0;
        chat_p_next(P);
        TRY(binop(P, out, op, k, parse_concat));
    }
}

static int parse_compare(parser *P, cnode **out) {
    TRY(parse_math1(P, out));
    for (;;) {
        const ctok *k = chat_p_cur(P);
        int op = chat_p_is_op(k, "==") ? COP_EQ : chat_p_is_op(k, "!=") ? COP_NE : chat_p_is_op(k, "<") ? COP_LT : chat_p_is_op(k, "<=") ? COP_LE
               : chat_p_is_op(k, ">") ? COP_GT : chat_p_is_op(k, ">=") ? COP_GE : chat_p_is_name(k, "in") ? COP_IN : 0;
        if (!op && chat_p_is_name(k, "not") && chat_p_is_name(chat_p_peek(P, 1), "in")) {
            op = COP_NOTIN;
            chat_p_next(P);
        }
        if (!op) return 0;
        chat_p_next(P);
        cnode *n;
        NN(n = chat_p_mk(P, CN_CMP, k));
        n->op = op;
        n->a = *out;
        TRY(parse_math1(P, &n->b));
        *out = n;
    }
}

static int parse_not(parser *P, cnode **out) {
    const ctok *k = chat_p_cur(P);
    if (chat_p_is_name(k, "not")) {
        if (++P->depth > MAX_NEST) return chat_p_perr(P, k, "expression nested too deeply");
        chat_p_next(P);
        cnode *n;
        NN(n = chat_p_mk(P, CN_NOT, k));
        TRY(parse_not(P, &n->a));
        P->depth--;
        *out = n;
        return 0;
    }
    return parse_compare(P, out);
}

static int parse_and(parser *P, cnode **out) {
    TRY(parse_not(P, out));
    while (chat_p_is_name(chat_p_cur(P), "and")) {
        cnode *n;
        NN(n = chat_p_mk(P, CN_AND, chat_p_cur(P)));
        chat_p_next(P);
        n->a = *out;
        TRY(parse_not(P, &n->b));
        *out = n;
    }
    return 0;
}

int chat_p_parse_or(parser *P, cnode **out) {
    TRY(parse_and(P, out));
    while (chat_p_is_name(chat_p_cur(P), "or")) {
        cnode *n;
        NN(n = chat_p_mk(P, CN_OR, chat_p_cur(P)));
        chat_p_next(P);
        n->a = *out;
        TRY(parse_and(P, &n->b));
        *out = n;
    }
    return 0;
}

int chat_p_parse_expr(parser *P, cnode **out) {
    if (++P->depth > MAX_NEST) return chat_p_perr(P, chat_p_cur(P), "expression nested too deeply");
    TRY(chat_p_parse_or(P, out));
    while (chat_p_is_name(chat_p_cur(P), "if")) {
        cnode *n;
        NN(n = chat_p_mk(P, CN_COND, chat_p_cur(P)));
        chat_p_next(P);
        n->a = *out;
        TRY(chat_p_parse_or(P, &n->b));
        if (chat_p_is_name(chat_p_cur(P), "else")) {
            chat_p_next(P);
            TRY(chat_p_parse_expr(P, &n->c));
        }
        *out = n;
    }
    P->depth--;
    return 0;
}

