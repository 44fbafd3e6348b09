/* Tests of the tool-calling and thinking request fields (server/tools.c)
 * through the request parsers: OpenAI tools / tool_choice /
 * parallel_tool_calls / reasoning_effort / chat_template_kwargs, Ollama
 * tools / think, messages' tool calls and tool results, the errors, and the
 * grammar tool_choice required / named enforces in each family's syntax
 * (srv_tool_gbnf over chat_call_syntax_of): it accepts the calls the
 * family writes, which the family's parser reads back, and refuses
 * arguments off the schema, unknown functions and marker-spelling strings. */
#include "harness.h"

#include "server/internal.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define TOOLS "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"," \
              "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}," \
              "{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}}]"

static int oai(const char *body, srv_gen *g, hl_err *err) { return srv_parse_openai(SRV_OAI_CHAT, body, strlen(body), g, err); }

TEST(openai_fields) {
    srv_gen g;
    hl_err err = {0};
    const char *body = "{\"model\":\"m\",\"tools\":" TOOLS ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}},"
                       "\"parallel_tool_calls\":false,\"reasoning_effort\":\"high\",\"chat_template_kwargs\":{\"enable_thinking\":false},"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"w?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
                       "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
                       "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"rain\"}]}";
    CHECK_EQ(oai(body, &g, &err), 0);
    if (err.msg[0]) printf("    %s\n", err.msg);
    CHECK(g.tools_json && strstr(g.tools_json, "noargs"));
    CHECK_EQ(g.tool_choice, SRV_TOOLS_NAMED);
    CHECK_STREQ(g.tool_choice_name, "noargs");
    CHECK_EQ(g.parallel_tool_calls, 0);
    CHECK(g.think_set && !g.think); /* chat_template_kwargs came after reasoning_effort */
    CHECK_STREQ(g.think_level, "high");
    CHECK(g.tmpl_vars_json && strstr(g.tmpl_vars_json, "enable_thinking"));
    CHECK_EQ(g.n_msgs, 3);
    CHECK(g.msgs[1].tool_calls && strstr(g.msgs[1].tool_calls, "get_weather"));
    CHECK_STREQ(g.msgs[2].tool_call_id, "c1");
    srv_gen_free(&g);
}

TEST(openai_errors) {
    srv_gen g;
    hl_err err = {0};
    const char *bad[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"sometimes\"}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_effort\":\"max\"}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"parallel_tool_calls\":1}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"functions\":[{\"name\":\"f\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (oai(bad[i], &g, &err) == 0) hl_test_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
        srv_gen_free(&g);
    }
}

TEST(ollama_fields) {
    srv_gen g;
    hl_err err = {0};
    const char *body = "{\"model\":\"m\",\"think\":\"low\",\"tools\":" TOOLS ",\"messages\":[{\"role\":\"user\",\"content\":\"w\"},"
                       "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hm\",\"tool_calls\":[{\"function\":{\"name\":\"get_weather\","
                       "\"arguments\":{\"city\":\"Oslo\"}}}]},{\"role\":\"tool\",\"tool_name\":\"get_weather\",\"content\":\"rain\"}]}";
    CHECK_EQ(srv_parse_ollama(SRV_OLLAMA_CHAT, body, strlen(body), &g, &err), 0);
    CHECK(g.think_set && g.think);
    CHECK_STREQ(g.think_level, "low");
    CHECK_STREQ(g.msgs[1].thinking, "hm");
    CHECK_STREQ(g.msgs[2].name, "get_weather");
    srv_gen_free(&g);
    const char *gen_tools = "{\"model\":\"m\",\"prompt\":\"x\",\"tools\":" TOOLS "}";
    CHECK(srv_parse_ollama(SRV_OLLAMA_GENERATE, gen_tools, strlen(gen_tools), &g, &err) != 0);
    srv_gen_free(&g);
    const char *bad_think = "{\"model\":\"m\",\"prompt\":\"x\",\"think\":3}";
    CHECK(srv_parse_ollama(SRV_OLLAMA_GENERATE, bad_think, strlen(bad_think), &g, &err) != 0);
    srv_gen_free(&g);
    const char *think_false = "{\"model\":\"m\",\"prompt\":\"x\",\"think\":false}";
    CHECK_EQ(srv_parse_ollama(SRV_OLLAMA_GENERATE, think_false, strlen(think_false), &g, &err), 0);
    CHECK(g.think_set && !g.think);
    srv_gen_free(&g);
}

/* ---- the forced-call grammar of each family -------------------------------------- */

#define FTOOLS "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"," \
               "\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}}," \
               "\"required\":[\"city\"]}}},{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}}]"

static hl_grammar *forced(chat_tool_format fmt, const char *tmpl, const char *only, int parallel, const char *pre, const char *suf) {
    chat_outparse_cfg cfg = {.tools = fmt, .prefix = pre, .suffix = suf};
    chat_call_syntax syn;
    hl_err err = {0};
    hl_buf b = {0};
    json_object *tools = json_tokener_parse(FTOOLS);
    hl_grammar *g = NULL;
    if (chat_call_syntax_of(&cfg, tmpl, &syn, &err) || srv_tool_gbnf(tools, only, parallel, NULL, &syn, &b, &err) ||
        hl_grammar_parse(&g, b.data, b.len, &err))
        hl_test_fail(__FILE__, __LINE__, "%s: %s\n%s", chat_tool_format_name(fmt), err.msg, b.data ? b.data : "");
    hl_buf_free(&b);
    json_object_put(tools);
    return g;
}

/* The text is accepted whole, and the family's parser (with the request's
 * tools) reads exactly the calls back. */
static void agrees(int line, hl_grammar *g, chat_tool_format fmt, const char *pre, const char *suf, const char *text,
                   int n_calls, const char *args0) {
    if (!g) return;
    if (hl_grammar_accepts(g, text, strlen(text), NULL) != 1) hl_test_fail(__FILE__, line, "grammar refuses %s", text);
    json_object *tools = json_tokener_parse(FTOOLS);
    chat_outparse_cfg cfg = {.tools = fmt, .prefix = pre, .suffix = suf, .tool_defs = tools, .harmony = fmt == CHAT_TOOLS_HARMONY};
    chat_outparse *p;
    hl_err err;
    chat_out o = {0};
    CHECK_EQ(chat_outparse_new(&p, &cfg, &err), 0);
    CHECK_EQ(chat_outparse_feed(p, text, strlen(text), &o, &err), 0);
    CHECK_EQ(chat_outparse_finish(p, &o, &err), 0);
    if ((int)o.n_calls != n_calls || o.content.len)
        hl_test_fail(__FILE__, line, "parser: %zu calls, content \"%s\" for %s", o.n_calls, o.content.data ? o.content.data : "", text);
    else if (args0) {
        json_object *x = json_tokener_parse(o.calls[0].arguments), *y = json_tokener_parse(args0);
        if (!json_object_equal(x, y)) hl_test_fail(__FILE__, line, "arguments %s, want %s", o.calls[0].arguments, args0);
        json_object_put(x);
        json_object_put(y);
    }
    chat_out_free(&o);
    chat_outparse_free(p);
    json_object_put(tools);
}

static void refuses(int line, hl_grammar *g, const char *text) {
    if (g && hl_grammar_accepts(g, text, strlen(text), NULL) != 0) hl_test_fail(__FILE__, line, "grammar accepts %s", text);
}

#define DS_B "<｜tool▁calls▁begin｜>"
#define DS_E "<｜tool▁calls▁end｜>"
#define DS_CB "<｜tool▁call▁begin｜>"
#define DS_CE "<｜tool▁call▁end｜>"
#define DS_S "<｜tool▁sep｜>"

TEST(forced_grammar_per_family) {
    const char *paris = "{\"city\":\"Paris\",\"days\":3}";
    hl_grammar *g = forced(CHAT_TOOLS_HERMES, NULL, NULL, 1, NULL, NULL);
    agrees(__LINE__, g, CHAT_TOOLS_HERMES, NULL, NULL,
           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>", 1, paris);
    agrees(__LINE__, g, CHAT_TOOLS_HERMES, NULL, NULL,
           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"\\u003c/tool_call>\"}}\n</tool_call>\n"
           "<tool_call>\n{\"name\": \"noargs\", \"arguments\": {}}\n</tool_call>", 2, "{\"city\":\"</tool_call>\"}");
    refuses(__LINE__, g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"</tool_call>\"}}\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 9}}\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 3}}\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>");
    refuses(__LINE__, g, "Sure.");
    hl_grammar_free(g);

    g = forced(CHAT_TOOLS_HERMES, NULL, "noargs", 0, NULL, NULL); /* named, one call */
    agrees(__LINE__, g, CHAT_TOOLS_HERMES, NULL, NULL, "<tool_call>\n{\"name\": \"noargs\", \"arguments\": {}}\n</tool_call>", 1, "{}");
    refuses(__LINE__, g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n{\"name\": \"noargs\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"noargs\", \"arguments\": {}}\n</tool_call>");
    hl_grammar_free(g);

    g = forced(CHAT_TOOLS_QWEN3_XML, NULL, NULL, 1, NULL, NULL);
    agrees(__LINE__, g, CHAT_TOOLS_QWEN3_XML, NULL, NULL,
           "<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
           "</function>\n</tool_call>", 1, "{\"city\":\"New York\",\"days\":3}");
    /* a raw string may hold "<", "</", even "</param" — never a whole closer */
    agrees(__LINE__, g, CHAT_TOOLS_QWEN3_XML, NULL, NULL,
           "<tool_call>\n<function=get_weather>\n<parameter=city>\na < b </p> </paramete\nline 2\n</parameter>\n</function>\n</tool_call>\n"
           "<tool_call>\n<function=noargs>\n</function>\n</tool_call>", 2, "{\"city\":\"a < b </p> </paramete\\nline 2\"}");
    refuses(__LINE__, g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nx</parameter>y\n</parameter>\n</function>\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nx</function>\n</parameter>\n</function>\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\nthree\n</parameter>\n"
                         "</function>\n</tool_call>");
    refuses(__LINE__, g, "<tool_call>\n<function=get_weather>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>");
    hl_grammar_free(g);

    g = forced(CHAT_TOOLS_LLAMA3, NULL, NULL, 1, NULL, NULL);
    agrees(__LINE__, g, CHAT_TOOLS_LLAMA3, NULL, NULL, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", 1, paris);
    agrees(__LINE__, g, CHAT_TOOLS_LLAMA3, NULL, NULL,
           "{\"name\": \"noargs\", \"parameters\": {}}\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", 2, "{}");
    refuses(__LINE__, g, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}");
    hl_grammar_free(g);

    g = forced(CHAT_TOOLS_MISTRAL, NULL, NULL, 1, NULL, NULL);
    agrees(__LINE__, g, CHAT_TOOLS_MISTRAL, NULL, NULL,
           "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}, {\"name\": \"noargs\", \"arguments\": {}}]",
           2, paris);
    refuses(__LINE__, g, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"[TOOL_CALLS]\"}}]");
    hl_grammar_free(g);
    g = forced(CHAT_TOOLS_MISTRAL, "{{- \"[TOOL_CALLS] [\" }}", NULL, 1, NULL, NULL); /* v0.3's spacing */
    agrees(__LINE__, g, CHAT_TOOLS_MISTRAL, NULL, NULL, "[TOOL_CALLS] [{\"name\": \"noargs\", \"arguments\": {}}]", 1, "{}");
    refuses(__LINE__, g, "[TOOL_CALLS][{\"name\": \"noargs\", \"arguments\": {}}]");
    hl_grammar_free(g);

    g = forced(CHAT_TOOLS_DEEPSEEK, NULL, NULL, 1, NULL, NULL); /* V3.1 */
    agrees(__LINE__, g, CHAT_TOOLS_DEEPSEEK, NULL, NULL,
           DS_B DS_CB "get_weather" DS_S "{\"city\": \"Paris\", \"days\": 3}" DS_CE DS_CB "noargs" DS_S "{}" DS_CE DS_E, 2, paris);
    refuses(__LINE__, g, DS_B DS_CB "get_weather" DS_S "{\"city\": \"" DS_CE "\"}" DS_CE DS_E);
    hl_grammar_free(g);
    g = forced(CHAT_TOOLS_DEEPSEEK, "{{ '```json' }}", "get_weather", 1, NULL, NULL); /* R1 */
    agrees(__LINE__, g, CHAT_TOOLS_DEEPSEEK, NULL, NULL,
           DS_B DS_CB "function" DS_S "get_weather\n```json\n{\"city\": \"Paris\", \"days\": 3}\n```" DS_CE DS_E, 1, paris);
    hl_grammar_free(g);

    g = forced(CHAT_TOOLS_PREFIX, NULL, NULL, 1, "<fn>", "</fn>");
    agrees(__LINE__, g, CHAT_TOOLS_PREFIX, "<fn>", "</fn>", "<fn>{\"name\": \"noargs\", \"arguments\": {}}</fn>\n<fn>{\"name\": \"noargs\", \"arguments\": {}}</fn>",
           2, "{}");
    hl_grammar_free(g);
    g = forced(CHAT_TOOLS_PREFIX, NULL, NULL, 1, NULL, NULL); /* a bare JSON answer: one call */
    agrees(__LINE__, g, CHAT_TOOLS_PREFIX, NULL, NULL, "{\"name\": \"noargs\", \"arguments\": {}}", 1, "{}");
    refuses(__LINE__, g, "{\"name\": \"noargs\", \"arguments\": {}}\n{\"name\": \"noargs\", \"arguments\": {}}");
    hl_grammar_free(g);

    /* gpt-oss: one call message (its <|call|> ends generation), even with parallel calls allowed */
    g = forced(CHAT_TOOLS_HARMONY, NULL, NULL, 1, NULL, NULL);
    agrees(__LINE__, g, CHAT_TOOLS_HARMONY, NULL, NULL,
           "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\", \"days\": 3}", 1, paris);
    agrees(__LINE__, g, CHAT_TOOLS_HARMONY, NULL, NULL, "<|channel|>commentary to=functions.noargs <|constrain|>json<|message|>{}", 1, "{}");
    refuses(__LINE__, g, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"<|call|>\"}");
    refuses(__LINE__, g, "<|channel|>final<|message|>Sure.");
    hl_grammar_free(g);
}

TEST(forced_grammar_refusals) {
    hl_err err = {0};
    hl_buf b = {0};
    chat_call_syntax syn;
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_QWEN3_XML};
    CHECK_EQ(chat_call_syntax_of(&cfg, NULL, &syn, &err), 0);
    json_object *t = json_tokener_parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                                        "\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^a+$\"}}}}}]");
    CHECK_EQ(srv_tool_gbnf(t, NULL, 1, NULL, &syn, &b, &err), HL_ENOTSUP);
    CHECK(strstr(err.msg, "pattern") != NULL);
    json_object_put(t);
    hl_buf_reset(&b);
    t = json_tokener_parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"string\"}}}]");
    CHECK(srv_tool_gbnf(t, NULL, 1, NULL, &syn, &b, &err) != 0);
    hl_buf_reset(&b);
    CHECK_EQ(srv_tool_gbnf(t, "g", 1, NULL, &syn, &b, &err), HL_EINVAL); /* not among the tools */
    json_object_put(t);
    hl_buf_free(&b);
    cfg.tools = CHAT_TOOLS_NONE;
    CHECK_EQ(chat_call_syntax_of(&cfg, NULL, &syn, &err), HL_ENOTSUP);
}

/* qwen3-xml parameters that are JSON: each compiled as a sub-schema of the
 * function's parameters, so their $refs resolve in it; nullable integers,
 * nested objects (whose strings escape "<"), arrays of refs. */
TEST(forced_xml_json_parameters) {
    const char *tools_json =
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{"
        "\"s\":{\"type\":\"string\",\"enum\":[\"a b\",\"c\"]},\"n\":{\"type\":[\"integer\",\"null\"],\"minimum\":0,\"maximum\":9},"
        "\"o\":{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"string\"}}},\"l\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/x\"}}},"
        "\"required\":[\"s\",\"l\"],\"$defs\":{\"x\":{\"type\":\"boolean\"}}}}}]";
    json_object *tools = json_tokener_parse(tools_json);
    chat_outparse_cfg cfg = {.tools = CHAT_TOOLS_QWEN3_XML};
    chat_call_syntax syn;
    hl_err err = {0};
    hl_buf b = {0};
    hl_grammar *g = NULL;
    CHECK_EQ(chat_call_syntax_of(&cfg, NULL, &syn, &err), 0);
    CHECK_EQ(srv_tool_gbnf(tools, NULL, 0, NULL, &syn, &b, &err), 0);
    CHECK_EQ(hl_grammar_parse(&g, b.data, b.len, &err), 0);
    if (err.msg[0]) printf("    %s\n", err.msg);
    const char *ok = "<tool_call>\n<function=f>\n<parameter=s>\na b\n</parameter>\n<parameter=n>\nnull\n</parameter>\n"
                     "<parameter=o>\n{\"t\": \"\\u003c/x>\"}\n</parameter>\n<parameter=l>\n[true, false]\n</parameter>\n</function>\n</tool_call>";
    CHECK_EQ(hl_grammar_accepts(g, ok, strlen(ok), NULL), 1);
    /* the parser reads the same values back */
    chat_outparse_cfg pc = {.tools = CHAT_TOOLS_QWEN3_XML, .tool_defs = tools};
    chat_outparse *p;
    chat_out o = {0};
    CHECK_EQ(chat_outparse_new(&p, &pc, &err), 0);
    CHECK_EQ(chat_outparse_feed(p, ok, strlen(ok), &o, &err), 0);
    CHECK_EQ(chat_outparse_finish(p, &o, &err), 0);
    CHECK_EQ(o.n_calls, 1);
    if (o.n_calls == 1) {
        json_object *x = json_tokener_parse(o.calls[0].arguments);
        json_object *y = json_tokener_parse("{\"s\":\"a b\",\"n\":null,\"o\":{\"t\":\"</x>\"},\"l\":[true,false]}");
        CHECK(json_object_equal(x, y));
        json_object_put(x);
        json_object_put(y);
    }
    chat_out_free(&o);
    chat_outparse_free(p);
    const char *bad[] = {
        /* a raw "<" inside a JSON string, an enum value off the list, l missing, a number for a boolean */
        "<tool_call>\n<function=f>\n<parameter=s>\nc\n</parameter>\n<parameter=o>\n{\"t\": \"<\"}\n</parameter>\n<parameter=l>\n[]\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=f>\n<parameter=s>\nd\n</parameter>\n<parameter=l>\n[]\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=f>\n<parameter=s>\nc\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=f>\n<parameter=s>\nc\n</parameter>\n<parameter=l>\n[1]\n</parameter>\n</function>\n</tool_call>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hl_grammar_accepts(g, bad[i], strlen(bad[i]), NULL) != 0) hl_test_fail(__FILE__, __LINE__, "accepts %s", bad[i]);
    hl_grammar_free(g);
    hl_buf_free(&b);
    json_object_put(tools);
}
