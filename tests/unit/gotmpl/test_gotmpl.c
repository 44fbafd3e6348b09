/* Go-template interpreter tests. The renderer the Python comparisons with Go
 * and Ollama run is a separate tool, dump_gotmpl_render.c. */
#include "harness.h"

#include "base/file.h"
#include "gotmpl/gotmpl.h"

#include <json-c/json.h>
#include <stdlib.h>

static int render(const char *tmpl, const char *json, hl_buf *out, hl_err *err) {
    gotmpl *t;
    int rc = gotmpl_parse(&t, tmpl, strlen(tmpl), err);
    if (rc) return rc;
    json_object *d = json ? json_tokener_parse(json) : NULL;
    rc = gotmpl_render(t, d, out, err);
    json_object_put(d);
    gotmpl_free(t);
    return rc;
}

static void expect(const char *tmpl, const char *json, const char *want) {
    hl_buf b = {0};
    hl_err err = {0};
    int rc = render(tmpl, json, &b, &err);
    if (rc) hl_test_fail(__FILE__, __LINE__, "%s: %s", tmpl, err.msg);
    else CHECK_STREQ(b.data ? b.data : "", want);
    hl_buf_free(&b);
}

TEST(gotmpl_basics) {
    expect("a{{ .X }}b", "{\"X\":\"x\"}", "axb");
    expect("{{- \" t \" -}}", NULL, " t ");
    expect("a  {{- .X -}}  \n b", "{\"X\":1}", "a1b");
    expect("{{/* c */}}x{{- /* c2 */ -}} y", NULL, "xy");
    expect("{{ if .A }}yes{{ else if .B }}b{{ else }}no{{ end }}", "{\"B\":true}", "b");
    expect("{{ range $i, $m := .L }}{{ $i }}={{ $m }};{{ end }}", "{\"L\":[\"a\",\"b\"]}", "0=a;1=b;");
    expect("{{ range .L }}{{ . }}{{ else }}empty{{ end }}", "{\"L\":[]}", "empty");
    expect("{{ with .M }}{{ .K }}{{ end }}", "{\"M\":{\"K\":3.5}}", "3.5");
    expect("{{ len .L }} {{ index .L 1 }} {{ slice .L 1 }}", "{\"L\":[1,2,3]}", "3 2 [2 3]");
    expect("{{ json .M }}", "{\"M\":{\"b\":[1,\"<\"],\"a\":null}}", "{\"a\":null,\"b\":[1,\"\\u003c\"]}");
    expect("{{ .M }}", "{\"M\":{\"b\":1,\"a\":\"x\"}}", "map[a:x b:1]");
    expect("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", NULL, "2");
    expect("{{ and 1 0 }} {{ or 0 \"\" 3 }} {{ not 0 }} {{ eq 1 2 1 }} {{ lt 1 2 }}", NULL, "0 3 true true true");
    expect("{{ printf \"%s-%d\" \"a\" 3 }}", NULL, "a-3");
    expect("{{ .Missing }}", "{}", "<no value>");
    expect("{{ range .L }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}", "{\"L\":[1,2,3]}", "1");
}

TEST(gotmpl_errors) {
    const char *bad[] = {"{{ if }}", "{{ end }}", "{{ if .X }}", "{{ .X", "{{ nosuch 1 }}", "{{ \"x }}",
                         "{{ else }}", "{{ (1 }}", "{{ break }}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gotmpl *t = NULL;
        hl_err err = {0};
        int rc = gotmpl_parse(&t, bad[i], strlen(bad[i]), &err);
        if (rc == 0) hl_test_fail(__FILE__, __LINE__, "accepted bad template %s", bad[i]);
        gotmpl_free(t);
    }
}

/* ---- chat rendering with Ollama's semantics ---- */

static void expect_chat(const char *tmpl, const gotmpl_msg *m, size_t n, const char *want) {
    hl_buf b = {0};
    hl_err err = {0};
    gotmpl_chat c = {.msgs = m, .n_msgs = n};
    if (gotmpl_render_chat(tmpl, strlen(tmpl), &c, &b, &err)) hl_test_fail(__FILE__, __LINE__, "%s: %s", tmpl, err.msg);
    else CHECK_STREQ(b.data ? b.data : "", want);
    hl_buf_free(&b);
}

/* The cases and expected strings of Ollama's TestExecuteWithMessages
 * (template/template_test.go): legacy templates, with and without
 * {{ .Response }}, must give the same prompt as the .Messages form. */
TEST(gotmpl_chat_ollama_cases) {
    const char *mistral[] = {
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ",
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}",
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role \"user\" }}{{ .Content }}[/INST] "
        "{{ else if eq .Role \"assistant\" }}{{ .Content }}[INST] {{ end }}\n{{- end }}"};
    gotmpl_msg m1[] = {{"user", "Hello friend!"}, {"assistant", "Hello human!"}, {"user", "What is your name?"}};
    gotmpl_msg m2[] = {{"system", "You are a helpful assistant!"}, {"user", "Hello friend!"}, {"assistant", "Hello human!"},
                       {"user", "What is your name?"}};
    for (int i = 0; i < 3; i++) {
        expect_chat(mistral[i], m1, 3, "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] ");
        expect_chat(mistral[i], m2, 4,
                    "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] ");
    }
    const char *asst[] = {"[INST] {{ .Prompt }}[/INST] ", "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
                          "\n{{- range $i, $m := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ .Content }}[/INST] "
                          "{{ else if eq .Role \"assistant\" }}{{ .Content }}{{ end }}\n{{- end }}"};
    gotmpl_msg m3[] = {{"user", "Hello friend!"}, {"assistant", "Hello human!"}, {"user", "What is your name?"},
                       {"assistant", "My name is Ollama and I"}};
    for (int i = 0; i < 3; i++)
        expect_chat(asst[i], m3, 4, "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I");
    const char *chatml[] = {
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
        "\n{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"};
    for (int i = 0; i < 2; i++)
        expect_chat(chatml[i], m2, 4,
                    "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!<|im_end|>\n"
                    "<|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\nWhat is your name?<|im_end|>\n"
                    "<|im_start|>assistant\n");
}

TEST(gotmpl_chat_collate_suffix_tools) {
    /* consecutive roles merge; every system message also lands in .System */
    gotmpl_msg m[] = {{"system", "a"}, {"system", "b"}, {"user", "x"}, {"user", "y"}};
    expect_chat("{{ .System }}|{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}", m, 4,
                "a\n\nb|system=a\n\nb;user=x\n\ny;");
    /* fill in the middle */
    const char *fim = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}";
    hl_buf b = {0};
    hl_err err = {0};
    gotmpl_chat c = {.prompt = "def add(", .suffix = "return x"};
    CHECK_EQ(gotmpl_render_chat(fim, strlen(fim), &c, &b, &err), 0);
    CHECK_STREQ(b.data, "<PRE> def add( <SUF>return x <MID>");
    hl_buf_free(&b);
    gotmpl_msg u[] = {{"user", "hello"}};
    expect_chat(fim, u, 1, "hello");
    /* a template with neither .Messages nor .Response gets {{ .Response }} appended */
    gotmpl_msg ua[] = {{"user", "q"}, {"assistant", "a"}, {"user", "q2"}};
    expect_chat("<{{ .Prompt }}>", ua, 3, "<q>a<q2>");
    /* tool calls: arguments print as JSON (sorted keys), tools as JSON in struct order */
    gotmpl_msg tc[] = {{"user", "w?"}, {"assistant", "", NULL, "[{\"function\":{\"name\":\"f\",\"arguments\":{\"b\":1,\"a\":\"<\"}}}]"}};
    const char *t = "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }}({{ .Function.Arguments }}){{ end }}{{ end }}"
                    "{{ range .Tools }}{{ .Function }}{{ end }}";
    c = (gotmpl_chat){.msgs = tc, .n_msgs = 2,
                      .tools_json = "[{\"type\":\"function\",\"function\":{\"parameters\":{\"properties\":{\"z\":{\"type\":\"string\"}},"
                                    "\"type\":\"object\",\"required\":[\"z\"]},\"name\":\"f\"}}]"};
    CHECK_EQ(gotmpl_render_chat(t, strlen(t), &c, &b, &err), 0);
    CHECK_STREQ(b.data, "f({\"a\":\"\\u003c\",\"b\":1}){\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"required\":[\"z\"],"
                        "\"properties\":{\"z\":{\"type\":\"string\"}}}}");
    hl_buf_free(&b);
}
