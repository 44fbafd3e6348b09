/* Internals shared by the two halves of the template parser: expressions
 * (parser.c) and statements (parse_stmt.c). */
#ifndef HL_CHAT_PARSE_H
#define HL_CHAT_PARSE_H

#include "chat/internal.h"

#define MAX_NEST 200 /* nesting of expressions and blocks */

typedef struct parser {
    chat_template *t;
    const ctoks *tk;
    size_t i;
    hl_err *err;
    int depth;
    int loops; /* for loops open around the current statement (for break/continue) */
} parser;

/* growable node arrays used while parsing, copied into the arena at the end */
typedef struct nvec {
    cnode **v;
    const char **names;
    int n, cap;
} nvec;

const ctok *chat_p_cur(parser *P);
const ctok *chat_p_peek(parser *P, size_t k);
void chat_p_next(parser *P);
int chat_p_perr(parser *P, const ctok *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int chat_p_is_op(const ctok *k, const char *op);
int chat_p_is_name(const ctok *k, const char *nm);
const char *chat_p_tok_desc(const ctok *k, char *buf, size_t n);
int chat_p_expect_op(parser *P, const char *op);
cnode *chat_p_mk(parser *P, cnode_kind k, const ctok *at);
const char *chat_p_dup(parser *P, const char *s, size_t n);
int chat_p_add_const(parser *P, cv v, cv *out);
int chat_p_nv_push(nvec *a, cnode *n, const char *name);
int chat_p_nv_take(parser *P, nvec *a, cnode ***items, const char ***names);
int chat_p_parse_args(parser *P, cnode *n);
int chat_p_parse_postfix(parser *P, cnode **io);
int chat_p_parse_dotted_name(parser *P, const char **out);
int chat_p_parse_primary(parser *P, cnode **out);
int chat_p_parse_unary(parser *P, cnode **out, int with_filter);
int chat_p_parse_or(parser *P, cnode **out);
int chat_p_parse_expr(parser *P, cnode **out);

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)
#define NN(x) do { if (!(x)) return hl_err_set(P->err, HL_ENOMEM, "out of memory"); } while (0)

#endif
