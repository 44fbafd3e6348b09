/* The Hugging Face converter (store/convert.h) called directly on the
 * committed fixtures of tests/data/hf/, so the release and ASan builds (with
 * leak detection) run every family's path in-process: each converts, the
 * GGUF opens with the architecture, expert stacks of the right shape (the
 * values are checked against SafeTensors by tests/store/test_convert_hf.py),
 * and broken expert stacks are refused by name with nothing left at the
 * output path. Run from the repository root (the unit-test runner does). */
#include "harness.h"

#include "gguf/gguf.h"
#include "store/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *out_path(void) {
    static char p[256];
    snprintf(p, sizeof p, "/tmp/hl_test_convert_%ld.gguf", (long)getpid());
    return p;
}

TEST(convert_every_family) {
    static const struct {
        const char *dir, *arch;
        int n_exp; /* expert stacks' last dimension; 0 for dense */
    } cases[] = {
        {"llama", "llama", 0},      {"qwen2", "qwen2", 0},       {"qwen3", "qwen3", 0},     {"gemma3", "gemma3", 0},
        {"gemma2", "gemma2", 0},    {"phi3", "phi3", 0},         {"granite", "granite", 0}, {"olmo2", "olmo2", 0},
        {"qwen2moe", "qwen2moe", 4}, {"qwen3moe", "qwen3moe", 4}, {"mixtral", "llama", 4},   {"olmoe", "olmoe", 4},
        {"gptoss", "gpt-oss", 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[128];
        snprintf(dir, sizeof dir, "tests/data/hf/%s", cases[i].dir);
        hl_err err = {0};
        int rc = store_convert_hf(dir, out_path(), NULL, &err);
        CHECK_EQ(rc, 0);
        if (rc) {
            fprintf(stderr, "%s: %s\n", dir, err.msg);
            continue;
        }
        gguf_file *f;
        CHECK_EQ(gguf_open(&f, out_path(), &err), 0);
        gguf_str s;
        CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && s.len == strlen(cases[i].arch) &&
              !memcmp(s.ptr, cases[i].arch, s.len));
        const gguf_tensor *t = gguf_find_tensor(f, "blk.1.ffn_down_exps.weight");
        if (cases[i].n_exp) {
            CHECK(t && t->n_dims == 3 && t->ne[2] == cases[i].n_exp && t->ne[1] == 32);
            t = gguf_find_tensor(f, "blk.0.ffn_gate_exps.weight");
            CHECK(t && t->n_dims == 3 && t->ne[0] == 32 && t->ne[2] == cases[i].n_exp);
        } else {
            CHECK(t == NULL);
        }
        gguf_close(f);
        unlink(out_path());
    }
}

/* A copy of qwen3moe's fixture whose header entry `key` is dropped, or has
 * its dtype F16 relabelled BF16 (same bytes). The header keeps its length:
 * the __metadata__ entry makes room, spaces pad (the format allows both). */
static int broken_copy(char *dir, size_t cap, const char *key, int drop) {
    snprintf(dir, cap, "/tmp/hl_test_convert_bad_%ld", (long)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r tests/data/hf/qwen3moe %s", dir, dir);
    if (system(cmd) != 0) return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "r+b");
    if (!fp) return -1;
    uint8_t len8[8];
    uint64_t n = 0;
    int rc = fread(len8, 1, 8, fp) == 8 ? 0 : -1;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    char *h = rc ? NULL : calloc(1, n + 1), *o = rc ? NULL : calloc(1, n + 16);
    if (!h || !o || fread(h, 1, n, fp) != n) rc = -1;
    const char *meta = "\"__metadata__\":{\"format\":\"pt\"},";
    char *m = rc ? NULL : strstr(h, meta);
    if (m) memmove(m, m + strlen(meta), strlen(m + strlen(meta)) + 1);
    char needle[160];
    snprintf(needle, sizeof needle, "\"%s\":{", key);
    char *at = rc ? NULL : strstr(h, needle), *end = at ? strchr(at, '}') : NULL;
    if (!at || !end) rc = -1;
    else if (drop) { /* the entry and its comma */
        end += end[1] == ',' ? 2 : 1;
        if (end[-1] != ',' && at[-1] == ',') at--;
        snprintf(o, n + 16, "%.*s%s", (int)(at - h), h, end);
    } else {
        char *d = strstr(at, "\"dtype\":\"F16\"");
        if (!d || d > end) rc = -1;
        else snprintf(o, n + 16, "%.*s\"dtype\":\"BF16\"%s", (int)(d - h), h, d + strlen("\"dtype\":\"F16\""));
    }
    if (!rc && strlen(o) <= n) {
        memset(o + strlen(o), ' ', n - strlen(o));
        fseek(fp, 8, SEEK_SET);
        rc = fwrite(o, 1, n, fp) == n ? 0 : -1;
    } else {
        rc = -1;
    }
    free(h);
    free(o);
    fclose(fp);
    return rc;
}

TEST(convert_broken_expert_stacks) {
    char dir[128], cmd[256];
    hl_err err = {0};
    CHECK_EQ(broken_copy(dir, sizeof dir, "model.layers.1.mlp.experts.2.up_proj.weight", 1), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.1.mlp.experts.2.up_proj.weight is missing (expert 2 of 4;") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    CHECK_EQ(broken_copy(dir, sizeof dir, "model.layers.0.mlp.experts.3.down_proj.weight", 0), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.0.mlp.experts.3.down_proj.weight is BF16 but expert 0's is F16") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}
