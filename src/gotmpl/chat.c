/* Chat prompts from a Modelfile TEMPLATE with Ollama's semantics: which data
 * a template sees, in which mode, and how a "legacy" template (one that knows
 * only .System/.Prompt/.Response) is run once per turn.
 *
 * What Ollama does, and so what we do:
 *  - A template that names neither .Messages nor .Response gets
 *    {{ .Response }} appended when parsed.
 *  - Messages are collated first: consecutive messages of one role merge
 *    (contents joined by a blank line); every system message's content also
 *    goes into .System (joined by a blank line).
 *  - prompt + suffix (fill in the middle): {Prompt, Suffix, Response:""}.
 *  - A template that names .Messages: {System, Messages, Tools, Response:""}
 *    once. Messages are structs (Role, Content, Thinking, Images, ToolCalls,
 *    ToolName: every field present); tools and tool-call arguments are Go
 *    Stringers: fields by Go name, printed as their JSON (struct fields in
 *    declaration order, map keys sorted).
 *  - Otherwise the legacy loop: each system/user/assistant triple is rendered
 *    with the whole template; the last one with everything after the first
 *    {{ .Response }} field (in tree order) removed, so the prompt ends where
 *    the answer begins. */
#include "gotmpl/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- walking the tree ---- */

static int pipe_uses(const gt_pipe *p, const char *ident);

static int operand_uses(const gt_operand *o, const char *ident) {
    /* Go's Identifiers: field and variable nodes (all their names), and
     * parenthesized pipelines; chains ((x).F) are not looked into */
    if (o->kind == O_PIPE) return o->n_fields == 0 && pipe_uses(o->pipe, ident);
    if (o->kind == O_FIELD || o->kind == O_VAR) {
        if (o->kind == O_VAR && o->name && !strcasecmp(o->name, ident)) return 1;
        for (int i = 0; i < o->n_fields; i++)
            if (!strcasecmp(o->fields[i], ident)) return 1;
    }
    return 0;
}

static int pipe_uses(const gt_pipe *p, const char *ident) {
    if (!p) return 0;
    for (int c = 0; c < p->n_cmds; c++)
        for (int a = 0; a < p->cmds[c].n_args; a++)
            if (operand_uses(&p->cmds[c].args[a], ident)) return 1;
    return 0;
}

static int node_uses(const gt_node *n, const char *ident) {
    if (!n) return 0;
    if (pipe_uses(n->pipe, ident)) return 1;
    for (int i = 0; i < n->n_kids; i++)
        if (node_uses(n->kids[i], ident)) return 1;
    return node_uses(n->body, ident) || node_uses(n->else_body, ident);
}

int gotmpl_uses(const gotmpl *t, const char *ident) { return t && node_uses(t->root, ident); }

/* Ollama's deleteNode: a pre-order walk that keeps everything up to and
 * including the first field node naming Response and deletes every node
 * visited after it. Branch conditions are not visited (as in Ollama). */
typedef struct cutter {
    int cut;
} cutter;

static int cut_pipe(cutter *c, gt_pipe *p) { /* returns 0 when the pipe is now empty */
    int kept_cmds = 0;
    for (int ci = 0; ci < p->n_cmds; ci++) {
        gt_cmd *cmd = &p->cmds[ci];
        int kept = 0;
        for (int a = 0; a < cmd->n_args; a++) {
            gt_operand *o = &cmd->args[a];
            int keep = !c->cut;
            if (keep && o->kind == O_FIELD) {
                for (int f = 0; f < o->n_fields; f++)
                    if (!strcmp(o->fields[f], "Response")) c->cut = 1;
            } else if (keep && o->kind == O_PIPE && o->pipe) {
                keep = cut_pipe(c, o->pipe);
            }
            if (keep) cmd->args[kept++] = *o;
            else gt_operand_free(o);
        }
        cmd->n_args = kept;
        if (kept == 0) {
            /* Go returns nil for the whole pipe as soon as one command is empty */
            for (int rest = ci + 1; rest < p->n_cmds; rest++) {
                for (int a = 0; a < p->cmds[rest].n_args; a++) gt_operand_free(&p->cmds[rest].args[a]);
                free(p->cmds[rest].args);
                p->cmds[rest].args = NULL;
                p->cmds[rest].n_args = 0;
            }
            p->n_cmds = ci + 1;
            return 0;
        }
        kept_cmds++;
    }
    return kept_cmds > 0;
}

static int cut_node(cutter *c, gt_node *n); /* 0: delete n */

static void cut_list(cutter *c, gt_node *list) {
    if (!list) return;
    int kept = 0;
    for (int i = 0; i < list->n_kids; i++) {
        if (cut_node(c, list->kids[i])) list->kids[kept++] = list->kids[i];
        else gt_node_free(list->kids[i]);
    }
    list->n_kids = kept;
}

static int cut_node(cutter *c, gt_node *n) {
    if (c->cut) return 0;
    switch (n->kind) {
    case N_LIST: cut_list(c, n); return 1;
    case N_IF:
    case N_WITH:
    case N_RANGE:
        cut_list(c, n->body);
        cut_list(c, n->else_body);
        return 1;
    case N_ACTION: return cut_pipe(c, n->pipe);
    default: return 1;
    }
}

/* ---- the data ---- */

static json_object *str(const char *s) { return json_object_new_string(s ? s : ""); }

/* A JSON object with its keys sorted (a Go map marshals that way), marked as
 * a Stringer, for tool-call arguments. */
static int by_key(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static json_object *sorted_copy(json_object *v) {
    if (!v) return NULL;
    if (json_object_is_type(v, json_type_array)) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(v); i++)
            json_object_array_add(a, sorted_copy(json_object_array_get_idx(v, i)));
        return a;
    }
    if (!json_object_is_type(v, json_type_object)) return json_object_get(v);
    int n = json_object_object_length(v), i = 0;
    const char **keys = calloc((size_t)(n ? n : 1), sizeof *keys);
    json_object *o = json_object_new_object();
    if (!keys) return o;
    json_object_object_foreach(v, k, val) {
        (void)val;
        keys[i++] = k;
    }
    qsort(keys, (size_t)n, sizeof *keys, by_key);
    for (i = 0; i < n; i++) json_object_object_add(o, keys[i], sorted_copy(json_object_object_get(v, keys[i])));
    free(keys);
    return o;
}

static json_object *get(json_object *o, const char *k) {
    json_object *v = NULL;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static void add_if(json_object *dst, const char *k, json_object *v) {
    if (v) json_object_object_add(dst, k, json_object_get(v));
}

/* Attaches json (written with keys in insertion order) to g as its JSON text;
 * consumes json. */
static void attach_json(json_object *g, json_object *json) {
    hl_buf b = {0};
    gt_put_json(&b, json, 0);
    if (!b.oom) gt_set_json_text(g, b.data ? b.data : "", b.len);
    hl_buf_free(&b);
    json_object_put(json);
}

static json_object *string_array(json_object *a) {
    return a && json_object_is_type(a, json_type_array) ? json_object_get(a) : json_object_new_array();
}

/* One tool as the template sees api.Tool: Go field names (Type, Function.Name,
 * Function.Parameters.Properties ...), and JSON in the struct's field order
 * (type, items, function{name, description, parameters{type, $defs, items,
 * required, properties}}) with omitempty fields left out. */
static json_object *tool_value(json_object *t) {
    json_object *f = get(t, "function"), *p = get(f, "parameters"), *props = get(p, "properties");
    const char *type = get(t, "type") ? json_object_get_string(get(t, "type")) : "function";
    const char *desc = json_object_get_string(get(f, "description"));
    json_object *req = get(p, "required");
    /* the Go view */
    json_object *gp = json_object_new_object(), *gprops = json_object_new_object();
    json_object_object_add(gp, "Type", str(json_object_get_string(get(p, "type"))));
    add_if(gp, "Defs", get(p, "$defs"));
    add_if(gp, "Items", get(p, "items"));
    json_object_object_add(gp, "Required", string_array(req));
    if (props && json_object_is_type(props, json_type_object)) {
        json_object_object_foreach(props, k, pv) {
            json_object *gpv = json_object_new_object();
            add_if(gpv, "Type", get(pv, "type"));
            add_if(gpv, "Items", get(pv, "items"));
            json_object_object_add(gpv, "Description", str(json_object_get_string(get(pv, "description"))));
            json_object_object_add(gpv, "Enum", string_array(get(pv, "enum")));
            json_object_object_add(gprops, k, gpv);
        }
    }
    json_object_object_add(gp, "Properties", gprops);
    json_object *gf = json_object_new_object();
    json_object_object_add(gf, "Name", str(json_object_get_string(get(f, "name"))));
    json_object_object_add(gf, "Description", str(desc));
    json_object_object_add(gf, "Parameters", gp);
    json_object *g = json_object_new_object();
    json_object_object_add(g, "Type", str(type));
    add_if(g, "Items", get(t, "items"));
    json_object_object_add(g, "Function", gf);
    /* the JSON view */
    json_object *jp = json_object_new_object();
    json_object_object_add(jp, "type", str(json_object_get_string(get(p, "type"))));
    add_if(jp, "$defs", get(p, "$defs"));
    add_if(jp, "items", get(p, "items"));
    if (req && json_object_is_type(req, json_type_array) && json_object_array_length(req) > 0) add_if(jp, "required", req);
    json_object_object_add(jp, "properties", props ? sorted_copy(props) : NULL);
    json_object *jf = json_object_new_object();
    json_object_object_add(jf, "name", str(json_object_get_string(get(f, "name"))));
    if (desc && *desc) json_object_object_add(jf, "description", str(desc));
    json_object_object_add(jf, "parameters", json_object_get(jp));
    json_object *j = json_object_new_object();
    json_object_object_add(j, "type", str(type));
    add_if(j, "items", get(t, "items"));
    json_object_object_add(j, "function", json_object_get(jf));
    attach_json(gp, jp);
    attach_json(gf, jf);
    attach_json(g, j);
    return g;
}

static json_object *message_value(const gotmpl_msg *m, const char *content, hl_err *err, int *rc) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "Role", str(m->role));
    json_object_object_add(o, "Content", str(content));
    json_object_object_add(o, "Thinking", str(m->thinking));
    json_object_object_add(o, "Images", json_object_new_array());
    json_object *calls = json_object_new_array();
    if (m->tool_calls_json) {
        json_object *in = json_tokener_parse(m->tool_calls_json);
        if (!in || !json_object_is_type(in, json_type_array)) {
            *rc = hl_err_set(err, HL_EINVAL, "tool_calls of a %s message is not a JSON array", m->role);
        } else {
            for (size_t i = 0; i < json_object_array_length(in); i++) {
                json_object *c = json_object_array_get_idx(in, i), *f = get(c, "function");
                json_object *fo = json_object_new_object(), *co = json_object_new_object();
                json_object *idx = get(f, "index");
                json_object_object_add(fo, "Index", json_object_new_int64(idx ? json_object_get_int64(idx) : 0));
                json_object_object_add(fo, "Name", str(json_object_get_string(get(f, "name"))));
                json_object *args = get(f, "arguments"), *ao;
                if (args && json_object_is_type(args, json_type_string)) { /* OpenAI sends a JSON string */
                    json_object *parsed = json_tokener_parse(json_object_get_string(args));
                    ao = sorted_copy(parsed);
                    json_object_put(parsed);
                } else ao = sorted_copy(args);
                if (!ao || !json_object_is_type(ao, json_type_object)) {
                    json_object_put(ao);
                    ao = json_object_new_object();
                }
                attach_json(ao, json_object_get(ao)); /* keys already sorted, as a Go map marshals */
                json_object_object_add(fo, "Arguments", ao);
                json_object_object_add(co, "Function", fo);
                json_object_array_add(calls, co);
            }
        }
        json_object_put(in);
    }
    json_object_object_add(o, "ToolCalls", calls);
    json_object_object_add(o, "ToolName", str(m->tool_name));
    return o;
}

/* ---- rendering ---- */

typedef struct collated {
    const gotmpl_msg *m; /* first message of the run (role, tool fields) */
    hl_buf content;
} collated;

static int render_map(const gotmpl *t, const char *sys, const char *prompt, const char *resp, hl_buf *out,
                      hl_err *err) {
    json_object *d = json_object_new_object();
    json_object_object_add(d, "System", str(sys));
    json_object_object_add(d, "Prompt", str(prompt));
    json_object_object_add(d, "Response", str(resp));
    int rc = gotmpl_render(t, d, out, err);
    json_object_put(d);
    return rc;
}

static int parse_for_chat(const char *text, size_t len, int *legacy, gotmpl **out, hl_err *err) {
    gotmpl *t;
    int rc = gotmpl_parse(&t, text, len, err);
    if (rc) return rc;
    *legacy = !gotmpl_uses(t, "messages");
    if (*legacy && !gotmpl_uses(t, "response")) {
        /* append {{ .Response }}: the same tree as Ollama's appended node */
        gotmpl_free(t);
        hl_buf b = {0};
        hl_buf_append(&b, text, len);
        hl_buf_puts(&b, "{{ .Response }}");
        rc = b.oom ? hl_err_set(err, HL_ENOMEM, "out of memory") : gotmpl_parse(&t, b.data, b.len, err);
        hl_buf_free(&b);
        if (rc) return rc;
    }
    *out = t;
    return 0;
}

int gotmpl_render_chat(const char *text, size_t len, const gotmpl_chat *c, hl_buf *out, hl_err *err) {
    int legacy, rc;
    gotmpl *t;
    if ((rc = parse_for_chat(text, len, &legacy, &t, err))) return hl_err_prefix(err, "template: ");
    if (c->prompt && *c->prompt && c->suffix && *c->suffix) {
        json_object *d = json_object_new_object();
        json_object_object_add(d, "Prompt", str(c->prompt));
        json_object_object_add(d, "Suffix", str(c->suffix));
        json_object_object_add(d, "Response", str(""));
        rc = gotmpl_render(t, d, out, err);
        json_object_put(d);
        gotmpl_free(t);
        return rc;
    }
    /* collate */
    collated *col = calloc(c->n_msgs ? c->n_msgs : 1, sizeof *col);
    hl_buf sys = {0};
    size_t n = 0;
    int n_sys = 0;
    if (!col) {
        gotmpl_free(t);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->n_msgs; i++) {
        const gotmpl_msg *m = &c->msgs[i];
        const char *role = m->role ? m->role : "";
        if (!strcmp(role, "system")) {
            if (n_sys++) hl_buf_puts(&sys, "\n\n");
            hl_buf_puts(&sys, m->content ? m->content : "");
        }
        if (n > 0 && !strcmp(col[n - 1].m->role ? col[n - 1].m->role : "", role)) {
            hl_buf_puts(&col[n - 1].content, "\n\n");
        } else {
            col[n++].m = m;
            hl_buf_puts(&col[n - 1].content, ""); /* an empty content is "" not NULL */
        }
        hl_buf_puts(&col[n - 1].content, m->content ? m->content : "");
    }
    const char *system = sys.data ? sys.data : "";
    if (!legacy) {
        json_object *d = json_object_new_object(), *msgs = json_object_new_array(), *tools = json_object_new_array();
        for (size_t i = 0; i < n && !rc; i++)
            json_object_array_add(msgs, message_value(col[i].m, col[i].content.data ? col[i].content.data : "", err, &rc));
        if (!rc && c->tools_json) {
            json_object *in = json_tokener_parse(c->tools_json);
            if (!in || !json_object_is_type(in, json_type_array)) rc = hl_err_set(err, HL_EINVAL, "tools is not a JSON array");
            else
                for (size_t i = 0; i < json_object_array_length(in); i++)
                    json_object_array_add(tools, tool_value(json_object_array_get_idx(in, i)));
            json_object_put(in);
        }
        attach_json(tools, json_object_get(tools)); /* api.Tools is a Stringer too */
        json_object_object_add(d, "System", str(system));
        json_object_object_add(d, "Messages", msgs);
        json_object_object_add(d, "Tools", tools);
        json_object_object_add(d, "Response", str(""));
        json_object_object_add(d, "Think", json_object_new_boolean(c->think_set && c->think));
        json_object_object_add(d, "ThinkLevel", str(c->think_level));
        json_object_object_add(d, "IsThinkSet", json_object_new_boolean(c->think_set));
        if (!rc) rc = gotmpl_render(t, d, out, err);
        json_object_put(d);
    } else {
        /* one render per system/user/assistant group; the last one cut */
        const char *s = "", *p = "", *r = "";
        for (size_t i = 0; i < n && !rc; i++) {
            const char *role = col[i].m->role ? col[i].m->role : "";
            const char *text_i = col[i].content.data ? col[i].content.data : "";
            if (!strcmp(role, "system")) {
                if (*p || *r) {
                    rc = render_map(t, s, p, r, out, err);
                    s = p = r = "";
                }
                s = text_i;
            } else if (!strcmp(role, "user")) {
                if (*r) {
                    rc = render_map(t, s, p, r, out, err);
                    s = p = r = "";
                }
                p = text_i;
            } else if (!strcmp(role, "assistant")) {
                r = text_i;
            }
        }
        if (!rc) {
            cutter cu = {0};
            cut_list(&cu, t->root);
            rc = render_map(t, s, p, r, out, err);
        }
    }
    for (size_t i = 0; i < n; i++) hl_buf_free(&col[i].content);
    free(col);
    hl_buf_free(&sys);
    gotmpl_free(t);
    return rc;
}
