/* Tests of the tool-calling and thinking request fields (server/tools.c)
 * through the request parsers: OpenAI tools / tool_choice /
 * parallel_tool_calls / reasoning_effort / chat_template_kwargs, Ollama
 * tools / think, messages' tool calls and tool results, the errors, and the
 * JSON schema built for tool_choice required / named (the grammar hook),
 * read back with json-c. */
#include "harness.h"

#include "server/internal.h"

#include <json-c/json.h>
#include <stdlib.h>

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
    /* the grammar hook: the named tool's call schema */
    char *schema = NULL;
    CHECK_EQ(srv_tool_call_schema(&g, &schema, &err), 0);
    json_object *s = json_tokener_parse(schema), *p, *x;
    CHECK(json_object_object_get_ex(s, "properties", &p));
    CHECK(json_object_object_get_ex(p, "name", &x) && json_object_object_get_ex(x, "const", &x) &&
          !strcmp(json_object_get_string(x), "noargs"));
    json_object_put(s);
    free(schema);
    g.tool_choice = SRV_TOOLS_REQUIRED;
    CHECK_EQ(srv_tool_call_schema(&g, &schema, &err), 0);
    s = json_tokener_parse(schema);
    CHECK(json_object_object_get_ex(s, "anyOf", &x) && json_object_array_length(x) == 2);
    json_object *w = json_object_array_get_idx(x, 0);
    CHECK(json_object_object_get_ex(w, "properties", &p) && json_object_object_get_ex(p, "arguments", &x) &&
          json_object_object_get_ex(x, "required", &x)); /* the function's own parameters */
    json_object_put(s);
    free(schema);
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
