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
#include "store/safetensors.h"

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

/* A copy of fixture `base` whose header entry `key` is dropped (from NULL),
 * or has the text `from` in its entry replaced by `to` (a dtype or shape
 * relabelled over the same bytes). The header keeps its length: the
 * __metadata__ entry makes room, spaces pad (the format allows both). */
static int broken_copy(char *dir, size_t cap, const char *base, const char *key, const char *from, const char *to) {
    snprintf(dir, cap, "/tmp/hl_test_convert_bad_%ld", (long)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r tests/data/hf/%s %s", dir, base, dir);
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
    else if (!from) { /* the entry and its comma */
        end += end[1] == ',' ? 2 : 1;
        if (end[-1] != ',' && at[-1] == ',') at--;
        snprintf(o, n + 16, "%.*s%s", (int)(at - h), h, end);
    } else {
        char *d = strstr(at, from);
        if (!d || d > end) rc = -1;
        else snprintf(o, n + 16, "%.*s%s%s", (int)(d - h), h, to, d + strlen(from));
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
    CHECK_EQ(broken_copy(dir, sizeof dir, "qwen3moe", "model.layers.1.mlp.experts.2.up_proj.weight", NULL, NULL), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.1.mlp.experts.2.up_proj.weight is missing (expert 2 of 4;") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    CHECK_EQ(broken_copy(dir, sizeof dir, "qwen3moe", "model.layers.0.mlp.experts.3.down_proj.weight", "\"dtype\":\"F16\"",
                         "\"dtype\":\"BF16\""), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.0.mlp.experts.3.down_proj.weight is BF16 but expert 0's is F16") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

/* gpt-oss as the hub ships it: MXFP4 experts kept (GGUF type MXFP4, the
 * shapes config.json implies, bytes repacked: a block is the scale byte and
 * the hub's nibbles reordered, element j low and j + 16 high), the rest as
 * stored; broken MXFP4 checkpoints refused by the tensor's name. */
TEST(convert_gptoss_mxfp4) {
    hl_err err = {0};
    CHECK_EQ(store_convert_hf("tests/data/hf/gptoss_mxfp4", out_path(), NULL, &err), 0);
    gguf_file *f;
    if (gguf_open(&f, out_path(), &err) == 0) {
        static const char *names[] = {"blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight", "blk.1.ffn_down_exps.weight"};
        for (int i = 0; i < 3; i++) {
            const gguf_tensor *t = gguf_find_tensor(f, names[i]);
            CHECK(t && t->type == HL_TYPE_MXFP4 && t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 64 && t->ne[2] == 4);
        }
        const gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
        CHECK(q && q->type == HL_TYPE_BF16);
        int64_t ft = 0;
        CHECK(gguf_get_int(f, "general.file_type", &ft) == 0 && ft == 38);
        /* up row r of expert e is the hub's gate_up row 2r + 1: check expert 3, row 5, block 1 byte by byte */
        st_set st;
        const gguf_tensor *up = gguf_find_tensor(f, "blk.0.ffn_up_exps.weight");
        if (up && st_open_dir(&st, "tests/data/hf/gptoss_mxfp4", &err) == 0) {
            const st_tensor *b = st_find(&st, "model.layers.0.mlp.experts.gate_up_proj_blocks");
            const st_tensor *sc = st_find(&st, "model.layers.0.mlp.experts.gate_up_proj_scales");
            int64_t hr = 3 * 128 + 2 * 5 + 1, gr = 3 * 64 + 5; /* hub row, GGUF row */
            const uint8_t *hq = b->data + (hr * 2 + 1) * 16, *g = (const uint8_t *)up->data + (gr * 2 + 1) * 17;
            CHECK_EQ(g[0], sc->data[hr * 2 + 1]);
            for (int j = 0; j < 32; j++) { /* element j: hub byte j / 2 (low nibble when even), GGUF byte j % 16 (high from 16) */
                unsigned hv = j & 1 ? hq[j / 2] >> 4 : hq[j / 2] & 15, gv = j < 16 ? g[1 + j] & 15 : g[1 + j - 16] >> 4;
                CHECK_EQ(hv, gv);
            }
            st_close(&st);
        } else {
            CHECK(0);
        }
        gguf_close(f);
    } else {
        CHECK(0);
    }
    unlink(out_path());
    char dir[128], cmd[256];
    CHECK_EQ(broken_copy(dir, sizeof dir, "gptoss_mxfp4", "model.layers.0.mlp.experts.gate_up_proj_scales", NULL, NULL), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.0.mlp.experts.gate_up_proj_scales is missing") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    /* U8 where a float belongs: the sinks' 8 bytes relabelled */
    CHECK_EQ(broken_copy(dir, sizeof dir, "gptoss_mxfp4", "model.layers.1.self_attn.sinks", "\"dtype\":\"BF16\",\"shape\":[4]",
                         "\"dtype\":\"U8\",\"shape\":[8]"), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.1.self_attn.sinks is U8 (raw bytes)") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    /* the down blocks' bytes as [4, 64, 1, 32]: not the hub's [.., 2, 16] */
    CHECK_EQ(broken_copy(dir, sizeof dir, "gptoss_mxfp4", "model.layers.1.mlp.experts.down_proj_blocks", "\"shape\":[4,64,2,16]",
                         "\"shape\":[4,64,1,32]"), 0);
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "tensor model.layers.1.mlp.experts.down_proj_blocks has 4 dims [4, 64, ...], config.json implies [4, 64, 2, 16]") != NULL);
    CHECK(access(out_path(), F_OK) != 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}
