/* Internals of the Go-template interpreter: the parse tree shared by the
 * parser (parse.c) and the evaluator (eval.c). */
#ifndef HL_GOTMPL_INTERNAL_H
#define HL_GOTMPL_INTERNAL_H

#include "gotmpl/gotmpl.h"

#include <json-c/json.h>

#define GT_MAX_TEXT (1 << 20)
#define GT_MAX_DEPTH 64
#define GT_MAX_OUT (64u << 20)
#define GT_MAX_ITERS 1000000

typedef enum {
    O_DOT, O_FIELD, O_VAR, O_STRING, O_NUMBER, O_BOOL, O_NIL, O_FUNC, O_PIPE,
} gt_opkind;

typedef struct gt_pipe gt_pipe;

typedef struct gt_operand {
    gt_opkind kind;
    char *name;       /* variable ($x), function name or string literal */
    size_t name_len;
    double num;
    int is_int;
    int boolean;
    char **fields;    /* .A.B after the operand */
    int n_fields;
    gt_pipe *pipe;    /* O_PIPE: (pipeline) */
} gt_operand;

typedef struct gt_cmd {
    gt_operand *args;
    int n_args;
} gt_cmd;

struct gt_pipe {
    char *vars[2];
    int n_vars, assign; /* assign: '=' rather than ':=' */
    gt_cmd *cmds;
    int n_cmds;
};

typedef enum { N_LIST, N_TEXT, N_ACTION, N_IF, N_RANGE, N_WITH, N_BREAK, N_CONTINUE } gt_nkind;

typedef struct gt_node {
    gt_nkind kind;
    char *text;
    size_t text_len;
    gt_pipe *pipe;
    struct gt_node **kids; /* N_LIST */
    int n_kids;
    struct gt_node *body, *else_body;
    int line;
} gt_node;

struct gotmpl {
    gt_node *root;
};

void gt_node_free(gt_node *n);
/* Frees what an operand owns (not the operand itself). */
void gt_operand_free(gt_operand *o);

/* Attaches a JSON text to an object or array: a Go value with a String()
 * method returning its JSON (Ollama's tools, tool-call arguments). Printing
 * it or passing it to json writes that text; its fields stay addressable by
 * their Go names. */
int gt_set_json_text(json_object *v, const char *text, size_t len);
const char *gt_json_text(json_object *v); /* NULL when none */
/* Go's json.Marshal of v (object keys sorted, or in insertion order). */
void gt_put_json(hl_buf *b, json_object *v, int sorted);

#endif
