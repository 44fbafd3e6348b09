/* libFuzzer target: parse and render arbitrary template text with a fixed,
 * realistic context (messages with tool calls, tools, flags). The interpreter
 * must never crash, hang or grow without bound: errors are fine. Tight limits
 * keep each run fast. */
#include "base/buf.h"
#include "chat/chat.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char CONTEXT[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"hi \\u00fc\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"abc123456\",\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1,\"b\":[1.5,true,null]}}}]},"
    "{\"role\":\"tool\",\"content\":\"42\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"t\"}]}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"n\":3}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_object *ctx;
    if (!ctx) ctx = json_tokener_parse(CONTEXT);
    chat_template *t = NULL;
    hl_err err;
    if (chat_template_parse(&t, (const char *)data, size, &err) == 0) {
        chat_limits lim = chat_limits_default();
        lim.max_iterations = 20000;
        lim.max_output = 1 << 20;
        lim.max_depth = 64;
        hl_buf out = {0};
        chat_template_render_limits(t, ctx, &lim, &out, &err);
        hl_buf_free(&out);
        chat_template_free(t);
    }
    return 0;
}
