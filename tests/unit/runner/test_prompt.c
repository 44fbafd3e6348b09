/* Tests for prompt rendering (runner/prompt.h), the one function the server
 * and `hyperlama run` share: raw prompts, the plain form for a model without
 * a template, a Modelfile Go template (with Ollama's chat semantics and its
 * errors named), and the GGUF's Jinja template with add_generation_prompt
 * and the model's BOS text. */
#include "harness.h"
#include "rig.h"

#include "runner/prompt.h"

#include <stdio.h>
#include <stdlib.h>

static hl_loaded *load(void) { return rig_load_stories(); }

static const chat_message TURNS[] = {
    {"user", "Once upon"}, {"assistant", "a time"}, {"user", "there was"},
};

static char *render(const hl_loaded *lm, const hl_prompt *p, int *rc, hl_err *err) {
    char *out = NULL;
    *rc = hl_prompt_render(lm, p, &out, err);
    return out;
}

TEST(prompt_raw_is_the_last_message) {
    hl_loaded *lm = load();
    if (!lm) return;
    int rc;
    hl_err err = {0};
    hl_prompt p = {.go_template = "{{ .Prompt }}!", .system = "sys", .msgs = TURNS, .n_msgs = 3, .raw = 1};
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "there was");
    free(t);
    p.n_msgs = 0;
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "");
    free(t);
    hl_loaded_free(lm);
}

/* stories260K has no chat template: system, blank line, the last message. */
TEST(prompt_without_template_is_plain) {
    hl_loaded *lm = load();
    if (!lm) return;
    CHECK(!hl_prompt_has_template(lm, NULL));
    CHECK(!hl_prompt_has_template(lm, ""));
    int rc;
    hl_err err = {0};
    hl_prompt p = {.system = "Be brief.", .msgs = TURNS, .n_msgs = 3};
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "Be brief.\n\nthere was");
    free(t);
    p.system = "";
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "there was");
    free(t);
    hl_loaded_free(lm);
}

TEST(prompt_go_template_legacy_and_messages) {
    hl_loaded *lm = load();
    if (!lm) return;
    CHECK(hl_prompt_has_template(lm, "{{ .Prompt }}"));
    int rc;
    hl_err err = {0};
    /* a legacy template renders once per turn (the system in the first), the
     * last cut after .Response, as Ollama does */
    hl_prompt p = {.go_template = "{{ if .System }}[{{ .System }}] {{ end }}{{ .Prompt }} {{ .Response }} ",
                   .system = "S", .msgs = TURNS, .n_msgs = 3};
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "[S] Once upon a time there was ");
    free(t);
    p.go_template = "{{ range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}<assistant>";
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "<system>S<user>Once upon<assistant>a time<user>there was<assistant>");
    free(t);
    /* errors name the template they come from */
    p.go_template = "{{ .Prompt ";
    t = render(lm, &p, &rc, &err);
    CHECK(rc != 0 && t == NULL);
    CHECK(strncmp(err.msg, "the model's TEMPLATE: ", 22) == 0);
    p.template_name = "\"template\"";
    render(lm, &p, &rc, &err);
    CHECK(strncmp(err.msg, "\"template\": ", 12) == 0);
    hl_loaded_free(lm);
}

/* A Jinja template installed on the loaded model: messages with the system
 * first, add_generation_prompt set, the model's BOS text as bos_token. */
TEST(prompt_jinja_template) {
    hl_loaded *lm = load();
    if (!lm) return;
    const char *src = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                      "{% if add_generation_prompt %}<assistant>{% endif %}";
    hl_err err = {0};
    CHECK_EQ(hl_loaded_set_template(lm, src, strlen(src)), 0);
    CHECK(lm->tmpl && !lm->tmpl_error);
    CHECK(hl_prompt_has_template(lm, NULL));
    int rc;
    hl_prompt p = {.system = "S", .msgs = TURNS, .n_msgs = 3};
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "<s><system>S<user>Once upon<assistant>a time<user>there was<assistant>");
    free(t);
    /* a Go template wins over the model's own */
    p.go_template = "{{ range .Messages }}{{ .Content }}|{{ end }}";
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "S|Once upon|a time|there was|");
    free(t);
    /* the rendered text tokenizes without a second BOS */
    p.go_template = NULL;
    t = render(lm, &p, &rc, &err);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_EQ(hl_loaded_tokenize_prompt(lm, t, &ids, &n, &err), 0);
    CHECK(n > 1 && ids[0] == 1 && ids[1] != 1);
    free(ids);
    free(t);
    hl_loaded_free(lm);
}

/* Thinking as gpt-oss's template reads it: reasoning_effort from think's
 * level ("low" for think false: it cannot stop reasoning, only shorten it; the
 * template's own default for think true), and an earlier turn's reasoning as
 * the message's thinking. A template without harmony channels gets no
 * reasoning_effort for think false. */
TEST(prompt_harmony_reasoning_effort_and_thinking) {
    hl_loaded *lm = load();
    if (!lm) return;
    const char *src = "Reasoning: {{ reasoning_effort if reasoning_effort is defined else 'medium' }}|"
                      "{% for m in messages %}<|start|>{{ m.role }}{% if m.thinking %}<|channel|>analysis<|message|>"
                      "{{ m.thinking }}<|end|>{% endif %}<|message|>{{ m.content }}<|end|>{% endfor %}";
    hl_err err = {0};
    CHECK_EQ(hl_loaded_set_template(lm, src, strlen(src)), 0);
    CHECK(lm->tmpl && lm->outparse.harmony);
    static const chat_message turns[] = {{.role = "user", .content = "Hi"},
                                         {.role = "assistant", .content = "Hello", .thinking = "Greet back."}};
    int rc;
    hl_prompt p = {.msgs = turns, .n_msgs = 2, .think_set = 1, .think = 1, .think_level = "high"};
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "Reasoning: high|<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>analysis<|message|>"
                   "Greet back.<|end|><|message|>Hello<|end|>");
    free(t);
    p.n_msgs = 1;
    p.think_level = NULL;
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "Reasoning: medium|<|start|>user<|message|>Hi<|end|>");
    free(t);
    p.think = 0;
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "Reasoning: low|<|start|>user<|message|>Hi<|end|>");
    free(t);
    /* not harmony: think false sets enable_thinking only */
    const char *plain = "{{ reasoning_effort if reasoning_effort is defined else 'unset' }}/{{ enable_thinking }}";
    CHECK_EQ(hl_loaded_set_template(lm, plain, strlen(plain)), 0);
    CHECK(lm->tmpl && !lm->outparse.harmony);
    t = render(lm, &p, &rc, &err);
    CHECK_STREQ(t, "unset/False");
    free(t);
    hl_loaded_free(lm);
}

/* gpt-oss's own template (tests/data/templates/gpt-oss.jinja, which
 * tests/chat/ renders against jinja2) through the prompt path: a tool round
 * trip whose call message has no content (null, as OpenAI clients send it;
 * the template fails on null, and jinja2 with it) renders as jinja2 renders
 * the same conversation with "" (the expected pieces are jinja2's output). */
TEST(prompt_harmony_tool_round_trip_with_null_content) {
    hl_loaded *lm = load();
    if (!lm) return;
    FILE *f = fopen("tests/data/templates/gpt-oss.jinja", "rb");
    if (!f) {
        hl_test_fail(__FILE__, __LINE__, "tests/data/templates/gpt-oss.jinja: run from the repository root");
        hl_loaded_free(lm);
        return;
    }
    static char src[32768];
    size_t n = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    src[n] = 0;
    hl_err err = {0};
    CHECK_EQ(hl_loaded_set_template(lm, src, n), 0);
    CHECK(lm->tmpl && lm->outparse.harmony);
    static const chat_message turns[] = {
        {.role = "user", .content = "Weather in Paris?"},
        {.role = "assistant", .content = NULL,
         .tool_calls_json = "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]"},
        {.role = "tool", .content = "21 C", .tool_call_id = "call_1"},
    };
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the weather\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";
    int rc;
    hl_prompt p = {.system = "Be brief.", .msgs = turns, .n_msgs = 3, .tools_json = tools, .think_set = 1, .think = 0};
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    if (t) {
        CHECK(strstr(t, "Reasoning: low\n\n") != NULL);
        CHECK(strstr(t, "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
                        "// Get the weather\ntype get_weather = (_: {\ncity: string,\n}) => any;\n\n} // namespace functions<|end|>") != NULL);
        CHECK(strstr(t, "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>"
                        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"21 C\"<|end|><|start|>assistant") != NULL);
        size_t len = strlen(t);
        CHECK(len > 18 && !strcmp(t + len - 18, "<|start|>assistant"));
    }
    free(t);
    hl_loaded_free(lm);
}

/* Fill in the middle: through a Go template that uses .Suffix (Ollama's
 * insert), else the model's FIM tokens; stories260K has none. */
TEST(prompt_fill_in_the_middle) {
    hl_loaded *lm = load();
    if (!lm) return;
    static const chat_message PRE[] = {{.role = "user", .content = "def f():"}};
    int rc;
    hl_err err = {0};
    hl_prompt p = {.go_template = "{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>{{ else }}{{ .Prompt }}{{ end }}",
                   .msgs = PRE, .n_msgs = 1, .suffix = "\n    return 1", .raw = 1};
    CHECK(hl_prompt_can_insert(lm, p.go_template));
    char *t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "<PRE>def f():<SUF>\n    return 1<MID>");
    free(t);
    p.go_template = NULL;
    CHECK(!hl_prompt_can_insert(lm, NULL));
    t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, HL_ENOTSUP);
    CHECK(strstr(err.msg, "fill in the middle") != NULL);
    free(t);
    p.suffix = ""; /* an empty suffix is no FIM: the raw prompt */
    t = render(lm, &p, &rc, &err);
    CHECK_EQ(rc, 0);
    CHECK_STREQ(t, "def f():");
    free(t);
    hl_loaded_free(lm);
}
