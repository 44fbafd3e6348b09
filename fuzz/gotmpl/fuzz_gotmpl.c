/* libFuzzer target: parse arbitrary Go-template text and render it over a
 * fixed data object shaped like Ollama's (System, Messages with tool calls,
 * Tools), then once more through gotmpl_render_chat (the legacy per-turn path
 * and the cut after {{ .Response }}). Errors are fine; crashes, hangs and
 * unbounded growth are not. Input is capped at 8 KiB to keep runs quick (the
 * interpreter's own limits bound iterations and output). */
#include "base/buf.h"
#include "gotmpl/gotmpl.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char DATA[] =
    "{\"System\":\"sys\",\"Prompt\":\"p\",\"Response\":\"\",\"Suffix\":\"\",\"N\":2.5,\"B\":true,"
    "\"Messages\":[{\"Role\":\"user\",\"Content\":\"hi \\u00fc\",\"ToolCalls\":[]},"
    "{\"Role\":\"assistant\",\"Content\":\"\",\"ToolCalls\":[{\"Function\":{\"Name\":\"f\",\"Arguments\":{\"a\":1}}}]},"
    "{\"Role\":\"tool\",\"Content\":\"42\",\"ToolCalls\":[]}],"
    "\"Tools\":[{\"Type\":\"function\",\"Function\":{\"Name\":\"f\",\"Parameters\":{\"Type\":\"object\"}}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_object *ctx;
    if (!ctx) ctx = json_tokener_parse(DATA);
    if (size > 8192) return 0;
    gotmpl *t = NULL;
    hl_err err;
    if (gotmpl_parse(&t, (const char *)data, size, &err) == 0) {
        hl_buf out = {0};
        gotmpl_render(t, ctx, &out, &err);
        hl_buf_free(&out);
        gotmpl_free(t);
        gotmpl_msg m[] = {{"system", "s"}, {"user", "u1"}, {"assistant", "a1"}, {"user", "u2"},
                          {"assistant", "", NULL, "[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":[1]}}}]"}};
        gotmpl_chat c = {.msgs = m, .n_msgs = 5, .tools_json = "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"};
        gotmpl_render_chat((const char *)data, size, &c, &out, &err);
        hl_buf_free(&out);
    }
    return 0;
}
