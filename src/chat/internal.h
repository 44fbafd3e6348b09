/* Internals of the chat-template interpreter shared by its files: the value
 * type (refcounted strings, lists, dicts), tokens, the syntax tree, and the
 * per-render state. Nothing here is part of the public interface (chat.h). */
#ifndef HL_CHAT_INTERNAL_H
#define HL_CHAT_INTERNAL_H

#include "base/buf.h"
#include "base/err.h"
#include "chat/chat.h"

#include <stddef.h>
#include <stdint.h>

/* ---- values --------------------------------------------------------------- */

typedef enum {
    CV_UNDEF, /* jinja2 Undefined: prints empty, falsy, iterates empty */
    CV_NONE,
    CV_BOOL,
    CV_INT,
    CV_FLOAT,
    CV_STR,
    CV_LIST,  /* lists and tuples */
    CV_DICT,  /* insertion-ordered */
    CV_NS,    /* namespace(): a dict whose attributes may be assigned */
    CV_MACRO, /* a macro defined in the template */
    CV_FUNC,  /* a global function (range, namespace, raise_exception ...) */
    CV_LOOP,  /* the `loop` object of a for loop */
} cv_type;

typedef struct cv_str cv_str;
typedef struct cv_list cv_list;
typedef struct cv_dict cv_dict;
struct cnode;
struct cv_loop;

typedef struct cv {
    cv_type t;
    union {
        int b;
        int64_t i;
        double f;
        cv_str *s;
        cv_list *l;
        cv_dict *d;                /* CV_DICT and CV_NS */
        const struct cnode *macro; /* borrowed from the template */
        int fn;                    /* CV_FUNC: which global */
        struct cv_loop *loop;      /* borrowed from the running for loop */
        const char *uname;         /* CV_UNDEF: what was undefined (borrowed), or NULL */
    } u;
} cv;

/* refcount < 0 marks immortal objects (template constants shared by threads) */
struct cv_str {
    int rc;
    size_t len;
    char data[]; /* NUL-terminated */
};
struct cv_list {
    int rc;
    int tuple; /* prints as (a, b) */
    int gen;   /* a jinja2 generator (from select, map, items, unique, reverse): always
                  truthy, no len(), no indexing, not JSON; iterating is fine */
    size_t n, cap;
    cv *v;
};
struct cv_dict {
    int rc;
    size_t n, cap;
    cv *k; /* keys (any hashable value; in practice strings) */
    cv *v;
};

static inline cv cv_undef(const char *name) { cv v = {CV_UNDEF, {0}}; v.u.uname = name; return v; }
static inline cv cv_none(void) { cv v = {CV_NONE, {0}}; return v; }
static inline cv cv_bool(int b) { cv v = {CV_BOOL, {0}}; v.u.b = !!b; return v; }
static inline cv cv_int(int64_t i) { cv v = {CV_INT, {0}}; v.u.i = i; return v; }
static inline cv cv_float(double f) { cv v = {CV_FLOAT, {0}}; v.u.f = f; return v; }

cv cv_str_new(const char *s, size_t n); /* copies; on OOM returns an undefined that cv_is_oom() recognizes */
cv cv_str_cstr(const char *s);
cv cv_list_new(size_t cap);
cv cv_dict_new(void);
cv cv_ref(cv v);   /* +1, returns v */
void cv_unref(cv v);
int cv_is_oom(cv v); /* a constructor failed */

/* list / dict editing (take ownership of the values passed in) */
int cv_list_push(cv list, cv item);
int cv_dict_set(cv dict, cv key, cv val);
/* borrowed lookup by string key; NULL if absent */
cv *cv_dict_get(cv dict, const char *key, size_t klen);
cv *cv_dict_find(cv dict, cv key);

int cv_truthy(cv v);
int cv_equal(cv a, cv b);
const char *cv_type_name(cv v); /* "str", "int", "dict object" style names for errors */

/* Appends Python's str(v) (what {{ v }} prints). */
void cv_to_str(hl_buf *b, cv v);
/* Appends Python's repr(v). */
void cv_repr(hl_buf *b, cv v);
/* Appends Python's repr of a float. */
void cv_float_repr(hl_buf *b, double f);
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys): indent < 0
 * means none. Returns 0, or -1 when v is not serializable (msg in err). */
int cv_to_json(hl_buf *b, cv v, int indent, const char *item_sep, const char *key_sep, int sort_keys,
               hl_err *err);
/* Converts a json-c value to a template value (+1). */
cv cv_from_json(struct json_object *j);

/* UTF-8 helpers for code-point indexing (Python str semantics) */
size_t cv_u8_len(const char *s, size_t n);             /* number of code points */
size_t cv_u8_offset(const char *s, size_t n, size_t i); /* byte offset of code point i (clamped) */

/* ---- tokens --------------------------------------------------------------- */

typedef enum {
    CT_TEXT, CT_VAR_BEGIN, CT_VAR_END, CT_BLOCK_BEGIN, CT_BLOCK_END,
    CT_NAME, CT_STRING, CT_INT, CT_FLOAT, CT_OP, CT_EOF
} ctok_type;

typedef struct ctok {
    ctok_type t;
    int line, col;
    const char *s; /* CT_TEXT, CT_NAME, CT_STRING (unescaped), CT_OP: owned by the token array */
    size_t n;
    int64_t i;
    double f;
    int owned; /* s was malloc'ed (unescaped string) */
} ctok;

typedef struct ctoks {
    ctok *v;
    size_t n, cap;
    char *src; /* the normalized source that tokens point into (owned) */
} ctoks;

int chat_lex(ctoks *out, const char *src, size_t len, hl_err *err);
void chat_toks_free(ctoks *t);

/* ---- syntax tree -------------------------------------------------------- */

typedef enum {
    /* expressions */
    CN_CONST, CN_NAME, CN_GETATTR, CN_GETITEM, CN_SLICE, CN_CALL, CN_FILTER, CN_TEST,
    CN_NEG, CN_POS, CN_NOT, CN_AND, CN_OR, CN_BINOP, CN_CMP, CN_COND, CN_LIST, CN_TUPLE, CN_DICT,
    /* statements */
    CN_BODY, CN_TEXT, CN_OUTPUT, CN_IF, CN_FOR, CN_SET, CN_SETBLOCK, CN_MACRO, CN_CALLBLOCK,
    CN_FILTERBLOCK, CN_BREAK, CN_CONTINUE, CN_GENERATION, CN_WITH,
} cnode_kind;

typedef struct cnode {
    cnode_kind k;
    int line, col;
    int op;              /* CN_BINOP/CN_CMP: operator token ("+" etc., as int code); CN_TEST: negated */
    const char *name;    /* names: variables, attributes, filters, tests, macro names */
    cv val;              /* CN_CONST, CN_TEXT: immortal value */
    struct cnode *a, *b, *c, *d;
    struct cnode **items; /* args, list items, statement bodies, macro params */
    int n_items;
    const char **kw_names; /* keyword arguments (or macro parameter names) */
    struct cnode **kw_vals;
    int n_kw;
    int flag; /* CN_SET: 1 = namespace attribute; CN_MACRO/CN_CALLBLOCK: 1 uses varargs, 2 uses kwargs */
} cnode;

struct chat_template {
    cnode *root;      /* CN_BODY */
    void *arena;      /* every node and string lives here */
    cv *consts;       /* immortal values to release with the template */
    size_t n_consts, cap_consts;
};

/* operator codes for CN_BINOP / CN_CMP */
enum {
    COP_ADD = 1, COP_SUB, COP_MUL, COP_DIV, COP_FLOORDIV, COP_MOD, COP_POW, COP_CONCAT,
    COP_EQ, COP_NE, COP_LT, COP_LE, COP_GT, COP_GE, COP_IN, COP_NOTIN,
};

int chat_parse(chat_template *t, const ctoks *toks, hl_err *err);
void *chat_arena_alloc(chat_template *t, size_t n); /* zeroed; NULL on OOM */
void chat_arena_free(chat_template *t);

/* ---- rendering ------------------------------------------------------------- */

typedef struct cscope cscope;

typedef struct cv_loop {
    cv items;    /* the list iterated (borrowed from the for statement) */
    size_t idx;  /* current index */
    int depth;
    cv last_changed; /* for loop.changed() */
} cv_loop;

typedef struct crender {
    const chat_template *t;
    chat_limits lim;
    size_t iters;
    size_t work; /* bytes of values built so far (see chat_limits.max_work) */
    int depth;
    hl_err *err;
    cscope *root;
    cscope *caller_scope; /* scope of the running {% call %} statement: its body (caller()) sees it */
} crender;

/* Sets err to "template line L, column C: msg" and returns code. */
int chat_rerr(crender *r, const cnode *at, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* filters.c: applies filter / test / method / global; result in *out (+1) */
int chat_filter(crender *r, const cnode *at, const char *name, cv self, cv *args, int nargs,
                const char **kwn, cv *kwv, int nkw, cv *out);
int chat_test(crender *r, const cnode *at, const char *name, cv self, cv *args, int nargs, int *out);
/* returns 1 when `name` is a method of self's type (and then fills *out or fails), 0 when not */
int chat_method(crender *r, const cnode *at, cv self, const char *name, cv *args, int nargs,
                const char **kwn, cv *kwv, int nkw, cv *out, int *rc);
int chat_is_method(cv self, const char *name);
int chat_filter_known(const char *name); /* a jinja2 builtin filter name */
int chat_test_known(const char *name);
int chat_global(crender *r, const cnode *at, int fn, cv *args, int nargs, const char **kwn, cv *kwv, int nkw,
                cv *out);
int chat_global_lookup(const char *name); /* -1 if not a global function */
int chat_compare(crender *r, const cnode *at, int op, cv a, cv b, int *out);
int chat_iterate(crender *r, const cnode *at, cv v, cv *out_list); /* list of items (+1) */

enum { CF_RANGE = 1, CF_NAMESPACE, CF_RAISE, CF_STRFTIME, CF_DICT, CF_LIPSUM_UNUSED };

int chat_eval_render(crender *r, const cnode *body, hl_buf *out);
/* eval.c, used by stmt.c */
int chat_ev(crender *r, cscope *s, const cnode *n, cv *out);
int chat_scope_set(cscope *s, const char *name, cv v); /* takes v */
cv *chat_scope_find(cscope *s, const char *name);
cscope *chat_scope_new(cscope *parent);
void chat_scope_destroy(cscope *s);
int chat_apply_filters(crender *r, cscope *s, const cnode *f, cv in, cv *out);
int chat_check_out(crender *r, const cnode *at, hl_buf *out);
int chat_call_macro(crender *r, const cnode *at, const cnode *macro, cv *args, int nargs, const char **kwn,
                    cv *kwv, int nkw, const cnode *caller, cv *out);

#endif
