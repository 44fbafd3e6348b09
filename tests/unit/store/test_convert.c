/* The Hugging Face converter (store/convert.h) called directly on the
 * committed fixtures of tests/data/hf/, so the release and ASan builds (with
 * leak detection) run every family's path in-process: each converts, the
 * GGUF opens with the architecture, expert stacks of the right shape (the
 * values are checked against SafeTensors by tests/store/test_convert_hf.py),
 * and broken expert stacks are refused by name with nothing left at the
 * output path; the encoders of tests/data/hf_enc likewise (architecture,
 * pooling, tokenizer model), and their broken directories (a missing
 * tensor, unknown pooling modes and modules, a cased WordPiece, an
 * activation we do not run) refused by name. Run from the repository root (the unit-test runner does). */
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

/* Converts dir to out_path() and opens the result, checking its
 * general.architecture; NULL (the failure recorded) when either fails. */
static gguf_file *convert_open(const char *dir, const char *arch) {
    hl_err err = {0};
    int rc = store_convert_hf(dir, out_path(), NULL, &err);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "%s: %s\n", dir, err.msg);
        return NULL;
    }
    gguf_file *f = NULL;
    CHECK_EQ(gguf_open(&f, out_path(), &err), 0);
    if (!f) return NULL;
    gguf_str s;
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && s.len == strlen(arch) && !memcmp(s.ptr, arch, s.len));
    return f;
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
        gguf_file *f = convert_open(dir, cases[i].arch);
        if (!f) continue;
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

/* Whether converting a broken copy of base (broken_copy's key, from, to) is
 * refused with a message containing msg and leaves no output file. */
static int refused_as(const char *base, const char *key, const char *from, const char *to, const char *msg) {
    char dir[128], cmd[256];
    hl_err err = {0};
    if (broken_copy(dir, sizeof dir, base, key, from, to) != 0) return 0;
    int ok = store_convert_hf(dir, out_path(), NULL, &err) == HL_EINVAL && strstr(err.msg, msg) != NULL &&
             access(out_path(), F_OK) != 0;
    if (!ok) fprintf(stderr, "%s (%s): got \"%s\"\n", base, key, err.msg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return ok && system(cmd) == 0;
}

TEST(convert_broken_expert_stacks) {
    CHECK(refused_as("qwen3moe", "model.layers.1.mlp.experts.2.up_proj.weight", NULL, NULL,
                     "tensor model.layers.1.mlp.experts.2.up_proj.weight is missing (expert 2 of 4;"));
    CHECK(refused_as("qwen3moe", "model.layers.0.mlp.experts.3.down_proj.weight", "\"dtype\":\"F16\"", "\"dtype\":\"BF16\"",
                     "tensor model.layers.0.mlp.experts.3.down_proj.weight is BF16 but expert 0's is F16"));
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
    CHECK(refused_as("gptoss_mxfp4", "model.layers.0.mlp.experts.gate_up_proj_scales", NULL, NULL,
                     "tensor model.layers.0.mlp.experts.gate_up_proj_scales is missing"));
    /* U8 where a float belongs: the sinks' 8 bytes relabelled */
    CHECK(refused_as("gptoss_mxfp4", "model.layers.1.self_attn.sinks", "\"dtype\":\"BF16\",\"shape\":[4]",
                     "\"dtype\":\"U8\",\"shape\":[8]", "tensor model.layers.1.self_attn.sinks is U8 (raw bytes)"));
    /* the down blocks' bytes as [4, 64, 1, 32]: not the hub's [.., 2, 16] */
    CHECK(refused_as("gptoss_mxfp4", "model.layers.1.mlp.experts.down_proj_blocks", "\"shape\":[4,64,2,16]",
                     "\"shape\":[4,64,1,32]",
                     "tensor model.layers.1.mlp.experts.down_proj_blocks has 4 dims [4, 64, ...], config.json implies [4, 64, 2, 16]"));
}

TEST(convert_encoders) {
    static const struct {
        const char *dir, *arch, *tok;
        int64_t pooling; /* -1: no key (no modules.json) */
    } cases[] = {
        {"bert", "bert", "bert", 1},          {"bert-mlm", "bert", "bert", -1}, {"nomic-hub", "nomic-bert", "bert", 2},
        {"nomic-hf", "nomic-bert", "bert", 3}, {"xlmr", "bert", "t5", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[128], key[64];
        snprintf(dir, sizeof dir, "tests/data/hf_enc/%s", cases[i].dir);
        gguf_file *f = convert_open(dir, cases[i].arch);
        if (!f) continue;
        gguf_str s;
        CHECK(gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && s.len == strlen(cases[i].tok) && !memcmp(s.ptr, cases[i].tok, s.len));
        snprintf(key, sizeof key, "%s.pooling_type", cases[i].arch);
        int64_t pooling = -1;
        if (gguf_get_int(f, key, &pooling) != 0) pooling = -1;
        CHECK_EQ(pooling, cases[i].pooling);
        CHECK(gguf_find_tensor(f, "blk.1.layer_output_norm.bias") != NULL);
        CHECK(gguf_find_tensor(f, "token_embd_norm.weight") != NULL);
        gguf_close(f);
        unlink(out_path());
    }
}

static int put_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    int rc = fputs(text, fp) < 0 ? -1 : 0;
    return fclose(fp) || rc ? -1 : 0;
}

static int copy_dir(const char *src, char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/hl_test_convert_enc_%ld", (long)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s %s", dir, src, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void expect_refused(const char *dir, int want_rc, const char *msg) {
    hl_err err = {0};
    CHECK_EQ(store_convert_hf(dir, out_path(), NULL, &err), want_rc);
    if (!strstr(err.msg, msg)) fprintf(stderr, "want '%s', got '%s'\n", msg, err.msg);
    CHECK(strstr(err.msg, msg) != NULL);
    CHECK(access(out_path(), F_OK) != 0);
}

TEST(convert_encoder_bad_input) {
    char dir[128], cmd[256];
    CHECK_EQ(broken_copy(dir, sizeof dir, "../hf_enc/bert", "encoder.layer.1.attention.self.key.bias", NULL, NULL), 0);
    expect_refused(dir, HL_EINVAL, "tensor encoder.layer.1.attention.self.key.bias is missing");
    static const struct {
        const char *file, *text;
        int rc;
        const char *msg;
    } cases[] = {
        {"1_Pooling/config.json", "{\"pooling_mode\": \"max\"}", HL_ENOTSUP, "pooling_mode \"max\" is not supported (mean, cls, lasttoken)"},
        {"1_Pooling/config.json", "{\"pooling_mode\": [\"mean\", \"cls\"]}", HL_ENOTSUP, "pooling_mode [ \"mean\", \"cls\" ] is not supported"},
        {"1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": true, \"pooling_mode_cls_token\": true}", HL_ENOTSUP,
         "pooling_mode_cls_token combined with another pooling mode"},
        {"1_Pooling/config.json", "{\"pooling_mode_weightedmean_tokens\": true}", HL_ENOTSUP, "pooling_mode_weightedmean_tokens is not supported"},
        {"1_Pooling/config.json", "{}", HL_EINVAL, "1_Pooling/config.json: no pooling_mode is set"},
        {"1_Pooling/config.json", "[", HL_EINVAL, "1_Pooling/config.json: missing or not a JSON object"},
        {"modules.json", "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}, {\"path\": \"2_Dense\", "
                         "\"type\": \"sentence_transformers.models.Dense\"}]",
         HL_ENOTSUP, "modules.json: module 2_Dense (sentence_transformers.models.Dense) is not supported"},
        {"modules.json", "[{\"path\": \"../../etc\", \"type\": \"sentence_transformers.models.Pooling\"}]", HL_EINVAL,
         "Pooling path '../../etc' is not a folder inside the directory"},
        {"modules.json", "[{\"type\": \"sentence_transformers.models.Pooling\"}]", HL_EINVAL, "modules.json: entry 0 has no type / path"},
        {"modules.json", "{}", HL_EINVAL, "modules.json: not a JSON array"},
        {"config.json", "{\"architectures\": [\"BertModel\"], \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"intermediate_size\": 64, \"vocab_size\": 137, \"hidden_act\": \"relu\"}",
         HL_ENOTSUP, "config.json: hidden_act relu is not supported for BertModel (gelu)"},
        {"config.json", "{\"architectures\": [\"BertModel\"], \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 5, \"intermediate_size\": 64, \"vocab_size\": 137}",
         HL_EINVAL, "hidden size 32 is not a multiple of 5 heads"},
        {"config.json", "{\"architectures\": [\"BertModel\"], \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"intermediate_size\": 48, \"vocab_size\": 137, \"max_position_embeddings\": 64}",
         HL_EINVAL, "tensor encoder.layer.0.intermediate.dense.weight has shape [64, 32], config.json implies [48, 32]"},
        {"config.json", "{\"architectures\": [\"BertModel\"], \"hidden_size\": 32, \"num_hidden_layers\": 1, "
                        "\"num_attention_heads\": 4, \"intermediate_size\": 64, \"vocab_size\": 137}",
         HL_ENOTSUP, "tensor encoder.layer.1."},
        {"config.json", "{\"architectures\": [\"BertModel\"], \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 4, \"intermediate_size\": 64}",
         HL_EINVAL, "config.json: vocab_size is missing"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"normalizer\": "
                           "{\"type\": \"BertNormalizer\", \"lowercase\": false}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         HL_ENOTSUP, "BertNormalizer lowercase false"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"normalizer\": "
                           "{\"type\": \"BertNormalizer\", \"lowercase\": true, \"strip_accents\": false}, "
                           "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         HL_ENOTSUP, "BertNormalizer strip_accents false is not supported"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"normalizer\": "
                           "{\"type\": \"BertNormalizer\", \"lowercase\": true}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
         HL_ENOTSUP, "WordPiece with pre_tokenizer {\"type\":\"Whitespace\"} is not supported"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 500}}, \"normalizer\": "
                           "{\"type\": \"BertNormalizer\", \"lowercase\": true}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         HL_EINVAL, "vocab id of 'a' is not below the 137 embedding rows"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": -1}], "
                           "\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": true}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         HL_EINVAL, "added token 0 has no valid id/content"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ(copy_dir("tests/data/hf_enc/bert", dir, sizeof dir), 0);
        CHECK_EQ(put_file(dir, cases[i].file, cases[i].text), 0);
        expect_refused(dir, cases[i].rc, cases[i].msg);
    }
    /* the hub's nomic config: settings our nomic-bert does not run */
    static const char *const nomic_off[] = {"\"rotary_emb_interleaved\": false", "\"prenorm\": false", "\"qkv_proj_bias\": false"};
    for (size_t i = 0; i < sizeof nomic_off / sizeof nomic_off[0]; i++) {
        CHECK_EQ(copy_dir("tests/data/hf_enc/nomic-hub", dir, sizeof dir), 0);
        char on[64];
        snprintf(on, sizeof on, "%.*s true", (int)(strlen(nomic_off[i]) - 6), nomic_off[i]);
        snprintf(cmd, sizeof cmd, "sed -i 's/%s/%s/' %s/config.json", nomic_off[i], on, dir);
        CHECK_EQ(system(cmd), 0);
        char want[96];
        snprintf(want, sizeof want, "config.json: %.*s true is not supported for NomicBertModel", (int)(strchr(nomic_off[i] + 1, '"') - nomic_off[i] - 1),
                 nomic_off[i] + 1);
        expect_refused(dir, HL_ENOTSUP, want);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}
