/* libFuzzer target: the server's JSON request parsers on arbitrary bytes.
 * Every input goes through all four endpoint parsers (Ollama generate and
 * chat with their "options", OpenAI chat and completions), so a seed corpus
 * of plain JSON bodies serves them all; a parsed request's options are then
 * merged over the defaults as gen.c does, and freed; a request's tools are
 * made into tool_choice's grammar in every family, which must compile. Errors are fine;
 * crashes, leaks, undefined behaviour and hangs are not. Bodies are capped at
 * 64 KiB to keep runs quick (the server caps them at 16 MiB; the parsers'
 * costs are linear). */
#include "base/log.h"
#include "server/internal.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>

static void merge_and_free(srv_gen *g) {
    srv_opts o = {0};
    o.s = hl_sampling_default_params();
    srv_opts_merge(&o, &g->opts);
    srv_opts_merge(&o, &g->opts); /* merging twice must not leak or double-free stops */
    srv_opts_free(&o);
    srv_gen_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        hl_log_set_level(HL_LOG_OFF); /* unknown options are warned about: keep the output readable */
        quiet = 1;
    }
    if (size > 65536) return 0;
    const char *body = (const char *)data;
    static const srv_api ollama[] = {SRV_OLLAMA_GENERATE, SRV_OLLAMA_CHAT};
    static const srv_api openai[] = {SRV_OAI_CHAT, SRV_OAI_COMPLETION};
    for (int i = 0; i < 2; i++) {
        srv_gen g;
        hl_err err;
        srv_parse_ollama(ollama[i], body, size, &g, &err); /* fills g partly on failure too */
        merge_and_free(&g);
        if (srv_parse_openai(openai[i], body, size, &g, &err) == 0 && g.tools_json) {
            /* tool_choice's grammar in every family, from whatever tools parsed */
            struct json_object *tools = json_tokener_parse(g.tools_json);
            for (int f = CHAT_TOOLS_HERMES; tools && f <= CHAT_TOOLS_PREFIX; f++) {
                chat_outparse_cfg cfg = {.tools = (chat_tool_format)f, .prefix = "<call>", .suffix = "</call>"};
                chat_call_syntax syn;
                hl_buf b = {0};
                hl_grammar *gr = NULL;
                if (chat_call_syntax_of(&cfg, NULL, &syn, &err) == 0 &&
                    srv_tool_gbnf(tools, g.tool_choice_name, g.parallel_tool_calls, NULL, &syn, &b, &err) == 0 &&
                    hl_grammar_parse(&gr, b.data, b.len, &err) != 0)
                    __builtin_trap(); /* what the builder writes must compile */
                hl_grammar_free(gr);
                hl_buf_free(&b);
            }
            json_object_put(tools);
        }
        merge_and_free(&g);
    }
    return 0;
}
