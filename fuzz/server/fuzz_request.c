/* libFuzzer target: the server's JSON request parsers on arbitrary bytes.
 * Every input goes through all four endpoint parsers (Ollama generate and
 * chat with their "options", OpenAI chat and completions), so a seed corpus
 * of plain JSON bodies serves them all; a parsed request's options are then
 * merged over the defaults as gen.c does, and freed. Errors are fine;
 * crashes, leaks, undefined behaviour and hangs are not. Bodies are capped at
 * 64 KiB to keep runs quick (the server caps them at 16 MiB; the parsers'
 * costs are linear). */
#include "base/log.h"
#include "server/internal.h"

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
            char *schema = NULL; /* tool_choice's schema, built from whatever tools parsed */
            srv_tool_call_schema(&g, &schema, &err);
            free(schema);
        }
        merge_and_free(&g);
    }
    return 0;
}
