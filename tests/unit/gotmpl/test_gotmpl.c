/* Go-template interpreter tests. With GOTMPL_TEMPLATE and GOTMPL_DATA set
 * (file paths) the binary instead renders that template over that JSON and
 * prints the result, for tests/gotmpl/test_gotmpl_go.py to compare with Go. */
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

/* render mode for the Go comparison */
__attribute__((constructor)) static void render_mode(void) {
    const char *tp = getenv("GOTMPL_TEMPLATE"), *dp = getenv("GOTMPL_DATA");
    if (!tp || !dp) return;
    char *t, *d;
    size_t tl, dl;
    hl_err err = {0};
    if (hl_read_file(tp, 1 << 20, &t, &tl, &err) || hl_read_file(dp, 1 << 24, &d, &dl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    gotmpl *g;
    if (gotmpl_parse(&g, t, tl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    json_object *data = json_tokener_parse(d);
    hl_buf b = {0};
    int rc = gotmpl_render(g, data, &b, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    fwrite(b.data ? b.data : "", 1, b.len, stdout);
    exit(0);
}
