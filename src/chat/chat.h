/* Chat templates: our own interpreter for the Jinja subset that models ship in
 * `tokenizer.chat_template`, rendering exactly what Python jinja2 renders in the
 * environment Hugging Face transformers uses (ImmutableSandboxedEnvironment with
 * trim_blocks=True, lstrip_blocks=True; tojson without HTML escaping and with
 * ensure_ascii=False; raise_exception(msg) and strftime_now(fmt) as globals).
 *
 * A template is parsed once (chat_template_parse) into an immutable tree that
 * can be rendered many times, from many threads at once, each render with its
 * own context. Everything about a template is untrusted: unsupported syntax is
 * a parse error naming line and column; a render is bounded in recursion
 * depth, loop iterations and output size and fails with a clear message rather
 * than hanging or growing without limit.
 *
 * The context is a json-c object whose keys become the template's variables:
 *   messages               list of {role, content (string or list of parts
 *                          {type:"text", text:...}), tool_calls, name,
 *                          tool_call_id, ...}
 *   tools                  list of tool definitions (optional)
 *   add_generation_prompt  bool
 *   bos_token, eos_token   strings (transformers also passes unk_token,
 *                          pad_token ...: add them if a template needs them)
 *   ... any extra keys (e.g. enable_thinking) are visible too.
 * transformers always defines tools and documents (None when absent); the
 * context builders below do the same, and a hand-made context should too,
 * since `tools is not none` is true for an undefined variable.
 * json-c integers become template ints, doubles floats, objects dicts (in the
 * object's key order), arrays lists, null none. */
#ifndef HL_CHAT_CHAT_H
#define HL_CHAT_CHAT_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>

struct json_object;

typedef struct chat_template chat_template;

/* ---- limits ------------------------------------------------------------- */

/* Bounds for one render; chat_limits_default() gives the values used by
 * chat_template_render (1M loop iterations, 16 MB output, depth 256, 1 GB of
 * work). */
typedef struct chat_limits {
    size_t max_output;     /* bytes of rendered text (and of any string built) */
    size_t max_iterations; /* loop iterations + macro calls, all loops together */
    int max_depth;         /* nesting of macro calls / expression evaluation */
    size_t max_work;       /* bytes of strings and lists built by operators, filters
                              and methods over the whole render (0: the default) */
} chat_limits;

chat_limits chat_limits_default(void);

/* ---- templates ---------------------------------------------------------- */

/* Parses template source src[0..len) (need not be NUL-terminated; at most
 * 4 MB). On success *out owns the parsed template (free with
 * chat_template_free). On failure returns HL_EINVAL (HL_ERANGE when too large)
 * and err says "template line L, column C: what is wrong". */
int chat_template_parse(chat_template **out, const char *src, size_t len, hl_err *err);
void chat_template_free(chat_template *t);

/* Renders t with the variables in ctx (a json-c object; borrowed, not
 * modified) and appends the text to out. On failure returns a negative code
 * and err says why: raise_exception(msg) from the template gives
 * HL_EINVAL with "template error: msg"; an exceeded limit gives HL_ERANGE.
 * out may then hold partial output (callers discard it). */
int chat_template_render(const chat_template *t, struct json_object *ctx, hl_buf *out, hl_err *err);
int chat_template_render_limits(const chat_template *t, struct json_object *ctx, const chat_limits *lim,
                                hl_buf *out, hl_err *err);

/* ---- building a context from simple inputs ------------------------------ */

typedef struct chat_message {
    const char *role;    /* "system", "user", "assistant", "tool" */
    const char *content; /* NUL-terminated UTF-8; NULL means none (json null) */
    /* optional (NULL: absent), read by hl_prompt_render (runner/prompt.h): */
    const char *tool_calls_json; /* assistant: JSON array [{id, type, function: {name, arguments}}] */
    const char *tool_call_id;    /* tool: the call it answers */
    const char *name;            /* tool: the tool's name (Ollama's tool_name) */
    const char *thinking;        /* assistant: its reasoning (reasoning_content) */
} chat_message;

/* Builds a new context object {messages:[{role,content}...], tools: null,
 * documents: null, add_generation_prompt, bos_token, eos_token} (bos/eos may
 * be NULL -> ""). tools and documents are defined but None, exactly as
 * transformers' apply_chat_template passes them when there are none.
 * The caller owns *out (json_object_put). Extra keys (tools, ...) can be added
 * with json_object_object_add before rendering. */
int chat_context_new(struct json_object **out, const chat_message *msgs, size_t n_msgs,
                     int add_generation_prompt, const char *bos_token, const char *eos_token,
                     hl_err *err);

/* Builds a new context from an OpenAI-style request: `messages` (array of
 * {role, content, tool_calls, tool_call_id, name ...}) and optional `tools`
 * (array), both borrowed and deep-copied. Tool-call arguments sent as a JSON
 * string (the OpenAI wire format) are parsed into objects, which is what
 * templates written for transformers expect (`arguments | tojson`); arguments
 * that are not valid JSON stay strings. Without tools, tools is null (and
 * documents always null), as in transformers. The caller owns *out. */
int chat_context_from_openai(struct json_object **out, struct json_object *messages, struct json_object *tools,
                             int add_generation_prompt, const char *bos_token, const char *eos_token, hl_err *err);

/* Convenience: parse + render in one call (for a template used once). */
int chat_render_once(const char *src, size_t len, struct json_object *ctx, hl_buf *out, hl_err *err);

#endif
