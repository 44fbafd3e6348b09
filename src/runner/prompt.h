/* Prompt rendering: the one place where a conversation becomes the text a
 * model reads, for the server's routes and for `hyperlama run` alike, so the
 * same request gives the same prompt on both paths.
 *
 * The template is a Go template when one is given (a Modelfile's TEMPLATE, or
 * an Ollama request's "template"), rendered with Ollama's chat semantics
 * (gotmpl_render_chat), else the GGUF's own Jinja chat template (chat/, with
 * add_generation_prompt and the model's BOS/EOS texts, as transformers
 * renders it). A raw prompt skips both. Tools, messages' tool calls and tool
 * results, and thinking reach both kinds: Jinja sees `tools`, messages with
 * `tool_calls` (arguments as objects), `tool_call_id`, `name`,
 * `reasoning_content` (also as `thinking`, gpt-oss's name), and
 * `enable_thinking` / `reasoning_effort` when think is said (gpt-oss cannot
 * stop reasoning: think false there is reasoning_effort "low"; a message's
 * null content is "" there, which its template needs), then
 * chat_template_kwargs' keys; a Go template sees .Tools,
 * .ToolCalls, .ToolName, .Thinking, .Think, .ThinkLevel and .IsThinkSet. A model with no usable template gets
 * a plain form: the system message, a blank line, then the prompt. The text
 * becomes tokens through hl_loaded_tokenize_prompt. */
#ifndef HL_RUNNER_PROMPT_H
#define HL_RUNNER_PROMPT_H

#include "chat/chat.h"
#include "runner/loaded.h"

#include <stddef.h>

typedef struct hl_prompt {
    const char *go_template;   /* NULL or "": the model's Jinja template */
    const char *template_name; /* what errors call go_template; NULL: "the model's TEMPLATE" */
    const char *system;        /* NULL or "": none; else sent as the first message */
    const chat_message *msgs;  /* the conversation after the system message (borrowed) */
    size_t n_msgs;
    int raw;                   /* the last message's content as is: no template, no system */
    const char *suffix;        /* NULL or "": none; else fill-in-the-middle (see below) */
    const char *tools_json;    /* NULL, or a JSON array of tool definitions (OpenAI shape) */
    int think_set, think;      /* whether think was said, and thinking off (0) / on (1) */
    const char *think_level;   /* NULL, or "low" | "medium" | "high" */
    const char *vars_json;     /* NULL, or a JSON object of extra Jinja variables (chat_template_kwargs) */
} hl_prompt;

/* Whether a conversation can be formatted: a Go template is given, or the
 * model has a usable Jinja template. */
int hl_prompt_has_template(const hl_loaded *lm, const char *go_template);

/* Whether the model can fill in the middle: it has FIM tokens, or the Go
 * template uses .Suffix (Ollama's "insert" capability). */
int hl_prompt_can_insert(const hl_loaded *lm, const char *go_template);
int hl_prompt_template_inserts(const char *go_template); /* the template uses .Suffix */

/* Renders p into *out (caller frees):
 *   a suffix     fill-in-the-middle of the last message's content (the code
 *                before) and the suffix (the code after): through the Go
 *                template when it uses .Suffix (Ollama), else the model's FIM
 *                tokens in prefix-suffix-middle order, raw or not (llama.cpp's
 *                infill); HL_ENOTSUP when the model has neither;
 *   raw          the last message's content ("" without messages);
 *   a template   [system?] + msgs through the Go template, else the Jinja one;
 *   no template  the last message's content, after the system message and a
 *                blank line when there is one (earlier turns cannot be
 *                formatted and are not sent).
 * Errors are the template's (a Go template's prefixed with template_name). */
int hl_prompt_render(const hl_loaded *lm, const hl_prompt *p, char **out, hl_err *err);

#endif
