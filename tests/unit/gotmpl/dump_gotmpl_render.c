/* A tool for the Python comparisons with Go's text/template and Ollama
 * (tests/gotmpl/), not a unit test: built by `make tests` as
 * build/<mode>/tools/dump_gotmpl_render. Given GOTMPL_TEMPLATE (a template
 * file) and
 *   GOTMPL_DATA (a JSON file): renders the template over that data with
 *     gotmpl_render (tests/gotmpl/test_gotmpl_go.py);
 *   GOTMPL_CHAT (a conversation file {"messages":[{"role","content",
 *     "tool_calls"}], "tools":[...]}): renders it with gotmpl_render_chat,
 *     Ollama's semantics (tests/gotmpl/test_ollama_templates.py);
 * and prints the result exactly. Exit status 0 on success, 1 when the
 * template does not parse or render, 2 when a file cannot be read or the
 * variables are not set (message on stderr). */
#include "base/file.h"
#include "gotmpl/gotmpl.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

static int chat_mode(const char *t, size_t tl, const char *cp) {
    char *d;
    size_t dl;
    hl_err err = {0};
    if (hl_read_file(cp, 1 << 24, &d, &dl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    json_object *conv = json_tokener_parse(d), *msgs = NULL, *tools = NULL;
    json_object_object_get_ex(conv, "messages", &msgs);
    json_object_object_get_ex(conv, "tools", &tools);
    size_t n = msgs ? json_object_array_length(msgs) : 0;
    gotmpl_msg *m = calloc(n + 1, sizeof *m);
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(msgs, i), *v;
        if (json_object_object_get_ex(o, "role", &v)) m[i].role = json_object_get_string(v);
        if (json_object_object_get_ex(o, "content", &v)) m[i].content = json_object_get_string(v);
        if (json_object_object_get_ex(o, "tool_calls", &v)) m[i].tool_calls_json = json_object_to_json_string(v);
    }
    gotmpl_chat c = {.msgs = m, .n_msgs = n, .tools_json = tools ? json_object_to_json_string(tools) : NULL};
    hl_buf b = {0};
    int rc = 0;
    if (gotmpl_render_chat(t, tl, &c, &b, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        rc = 1;
    } else {
        fwrite(b.data ? b.data : "", 1, b.len, stdout);
    }
    hl_buf_free(&b);
    free(m);
    json_object_put(conv);
    free(d);
    return rc;
}

static int data_mode(const char *t, size_t tl, const char *dp) {
    char *d;
    size_t dl;
    hl_err err = {0};
    if (hl_read_file(dp, 1 << 24, &d, &dl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    gotmpl *g;
    if (gotmpl_parse(&g, t, tl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        free(d);
        return 1;
    }
    json_object *data = json_tokener_parse(d);
    hl_buf b = {0};
    int rc = 0;
    if (gotmpl_render(g, data, &b, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        rc = 1;
    } else {
        fwrite(b.data ? b.data : "", 1, b.len, stdout);
    }
    hl_buf_free(&b);
    json_object_put(data);
    gotmpl_free(g);
    free(d);
    return rc;
}

int main(void) {
    const char *tp = getenv("GOTMPL_TEMPLATE"), *dp = getenv("GOTMPL_DATA"), *cp = getenv("GOTMPL_CHAT");
    if (!tp || (!cp && !dp)) {
        fprintf(stderr, "usage: GOTMPL_TEMPLATE=t.gotmpl GOTMPL_DATA=data.json dump_gotmpl_render\n"
                        "       GOTMPL_TEMPLATE=t.gotmpl GOTMPL_CHAT=conversation.json dump_gotmpl_render\n");
        return 2;
    }
    char *t;
    size_t tl;
    hl_err err = {0};
    if (hl_read_file(tp, 1 << 20, &t, &tl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    int rc = cp ? chat_mode(t, tl, cp) : data_mode(t, tl, dp);
    fflush(stdout);
    free(t);
    return rc;
}
