/* A tool for the Python reference comparison (tests/chat/jinja_env.py,
 * tests/chat/test_jinja_reference.py), not a unit test: built by
 * `make tests` as build/<mode>/tools/dump_chat_render. It renders one
 * template (file HL_CHAT_TEMPLATE) with one context (file HL_CHAT_CONTEXT,
 * a JSON object) and prints the rendered text exactly, exit status 0; or
 * prints "ERROR: <msg>" and exits 1. Exit status 2 (usage on stderr) when
 * the variables are not set. */
#include "base/buf.h"
#include "base/file.h"
#include "chat/chat.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *tp = getenv("HL_CHAT_TEMPLATE"), *cp = getenv("HL_CHAT_CONTEXT");
    if (!tp || !cp) {
        fprintf(stderr, "usage: HL_CHAT_TEMPLATE=template.jinja HL_CHAT_CONTEXT=context.json dump_chat_render\n");
        return 2;
    }
    hl_err err = {0};
    char *src = NULL, *ctxs = NULL;
    size_t n = 0, cn = 0;
    if (hl_read_file(tp, 8u << 20, &src, &n, &err) || hl_read_file(cp, 64u << 20, &ctxs, &cn, &err)) {
        printf("ERROR: %s", err.msg);
        free(src);
        free(ctxs);
        return 1;
    }
    json_object *ctx = json_tokener_parse(ctxs);
    if (!ctx) {
        printf("ERROR: context is not valid JSON");
        free(src);
        free(ctxs);
        return 1;
    }
    hl_buf out = {0};
    int rc = chat_render_once(src, n, ctx, &out, &err);
    if (rc) printf("ERROR: %s", err.msg);
    else fwrite(out.data ? out.data : "", 1, out.len, stdout);
    fflush(stdout);
    hl_buf_free(&out);
    json_object_put(ctx);
    free(src);
    free(ctxs);
    return rc ? 1 : 0;
}
