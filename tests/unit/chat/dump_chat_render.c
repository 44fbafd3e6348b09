/* Renders one template with one context for the Python reference comparison
 * (tests/chat/test_jinja_reference.py). A no-op test unless HL_CHAT_TEMPLATE
 * (a template file) and HL_CHAT_CONTEXT (a JSON object file) are set; then it
 * prints the rendered text exactly and exits 0, or prints "ERROR: <msg>" and
 * exits 1, without the harness's summary line so stdout is only the result. */
#include "harness.h"

#include "base/buf.h"
#include "base/file.h"
#include "chat/chat.h"

#include <json-c/json.h>
#include <stdlib.h>

TEST(render_from_env) {
    const char *tp = getenv("HL_CHAT_TEMPLATE"), *cp = getenv("HL_CHAT_CONTEXT");
    if (!tp || !cp) {
        hl_test_skip("HL_CHAT_TEMPLATE / HL_CHAT_CONTEXT not set");
        return;
    }
    hl_err err = {0};
    char *src = NULL, *ctxs = NULL;
    size_t n = 0, cn = 0;
    if (hl_read_file(tp, 8u << 20, &src, &n, &err) || hl_read_file(cp, 64u << 20, &ctxs, &cn, &err)) {
        printf("ERROR: %s", err.msg);
        exit(1);
    }
    json_object *ctx = json_tokener_parse(ctxs);
    if (!ctx) {
        printf("ERROR: context is not valid JSON");
        exit(1);
    }
    hl_buf out = {0};
    int rc = chat_render_once(src, n, ctx, &out, &err);
    if (rc) {
        printf("ERROR: %s", err.msg);
        fflush(stdout);
        exit(1);
    }
    fwrite(out.data ? out.data : "", 1, out.len, stdout);
    fflush(stdout);
    hl_buf_free(&out);
    json_object_put(ctx);
    free(src);
    free(ctxs);
    exit(0);
}
