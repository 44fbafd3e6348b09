/* Ollama's template-driven tool-call detection: where a Modelfile TEMPLATE
 * writes an assistant's tool calls, the text around the call's JSON is what
 * the model writes around its own calls. The template is rendered twice for
 * the same conversation (user, assistant, user): once with the assistant
 * turn a tool call with a sentinel name, once with that turn a one-character answer no template writes itself
 * (\x01). The renderings agree up to where the call begins and again after it ends; in
 * between, the JSON holding the sentinel (with the array bracket before it,
 * if any) is the call, the text before it the prefix, the text after it the
 * suffix. */
#include "gotmpl/internal.h"

#include <stdlib.h>
#include <string.h>

#define SENTINEL "hyperlama_tool_sentinel"

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static char *trimmed(const char *s, size_t n) {
    while (n && is_ws(*s)) s++, n--;
    while (n && is_ws(s[n - 1])) n--;
    return strndup(s, n);
}

/* end of the bracketed JSON value starting at s[0] (strings skipped), or 0 */
static size_t span(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (s[i] == '\\') i++;
            else if (s[i] == '"') in_str = 0;
        } else if (s[i] == '"') in_str = 1;
        else if (s[i] == '{' || s[i] == '[') depth++;
        else if ((s[i] == '}' || s[i] == ']') && --depth == 0) return i + 1;
    }
    return 0;
}

static int render(const char *tmpl, size_t len, int with_call, hl_buf *out, hl_err *err) {
    gotmpl_msg m[3] = {
        {.role = "user", .content = "U"},
        {.role = "assistant", .content = with_call ? "" : "\x01",
         .tool_calls_json = with_call ? "[{\"function\":{\"name\":\"" SENTINEL "\",\"arguments\":{}}}]" : NULL},
        {.role = "user", .content = "V"},
    };
    gotmpl_chat c = {.msgs = m, .n_msgs = 3,
                     .tools_json = "[{\"type\":\"function\",\"function\":{\"name\":\"hyperlama_tool_def\",\"parameters\":{\"type\":\"object\"}}}]"};
    return gotmpl_render_chat(tmpl, len, &c, out, err);
}

int gotmpl_tool_markers(const char *tmpl, size_t len, char **prefix, char **suffix, hl_err *err) {
    *prefix = *suffix = NULL;
    hl_buf a = {0}, b = {0};
    int rc = render(tmpl, len, 1, &a, err);
    if (!rc) rc = render(tmpl, len, 0, &b, err);
    if (!rc && (a.oom || b.oom)) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    const char *s = a.data ? a.data : "";
    size_t d = 0; /* where the renderings part: the call's turn */
    while (!rc && d < a.len && d < b.len && a.data[d] == b.data[d]) d++;
    const char *name = rc ? NULL : strstr(s + d, SENTINEL);
    if (!rc && !name) rc = hl_err_set(err, HL_ENOTSUP, "the template does not write tool calls");
    if (!rc) {
        size_t at = (size_t)(name - s);
        size_t j = at;
        while (j > d && s[j - 1] != '{') j--;
        if (j > d) j--; /* the call's '{' */
        size_t k = j;
        while (k > d && is_ws(s[k - 1])) k--;
        if (k > d && s[k - 1] == '[') j = k - 1; /* an array of calls */
        if (j < d || (s[j] != '{' && s[j] != '[')) {
            rc = hl_err_set(err, HL_ENOTSUP, "the template's tool calls are not JSON");
        } else {
            size_t end = j + span(s + j, a.len - j);
            if (end == j) end = at;
            size_t common = 0; /* of the two renderings' ends */
            while (common < a.len - end && common < b.len && a.data[a.len - 1 - common] == b.data[b.len - 1 - common]) common++;
            *prefix = trimmed(s + d, j - d);
            *suffix = trimmed(s + end, a.len - common - end);
            if (!*prefix || !*suffix) {
                free(*prefix), free(*suffix);
                *prefix = *suffix = NULL;
                rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            }
        }
    }
    hl_buf_free(&a);
    hl_buf_free(&b);
    return rc;
}
