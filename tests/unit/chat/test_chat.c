/* Unit tests of the chat-template interpreter's error paths and limits:
 * syntax errors name line and column, unknown filters and tests are parse
 * errors, raise_exception's message reaches the caller, runaway templates
 * stop at the iteration / output / depth limits, and the context builder
 * produces what the templates expect. Rendering correctness is compared with
 * jinja2 in tests/chat/ (Python). */
#include "harness.h"

#include "base/buf.h"
#include "chat/chat.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* parse + render with an empty context; returns the status, fills out/err */
static int render(const char *src, hl_buf *out, hl_err *err) {
    json_object *ctx = json_object_new_object();
    json_object_object_add(ctx, "messages", json_tokener_parse("[{\"role\":\"user\",\"content\":\"hi\"}]"));
    int rc = chat_render_once(src, strlen(src), ctx, out, err);
    json_object_put(ctx);
    return rc;
}

static void expect_error(const char *src, int code, const char *needle) {
    hl_buf out = {0};
    hl_err err = {0};
    int rc = render(src, &out, &err);
    if (rc != code || !strstr(err.msg, needle))
        hl_test_fail(__FILE__, __LINE__, "template %s: rc %d (want %d), message \"%s\" (want \"%s\")", src, rc, code,
                     err.msg, needle);
    hl_buf_free(&out);
}

static void expect_output(const char *src, const char *want) {
    hl_buf out = {0};
    hl_err err = {0};
    int rc = render(src, &out, &err);
    CHECK_EQ(rc, 0);
    if (rc) printf("    %s\n", err.msg);
    CHECK_STREQ(out.data ? out.data : "", want);
    hl_buf_free(&out);
}

TEST(syntax_errors_name_line_and_column) {
    expect_error("{% if x %}\nunclosed", HL_EINVAL, "template line 1, column 4: unexpected end of template: 'if' block is never closed");
    expect_error("ok\n{% for x in y %}", HL_EINVAL, "template line 2, column 4:");
    expect_error("a\nb\n  {{ 1 + }}", HL_EINVAL, "template line 3, column 10: unexpected '}}'");
    expect_error("{{ x | foo }}", HL_EINVAL, "template line 1, column 8: unknown filter 'foo'");
    expect_error("\n\n{% if x is frobbed %}{% endif %}", HL_EINVAL, "template line 3, column 12: unknown test 'frobbed'");
    expect_error("{% endif %}", HL_EINVAL, "unexpected 'endif'");
    expect_error("{{ 'abc }}", HL_EINVAL, "unterminated string literal");
    expect_error("{{ x ", HL_EINVAL, "never closed");
    expect_error("{# comment", HL_EINVAL, "comment '{#' is never closed");
    expect_error("{% include 'x.jinja' %}", HL_EINVAL, "unsupported statement 'include'");
    expect_error("{% break %}", HL_EINVAL, "'break' outside of a for loop");
    expect_error("{{ a $ b }}", HL_EINVAL, "unexpected character '$'");
    expect_error("{% raw %}never ends", HL_EINVAL, "never closed");
}

TEST(render_errors) {
    expect_error("{{ raise_exception('roles must alternate') }}", HL_EINVAL, "template error: roles must alternate");
    expect_error("line\n{{ nope.attr }}", HL_EINVAL, "template line 2, column 9: 'nope' is undefined");
    expect_error("{{ 1 + 'a' }}", HL_EINVAL, "unsupported operand type(s) for +: 'int' and 'str'");
    expect_error("{{ 1 // 0 }}", HL_EINVAL, "division or modulo by zero");
    expect_error("{% set l = [1] %}{{ l.append(2) }}", HL_EINVAL, "unsafe");
    expect_error("{{ x | groupby('a') }}", HL_ENOTSUP, "filter 'groupby' is not supported");
    expect_error("{{ (none | tojson) ~ (x | tojson) }}", HL_EINVAL, "not JSON serializable");
    expect_error("{% for a, b in [[1, 2, 3]] %}{% endfor %}", HL_EINVAL, "cannot unpack");
    expect_error("{{ 5() }}", HL_EINVAL, "not callable");
    expect_error("{{ -'ab'.splitlines() }}", HL_EINVAL, "bad operand type for unary -: 'list'"); /* found by fuzzing */
    expect_error("{% set x = 1 %}{% set x.y = 2 %}", HL_EINVAL, "non-namespace");
}

TEST(limits_stop_runaway_templates) {
    /* 1000 x 1000 x 2 iterations exceed the default 1M */
    expect_error("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(2) %}{% endfor %}{% endfor %}{% endfor %}",
                 HL_ERANGE, "loop iterations");
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", HL_ERANGE, "deeper than 256");
    expect_error("{{ range(1000000) | list }}", HL_ERANGE, "Range too big");
    /* doubling a string 30 times would reach 1 GB */
    expect_error("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
                 HL_ERANGE, "limit");
    expect_error("{% for i in range(100000) %}{{ 'y' * 200 }}{% endfor %}", HL_ERANGE, "exceeds the limit");
    /* quadratic rebuilding: 100k appends to a growing list, 1M-char strings rebuilt 1000 times */
    expect_error("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}",
                 HL_ERANGE, "runaway template");
    expect_error("{% set big = 'x' * 1000000 %}{% for i in range(100000) %}{% set s = big ~ i %}{% endfor %}", HL_ERANGE,
                 "runaway template");

    chat_template *t = NULL;
    hl_err err = {0};
    const char *src = "{% for i in range(50) %}ab{% endfor %}";
    CHECK_EQ(chat_template_parse(&t, src, strlen(src), &err), 0);
    chat_limits lim = chat_limits_default();
    lim.max_iterations = 10;
    hl_buf out = {0};
    CHECK_EQ(chat_template_render_limits(t, NULL, &lim, &out, &err), HL_ERANGE);
    lim = chat_limits_default();
    lim.max_output = 20;
    hl_buf_reset(&out);
    CHECK_EQ(chat_template_render_limits(t, NULL, &lim, &out, &err), HL_ERANGE);
    lim.max_output = 100;
    hl_buf_reset(&out);
    CHECK_EQ(chat_template_render_limits(t, NULL, &lim, &out, &err), 0);
    CHECK_EQ(out.len, 100);
    hl_buf_free(&out);
    chat_template_free(t);
}

TEST(deep_nesting_is_an_error_not_a_crash) {
    size_t n = 5000;
    char *src = malloc(32768);
    size_t k = 0;
    memcpy(src + k, "{{ ", 3), k += 3;
    for (size_t i = 0; i < n; i++) src[k++] = '(';
    src[k++] = '1';
    for (size_t i = 0; i < n; i++) src[k++] = ')';
    memcpy(src + k, " }}", 4);
    expect_error(src, HL_EINVAL, "nested too deeply");
    k = 0;
    for (size_t i = 0; i < 2000; i++) k += (size_t)sprintf(src + k, "{%% if 1 %%}");
    src[k] = 0;
    expect_error(src, HL_EINVAL, "nested too deeply");
    free(src);
}

TEST(undefined_behaves_like_jinja2) {
    expect_output("[{{ nothing }}][{{ nothing | length }}][{% for x in nothing %}x{% endfor %}][{{ nothing is defined }}]",
                  "[][0][][False]");
    expect_output("{{ messages[0].missing is defined }}|{{ messages[5] is defined }}", "False|False");
}

TEST(context_builder_and_reuse) {
    chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", NULL}};
    json_object *ctx = NULL;
    hl_err err = {0};
    CHECK_EQ(chat_context_new(&ctx, msgs, 3, 1, "<s>", NULL, &err), 0);
    const char *src = "{{ bos_token }}{% for m in messages %}{{ m.role }}={{ m.content }};{% endfor %}"
                      "{% if add_generation_prompt %}>{% endif %}[{{ eos_token }}]";
    chat_template *t = NULL;
    CHECK_EQ(chat_template_parse(&t, src, strlen(src), &err), 0);
    for (int i = 0; i < 3; i++) { /* a parsed template renders any number of times */
        hl_buf out = {0};
        CHECK_EQ(chat_template_render(t, ctx, &out, &err), 0);
        CHECK_STREQ(out.data, "<s>system=Be brief.;user=Hi;assistant=None;>[]");
        hl_buf_free(&out);
    }
    chat_template_free(t);
    json_object_put(ctx);
    /* a context must be an object */
    json_object *arr = json_object_new_array();
    hl_buf out = {0};
    CHECK_EQ(chat_render_once("x", 1, arr, &out, &err), HL_EINVAL);
    json_object_put(arr);
    hl_buf_free(&out);
}

TEST(template_size_limit) {
    chat_template *t = NULL;
    hl_err err = {0};
    CHECK_EQ(chat_template_parse(&t, "x", (size_t)5 << 20, &err), HL_ERANGE);
    CHECK(t == NULL);
}

/* A parsed template is immutable: several threads render it at once (the
 * server renders in its HTTP threads) and each gets the single-thread text. */
#include <pthread.h>

typedef struct render_job {
    const chat_template *t;
    json_object *ctx;
    const char *want;
    int ok;
} render_job;

static void *render_many(void *p) {
    render_job *j = p;
    j->ok = 1;
    for (int i = 0; i < 200; i++) {
        hl_buf out = {0};
        hl_err err = {0};
        if (chat_template_render(j->t, j->ctx, &out, &err) || !out.data || strcmp(out.data, j->want) != 0) j->ok = 0;
        hl_buf_free(&out);
    }
    return NULL;
}

TEST(concurrent_renders_of_one_template) {
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                      "{{ loop.index }}:{{ m.role | upper }}={{ m.content | tojson }}{{ ' ' if not loop.last }}{% endfor %}"
                      "|{{ ns.n }}|{{ 'const string' }}";
    chat_template *t = NULL;
    hl_err err = {0};
    CHECK_EQ(chat_template_parse(&t, src, strlen(src), &err), 0);
    chat_message msgs[] = {{"system", "s"}, {"user", "u \"q\""}, {"assistant", "a"}};
    json_object *ctx = NULL;
    CHECK_EQ(chat_context_new(&ctx, msgs, 3, 1, NULL, NULL, &err), 0);
    hl_buf want = {0};
    CHECK_EQ(chat_template_render(t, ctx, &want, &err), 0);
    CHECK_STREQ(want.data, "1:SYSTEM=\"s\" 2:USER=\"u \\\"q\\\"\" 3:ASSISTANT=\"a\"|3|const string");
    pthread_t th[4];
    render_job jobs[4];
    for (int i = 0; i < 4; i++) {
        /* json-c objects are not thread-safe to share: one context per thread */
        jobs[i] = (render_job){t, NULL, want.data, 0};
        CHECK_EQ(chat_context_new(&jobs[i].ctx, msgs, 3, 1, NULL, NULL, &err), 0);
        pthread_create(&th[i], NULL, render_many, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].ok);
        json_object_put(jobs[i].ctx);
    }
    hl_buf_free(&want);
    json_object_put(ctx);
    chat_template_free(t);
}

TEST(context_from_openai_parses_tool_arguments) {
    json_object *msgs = json_tokener_parse(
        "[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"w\",\"arguments\":\"{\\\"city\\\": \\\"Oslo\\\", \\\"n\\\": 2}\"}},"
        "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"v\",\"arguments\":\"not json\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"rain\"}]");
    json_object *tools = json_tokener_parse("[{\"type\":\"function\",\"function\":{\"name\":\"w\"}}]");
    json_object *ctx = NULL;
    hl_err err = {0};
    CHECK_EQ(chat_context_from_openai(&ctx, msgs, tools, 1, "<s>", "</s>", &err), 0);
    const char *src = "{{ bos_token }}{{ tools[0].function.name }}|{% for m in messages %}{{ m.role }}:"
                      "{% for c in m.tool_calls or [] %}{{ c.function.arguments | tojson }};{% endfor %}{% endfor %}"
                      "|{{ messages[1].content is none }}|{{ add_generation_prompt }}";
    hl_buf out = {0};
    CHECK_EQ(chat_render_once(src, strlen(src), ctx, &out, &err), 0);
    CHECK_STREQ(out.data, "<s>w|user:assistant:{\"city\": \"Oslo\", \"n\": 2};\"not json\";tool:|True|True");
    /* the request's own objects are untouched */
    CHECK_STREQ(json_object_get_string(json_object_object_get(
                    json_object_object_get(json_object_array_get_idx(json_object_object_get(
                                               json_object_array_get_idx(msgs, 1), "tool_calls"), 0), "function"),
                    "arguments")),
                "{\"city\": \"Oslo\", \"n\": 2}");
    hl_buf_free(&out);
    json_object_put(ctx);
    json_object *bad = json_tokener_parse("{\"role\":\"user\"}");
    CHECK_EQ(chat_context_from_openai(&ctx, bad, NULL, 0, NULL, NULL, &err), HL_EINVAL);
    json_object_put(bad);
    json_object_put(msgs);
    json_object_put(tools);
}
