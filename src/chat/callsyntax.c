/* Each family's call syntax as one table (outparse.h, "each family's call
 * syntax"): the text tool_choice required / named forces, written in the
 * shape the family's template renders calls in history and that the parser
 * (outparse.c) reads back. One row per family; the marker strings come from
 * markers.h, which the parser uses too. */
#include "chat/markers.h"
#include "chat/outparse.h"

#include <string.h>

static const chat_call_syntax TABLE[] = {
    {.fmt = CHAT_TOOLS_HERMES, /* Qwen2.5 / Qwen3 / Hermes: one <tool_call> block per call */
     .call_open = CHAT_TOOL_CALL_OPEN "\n", .call_close = "\n" CHAT_TOOL_CALL_CLOSE, .sep = "\n",
     .body = CHAT_BODY_JSON, .args_key = "arguments", .escape = "<"},
    {.fmt = CHAT_TOOLS_QWEN3_XML, /* Qwen3-Coder, as its template renders history */
     .call_open = CHAT_TOOL_CALL_OPEN "\n" CHAT_XML_FUNCTION, .call_close = "\n" CHAT_TOOL_CALL_CLOSE, .sep = "\n",
     .body = CHAT_BODY_XML, .name_end = ">\n", .args_end = CHAT_XML_FUNCTION_END,
     .param_open = CHAT_XML_PARAM, .param_mid = ">\n", .param_close = "\n" CHAT_XML_PARAM_END "\n",
     .raw_stops = {CHAT_XML_PARAM_END, CHAT_XML_FUNCTION_END, CHAT_TOOL_CALL_CLOSE, NULL}, .escape = "<"},
    {.fmt = CHAT_TOOLS_LLAMA3, /* Llama 3.x custom tools: the bare JSON its template asks for */
     .sep = "\n", .body = CHAT_BODY_JSON, .args_key = "parameters", .escape = ""},
    {.fmt = CHAT_TOOLS_MISTRAL, /* Nemo / Small: one [TOOL_CALLS] with an array of calls */
     .open = CHAT_MISTRAL_CALLS "[", .close = "]", .sep = ", ", .body = CHAT_BODY_JSON, .args_key = "arguments",
     .escape = "["},
    {.fmt = CHAT_TOOLS_DEEPSEEK, /* V3.1: NAME<sep>ARGS */
     .open = CHAT_DS_CALLS_BEGIN, .close = CHAT_DS_CALLS_END, .call_open = CHAT_DS_CALL_BEGIN, .call_close = CHAT_DS_CALL_END,
     .body = CHAT_BODY_NAME_ARGS, .name_end = CHAT_DS_SEP, .escape = "\xef\xbd\x9c"},
    {.fmt = CHAT_TOOLS_HARMONY, /* gpt-oss: one message to=functions.NAME; its <|call|> ends generation */
     .call_open = CHAT_H_CHANNEL "commentary to=functions.", .one_call = 1, .body = CHAT_BODY_NAME_ARGS,
     .name_end = " " CHAT_H_CONSTRAIN "json" CHAT_H_MESSAGE, .escape = "<"},
};

/* DeepSeek-R1 (and V3): function<sep>NAME, then the arguments in a json fence */
static const chat_call_syntax DEEPSEEK_R1 = {
    .fmt = CHAT_TOOLS_DEEPSEEK, .open = CHAT_DS_CALLS_BEGIN, .close = CHAT_DS_CALLS_END,
    .call_open = CHAT_DS_CALL_BEGIN "function" CHAT_DS_SEP, .call_close = CHAT_DS_CALL_END, .sep = "\n",
    .body = CHAT_BODY_NAME_ARGS, .name_end = "\n```json\n", .args_end = "\n```", .escape = "\xef\xbd\x9c"};

/* Mistral 7B v0.3 writes a space after the marker ("[TOOL_CALLS] [") */
static const chat_call_syntax MISTRAL_V03 = {
    .fmt = CHAT_TOOLS_MISTRAL, .open = CHAT_MISTRAL_CALLS " [", .close = "]", .sep = ", ", .body = CHAT_BODY_JSON,
    .args_key = "arguments", .escape = "["};

/* Appends the first character (UTF-8) of s to the escape set. */
static void escape_first(chat_call_syntax *o, const char *s) {
    if (!s || !*s) return;
    size_t n = 1, have = strlen(o->escape_buf);
    while (s[n] && ((unsigned char)s[n] & 0xC0) == 0x80) n++;
    if (have + n < sizeof o->escape_buf) memcpy(o->escape_buf + have, s, n), o->escape_buf[have + n] = 0;
}

int chat_call_syntax_of(const chat_outparse_cfg *cfg, const char *tmpl_src, chat_call_syntax *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    if (cfg->tools == CHAT_TOOLS_PREFIX) {
        /* Ollama's template-driven detection: the TEMPLATE's prefix and suffix
         * around JSON calls; without a prefix a call is a bare JSON answer,
         * which holds one */
        const char *pre = cfg->prefix ? cfg->prefix : "", *suf = cfg->suffix ? cfg->suffix : "";
        *out = (chat_call_syntax){.fmt = CHAT_TOOLS_PREFIX, .call_open = pre, .call_close = suf, .sep = "\n",
                                  .one_call = !*pre, .body = CHAT_BODY_JSON, .args_key = "arguments"};
        escape_first(out, pre);
        escape_first(out, suf);
        out->escape = out->escape_buf;
        return 0;
    }
    if (cfg->tools == CHAT_TOOLS_DEEPSEEK && tmpl_src && strstr(tmpl_src, "```json")) {
        *out = DEEPSEEK_R1;
        return 0;
    }
    if (cfg->tools == CHAT_TOOLS_MISTRAL && tmpl_src && strstr(tmpl_src, CHAT_MISTRAL_CALLS " [")) {
        *out = MISTRAL_V03;
        return 0;
    }
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++)
        if (TABLE[i].fmt == cfg->tools) {
            *out = TABLE[i];
            return 0;
        }
    return hl_err_set(err, HL_ENOTSUP, "no tool-call syntax for format %s", chat_tool_format_name(cfg->tools));
}
