/* The grammar that tool_choice "required" / a named function enforces: the
 * answer is tool calls in the family's syntax (chat_call_syntax, one table
 * row per family, chat/callsyntax.c), each calling an allowed function with
 * arguments that follow its parameter schema, several when
 * parallel_tool_calls allows. Built from the syntax alone, so every family
 * goes through the same few lines:
 *
 *   root ::= lead open call (sep call)* close
 *   call ::= f0 | f1 | ...                     (the allowed functions)
 *   fK   ::= call_open BODY(K) call_close
 *
 * A function's arguments are its JSON Schema compiled with rule prefix
 * "fK-" (qwen3-xml: each parameter's schema, "fK-pJ-"), with the family's
 * escape set so no JSON string can spell a marker; a qwen3-xml string
 * parameter is raw text that never contains one of the family's raw_stops
 * (a small automaton over the stops' prefixes, "raw-sN" rules). lead is
 * text the answer must begin with: the closing thinking marker when the
 * prompt left thinking open (DeepSeek-R1), so forced calls are the answer,
 * not reasoning. */
#include "server/internal.h"
#include "base/json_write.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static struct json_object *get(struct json_object *o, const char *k) {
    struct json_object *v = NULL;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* A GBNF string literal of s (nothing for ""). */
static void lit(hl_buf *b, const char *s) {
    if (!s || !*s) return;
    hl_buf_puts(b, " \"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') hl_buf_putc(b, '\\'), hl_buf_putc(b, *s);
        else if (*s == '\n') hl_buf_puts(b, "\\n");
        else if (*s == '\r') hl_buf_puts(b, "\\r");
        else if (*s == '\t') hl_buf_puts(b, "\\t");
        else hl_buf_putc(b, *s);
    }
    hl_buf_putc(b, '"');
}

/* ---- raw text that never contains a stop ------------------------------------------- */

#define RAW_MAX_STATES 96

/* The states are the distinct proper prefixes of the stops ("" is state 0):
 * how much of a stop the text ends with. A character that completes a stop
 * has no transition; one that occurs in no stop returns to state 0. The
 * text may end in any state (what follows a value starts with "\n", which
 * no stop contains, so no stop can straddle the boundary). */
static int raw_text_rules(hl_buf *b, const char *const *stops, hl_err *err) {
    char *st[RAW_MAX_STATES];
    int n = 0, rc = 0;
    char chars[128] = {0}; /* the characters that occur in stops */
    if (!(st[n++] = strdup(""))) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (int i = 0; stops[i] && !rc; i++)
        for (size_t k = 0; stops[i][k] && !rc; k++) {
            unsigned char ch = (unsigned char)stops[i][k];
            if (ch >= 128) rc = hl_err_set(err, HL_EINVAL, "raw-text stops must be ASCII"); /* cannot happen: the table's */
            chars[ch & 127] = 1;
            int seen = 0;
            for (int j = 0; j < n && !seen; j++) seen = strlen(st[j]) == k && !memcmp(st[j], stops[i], k);
            if (seen || !k || rc) continue;
            if (n == RAW_MAX_STATES) rc = hl_err_set(err, HL_ERANGE, "raw-text stops too long"); /* cannot happen */
            else if (!(st[n++] = strndup(stops[i], k))) n--, rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        }
    if (rc) {
        for (int s = 0; s < n; s++) free(st[s]);
        return rc;
    }
    char t[128];
    for (int s = 0; s < n; s++) {
        hl_buf_printf(b, "raw-s%d ::= ([^\\x00", s);
        hl_buf alts = {0};
        for (int ch = 1; ch < 128; ch++) {
            if (!chars[ch]) continue;
            size_t tl = strlen(st[s]);
            if (tl + 2 > sizeof t) continue;
            memcpy(t, st[s], tl), t[tl] = (char)ch, t[tl + 1] = 0;
            int dead = 0;
            for (int i = 0; stops[i] && !dead; i++) {
                size_t m = strlen(stops[i]);
                dead = m <= tl + 1 && !memcmp(t + tl + 1 - m, stops[i], m);
            }
            int next = 0;
            if (!dead) /* the longest suffix of t that is a state */
                for (size_t off = 0; off <= tl + 1 && !next; off++)
                    for (int j = 1; j < n; j++)
                        if (!strcmp(t + off, st[j])) { next = j; break; }
            if (dead || next) hl_buf_printf(b, "\\x%02X", ch);
            if (!dead && next) {
                char one[2] = {(char)ch, 0};
                hl_buf_puts(&alts, " |");
                lit(&alts, one);
                hl_buf_printf(&alts, " raw-s%d", next);
            }
        }
        hl_buf_puts(b, "] raw-s0");
        if (alts.len) hl_buf_append(b, alts.data, alts.len);
        hl_buf_puts(b, ")?\n");
        hl_buf_free(&alts);
    }
    for (int s = 0; s < n; s++) free(st[s]);
    return 0;
}

/* ---- one function's body ------------------------------------------------------------ */

/* The function's parameters as an object schema: absent or typeless means
 * an object; any other type cannot be a call's arguments. */
static int args_schema(struct json_object *f, const char *name, struct json_object **out, hl_err *err) {
    struct json_object *p = get(f, "parameters"), *ty = get(p, "type");
    *out = NULL;
    if (p && json_object_is_type(p, json_type_object) && ty) {
        if (!json_object_is_type(ty, json_type_string) || strcmp(json_object_get_string(ty), "object"))
            return hl_err_set(err, HL_EINVAL, "function \"%s\": parameters must be a schema of type \"object\"", name);
        *out = json_object_get(p);
        return 0;
    }
    if (p && json_object_is_type(p, json_type_object)) json_object_deep_copy(p, out, NULL);
    else *out = json_object_new_object();
    if (!*out) return hl_err_set(err, HL_ENOMEM, "out of memory");
    json_object_object_add(*out, "type", json_object_new_string("object"));
    return 0;
}

static int json_args(struct json_object *doc, struct json_object *at, const char *path, const char *prefix,
                     const chat_call_syntax *syn, hl_buf *rules, hl_err *err) {
    hl_schema_opts o = {.prefix = prefix, .at = at, .path = path, .escape = syn->escape};
    return hl_json_schema_to_gbnf_opts(doc, &o, rules, err);
}

/* A qwen3-xml string parameter's value: raw text, or one of its enum /
 * const strings; length, pattern and format cannot be enforced on raw text
 * here, so they are refused rather than ignored. */
static int raw_value(struct json_object *ps, const char *fname, const char *pname, hl_buf *b, int *uses_raw, hl_err *err) {
    static const char *const unenforced[] = {"pattern", "format", "minLength", "maxLength", NULL};
    for (int i = 0; unenforced[i]; i++)
        if (get(ps, unenforced[i]))
            return hl_err_set(err, HL_ENOTSUP, "function \"%s\", parameter \"%s\": \"%s\" is not supported on a qwen3-xml string parameter",
                              fname, pname, unenforced[i]);
    struct json_object *e = get(ps, "enum"), *c = get(ps, "const");
    if (!e && !c) {
        hl_buf_puts(b, " raw-s0");
        *uses_raw = 1;
        return 0;
    }
    hl_buf_puts(b, " (");
    size_t n = e && json_object_is_type(e, json_type_array) ? json_object_array_length(e) : 0;
    int k = 0;
    for (size_t i = 0; i < n + (c ? 1 : 0); i++) {
        struct json_object *v = i < n ? json_object_array_get_idx(e, i) : c;
        if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) continue;
        if (k++) hl_buf_puts(b, " |");
        lit(b, json_object_get_string(v));
    }
    hl_buf_puts(b, k ? " )" : " \"\\x00\" )"); /* no string value fits: nothing can (NUL never decodes) */
    return 0;
}

static int xml_params(struct json_object *args, const char *fname, int K, const chat_call_syntax *syn, hl_buf *b, hl_buf *rules,
                      int *uses_raw, hl_err *err) {
    static const char *const object_only[] = {"anyOf", "oneOf", "allOf", "$ref", "not", "if", NULL};
    for (int i = 0; object_only[i]; i++)
        if (get(args, object_only[i]))
            return hl_err_set(err, HL_ENOTSUP, "function \"%s\": \"%s\" at the top of parameters cannot be written as qwen3-xml parameters",
                              fname, object_only[i]);
    struct json_object *props = get(args, "properties"), *req = get(args, "required");
    if (!props || !json_object_is_type(props, json_type_object)) return 0; /* no parameters declared: none */
    int J = 0, rc = 0;
    json_object_object_foreach(props, pname, ps) {
        if (strpbrk(pname, ">\n") || !*pname)
            return hl_err_set(err, HL_ENOTSUP, "function \"%s\": parameter name \"%s\" cannot be written as qwen3-xml", fname, pname);
        int required = 0;
        for (size_t i = 0; req && json_object_is_type(req, json_type_array) && i < json_object_array_length(req); i++)
            required |= !strcmp(json_object_get_string(json_object_array_get_idx(req, i)), pname);
        hl_buf_puts(b, " (");
        lit(b, syn->param_open);
        lit(b, pname);
        lit(b, syn->param_mid);
        const char *ty = chat_param_type(ps);
        if (ty && !strcmp(ty, "string")) rc = raw_value(ps, fname, pname, b, uses_raw, err);
        else {
            char prefix[32], path[300];
            snprintf(prefix, sizeof prefix, "f%d-p%d-", K, J);
            snprintf(path, sizeof path, "/properties/%.280s", pname);
            hl_buf_printf(b, " %sroot", prefix);
            rc = json_args(args, ps, path, prefix, syn, rules, err);
        }
        if (rc) return rc;
        lit(b, syn->param_close);
        hl_buf_puts(b, required ? " )" : " )?");
        J++;
    }
    return 0;
}

/* fK ::= call_open BODY call_close */
static int one_function(struct json_object *f, const char *name, int K, const chat_call_syntax *syn, hl_buf *b, hl_buf *rules,
                        int *uses_raw, hl_err *err) {
    struct json_object *args;
    int rc = args_schema(f, name, &args, err);
    if (rc) return rc;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "f%d-", K);
    hl_buf_printf(b, "f%d ::=", K);
    lit(b, syn->call_open);
    if (syn->body == CHAT_BODY_JSON) {
        hl_buf head = {0};
        hl_buf_puts(&head, "{\"name\": ");
        hl_json_escape(&head, name, strlen(name));
        hl_buf_printf(&head, ", \"%s\": ", syn->args_key);
        lit(b, head.data);
        hl_buf_free(&head);
        hl_buf_printf(b, " %sroot", prefix);
        lit(b, "}");
        rc = json_args(args, NULL, NULL, prefix, syn, rules, err);
    } else {
        lit(b, name);
        lit(b, syn->name_end);
        if (syn->body == CHAT_BODY_NAME_ARGS) {
            hl_buf_printf(b, " %sroot", prefix);
            rc = json_args(args, NULL, NULL, prefix, syn, rules, err);
        } else {
            rc = xml_params(args, name, K, syn, b, rules, uses_raw, err);
        }
        lit(b, syn->args_end);
    }
    lit(b, syn->call_close);
    hl_buf_putc(b, '\n');
    json_object_put(args);
    if (rc) hl_err_prefix(err, "function \"%s\": ", name);
    return rc;
}

int srv_tool_gbnf(struct json_object *tools, const char *only, int parallel, const char *lead, const chat_call_syntax *syn, hl_buf *out,
                  hl_err *err) {
    hl_buf calls = {0}, fns = {0}, rules = {0};
    int rc = 0, n = 0, uses_raw = 0;
    for (size_t i = 0; !rc && i < json_object_array_length(tools); i++) {
        struct json_object *f = get(json_object_array_get_idx(tools, i), "function");
        const char *name = json_object_get_string(get(f, "name"));
        if (!name || (only && strcmp(name, only))) continue;
        if (syn->body != CHAT_BODY_JSON && strpbrk(name, syn->body == CHAT_BODY_XML ? ">\n" : "\n")) {
            rc = hl_err_set(err, HL_ENOTSUP, "function name \"%s\" cannot be written in this format", name);
            break;
        }
        hl_buf_printf(&calls, n ? " | f%d" : "f%d", (int)i);
        rc = one_function(f, name, (int)i, syn, &fns, &rules, &uses_raw, err);
        n++;
    }
    if (!rc && !n) rc = hl_err_set(err, HL_EINVAL, "\"tool_choice\" names function \"%s\", which is not among \"tools\"", only ? only : "");
    if (!rc) {
        hl_buf_puts(out, "root ::=");
        lit(out, lead);
        lit(out, syn->open);
        hl_buf_puts(out, " call");
        if (parallel && !syn->one_call) {
            hl_buf_puts(out, " (");
            lit(out, syn->sep);
            hl_buf_puts(out, " call)*");
        }
        lit(out, syn->close);
        hl_buf_printf(out, "\ncall ::= %s\n", calls.data);
        hl_buf_append(out, fns.data, fns.len);
        hl_buf_append(out, rules.data, rules.len);
        if (uses_raw) rc = raw_text_rules(out, syn->raw_stops, err);
        if (!rc && (out->oom || calls.oom || fns.oom || rules.oom)) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    hl_buf_free(&calls);
    hl_buf_free(&fns);
    hl_buf_free(&rules);
    return rc;
}
