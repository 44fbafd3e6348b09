/* Parsing Go templates: the text is split into literal text and {{ actions }}
 * (with {{- and -}} trimming the neighbouring whitespace, comments dropped),
 * and actions are parsed into pipelines and control nodes (if/range/with
 * with else and else-if chains, end, break, continue). Errors name the line
 * as Go's do ("template: :3: unexpected {{end}}"). */
#include "gotmpl/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *src, *p, *end;
    int line;
    int depth;
    hl_err *err;
    int failed;
    int trim_next; /* the previous action ended with -}} */
    /* the current action's text */
    const char *a, *a_end;
} parser;

static int fail(parser *ps, const char *fmt, const char *arg) {
    if (!ps->failed) {
        char msg[512];
        snprintf(msg, sizeof msg, fmt, arg ? arg : "");
        hl_err_set(ps->err, HL_EINVAL, "template: line %d: %s", ps->line, msg);
    }
    ps->failed = 1;
    return -1;
}

static void *xcalloc(size_t n, size_t sz) { return calloc(n ? n : 1, sz); }

static void pipe_free(gt_pipe *p);
void gt_operand_free(gt_operand *o) {
    if (!o) return;
    free(o->name);
    for (int i = 0; i < o->n_fields; i++) free(o->fields[i]);
    free(o->fields);
    if (o->pipe) pipe_free(o->pipe);
}
static void pipe_free(gt_pipe *p) {
    if (!p) return;
    for (int i = 0; i < p->n_vars; i++) free(p->vars[i]);
    for (int c = 0; c < p->n_cmds; c++) {
        for (int a = 0; a < p->cmds[c].n_args; a++) gt_operand_free(&p->cmds[c].args[a]);
        free(p->cmds[c].args);
    }
    free(p->cmds);
    free(p);
}

void gt_node_free(gt_node *n) {
    if (!n) return;
    free(n->text);
    pipe_free(n->pipe);
    for (int i = 0; i < n->n_kids; i++) gt_node_free(n->kids[i]);
    free(n->kids);
    gt_node_free(n->body);
    gt_node_free(n->else_body);
    free(n);
}

/* ---- action lexing ---- */
static void skip_ws(parser *ps) {
    while (ps->a < ps->a_end && isspace((unsigned char)*ps->a)) ps->a++;
}

static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int add_field(gt_operand *o, const char *s, size_t n) {
    char **nf = realloc(o->fields, (size_t)(o->n_fields + 1) * sizeof *nf);
    if (!nf) return -1;
    o->fields = nf;
    if (!(o->fields[o->n_fields] = dupn(s, n))) return -1;
    o->n_fields++;
    return 0;
}

/* .A.B chains directly after an operand */
static int read_fields(parser *ps, gt_operand *o) {
    while (ps->a < ps->a_end && *ps->a == '.' && ps->a + 1 < ps->a_end && is_ident(ps->a[1])) {
        const char *s = ++ps->a;
        while (ps->a < ps->a_end && is_ident(*ps->a)) ps->a++;
        if (add_field(o, s, (size_t)(ps->a - s))) return fail(ps, "out of memory", NULL);
    }
    return 0;
}

static gt_pipe *parse_pipe(parser *ps, int allow_decl, char close);

static int read_string(parser *ps, gt_operand *o) {
    char q = *ps->a++;
    size_t cap = 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return fail(ps, "out of memory", NULL);
    for (;;) {
        if (ps->a >= ps->a_end || (q == '"' && *ps->a == '\n')) {
            free(buf);
            return fail(ps, "unterminated quoted string", NULL);
        }
        char c = *ps->a++;
        if (c == q) break;
        if (q == '"' && c == '\\') {
            if (ps->a >= ps->a_end) break;
            char e = *ps->a++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '\\': c = '\\'; break;
            case '"': c = '"'; break;
            case '\'': c = '\''; break;
            case '0': c = 0; break;
            default: free(buf); return fail(ps, "unsupported escape in string", NULL);
            }
        }
        if (n + 2 > cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return fail(ps, "out of memory", NULL);
            }
            buf = nb;
        }
        buf[n++] = c;
    }
    buf[n] = 0;
    o->kind = O_STRING;
    o->name = buf;
    o->name_len = n;
    return 0;
}

/* One operand; returns 1 when there is none here (end of command). */
static int parse_operand(parser *ps, gt_operand *o) {
    memset(o, 0, sizeof *o);
    skip_ws(ps);
    if (ps->a >= ps->a_end) return 1;
    char c = *ps->a;
    if (c == '|' || c == ')') return 1;
    if (c == '(') {
        ps->a++;
        if (++ps->depth > GT_MAX_DEPTH) return fail(ps, "nesting too deep", NULL);
        o->kind = O_PIPE;
        o->pipe = parse_pipe(ps, 0, ')');
        ps->depth--;
        if (!o->pipe) return -1;
        if (ps->a >= ps->a_end || *ps->a != ')') return fail(ps, "unclosed left paren", NULL);
        ps->a++;
        return read_fields(ps, o);
    }
    if (c == '"' || c == '`') return read_string(ps, o);
    if (c == '.') {
        if (ps->a + 1 < ps->a_end && is_ident(ps->a[1])) {
            o->kind = O_FIELD;
            return read_fields(ps, o);
        }
        ps->a++;
        o->kind = O_DOT;
        return 0;
    }
    if (c == '$') {
        const char *s = ps->a++;
        while (ps->a < ps->a_end && is_ident(*ps->a)) ps->a++;
        o->kind = O_VAR;
        o->name = dupn(s, (size_t)(ps->a - s));
        if (!o->name) return fail(ps, "out of memory", NULL);
        return read_fields(ps, o);
    }
    if (isdigit((unsigned char)c) || ((c == '-' || c == '+') && ps->a + 1 < ps->a_end && isdigit((unsigned char)ps->a[1]))) {
        char *end;
        const char *s = ps->a;
        o->kind = O_NUMBER;
        o->num = strtod(s, &end);
        if (end > ps->a_end) end = (char *)ps->a_end;
        o->is_int = 1;
        for (const char *q = s; q < end; q++)
            if (*q == '.' || *q == 'e' || *q == 'E') o->is_int = 0;
        ps->a = end;
        if (ps->a < ps->a_end && !isspace((unsigned char)*ps->a) && *ps->a != ')' && *ps->a != '|')
            return fail(ps, "bad number syntax", NULL);
        return 0;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        const char *s = ps->a;
        while (ps->a < ps->a_end && is_ident(*ps->a)) ps->a++;
        size_t n = (size_t)(ps->a - s);
        if (n == 4 && !memcmp(s, "true", 4)) o->kind = O_BOOL, o->boolean = 1;
        else if (n == 5 && !memcmp(s, "false", 5)) o->kind = O_BOOL;
        else if (n == 3 && !memcmp(s, "nil", 3)) o->kind = O_NIL;
        else {
            static const char *funcs[] = {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "slice",
                                          "index", "json", "print", "printf", "println", "toJson", NULL};
            int known = 0;
            for (int i = 0; funcs[i]; i++)
                if (strlen(funcs[i]) == n && !memcmp(funcs[i], s, n)) known = 1;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(n < 60 ? n : 60), s);
            if (!known) return fail(ps, "function \"%s\" not defined", name);
            o->kind = O_FUNC;
            o->name = dupn(s, n);
            if (!o->name) return fail(ps, "out of memory", NULL);
        }
        return 0;
    }
    char bad[2] = {c, 0};
    return fail(ps, "unexpected \"%s\" in command", bad);
}

static gt_pipe *parse_pipe(parser *ps, int allow_decl, char close) {
    gt_pipe *p = xcalloc(1, sizeof *p);
    if (!p) {
        fail(ps, "out of memory", NULL);
        return NULL;
    }
    skip_ws(ps);
    /* $x := / $x, $y := / $x = */
    if (allow_decl && ps->a < ps->a_end && *ps->a == '$') {
        const char *save = ps->a;
        char *names[2] = {0};
        int nv = 0;
        for (;;) {
            const char *s = ps->a;
            if (*ps->a != '$') break;
            ps->a++;
            while (ps->a < ps->a_end && is_ident(*ps->a)) ps->a++;
            if (nv < 2) names[nv++] = dupn(s, (size_t)(ps->a - s));
            skip_ws(ps);
            if (ps->a < ps->a_end && *ps->a == ',' && nv < 2) {
                ps->a++;
                skip_ws(ps);
                continue;
            }
            break;
        }
        int decl = 0;
        if (ps->a + 1 < ps->a_end && ps->a[0] == ':' && ps->a[1] == '=') decl = 2, p->assign = 0;
        else if (ps->a < ps->a_end && ps->a[0] == '=' && (ps->a + 1 >= ps->a_end || ps->a[1] != '=')) decl = 1, p->assign = 1;
        if (decl) {
            ps->a += decl;
            p->n_vars = nv;
            p->vars[0] = names[0];
            p->vars[1] = names[1];
        } else {
            for (int i = 0; i < nv; i++) free(names[i]);
            ps->a = save;
        }
    }
    for (;;) {
        gt_cmd cmd = {0};
        for (;;) {
            gt_operand o;
            int r = parse_operand(ps, &o);
            if (r < 0) {
                gt_operand_free(&o);
                for (int a = 0; a < cmd.n_args; a++) gt_operand_free(&cmd.args[a]);
                free(cmd.args);
                pipe_free(p);
                return NULL;
            }
            if (r == 1) break;
            gt_operand *na = realloc(cmd.args, (size_t)(cmd.n_args + 1) * sizeof *na);
            if (!na) {
                gt_operand_free(&o);
                pipe_free(p);
                fail(ps, "out of memory", NULL);
                return NULL;
            }
            cmd.args = na;
            cmd.args[cmd.n_args++] = o;
        }
        if (cmd.n_args == 0) {
            free(cmd.args);
            pipe_free(p);
            fail(ps, "missing value for command", NULL);
            return NULL;
        }
        gt_cmd *nc = realloc(p->cmds, (size_t)(p->n_cmds + 1) * sizeof *nc);
        if (!nc) {
            pipe_free(p);
            fail(ps, "out of memory", NULL);
            return NULL;
        }
        p->cmds = nc;
        p->cmds[p->n_cmds++] = cmd;
        skip_ws(ps);
        if (ps->a < ps->a_end && *ps->a == '|') {
            ps->a++;
            continue;
        }
        break;
    }
    skip_ws(ps);
    if (close == 0 && ps->a < ps->a_end) {
        pipe_free(p);
        fail(ps, "unexpected text in action", NULL);
        return NULL;
    }
    return p;
}

/* ---- text / action scanning ---- */
typedef enum { T_EOF, T_TEXT, T_ACTION } tok_kind;

/* Finds the next action: text before it goes to *text. Handles trim markers
 * and comments. Returns T_ACTION with ps->a..a_end set to the action body. */
static tok_kind next(parser *ps, const char **text, size_t *text_len) {
    *text = ps->p;
    *text_len = 0;
    for (;;) {
        if (ps->p >= ps->end) return T_EOF;
        const char *open = strstr(ps->p, "{{");
        if (open && open >= ps->end) open = NULL;
        const char *t = ps->p, *te = open ? open : ps->end;
        int trim_left = open && open + 3 <= ps->end && open[2] == '-' && open + 3 < ps->end && isspace((unsigned char)open[3]);
        if (ps->trim_next)
            while (t < te && isspace((unsigned char)*t)) t++;
        ps->trim_next = 0;
        const char *tt = te;
        if (trim_left)
            while (tt > t && isspace((unsigned char)tt[-1])) tt--;
        for (const char *q = ps->p; q < te; q++)
            if (*q == '\n') ps->line++;
        if (!open) {
            ps->p = ps->end;
            *text = t;
            *text_len = (size_t)(tt - t);
            return T_TEXT;
        }
        const char *body = open + 2 + (trim_left ? 1 : 0);
        /* comments may contain }} */
        const char *b = body;
        while (b < ps->end && isspace((unsigned char)*b) && trim_left) b++;
        const char *close;
        if (b + 1 < ps->end && b[0] == '/' && b[1] == '*') {
            const char *ce = strstr(b + 2, "*/");
            if (!ce) {
                fail(ps, "unclosed comment", NULL);
                return T_EOF;
            }
            close = strstr(ce + 2, "}}");
        } else {
            close = strstr(body, "}}");
        }
        if (!close) {
            fail(ps, "unclosed action", NULL);
            return T_EOF;
        }
        const char *body_end = close;
        int trim_right = close - 2 >= body && close[-1] == '-' && isspace((unsigned char)close[-2]);
        if (trim_right) body_end = close - 1;
        ps->a = body;
        ps->a_end = body_end;
        ps->p = close + 2;
        ps->trim_next = trim_right;
        for (const char *q = body; q < close; q++)
            if (*q == '\n') ps->line++;
        *text = t;
        *text_len = (size_t)(tt - t);
        /* comment action: no node */
        skip_ws(ps);
        if (ps->a + 1 < ps->a_end && ps->a[0] == '/' && ps->a[1] == '*') {
            if (*text_len) return T_TEXT | 0x100; /* text, then nothing */
            continue;
        }
        return T_ACTION;
    }
}

static int kw(parser *ps, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(ps->a_end - ps->a) >= n && !memcmp(ps->a, w, n) &&
        (ps->a + n == ps->a_end || !is_ident(ps->a[n]))) {
        ps->a += n;
        return 1;
    }
    return 0;
}

static int append(gt_node *list, gt_node *kid) {
    gt_node **nk = realloc(list->kids, (size_t)(list->n_kids + 1) * sizeof *nk);
    if (!nk) return -1;
    list->kids = nk;
    list->kids[list->n_kids++] = kid;
    return 0;
}

/* Parses nodes until {{end}} / {{else...}} (returned in *stop: 1 end, 2 else,
 * 3 else-if/else-with with ps->a after the keyword) or EOF (0). */
static gt_node *parse_list(parser *ps, int *stop, int in_range) {
    gt_node *list = xcalloc(1, sizeof *list);
    if (!list) {
        fail(ps, "out of memory", NULL);
        return NULL;
    }
    list->kind = N_LIST;
    *stop = 0;
    if (++ps->depth > GT_MAX_DEPTH) {
        fail(ps, "nesting too deep", NULL);
        return list;
    }
    while (!ps->failed) {
        const char *text;
        size_t tl;
        tok_kind k = next(ps, &text, &tl);
        if (ps->failed) break;
        if (tl) {
            gt_node *n = xcalloc(1, sizeof *n);
            if (!n || !(n->text = dupn(text, tl)) || append(list, n)) {
                gt_node_free(n);
                fail(ps, "out of memory", NULL);
                break;
            }
            n->kind = N_TEXT;
            n->text_len = tl;
        }
        if (k == T_EOF || k == T_TEXT) break;
        if ((int)k == (T_TEXT | 0x100)) continue;
        int line = ps->line;
        skip_ws(ps);
        if (kw(ps, "end")) {
            skip_ws(ps);
            if (ps->a != ps->a_end) fail(ps, "unexpected text after end", NULL);
            *stop = 1;
            break;
        }
        if (kw(ps, "else")) {
            skip_ws(ps);
            *stop = ps->a == ps->a_end ? 2 : 3;
            break;
        }
        gt_node *n = xcalloc(1, sizeof *n);
        if (!n) {
            fail(ps, "out of memory", NULL);
            break;
        }
        n->line = line;
        if (kw(ps, "break") || kw(ps, "continue")) {
            n->kind = ps->a[-1] == 'k' ? N_BREAK : N_CONTINUE;
            if (!in_range) fail(ps, "%s outside range", n->kind == N_BREAK ? "break" : "continue");
        } else if (kw(ps, "if") || kw(ps, "with") || kw(ps, "range")) {
            n->kind = ps->a[-1] == 'f' ? N_IF : ps->a[-1] == 'h' ? N_WITH : N_RANGE;
            gt_node *cur = n;
            for (;;) {
                cur->pipe = parse_pipe(ps, 1, 0);
                if (!cur->pipe) break;
                int st;
                cur->body = parse_list(ps, &st, in_range || cur->kind == N_RANGE);
                if (ps->failed) break;
                if (st == 0) {
                    fail(ps, "unexpected EOF (missing {{end}})", NULL);
                    break;
                }
                if (st == 1) break;
                if (st == 2) {
                    cur->else_body = parse_list(ps, &st, in_range);
                    if (!ps->failed && st != 1) fail(ps, "expected {{end}} after {{else}}", NULL);
                    break;
                }
                /* else if / else with: a nested node in the else branch sharing our end */
                gt_node *e = xcalloc(1, sizeof *e);
                gt_node *wrap = xcalloc(1, sizeof *wrap);
                if (!e || !wrap) {
                    free(e);
                    free(wrap);
                    fail(ps, "out of memory", NULL);
                    break;
                }
                wrap->kind = N_LIST;
                cur->else_body = wrap;
                append(wrap, e);
                if (kw(ps, "if")) e->kind = N_IF;
                else if (kw(ps, "with")) e->kind = N_WITH;
                else {
                    fail(ps, "unexpected text after else", NULL);
                    break;
                }
                cur = e;
            }
        } else {
            n->kind = N_ACTION;
            n->pipe = parse_pipe(ps, 1, 0);
        }
        if (append(list, n)) {
            gt_node_free(n);
            fail(ps, "out of memory", NULL);
        }
    }
    ps->depth--;
    return list;
}

int gotmpl_parse(gotmpl **out, const char *text, size_t len, hl_err *err) {
    *out = NULL;
    if (len > GT_MAX_TEXT) return hl_err_set(err, HL_ERANGE, "template is too large (%zu bytes)", len);
    char *copy = dupn(text, len); /* NUL-terminated for strstr */
    if (!copy) return hl_err_set(err, HL_ENOMEM, "out of memory");
    if (strlen(copy) != len) {
        free(copy);
        return hl_err_set(err, HL_EINVAL, "template contains a NUL byte");
    }
    parser ps = {copy, copy, copy + len, 1, 0, err, 0, 0, NULL, NULL};
    int stop;
    gt_node *root = parse_list(&ps, &stop, 0);
    if (!ps.failed && stop == 1) fail(&ps, "unexpected {{end}}", NULL);
    if (!ps.failed && stop >= 2) fail(&ps, "unexpected {{else}}", NULL);
    free(copy);
    if (ps.failed) {
        gt_node_free(root);
        return HL_EINVAL;
    }
    gotmpl *t = calloc(1, sizeof *t);
    if (!t) {
        gt_node_free(root);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    t->root = root;
    *out = t;
    return HL_OK;
}

void gotmpl_free(gotmpl *t) {
    if (!t) return;
    gt_node_free(t->root);
    free(t);
}
