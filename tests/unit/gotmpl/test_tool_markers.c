/* Tests of Ollama's template-driven tool-call detection
 * (gotmpl_tool_markers): the prefix and suffix a template writes around a
 * tool call's JSON, for the shapes of Ollama's library templates (Qwen's
 * <tool_call> tags, Llama 3.1's bare JSON, Mistral's [TOOL_CALLS] array),
 * and ENOTSUP for a template that writes no calls. */
#include "harness.h"

#include "gotmpl/gotmpl.h"

#include <stdlib.h>

static void expect(int line, const char *tmpl, const char *prefix, const char *suffix) {
    char *p = NULL, *s = NULL;
    hl_err err = {0};
    int rc = gotmpl_tool_markers(tmpl, strlen(tmpl), &p, &s, &err);
    if (rc) hl_test_fail(__FILE__, line, "rc %d: %s", rc, err.msg);
    else if (strcmp(p, prefix) || strcmp(s, suffix))
        hl_test_fail(__FILE__, line, "prefix \"%s\" suffix \"%s\", want \"%s\" \"%s\"", p, s, prefix, suffix);
    free(p);
    free(s);
}

TEST(qwen_tags) {
    expect(__LINE__,
           "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
           "{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n"
           "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n"
           "{{ if .Content }}{{ .Content }}\n{{- else if .ToolCalls }}<tool_call>\n"
           "{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n"
           "{{ end }}</tool_call>\n{{- end }}{{ if not $last }}<|im_end|>\n{{ end }}{{ end }}{{ end }}<|im_start|>assistant\n",
           "<tool_call>", "</tool_call>");
}

/* the tools listed before the conversation (their names, their JSON) are not the call */
TEST(tools_listed_first) {
    expect(__LINE__,
           "{{ if .Tools }}<|im_start|>system\n<tools>{{ range .Tools }}{\"function\": {{ .Function }}}"
           "{{ .Function.Name }}{{ end }}</tools><|im_end|>\n{{ end }}"
           "{{- range .Messages }}{{ if eq .Role \"assistant\" }}<|im_start|>assistant\n"
           "{{ if .ToolCalls }}<tool_call>\n{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": "
           "{{ .Function.Arguments }}}\n{{ end }}</tool_call>{{ else }}{{ .Content }}{{ end }}<|im_end|>\n"
           "{{ else }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}{{ end }}",
           "<tool_call>", "</tool_call>");
}

TEST(llama3_bare_json) {
    expect(__LINE__,
           "{{- range .Messages }}{{- if eq .Role \"user\" }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
           "{{- else if eq .Role \"assistant\" }}<|start_header_id|>assistant<|end_header_id|>\n"
           "{{- if .ToolCalls }}\n{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}{{ end }}"
           "{{- else }}\n\n{{ .Content }}{{- end }}<|eot_id|>{{- end }}{{- end }}",
           "", "");
}

TEST(mistral_array) {
    expect(__LINE__,
           "{{- range .Messages }}{{- if eq .Role \"user\" }}[INST] {{ .Content }}[/INST]"
           "{{- else if eq .Role \"assistant\" }}{{- if .Content }} {{ .Content }}"
           "{{- else if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": "
           "{{ .Function.Arguments }}}{{ end }}]{{- end }}</s>{{- end }}{{- end }}",
           "[TOOL_CALLS]", "");
}

TEST(no_tool_calls) {
    const char *t = "{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}";
    char *p = NULL, *s = NULL;
    hl_err err = {0};
    CHECK_EQ(gotmpl_tool_markers(t, strlen(t), &p, &s, &err), HL_ENOTSUP);
    CHECK(p == NULL && s == NULL);
}
