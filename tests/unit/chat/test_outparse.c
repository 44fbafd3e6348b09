/* Tests of the streaming output splitter (src/chat/outparse.c) on outputs of
 * each family as the models write them (the formats their chat templates
 * render for history, and their model cards document). Each case states by
 * hand the content, thinking and calls the whole text must give; the text is
 * then fed split at every byte boundary (two pieces), one byte at a time, and
 * in three pieces at every pair of boundaries for short texts, and every
 * split must give the same result. Calls' arguments are compared as parsed
 * JSON (json-c's equality), names exactly. Also: what is held back at each
 * step is no more than a marker's prefix (or an open call). */
#include "harness.h"

#include "chat/outparse.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct result {
    hl_buf content, thinking;
    char names[8][64];
    char args[8][512];
    int n_calls;
} result;

static void result_free(result *r) {
    hl_buf_free(&r->content);
    hl_buf_free(&r->thinking);
}

static void take(result *r, chat_out *o) {
    hl_buf_append(&r->content, o->content.data ? o->content.data : "", o->content.len);
    hl_buf_append(&r->thinking, o->thinking.data ? o->thinking.data : "", o->thinking.len);
    for (size_t i = 0; i < o->n_calls && r->n_calls < 8; i++) {
        snprintf(r->names[r->n_calls], 64, "%s", o->calls[i].name);
        snprintf(r->args[r->n_calls], 512, "%s", o->calls[i].arguments);
        r->n_calls++;
    }
    chat_out_reset(o);
}

/* Runs text split at the given cut points (sorted, may be empty). */
static void run_split(const chat_outparse_cfg *cfg, const char *text, const size_t *cuts, int n_cuts, result *r) {
    memset(r, 0, sizeof *r);
    chat_outparse *p;
    hl_err err;
    if (chat_outparse_new(&p, cfg, &err)) {
        hl_test_fail(__FILE__, __LINE__, "new: %s", err.msg);
        return;
    }
    chat_out o = {0};
    size_t at = 0, n = strlen(text);
    for (int i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        CHECK_EQ(chat_outparse_feed(p, text + at, end - at, &o, &err), 0);
        take(r, &o);
        at = end;
    }
    CHECK_EQ(chat_outparse_finish(p, &o, &err), 0);
    take(r, &o);
    chat_out_free(&o);
    chat_outparse_free(p);
}

static int same_json(const char *a, const char *b) {
    json_object *x = json_tokener_parse(a), *y = json_tokener_parse(b);
    int eq = x && y && json_object_equal(x, y);
    json_object_put(x);
    json_object_put(y);
    return eq;
}

static int same(const result *a, const result *b) {
    if (a->content.len != b->content.len || a->thinking.len != b->thinking.len || a->n_calls != b->n_calls) return 0;
    if (a->content.len && memcmp(a->content.data, b->content.data, a->content.len)) return 0;
    if (a->thinking.len && memcmp(a->thinking.data, b->thinking.data, a->thinking.len)) return 0;
    for (int i = 0; i < a->n_calls; i++)
        if (strcmp(a->names[i], b->names[i]) || strcmp(a->args[i], b->args[i])) return 0;
    return 1;
}

typedef struct want {
    const char *content, *thinking;
    const char *calls[4][2]; /* name, arguments JSON */
} want;

static void check(int line, const chat_outparse_cfg *cfg, const char *text, const want *w) {
    result whole;
    run_split(cfg, text, NULL, 0, &whole);
    const char *c = whole.content.data ? whole.content.data : "";
    const char *t = whole.thinking.data ? whole.thinking.data : "";
    if (strcmp(c, w->content ? w->content : ""))
        hl_test_fail(__FILE__, line, "content \"%s\", want \"%s\"", c, w->content ? w->content : "");
    if (strcmp(t, w->thinking ? w->thinking : ""))
        hl_test_fail(__FILE__, line, "thinking \"%s\", want \"%s\"", t, w->thinking ? w->thinking : "");
    int nw = 0;
    while (nw < 4 && w->calls[nw][0]) nw++;
    if (whole.n_calls != nw) hl_test_fail(__FILE__, line, "%d calls, want %d", whole.n_calls, nw);
    for (int i = 0; i < nw && i < whole.n_calls; i++) {
        if (strcmp(whole.names[i], w->calls[i][0])) hl_test_fail(__FILE__, line, "call %d name %s, want %s", i, whole.names[i], w->calls[i][0]);
        if (!same_json(whole.args[i], w->calls[i][1]))
            hl_test_fail(__FILE__, line, "call %d arguments %s, want %s", i, whole.args[i], w->calls[i][1]);
    }
    size_t n = strlen(text);
    /* every split in two */
    for (size_t k = 0; k <= n; k++) {
        result r;
        run_split(cfg, text, &k, 1, &r);
        if (!same(&r, &whole)) hl_test_fail(__FILE__, line, "split at byte %zu differs from the whole", k);
        result_free(&r);
    }
    /* one byte at a time */
    size_t *cuts = calloc(n + 1, sizeof *cuts);
    for (size_t k = 0; k < n; k++) cuts[k] = k + 1;
    result r;
    run_split(cfg, text, cuts, (int)(n ? n - 1 : 0), &r);
    if (!same(&r, &whole)) hl_test_fail(__FILE__, line, "byte-at-a-time differs from the whole");
    result_free(&r);
    /* every split in three (short texts) */
    if (n <= 160)
        for (size_t a = 0; a <= n; a++)
            for (size_t b = a; b <= n; b++) {
                size_t two[2] = {a, b};
                run_split(cfg, text, two, 2, &r);
                if (!same(&r, &whole)) {
                    hl_test_fail(__FILE__, line, "split at %zu,%zu differs from the whole", a, b);
                    a = b = n + 1;
                }
                result_free(&r);
            }
    free(cuts);
    result_free(&whole);
}

#define CHECK_OUT(cfg, text, ...)                                                     \
    do {                                                                              \
        want w_ = __VA_ARGS__;                                                        \
        check(__LINE__, (cfg), (text), &w_);                                          \
    } while (0)

static const char *WEATHER = "{\"city\": \"Paris\", \"unit\": \"celsius\"}";

TEST(hermes_qwen25) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_HERMES};
    CHECK_OUT(&cfg, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
              {.calls = {{"get_weather", WEATHER}}});
    /* two calls, text before: the text is content, the newline between calls is not */
    CHECK_OUT(&cfg, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                    "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>",
              {.content = "Let me check.\n", .calls = {{"get_weather", "{\"city\":\"Paris\"}"}, {"add", "{\"a\":2,\"b\":3}"}}});
    /* arguments as a JSON string, "parameters" instead of "arguments" */
    CHECK_OUT(&cfg, "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": [1, 2]}\"}</tool_call>", {.calls = {{"f", "{\"x\":[1,2]}"}}});
    CHECK_OUT(&cfg, "<tool_call>{\"name\": \"f\", \"parameters\": {\"q\": \"ü €\"}}</tool_call>", {.calls = {{"f", "{\"q\":\"ü €\"}"}}});
    /* no closing tag before the end: parsed as it stands */
    CHECK_OUT(&cfg, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n", {.calls = {{"f", "{}"}}});
    /* a broken call comes back as content, markers included */
    CHECK_OUT(&cfg, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call> done",
              {.content = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call> done"});
    CHECK_OUT(&cfg, "<tool_call>{\"arguments\": {}}</tool_call>", {.content = "<tool_call>{\"arguments\": {}}</tool_call>"});
    CHECK_OUT(&cfg, "<tool_call>{\"name\": \"f\"", {.content = "<tool_call>{\"name\": \"f\""});
    /* lenient: a bare call, or one in a ```json fence, as the whole answer (Qwen2.5-Coder-1.5B's habit) */
    CHECK_OUT(&cfg, "```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n    \"city\": \"Paris\"\n  }\n}\n```",
              {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}}});
    CHECK_OUT(&cfg, "{\"name\": \"f\", \"arguments\": {}}", {.calls = {{"f", "{}"}}});
    CHECK_OUT(&cfg, "```json\n{\"a\": 1}\n```", {.content = "```json\n{\"a\": 1}\n```"});
    CHECK_OUT(&cfg, "```python\nprint(1)\n```", {.content = "```python\nprint(1)\n```"});
    CHECK_OUT(&cfg, "Here: ```json\n{\"name\": \"f\"}\n```", {.content = "Here: ```json\n{\"name\": \"f\"}\n```"});
    /* plain text with things that look like markers */
    CHECK_OUT(&cfg, "a < b and <tool_ and <tool_cal", {.content = "a < b and <tool_ and <tool_cal"});
    CHECK_OUT(&cfg, "", {.content = ""});
}

TEST(hermes_no_tools_is_content) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_NONE};
    CHECK_OUT(&cfg, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", {.content = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>"});
}

TEST(qwen3_thinking_then_call) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_HERMES, .think_open = "<think>", .think_close = "</think>"};
    CHECK_OUT(&cfg, "<think>\nThe user wants the weather. I should call get_weather.\n</think>\n\n"
                    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
              {.thinking = "The user wants the weather. I should call get_weather.\n", .calls = {{"get_weather", WEATHER}}});
    CHECK_OUT(&cfg, "<think>\n\n</think>\n\nParis is sunny.", {.content = "Paris is sunny."});
    /* thinking markers after the answer began are text */
    CHECK_OUT(&cfg, "The tag <think> opens thinking.", {.content = "The tag <think> opens thinking."});
    /* an unterminated thinking block stays thinking */
    CHECK_OUT(&cfg, "<think>hmm, let me", {.thinking = "hmm, let me"});
}

TEST(deepseek_r1_starts_in_thinking) {
    chat_outparse_cfg cfg = {.think_open = "<think>", .think_close = "</think>", .in_thinking = 1};
    CHECK_OUT(&cfg, "Okay, 2+2 is 4.\n</think>\n\nThe answer is **4**.", {.thinking = "Okay, 2+2 is 4.\n", .content = "The answer is **4**."});
    CHECK(chat_prompt_opens_thinking("<｜User｜>hi<｜Assistant｜><think>\n", "<think>", "</think>"));
    CHECK(!chat_prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n", "<think>", "</think>"));
    CHECK(!chat_prompt_opens_thinking("no markers", "<think>", "</think>"));
}

TEST(qwen3_coder_xml) {
    json_object *defs = json_tokener_parse(
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"},\"zip\":{\"type\":\"string\"}}}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"run\"}}]");
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_QWEN3_XML, .tool_defs = defs};
    CHECK_OUT(&cfg, "I'll look it up.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
                    "<parameter=days>\n3\n</parameter>\n<parameter=zip>\n75001\n</parameter>\n</function>\n</tool_call>",
              {.content = "I'll look it up.\n", .calls = {{"get_weather", "{\"city\":\"Paris\",\"days\":3,\"zip\":\"75001\"}"}}});
    /* undeclared parameters: JSON when they parse, else strings; multi-line strings keep their inner newlines */
    CHECK_OUT(&cfg, "<tool_call>\n<function=run>\n<parameter=code>\nprint(1)\nprint(2)\n</parameter>\n<parameter=opts>\n{\"x\": true}\n"
                    "</parameter>\n</function>\n</tool_call>",
              {.calls = {{"run", "{\"code\":\"print(1)\\nprint(2)\",\"opts\":{\"x\":true}}"}}});
    CHECK_OUT(&cfg, "<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>",
              {.content = "<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>"});
    json_object_put(defs);
}

TEST(llama3_json) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_LLAMA3};
    CHECK_OUT(&cfg, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}",
              {.calls = {{"get_weather", WEATHER}}});
    CHECK_OUT(&cfg, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"add\", \"parameters\": {\"a\": 1}}",
              {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}, {"add", "{\"a\":1}"}}});
    /* JSON that is not a call is the answer */
    CHECK_OUT(&cfg, "  {\"answer\": 42}", {.content = "  {\"answer\": 42}"});
    CHECK_OUT(&cfg, "The weather is {\"mild\"}.", {.content = "The weather is {\"mild\"}."});
}

TEST(mistral) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_MISTRAL};
    CHECK_OUT(&cfg, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}, "
                    "{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}]",
              {.calls = {{"get_weather", WEATHER}, {"add", "{\"a\":2,\"b\":3}"}}});
    CHECK_OUT(&cfg, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]add[CALL_ID]a1b2c3d4e[ARGS]{\"a\": 1}",
              {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}, {"add", "{\"a\":1}"}}});
    CHECK_OUT(&cfg, "Sure [TOOL_CALLS] not json", {.content = "Sure [TOOL_CALLS] not json"});
}

TEST(deepseek) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_DEEPSEEK, .think_open = "<think>", .think_close = "</think>", .in_thinking = 1};
    CHECK_OUT(&cfg, "Need weather.\n</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
                    "{\"city\": \"Paris\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>add\n"
                    "```json\n{\"a\": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
              {.thinking = "Need weather.\n", .calls = {{"get_weather", WEATHER}, {"add", "{\"a\":1}"}}});
    chat_outparse_cfg v31 = {.tools = CHAT_TOOLS_DEEPSEEK};
    CHECK_OUT(&v31, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
              {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}}});
    CHECK_OUT(&v31, "<｜tool▁calls▁begin｜>garbage<｜tool▁calls▁end｜>ok",
              {.content = "<｜tool▁calls▁begin｜>garbage<｜tool▁calls▁end｜>ok"});
}

TEST(ollama_prefix) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_PREFIX, .prefix = "<tool_call>", .suffix = "</tool_call>"};
    CHECK_OUT(&cfg, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
              {.calls = {{"get_weather", WEATHER}}});
    /* without the closing tag known, what follows the JSON makes it no call */
    chat_outparse_cfg open_only = {.tools = CHAT_TOOLS_PREFIX, .prefix = "<tool_call>"};
    CHECK_OUT(&open_only, "<tool_call>{\"name\": \"f\"}</tool_call>", {.content = "<tool_call>{\"name\": \"f\"}</tool_call>"});
    CHECK_OUT(&open_only, "<tool_call>{\"name\": \"f\"}\n<tool_call>{\"name\": \"g\"}", {.calls = {{"f", "{}"}, {"g", "{}"}}});
    CHECK_OUT(&cfg, "```json\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n```", {.calls = {{"f", "{\"a\":1}"}}});
    chat_outparse_cfg m = {.tools = CHAT_TOOLS_PREFIX, .prefix = "[TOOL_CALLS]"};
    CHECK_OUT(&m, "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 1}}]", {.calls = {{"add", "{\"a\":1}"}}});
    chat_outparse_cfg bare = {.tools = CHAT_TOOLS_PREFIX};
    CHECK_OUT(&bare, "{\"name\": \"add\", \"parameters\": {\"a\": 1}}", {.calls = {{"add", "{\"a\":1}"}}});
    CHECK_OUT(&bare, "[{\"name\": \"add\", \"parameters\": {\"a\": 1}}, {\"name\": \"b\"}]", {.calls = {{"add", "{\"a\":1}"}, {"b", "{}"}}});
    CHECK_OUT(&bare, "No tools needed.", {.content = "No tools needed."});
}

/* Auto mode with the request's tools known: a call to a function that is not
 * among them is no call but content, as the model wrote it (outputs recorded
 * in each family's format, calling a name the request did not offer). */
TEST(unknown_function_is_content) {
    json_object *defs = json_tokener_parse(
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}}}}}]");
    chat_outparse_cfg h = {.tools = CHAT_TOOLS_HERMES, .tool_defs = defs};
    const char *t = "<tool_call>\n{\"name\": \"search_web\", \"arguments\": {\"q\": \"Paris\"}}\n</tool_call>";
    CHECK_OUT(&h, t, {.content = t});
    /* the bare-JSON habit too, and one unknown call makes the whole block content (atomic) */
    t = "{\"name\": \"translate\", \"arguments\": {\"text\": \"hello\"}}";
    CHECK_OUT(&h, t, {.content = t});
    CHECK_OUT(&h, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                  "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>",
              {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}},
               .content = "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>"});
    chat_outparse_cfg x = {.tools = CHAT_TOOLS_QWEN3_XML, .tool_defs = defs};
    t = "<tool_call>\n<function=get_time>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>";
    CHECK_OUT(&x, t, {.content = t});
    chat_outparse_cfg l = {.tools = CHAT_TOOLS_LLAMA3, .tool_defs = defs};
    t = "<|python_tag|>{\"name\": \"brave_search\", \"parameters\": {\"query\": \"Paris\"}}";
    CHECK_OUT(&l, t, {.content = t});
    CHECK_OUT(&l, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}}});
    chat_outparse_cfg m = {.tools = CHAT_TOOLS_MISTRAL, .tool_defs = defs};
    t = "[TOOL_CALLS] [{\"name\": \"get_news\", \"arguments\": {}}]";
    CHECK_OUT(&m, t, {.content = t});
    chat_outparse_cfg d = {.tools = CHAT_TOOLS_DEEPSEEK, .tool_defs = defs};
    t = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_stock<｜tool▁sep｜>{\"s\": \"X\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
    CHECK_OUT(&d, t, {.content = t});
    chat_outparse_cfg px = {.tools = CHAT_TOOLS_PREFIX, .prefix = "<tool_call>", .suffix = "</tool_call>", .tool_defs = defs};
    t = "<tool_call>{\"name\": \"other\", \"arguments\": {}}</tool_call>";
    CHECK_OUT(&px, t, {.content = t});
    json_object_put(defs);
}

/* gpt-oss (harmony), outputs written from the format's documentation
 * (openai/harmony, "OpenAI harmony response format"): the prompt ends with
 * <|start|>assistant, so the output opens with a header; <|return|> and
 * <|call|> end generation and are not rendered (also checked rendered). */
TEST(harmony) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_HARMONY, .harmony = 1};
    const char *think_final = "<|channel|>analysis<|message|>User asks: \"sum 1 to 100\". Likely 5050.<|end|>"
                              "<|start|>assistant<|channel|>final<|message|>The sum is **5050**.";
    CHECK_OUT(&cfg, think_final, {.thinking = "User asks: \"sum 1 to 100\". Likely 5050.", .content = "The sum is **5050**."});
    CHECK_OUT(&cfg, "<|channel|>analysis<|message|>Quick.<|end|><|start|>assistant<|channel|>final<|message|>Hi!<|return|>",
              {.thinking = "Quick.", .content = "Hi!"});
    /* a call, as the model writes it (recipient after the channel, <|constrain|>) */
    CHECK_OUT(&cfg, "<|channel|>analysis<|message|>Need to use function get_weather.<|end|><|start|>assistant<|channel|>commentary "
                    "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\",\"unit\":\"celsius\"}",
              {.thinking = "Need to use function get_weather.", .calls = {{"get_weather", WEATHER}}});
    CHECK_OUT(&cfg, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>",
              {.calls = {{"get_weather", "{\"city\":\"Paris\"}"}}});
    /* ... and as the template renders history (recipient in the role header, bare content type) */
    CHECK_OUT(&cfg, "<|channel|>analysis<|message|>x<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json"
                    "<|message|>{\"city\": \"Paris\"}<|call|>",
              {.thinking = "x", .calls = {{"get_weather", "{\"city\":\"Paris\"}"}}});
    CHECK_OUT(&cfg, " to=functions.add<|channel|>commentary json<|message|>{\"a\": 2, \"b\": 3}", {.calls = {{"add", "{\"a\":2,\"b\":3}"}}});
    /* a preamble on commentary is content; then the call */
    CHECK_OUT(&cfg, "<|channel|>commentary<|message|>Let me check the weather.<|end|><|start|>assistant<|channel|>commentary "
                    "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}",
              {.content = "Let me check the weather.", .calls = {{"get_weather", "{\"city\":\"Paris\"}"}}});
    /* arguments that are no JSON object: content, header included */
    CHECK_OUT(&cfg, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": ",
              {.content = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": "});
    CHECK_OUT(&cfg, "<|channel|>commentary to=functions.f <|constrain|>json<|message|>[1]<|end|><|start|>assistant<|channel|>final<|message|>ok",
              {.content = "<|channel|>commentary to=functions.f <|constrain|>json<|message|>[1]<|end|>ok"});
    /* markers and text a stream is cut in: thinking cut short stays thinking, a header cut short holds no text */
    CHECK_OUT(&cfg, "<|channel|>analysis<|message|>thinking about", {.thinking = "thinking about"});
    CHECK_OUT(&cfg, "<|channel|>analysis<|message|>t<|end|><|start|>assistant<|chan", {.thinking = "t"});
    /* a vocabulary that leaves <|end|> unrendered: <|start|> ends the message */
    CHECK_OUT(&cfg, "<|channel|>analysis<|message|>t<|start|>assistant<|channel|>final<|message|>ok", {.thinking = "t", .content = "ok"});
    /* text that only looks like markers, and output with no header at all */
    CHECK_OUT(&cfg, "<|channel|>final<|message|>1 < 2, <|x|> and <|en stay", {.content = "1 < 2, <|x|> and <|en stay"});
    CHECK_OUT(&cfg, "Hello there", {.content = "Hello there"});
    CHECK_OUT(&cfg, "", {.content = ""});
    /* a "header" longer than any header is text, opener included (the
     * splitter once looped forever taking its opener for the next header) */
    static char long_hdr[700];
    memset(long_hdr, 'x', sizeof long_hdr - 1);
    memcpy(long_hdr, "<|channel|>", 11);
    CHECK_OUT(&cfg, long_hdr, {.content = long_hdr});
    static char long_hdr_msg[700];
    snprintf(long_hdr_msg, sizeof long_hdr_msg, "<|start|>%0600d<|message|>hi", 0);
    CHECK_OUT(&cfg, long_hdr_msg, {.content = long_hdr_msg});
    /* tools off: channels still split, a call message is content as written */
    chat_outparse_cfg off = {.harmony = 1};
    CHECK_OUT(&off, "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}",
              {.thinking = "a", .content = "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}"});
    CHECK_OUT(&off, think_final, {.thinking = "User asks: \"sum 1 to 100\". Likely 5050.", .content = "The sum is **5050**."});
    /* the request's tools known: another function (a built-in tool's recipient too) is content */
    json_object *defs = json_tokener_parse("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]");
    chat_outparse_cfg known = {.tools = CHAT_TOOLS_HARMONY, .harmony = 1, .tool_defs = defs};
    const char *t = "<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{}";
    CHECK_OUT(&known, t, {.content = t});
    t = "<|channel|>analysis<|message|>search<|end|><|start|>assistant<|channel|>commentary to=browser.search <|constrain|>json<|message|>{\"query\": \"x\"}";
    CHECK_OUT(&known, t, {.thinking = "search", .content = "<|start|>assistant<|channel|>commentary to=browser.search <|constrain|>json<|message|>{\"query\": \"x\"}"});
    CHECK_OUT(&known, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Oslo\"}",
              {.calls = {{"get_weather", "{\"city\":\"Oslo\"}"}}});
    json_object_put(defs);
}

/* While text streams, what is held back is at most a marker's proper prefix. */
TEST(holds_back_only_marker_prefixes) {
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_HERMES, .think_open = "<think>", .think_close = "</think>"};
    chat_outparse *p;
    hl_err err;
    CHECK_EQ(chat_outparse_new(&p, &cfg, &err), 0);
    chat_out o = {0};
    const char *t = "Hello there, <tool";
    CHECK_EQ(chat_outparse_feed(p, t, strlen(t), &o, &err), 0);
    CHECK_STREQ(o.content.data, "Hello there, ");
    chat_out_reset(&o);
    CHECK_EQ(chat_outparse_feed(p, "s", 1, &o, &err), 0);
    CHECK_STREQ(o.content.data, "<tools");
    chat_out_free(&o);
    chat_outparse_free(p);
}

TEST(detect_families) {
    chat_outparse_cfg c;
    chat_outparse_detect("{% if tools %}<tool_call>{{ x }}</tool_call>{% endif %}", &c);
    CHECK_EQ(c.tools, CHAT_TOOLS_HERMES);
    chat_outparse_detect("<tool_call>\n<function=x>", &c);
    CHECK_EQ(c.tools, CHAT_TOOLS_QWEN3_XML);
    chat_outparse_detect("[TOOL_CALLS] {{ tools }}", &c);
    CHECK_EQ(c.tools, CHAT_TOOLS_MISTRAL);
    chat_outparse_detect("<|start_header_id|>{% if tools %}", &c);
    CHECK_EQ(c.tools, CHAT_TOOLS_LLAMA3);
    chat_outparse_detect("<｜tool▁calls▁begin｜><think>", &c);
    CHECK_EQ(c.tools, CHAT_TOOLS_DEEPSEEK);
    CHECK_STREQ(c.think_open, "<think>");
    chat_outparse_detect("{{ messages }}", &c);
    CHECK_EQ(c.tools, CHAT_TOOLS_NONE);
    CHECK(c.think_open == NULL);
    CHECK_EQ(chat_template_caps("{% if tools %}<think>"), CHAT_CAP_TOOLS | CHAT_CAP_THINKING);
    /* gpt-oss: harmony, although it reads tools (which alone would be Ollama's JSON answer) */
    chat_outparse_detect("{%- if tools %}<|start|>assistant<|channel|>final<|message|>{{ m.content }}<|end|>", &c);
    CHECK(c.harmony);
    CHECK_EQ(c.tools, CHAT_TOOLS_HARMONY);
    CHECK(c.think_open == NULL);
    CHECK_EQ(chat_template_caps("{%- if tools %}<|channel|>analysis<|message|>"), CHAT_CAP_TOOLS | CHAT_CAP_THINKING);
    CHECK_EQ(chat_template_caps("{{ messages }}"), 0);
}
