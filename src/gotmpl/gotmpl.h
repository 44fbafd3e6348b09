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

#endif
