/* A Go text/template interpreter for the subset Ollama's chat templates use:
 * text and {{ actions }} with {{- / -}} trimming and comment actions (Go comment actions);
 * pipelines of fields (.A.B, $.X, $var.F), literals, function calls and
 * parenthesized pipelines, chained with |; variables ($x := ..., $x = ...,
 * range $i, $e := ...); if / else if / else, range (with else; break and
 * continue), with (with else), end; functions and, or, not, eq, ne, lt, le,
 * gt, ge, len, slice, index, json, print, printf, println, html-free.
 * Data is JSON (json-c objects, borrowed); values print as Go's fmt %v would
 * print the values encoding/json decodes into (map[k:v], [a b], 1.5).
 *
 * Parsing builds a tree once; rendering is read-only on it, so one parsed
 * template may render from several threads. Limits: template 1 MiB, nesting
 * 64, output 64 MiB, range iterations 1M total. */
#ifndef HL_GOTMPL_H
#define HL_GOTMPL_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>

struct json_object;
typedef struct gotmpl gotmpl;

int gotmpl_parse(gotmpl **out, const char *text, size_t len, hl_err *err);
void gotmpl_free(gotmpl *t);
/* Appends the rendering to out. data may be NULL (renders as nil). */
int gotmpl_render(const gotmpl *t, struct json_object *data, hl_buf *out, hl_err *err);
/* Whether the template names ident (a field or variable, case-insensitive),
 * as Ollama's Template.Vars() sees it. */
int gotmpl_uses(const gotmpl *t, const char *ident);

/* ---- chat prompts with Ollama's semantics (chat.c) ---- */

typedef struct gotmpl_msg {
    const char *role, *content;
    const char *thinking;        /* NULL: "" */
    const char *tool_calls_json; /* NULL, or [{"function":{"name":..,"arguments":{..}}}] */
    const char *tool_name;       /* a tool result's tool; NULL: "" */
} gotmpl_msg;

typedef struct gotmpl_chat {
    const gotmpl_msg *msgs; /* borrowed */
    size_t n_msgs;
    const char *tools_json; /* NULL, or a JSON array of tools (Ollama/OpenAI shape) */
    const char *prompt, *suffix; /* both set: fill-in-the-middle ({Prompt, Suffix}) */
    int think_set, think;        /* .IsThinkSet, .Think (zero: not said) */
    const char *think_level;     /* .ThinkLevel; NULL: "" */
} gotmpl_chat;

/* Renders a Modelfile TEMPLATE over a conversation exactly as Ollama does:
 * collated messages, .Messages templates rendered once, legacy
 * .System/.Prompt/.Response templates once per turn with the last turn cut
 * after {{ .Response }} (see chat.c). Appends to out. */
int gotmpl_render_chat(const char *tmpl, size_t len, const gotmpl_chat *c, hl_buf *out, hl_err *err);

/* Ollama's template-driven tool-call detection (tools.c): renders tmpl for a
 * conversation whose assistant turn is a tool call, and for the same turn
 * without one, and takes the text the call adds around its JSON: *prefix
 * (e.g. "<tool_call>", "[TOOL_CALLS]", "" for bare JSON) and *suffix
 * ("</tool_call>", or ""), both trimmed, caller frees. HL_ENOTSUP when the
 * template does not write tool calls (*prefix and *suffix NULL). */
int gotmpl_tool_markers(const char *tmpl, size_t len, char **prefix, char **suffix, hl_err *err);

#endif
