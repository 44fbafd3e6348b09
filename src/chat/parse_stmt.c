/* The statement half of the template parser: the body of a template or
 * block (text, {{ }} output, {% %} statements) and each statement's syntax:
 * if/elif/else, for (targets, inline if, else), set (plain, tuple,
 * namespace attribute, block with filters), macro, call, filter blocks,
 * generation blocks, break and continue. */
#include "chat/parse.h"

#include <stdlib.h>
#include <string.h>


static int expect_block_end(parser *P) {
    if (chat_p_cur(P)->t != CT_BLOCK_END) {
        char b[64];
        return chat_p_perr(P, chat_p_cur(P), "expected end of statement '%%}', found %s", chat_p_tok_desc(chat_p_cur(P), b, sizeof b));
    }
    chat_p_next(P);
    return 0;
}

static int parse_body(parser *P, cnode **out, const char *const *ends, int *which, const ctok *opener);


/* does the subtree read the variable `name`? (macros accept extra arguments
 * only when their body reads varargs / kwargs, as in jinja2) */
static int reads_name(const cnode *n, const char *name) {
    if (!n) return 0;
    if (n->k == CN_NAME && !strcmp(n->name, name)) return 1;
    if (n->k == CN_MACRO) return 0; /* a nested macro has its own */
    if (reads_name(n->a, name) || reads_name(n->b, name) || reads_name(n->c, name) || reads_name(n->d, name)) return 1;
    for (int i = 0; i < n->n_items; i++)
        if (reads_name(n->items[i], name)) return 1;
    for (int i = 0; i < n->n_kw; i++)
        if (n->kw_vals && reads_name(n->kw_vals[i], name)) return 1;
    return 0;
}

static int mk_body(parser *P, nvec *v, cnode *owner) {
    owner->n_items = v->n;
    if (chat_p_nv_take(P, v, &owner->items, NULL)) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return 0;
}

/* names for `for` / `set` targets: a, b or (a, b) */
static int parse_targets(parser *P, cnode *n) {
    nvec names = {0};
    int paren = 0;
    if (chat_p_is_op(chat_p_cur(P), "(")) { paren = 1; chat_p_next(P); }
    for (;;) {
        const ctok *k = chat_p_cur(P);
        if (k->t != CT_NAME) {
            free(names.v); free(names.names);
            char b[64];
            return chat_p_perr(P, k, "expected a variable name, found %s", chat_p_tok_desc(k, b, sizeof b));
        }
        const char *nm = chat_p_dup(P, k->s, k->n);
        if (!nm || chat_p_nv_push(&names, NULL, nm)) { free(names.v); free(names.names); return hl_err_set(P->err, HL_ENOMEM, "out of memory"); }
        chat_p_next(P);
        if (!chat_p_is_op(chat_p_cur(P), ",")) break;
        chat_p_next(P);
    }
    if (paren && chat_p_expect_op(P, ")")) { free(names.v); free(names.names); return HL_EINVAL; }
    n->n_kw = names.n;
    cnode **dummy;
    int rc = chat_p_nv_take(P, &names, &dummy, &n->kw_names);
    if (rc) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    return 0;
}

/* `| f(args) | g` after `set x` or `filter`: a chain whose innermost operand is NULL */
static int parse_filter_chain(parser *P, cnode **out, int need_first_bar) {
    cnode *chain = NULL;
    int first = 1;
    while (chat_p_is_op(chat_p_cur(P), "|") || (first && !need_first_bar)) {
        if (chat_p_is_op(chat_p_cur(P), "|")) chat_p_next(P);
        first = 0;
        cnode *n;
        const ctok *fk = chat_p_cur(P);
        NN(n = chat_p_mk(P, CN_FILTER, fk));
        TRY(chat_p_parse_dotted_name(P, &n->name));
        if (!chat_filter_known(n->name)) return chat_p_perr(P, fk, "unknown filter '%s'", n->name);
        if (chat_p_is_op(chat_p_cur(P), "(")) TRY(chat_p_parse_args(P, n));
        n->a = chain;
        chain = n;
    }
    *out = chain;
    return 0;
}

static int parse_stmt(parser *P, cnode **out) {
    const ctok *kw = chat_p_cur(P);
    cnode *n = NULL;
    nvec body = {0};
    int which = -1;
    if (kw->t != CT_NAME) {
        char b[64];
        return chat_p_perr(P, kw, "expected a statement name after '{%%', found %s", chat_p_tok_desc(kw, b, sizeof b));
    }
    if (chat_p_is_name(kw, "if")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_IF, kw));
        TRY(chat_p_parse_or(P, &n->a));
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
                NN(e = chat_p_mk(P, CN_IF, chat_p_cur(P)));
                TRY(chat_p_parse_or(P, &e->a));
                TRY(expect_block_end(P));
                cnode *eb;
                NN(eb = chat_p_mk(P, CN_BODY, chat_p_cur(P)));
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
    } else if (chat_p_is_name(kw, "for")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_FOR, kw));
        TRY(parse_targets(P, n));
        if (!chat_p_is_name(chat_p_cur(P), "in")) return chat_p_perr(P, chat_p_cur(P), "expected 'in' in a for statement");
        chat_p_next(P);
        TRY(chat_p_parse_or(P, &n->a));
        if (chat_p_is_name(chat_p_cur(P), "if")) {
            chat_p_next(P);
            TRY(chat_p_parse_expr(P, &n->b));
        }
        if (chat_p_is_name(chat_p_cur(P), "recursive")) return chat_p_perr(P, chat_p_cur(P), "recursive for loops are not supported");
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
    } else if (chat_p_is_name(kw, "set")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_SET, kw));
        if (chat_p_cur(P)->t == CT_NAME && chat_p_is_op(chat_p_peek(P, 1), ".")) {
            /* namespace attribute assignment: set ns.attr = value */
            n->flag = 1;
            NN(n->kw_names = chat_arena_alloc(P->t, sizeof(char *)));
            NN(n->kw_names[0] = chat_p_dup(P, chat_p_cur(P)->s, chat_p_cur(P)->n));
            n->n_kw = 1;
            chat_p_next(P);
            chat_p_next(P);
            if (chat_p_cur(P)->t != CT_NAME) return chat_p_perr(P, chat_p_cur(P), "expected an attribute name after '.'");
            NN(n->name = chat_p_dup(P, chat_p_cur(P)->s, chat_p_cur(P)->n));
            chat_p_next(P);
        } else {
            TRY(parse_targets(P, n));
        }
        if (chat_p_is_op(chat_p_cur(P), "=")) {
            chat_p_next(P);
            TRY(chat_p_parse_expr(P, &n->a));
            if (chat_p_is_op(chat_p_cur(P), ",")) {
                cnode *t;
                NN(t = chat_p_mk(P, CN_TUPLE, chat_p_cur(P)));
                nvec items = {0};
                int rc = chat_p_nv_push(&items, n->a, NULL);
                while (!rc && chat_p_is_op(chat_p_cur(P), ",")) {
                    chat_p_next(P);
                    if (chat_p_cur(P)->t == CT_BLOCK_END) break;
                    cnode *e;
                    rc = chat_p_parse_expr(P, &e);
                    if (!rc) rc = chat_p_nv_push(&items, e, NULL);
                }
                if (!rc) rc = mk_body(P, &items, t);
                free(items.v); free(items.names);
                if (rc) return rc == HL_ENOMEM ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : rc;
                n->a = t;
            }
            TRY(expect_block_end(P));
        } else {
            if (n->flag || n->n_kw != 1) return chat_p_perr(P, chat_p_cur(P), "a block set assigns exactly one name");
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
    } else if (chat_p_is_name(kw, "macro") || chat_p_is_name(kw, "call")) {
        int is_call = chat_p_is_name(kw, "call");
        chat_p_next(P);
        NN(n = chat_p_mk(P, is_call ? CN_CALLBLOCK : CN_MACRO, kw));
        if (!is_call) TRY(chat_p_parse_dotted_name(P, &n->name));
        if (!is_call || chat_p_is_op(chat_p_cur(P), "(")) {
            TRY(chat_p_expect_op(P, "("));
            nvec params = {0};
            int rc = 0;
            while (!rc && !chat_p_is_op(chat_p_cur(P), ")")) {
                if (params.n && (rc = chat_p_expect_op(P, ","))) break;
                if (chat_p_cur(P)->t != CT_NAME) { rc = chat_p_perr(P, chat_p_cur(P), "expected a parameter name"); break; }
                const char *nm = chat_p_dup(P, chat_p_cur(P)->s, chat_p_cur(P)->n);
                chat_p_next(P);
                cnode *def = NULL;
                if (chat_p_is_op(chat_p_cur(P), "=")) {
                    chat_p_next(P);
                    rc = chat_p_parse_expr(P, &def);
                } else if (params.n && params.v[params.n - 1]) {
                    rc = chat_p_perr(P, chat_p_cur(P), "parameter without a default after one with a default");
                }
                if (!rc) rc = (!nm || chat_p_nv_push(&params, def, nm)) ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : 0;
            }
            if (!rc) {
                chat_p_next(P);
                n->n_kw = params.n;
                rc = chat_p_nv_take(P, &params, &n->kw_vals, &n->kw_names) ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : 0;
            }
            free(params.v); free(params.names);
            if (rc) return rc;
        }
        if (is_call) {
            TRY(chat_p_parse_primary(P, &n->a));
            TRY(chat_p_parse_postfix(P, &n->a));
            if (n->a->k != CN_CALL) return chat_p_perr(P, kw, "expected a macro call after 'call'");
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
        for (int i = 0; i < n->n_items; i++) {
            if (reads_name(n->items[i], "varargs")) n->flag |= 1;
            if (reads_name(n->items[i], "kwargs")) n->flag |= 2;
        }
        if (!is_call && chat_p_cur(P)->t == CT_NAME) chat_p_next(P); /* {% endmacro name %} */
        TRY(expect_block_end(P));
    } else if (chat_p_is_name(kw, "filter")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_FILTERBLOCK, kw));
        TRY(parse_filter_chain(P, &n->a, 0));
        TRY(expect_block_end(P));
        static const char *const ends[] = {"endfilter", NULL};
        cnode *b;
        TRY(parse_body(P, &b, ends, &which, kw));
        n->items = b->items;
        n->n_items = b->n_items;
        TRY(expect_block_end(P));
    } else if (chat_p_is_name(kw, "with")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_WITH, kw));
        nvec names = {0}, vals = {0};
        int rc = 0;
        while (!rc && chat_p_cur(P)->t != CT_BLOCK_END) {
            if (names.n && (rc = chat_p_expect_op(P, ","))) break;
            const ctok *t = chat_p_cur(P);
            if (t->t != CT_NAME) { rc = chat_p_perr(P, t, "expected a variable name in 'with'"); break; }
            const char *nm = chat_p_dup(P, t->s, t->n);
            chat_p_next(P);
            cnode *e = NULL;
            if (!(rc = chat_p_expect_op(P, "=")) && !(rc = chat_p_parse_expr(P, &e)))
                rc = (!nm || chat_p_nv_push(&names, NULL, nm) || chat_p_nv_push(&vals, e, NULL)) ? HL_ENOMEM : 0;
        }
        if (!rc) {
            cnode **dummy;
            n->n_kw = names.n;
            rc = chat_p_nv_take(P, &names, &dummy, &n->kw_names);
            if (!rc) rc = chat_p_nv_take(P, &vals, &n->kw_vals, NULL);
        }
        free(names.v); free(names.names); free(vals.v); free(vals.names);
        if (rc) return rc == HL_ENOMEM ? hl_err_set(P->err, HL_ENOMEM, "out of memory") : rc;
        TRY(expect_block_end(P));
        static const char *const ends[] = {"endwith", NULL};
        cnode *b;
        TRY(parse_body(P, &b, ends, &which, kw));
        n->items = b->items;
        n->n_items = b->n_items;
        TRY(expect_block_end(P));
    } else if (chat_p_is_name(kw, "generation")) {
        chat_p_next(P);
        NN(n = chat_p_mk(P, CN_GENERATION, kw));
        TRY(expect_block_end(P));
        static const char *const ends[] = {"endgeneration", NULL};
        cnode *b;
        int saved = P->loops; /* the body is a call block (a macro): no break/continue out of it */
        P->loops = 0;
        TRY(parse_body(P, &b, ends, &which, kw));
        P->loops = saved;
        n->items = b->items;
        n->n_items = b->n_items;
        TRY(expect_block_end(P));
    } else if (chat_p_is_name(kw, "break") || chat_p_is_name(kw, "continue")) {
        if (!P->loops) return chat_p_perr(P, kw, "'%.*s' outside of a for loop", (int)kw->n, kw->s);
        NN(n = chat_p_mk(P, chat_p_is_name(kw, "break") ? CN_BREAK : CN_CONTINUE, kw));
        chat_p_next(P);
        TRY(expect_block_end(P));
    } else {
        static const char *const known_ends[] = {"endif", "endfor", "endset", "endmacro", "endcall", "endfilter",
                                                 "endgeneration", "endwith", "elif", "else", NULL};
        for (int i = 0; known_ends[i]; i++)
            if (chat_p_is_name(kw, known_ends[i]))
                return chat_p_perr(P, kw, "unexpected '%s' (no open block it could close)", known_ends[i]);
        return chat_p_perr(P, kw, "unknown or unsupported statement '%.*s'", (int)(kw->n > 40 ? 40 : kw->n), kw->s);
    }
    free(body.v);
    *out = n;
    return 0;
}

static int parse_body(parser *P, cnode **out, const char *const *ends, int *which, const ctok *opener) {
    nvec body = {0};
    int rc = 0;
    cnode *b = chat_p_mk(P, CN_BODY, chat_p_cur(P));
    if (!b) return hl_err_set(P->err, HL_ENOMEM, "out of memory");
    if (++P->depth > MAX_NEST) return chat_p_perr(P, chat_p_cur(P), "blocks nested too deeply");
    for (;;) {
        const ctok *k = chat_p_cur(P);
        cnode *n = NULL;
        if (k->t == CT_EOF) {
            if (ends) {
                rc = chat_p_perr(P, opener, "unexpected end of template: '%.*s' block is never closed (expected '%s')",
                          (int)opener->n, opener->s, ends[0][0] == 'e' && ends[0][1] == 'n' ? ends[0] : ends[1] ? ends[1] : ends[0]);
                if (strcmp(ends[0], "elif") == 0) {
                    rc = chat_p_perr(P, opener, "unexpected end of template: '%.*s' block is never closed (expected 'endif')",
                              (int)opener->n, opener->s);
                }
            }
            break;
        }
        if (k->t == CT_TEXT) {
            if (!(n = chat_p_mk(P, CN_TEXT, k))) { rc = HL_ENOMEM; break; }
            if ((rc = chat_p_add_const(P, cv_str_new(k->s, k->n), &n->val))) break;
            chat_p_next(P);
        } else if (k->t == CT_VAR_BEGIN) {
            chat_p_next(P);
            if (!(n = chat_p_mk(P, CN_OUTPUT, k))) { rc = HL_ENOMEM; break; }
            if ((rc = chat_p_parse_expr(P, &n->a))) break;
            if (chat_p_is_op(chat_p_cur(P), ",")) { /* {{ a, b }} prints a tuple */
                cnode *t = chat_p_mk(P, CN_TUPLE, k);
                nvec items = {0};
                if (!t || chat_p_nv_push(&items, n->a, NULL)) { free(items.v); free(items.names); rc = HL_ENOMEM; break; }
                while (!rc && chat_p_is_op(chat_p_cur(P), ",")) {
                    chat_p_next(P);
                    if (chat_p_cur(P)->t == CT_VAR_END) break;
                    cnode *e;
                    if (!(rc = chat_p_parse_expr(P, &e))) rc = chat_p_nv_push(&items, e, NULL);
                }
                t->n_items = items.n;
                if (!rc) rc = chat_p_nv_take(P, &items, &t->items, NULL);
                free(items.v);
                free(items.names);
                if (rc) break;
                n->a = t;
            }
            if (chat_p_cur(P)->t != CT_VAR_END) {
                char bb[64];
                rc = chat_p_perr(P, chat_p_cur(P), "expected end of print statement '}}', found %s", chat_p_tok_desc(chat_p_cur(P), bb, sizeof bb));
                break;
            }
            chat_p_next(P);
        } else if (k->t == CT_BLOCK_BEGIN) {
            const ctok *nm = chat_p_peek(P, 1);
            int hit = -1;
            for (int i = 0; ends && ends[i]; i++)
                if (chat_p_is_name(nm, ends[i])) hit = i;
            if (hit >= 0) {
                chat_p_next(P);
                chat_p_next(P);
                *which = hit;
                break;
            }
            chat_p_next(P);
            if ((rc = parse_stmt(P, &n))) break;
        } else {
            char bb[64];
            rc = chat_p_perr(P, k, "unexpected %s", chat_p_tok_desc(k, bb, sizeof bb));
            break;
        }
        if ((rc = chat_p_nv_push(&body, n, NULL))) break;
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
