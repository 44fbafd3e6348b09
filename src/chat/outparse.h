/* Output parsing: a streaming splitter that takes a model's generated text
 * piece by piece (as the engine releases it) and sorts it into answer content,
 * thinking and tool calls, by the conventions of the template's family:
 *
 *   hermes     <tool_call>{"name": .., "arguments": {..}}</tool_call>
 *              (Qwen2.5, Qwen3, Hermes 2/3); leniently also a bare call
 *              object (or one in a ```json fence) as the whole answer, which
 *              is how small Qwen2.5 models often answer
 *   qwen3-xml  <tool_call><function=NAME><parameter=P>VALUE</parameter>
 *              </function></tool_call> (Qwen3-Coder)
 *   llama3     <|python_tag|>{"name": .., "parameters": {..}}, or a bare
 *              JSON call object as the whole answer (Llama 3.1/3.2/3.3)
 *   mistral    [TOOL_CALLS][{"name": .., "arguments": {..}}, ...], or
 *              [TOOL_CALLS]NAME[ARGS]{..} (Mistral v0.3, Nemo, Small)
 *   deepseek   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
 *              ```json {..} ```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜> (R1/V3)
 *              and NAME<｜tool▁sep｜>{..} inside the call (V3.1)
 *   prefix     Ollama's template-driven detection: a prefix derived from the
 *              Modelfile TEMPLATE's .ToolCalls section (gotmpl_tool_prefix),
 *              then JSON call objects (one, several, or an array); a bare
 *              (or ```json-fenced) call as the whole answer counts too
 *   harmony    gpt-oss: the output is a sequence of messages
 *              [<|start|>assistant]<|channel|>CH[ to=R][ <|constrain|>json]
 *              <|message|>BODY<|end|> (the recipient may also stand before
 *              <|channel|>, as the template renders history); channel
 *              analysis is thinking, final and commentary without a
 *              recipient are content, a message to=functions.NAME is a call
 *              of NAME with BODY as its JSON arguments (its <|call|> ends
 *              generation, so a call body runs to <|call|> or the end).
 *              Channels are split whether or not tools or thinking were
 *              asked for (cfg.harmony): the markers are never content, and
 *              without tools a call message is content, header included
 * and thinking between the template's markers (<think> … </think> for Qwen3
 * and DeepSeek-R1; a prompt that ends inside the open marker, as R1's
 * template writes it, starts the output in thinking).
 *
 * Guarantees, for any input split into any pieces: the concatenation of what
 * the parser emits equals what it emits for the whole text at once; text that
 * is part of a recognized tool call never appears in content; a call whose
 * body does not parse, or (with the request's tools known) that names a
 * function not among them, comes back as content, markers included, never dropped;
 * the parser holds back only text that could still become a marker (and an
 * open tool call until it ends; for the families that take a bare JSON call
 * as the whole answer, an answer that begins with '{' or a ```json fence is
 * held until it ends, since only then is it known to be a call). Whitespace directly after a thinking marker
 * and after a parsed call is dropped, as Ollama does.
 *
 * A parser is single-threaded state; its configuration's strings are copied. */
#ifndef HL_CHAT_OUTPARSE_H
#define HL_CHAT_OUTPARSE_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>

struct json_object;

typedef enum chat_tool_format {
    CHAT_TOOLS_NONE = 0,
    CHAT_TOOLS_HERMES,
    CHAT_TOOLS_QWEN3_XML,
    CHAT_TOOLS_LLAMA3,
    CHAT_TOOLS_MISTRAL,
    CHAT_TOOLS_DEEPSEEK,
    CHAT_TOOLS_PREFIX,
    CHAT_TOOLS_HARMONY,
} chat_tool_format;

typedef struct chat_outparse_cfg {
    chat_tool_format tools;        /* NONE: tool-call text is content */
    const char *prefix;            /* PREFIX: the text before a call; NULL or "": a JSON answer */
    const char *suffix;            /* PREFIX: the text after a call; NULL or "": calls run to the end */
    const char *think_open;        /* NULL: no thinking split */
    const char *think_close;
    int in_thinking;               /* the output starts inside thinking */
    int harmony;                   /* gpt-oss's channels (see above): the output is harmony messages,
                                      the prompt having ended with <|start|>assistant; think_open and
                                      think_close are unused */
    struct json_object *tool_defs; /* optional, borrowed during new(): the request's tools. When
                                      given, a call must name one of them (a call to any other
                                      name is content, markers included), and their parameter
                                      types decide qwen3-xml values (string or JSON) */
} chat_outparse_cfg;

typedef struct chat_tool_call {
    char *name;
    char *arguments; /* a JSON object, compact */
} chat_tool_call;

/* What one feed or finish produced (appended; reset between uses). */
typedef struct chat_out {
    hl_buf content, thinking;
    chat_tool_call *calls;
    size_t n_calls, cap_calls;
} chat_out;

void chat_out_reset(chat_out *o);
void chat_out_free(chat_out *o);

typedef struct chat_outparse chat_outparse;

int chat_outparse_new(chat_outparse **out, const chat_outparse_cfg *cfg, hl_err *err);
void chat_outparse_free(chat_outparse *p);
/* Feeds the next piece of output text; appends what became certain to out. */
int chat_outparse_feed(chat_outparse *p, const char *text, size_t n, chat_out *out, hl_err *err);
/* The output ended: decides what was held back (an unterminated call is
 * parsed as it stands, else returned as content). */
int chat_outparse_finish(chat_outparse *p, chat_out *out, hl_err *err);
/* Calls emitted so far (for ids and indices). */
size_t chat_outparse_n_calls(const chat_outparse *p);

/* ---- choosing a configuration -------------------------------------------- */

enum { CHAT_CAP_TOOLS = 1 << 0, CHAT_CAP_THINKING = 1 << 1 };

/* What a Jinja chat template's source shows: CHAT_CAP_TOOLS when it reads
 * `tools` or writes a known family's tool calls (DeepSeek's templates
 * render calls and results but leave the tools' descriptions to the
 * system message), CHAT_CAP_THINKING when it writes thinking markers (or
 * harmony channels: gpt-oss always reasons in its analysis channel). */
unsigned chat_template_caps(const char *src);
/* The family of a Jinja template (tools format and thinking markers), from
 * the markers its source writes; harmony (cfg.harmony, tools HARMONY) when it
 * writes <|channel|> and <|message|>. */
void chat_outparse_detect(const char *src, chat_outparse_cfg *cfg);
/* Whether a rendered prompt ends inside an open thinking marker (the
 * template opened it for the model, as DeepSeek-R1's does). */
int chat_prompt_opens_thinking(const char *prompt, const char *think_open, const char *think_close);
/* ---- each family's call syntax (callsyntax.c) -------------------------------- */

/* How a family writes calls, as data: what tool_choice required / named
 * makes a grammar of (server/tool_grammar.c), so that the grammar produces
 * exactly what this parser reads back as calls. An answer is
 *
 *   open CALL (sep CALL)* close          (one CALL only when one_call)
 *   CALL = call_open BODY call_close
 *   BODY = JSON:      {"name": "NAME", "<args_key>": ARGS}
 *          NAME_ARGS: NAME name_end ARGS args_end
 *          XML:       NAME name_end (param_open P param_mid VALUE param_close)* args_end
 *
 * where ARGS is a JSON object following the function's parameter schema and
 * an XML VALUE is raw text for a string parameter (never containing any of
 * raw_stops) and JSON for the others. JSON strings there never hold the
 * code points in escape raw (they are \u escapes): those are the first
 * characters of the markers the parser looks for while a call is open, so no
 * string can end a call early. Empty strings are "nothing". */
typedef enum chat_call_body { CHAT_BODY_JSON, CHAT_BODY_NAME_ARGS, CHAT_BODY_XML } chat_call_body;

typedef struct chat_call_syntax {
    chat_tool_format fmt;
    const char *open, *close, *sep, *call_open, *call_close;
    int one_call;
    chat_call_body body;
    const char *args_key;                           /* JSON */
    const char *name_end, *args_end;                /* NAME_ARGS, XML */
    const char *param_open, *param_mid, *param_close; /* XML */
    const char *raw_stops[4];                       /* XML: NULL-terminated */
    const char *escape;
    char escape_buf[16];                            /* PREFIX: escape lives here */
} chat_call_syntax;

/* The call syntax of cfg's family; tmpl_src (a Jinja template, may be NULL)
 * picks the variant it renders: DeepSeek R1's "function<sep>NAME ```json"
 * when the template writes a fence, V3.1's "NAME<sep>ARGS" otherwise;
 * Mistral v0.3's "[TOOL_CALLS] [" with its space, Nemo's "[TOOL_CALLS][". PREFIX takes
 * cfg's prefix and suffix, which must outlive out. HL_ENOTSUP for NONE. */
int chat_call_syntax_of(const chat_outparse_cfg *cfg, const char *tmpl_src, chat_call_syntax *out, hl_err *err);

/* The declared JSON type of a parameter's schema as the parser reads
 * qwen3-xml values by it: its "type", or the first non-null one of a list;
 * NULL when none. "string" means the value is raw text. */
const char *chat_param_type(struct json_object *param_schema);

/* Name of a format ("hermes" ...), for logs. */
const char *chat_tool_format_name(chat_tool_format f);

#endif
