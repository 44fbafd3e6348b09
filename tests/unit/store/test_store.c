/* Store unit tests: name parsing (valid, invalid, path traversal), Modelfile
 * parse/format (round trip; malformed input gives "line N" errors), manifests
 * written and read back, delete garbage-collects unreferenced blobs, and the
 * SQLite index is rebuilt from the manifests when it is lost. */
#include "harness.h"

#include "store/modelfile.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TEST(store_name_valid) {
    store_name n;
    hl_err err = {0};
    char full[600], disp[600];
    CHECK_EQ(store_name_parse("llama3.2", &n, &err), 0);
    store_name_full(&n, full, sizeof full);
    CHECK_STREQ(full, "registry.ollama.ai/library/llama3.2:latest");
    store_name_display(&n, disp, sizeof disp);
    CHECK_STREQ(disp, "llama3.2:latest");
    CHECK_EQ(store_name_parse("me/model:q4_K_M", &n, &err), 0);
    CHECK_STREQ(n.ns, "me");
    CHECK_STREQ(n.tag, "q4_K_M");
    CHECK_EQ(store_name_parse("localhost:5000/ns/m:t", &n, &err), 0);
    CHECK_STREQ(n.host, "localhost:5000");
    CHECK_STREQ(n.model, "m");
    CHECK_EQ(store_name_parse("hf.co/org/repo:Q4_0", &n, &err), 0);
    CHECK_STREQ(n.host, "hf.co");
}

TEST(store_name_invalid) {
    const char *bad[] = {"", "../x", "a/../b", "..", "./m", "m:", ":t", "a//b", "m:t:u", "m/", "/m", "m x",
                         "m\\x", "a/b/c/d", "m:../../etc", "m;rm"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_name n;
        hl_err err = {0};
        if (store_name_parse(bad[i], &n, &err) == 0) hl_test_fail(__FILE__, __LINE__, "accepted bad name '%s'", bad[i]);
        else CHECK(err.msg[0] != 0);
    }
    char longp[300];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    store_name n;
    CHECK(store_name_parse(longp, &n, NULL) != 0);
}

TEST(store_modelfile_round_trip) {
    const char *text = "# comment\nfrom ./m.gguf\nPARAMETER temperature 0.7\nPARAMETER stop \"<|eot_id|>\"\n"
                       "PARAMETER stop \"a \\\"q\\\" b\"\nTEMPLATE \"\"\"{{ .System }}\n{{ .Prompt }}\"\"\"\n"
                       "SYSTEM   You are terse.  \nMESSAGE user Hello\nMESSAGE assistant \"\"\"Hi\nthere\"\"\"\nLICENSE MIT\n";
    store_modelfile a = {0}, b = {0};
    hl_err err = {0};
    CHECK_EQ(store_modelfile_parse(text, strlen(text), &a, &err), 0);
    CHECK_EQ(a.n, 9);
    CHECK_EQ(a.cmds[0].kind, STORE_MF_FROM);
    CHECK_STREQ(a.cmds[0].value, "./m.gguf");
    CHECK_STREQ(a.cmds[1].key, "temperature");
    CHECK_STREQ(a.cmds[3].value, "a \"q\" b");
    CHECK_STREQ(a.cmds[4].value, "{{ .System }}\n{{ .Prompt }}");
    CHECK_STREQ(a.cmds[5].value, "You are terse.");
    CHECK_STREQ(a.cmds[7].key, "assistant");
    CHECK_EQ(a.cmds[7].line, 10);
    char *f = store_modelfile_format(&a);
    CHECK(f != NULL);
    CHECK_EQ(store_modelfile_parse(f, strlen(f), &b, &err), 0);
    CHECK(store_modelfile_equal(&a, &b));
    char *json = NULL;
    CHECK_EQ(store_params_json(&a, &json, NULL, NULL, &err), 0);
    CHECK(json && strstr(json, "\"stop\":[") && strstr(json, "0.7"));
    free(json);
    free(f);
    store_modelfile_free(&a);
    store_modelfile_free(&b);
}

static void expect_mf_error(const char *text, const char *want) {
    store_modelfile mf = {0};
    hl_err err = {0};
    if (store_modelfile_parse(text, strlen(text), &mf, &err) == 0)
        hl_test_fail(__FILE__, __LINE__, "accepted bad Modelfile: %s", text);
    else if (!strstr(err.msg, want))
        hl_test_fail(__FILE__, __LINE__, "error '%s' lacks '%s'", err.msg, want);
    store_modelfile_free(&mf);
}

TEST(store_modelfile_errors) {
    expect_mf_error("FROM x\nPARAMETER temperature hot\n", "line 2");
    expect_mf_error("FROM x\nPARAMETER nosuch 1\n", "nosuch");
    expect_mf_error("FROM x\n\nTEMPLATE \"\"\"open\n", "line 3");
    expect_mf_error("FROM x\nSYSTEM \"unclosed\n", "line 2");
    expect_mf_error("FROM x\nBOGUS y\n", "line 2");
    expect_mf_error("SYSTEM hi\n", "FROM");
    expect_mf_error("FROM x\nPARAMETER top_k 1.5\n", "integer");
    expect_mf_error("FROM x\nSYSTEM \"a\" trailing\n", "line 2");
    expect_mf_error("FROM x\nMESSAGE wizard hi\n", "line 2");
}

/* a fresh store under a temporary folder */
static store *tmp_store(char *root, size_t cap) {
    snprintf(root, cap, "/tmp/hl_store_test_%d_XXXXXX", (int)getpid());
    if (!mkdtemp(root)) return NULL;
    store *s = NULL;
    hl_err err = {0};
    if (store_open(&s, root, &err)) hl_test_fail(__FILE__, __LINE__, "store_open: %s", err.msg);
    return s;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void rm_rf(const char *root) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

TEST(store_manifest_delete_gc_index) {
    const char *gguf = hl_test_shared("models/stories260K.gguf");
    char g[1024];
    snprintf(g, sizeof g, "%s", gguf);
    if (!exists(g)) {
        hl_test_fail(__FILE__, __LINE__, "shared test model %s missing (HL_SHARED_DIR)", g);
        return;
    }
    char root[256];
    store *s = tmp_store(root, sizeof root);
    if (!s) return;
    hl_err err = {0};
    char mf[1200];
    snprintf(mf, sizeof mf, "FROM %s\nSYSTEM be brief\nPARAMETER temperature 0.1\n", g);
    CHECK_EQ(store_create(s, "a", mf, strlen(mf), NULL, &(store_ops){0}, &err), 0);
    CHECK_EQ(store_create(s, "b", "FROM a\nSYSTEM other\n", 20, NULL, &(store_ops){0}, &err), 0);
    /* manifest read back: model layer + system + params, every blob present */
    store_name n;
    store_manifest m;
    CHECK_EQ(store_name_parse("a", &n, &err), 0);
    CHECK_EQ(store_manifest_read(s, &n, &m, &err), 0);
    CHECK_EQ(m.n_layers, 3);
    char model_blob[1024] = "", sys_blob[1024] = "";
    for (int i = 0; i < m.n_layers; i++) {
        char p[1024];
        CHECK_EQ(store_blob_path(s, m.layers[i].digest, p, sizeof p, &err), 0);
        CHECK(exists(p));
        if (!strcmp(m.layers[i].media_type, STORE_MT_MODEL)) snprintf(model_blob, sizeof model_blob, "%s", p);
        if (!strcmp(m.layers[i].media_type, STORE_MT_SYSTEM)) snprintf(sys_blob, sizeof sys_blob, "%s", p);
    }
    store_model sm = {0};
    CHECK_EQ(store_resolve(s, "a", &sm, &err), 0);
    CHECK_STREQ(sm.system, "be brief");
    CHECK(sm.params_json && strstr(sm.params_json, "temperature"));
    store_model_free(&sm);
    /* the index is a cache: lose it and listing rebuilds it from the manifests */
    store_close(s);
    char idx[400];
    snprintf(idx, sizeof idx, "%s/index.db", root);
    unlink(idx);
    CHECK_EQ(store_open(&s, root, &err), 0);
    store_info *v = NULL;
    size_t nv = 0;
    CHECK_EQ(store_list(s, &v, &nv, &err), 0);
    CHECK_EQ(nv, 2);
    free(v);
    /* deleting a keeps the shared model blob (b uses it) but drops a's system */
    CHECK_EQ(store_delete(s, "a", &err), 0);
    CHECK(exists(model_blob));
    CHECK(!exists(sys_blob));
    CHECK_EQ(store_resolve(s, "a", &sm, &err), HL_ENOENT);
    CHECK_EQ(store_delete(s, "b", &err), 0);
    CHECK(!exists(model_blob));
    CHECK_EQ(store_list(s, &v, &nv, &err), 0);
    CHECK_EQ(nv, 0);
    free(v);
    /* untrusted manifests are refused */
    const char *badm[] = {"{", "{\"layers\":[{\"digest\":\"sha256:../../x\",\"mediaType\":\"a\",\"size\":1}]}", "[]"};
    for (size_t i = 0; i < 3; i++) CHECK(store_manifest_parse(badm[i], strlen(badm[i]), &m, &err) != 0);
    store_close(s);
    rm_rf(root);
}
