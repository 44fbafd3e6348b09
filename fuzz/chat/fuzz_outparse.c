/* libFuzzer target: the streaming output splitter (chat/outparse.c). The
 * first byte picks the tool-call family and thinking options, the second a
 * chunk size; the rest is model output. The parser must never crash, and
 * feeding the text in chunks must give exactly what feeding it whole gives
 * (content, thinking and calls): a difference traps. */
#include "chat/outparse.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct res {
    hl_buf content, thinking, calls;
} res;

static void take(res *r, chat_out *o) {
    hl_buf_append(&r->content, o->content.data ? o->content.data : "", o->content.len);
    hl_buf_append(&r->thinking, o->thinking.data ? o->thinking.data : "", o->thinking.len);
    for (size_t i = 0; i < o->n_calls; i++) hl_buf_printf(&r->calls, "%s(%s);", o->calls[i].name, o->calls[i].arguments);
    chat_out_reset(o);
}

static void run(const chat_outparse_cfg *cfg, const char *s, size_t n, size_t chunk, res *r) {
    chat_outparse *p;
    hl_err err;
    if (chat_outparse_new(&p, cfg, &err)) return;
    chat_out o = {0};
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        chat_outparse_feed(p, s + at, k, &o, &err);
        take(r, &o);
    }
    chat_outparse_finish(p, &o, &err);
    take(r, &o);
    chat_out_free(&o);
    chat_outparse_free(p);
}

static int eq(const hl_buf *a, const hl_buf *b) {
    return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const char *const prefixes[] = {NULL, "<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"};
    chat_outparse_cfg cfg = {0};
    cfg.tools = (chat_tool_format)(data[0] % 8);
    if (cfg.tools == CHAT_TOOLS_HARMONY) { /* gpt-oss's channels, with tools or (0x80) without */
        cfg.harmony = 1;
        if (data[0] & 0x80) cfg.tools = CHAT_TOOLS_NONE;
    }
    if (data[0] & 0x08) cfg.think_open = "<think>", cfg.think_close = "</think>";
    cfg.in_thinking = (data[0] & 0x10) != 0;
    cfg.prefix = prefixes[(data[0] >> 5) & 3];
    if (data[0] & 0x80) cfg.suffix = "</tool_call>";
    size_t chunk = (size_t)(data[1] % 17) + 1;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    res whole = {{0}}, parts = {{0}};
    run(&cfg, s, n, n ? n : 1, &whole);
    run(&cfg, s, n, chunk, &parts);
    int oom = whole.content.oom || whole.thinking.oom || whole.calls.oom || parts.content.oom || parts.thinking.oom || parts.calls.oom;
    if (!oom && (!eq(&whole.content, &parts.content) || !eq(&whole.thinking, &parts.thinking) || !eq(&whole.calls, &parts.calls)))
        __builtin_trap();
    hl_buf_free(&whole.content), hl_buf_free(&whole.thinking), hl_buf_free(&whole.calls);
    hl_buf_free(&parts.content), hl_buf_free(&parts.thinking), hl_buf_free(&parts.calls);
    return 0;
}
