/* Unit tests of the GGUF reader and writer: the shared real files (facts
 * checked against the models README, not against our own output), the two
 * shared invalid files with their exact messages, truncation at every header
 * byte, corrupted fields patched into valid images, and a writer round trip
 * over every value type. The comparison with the `gguf` Python package is in
 * tests/gguf/test_gguf_reference.py. */
#include "gguf/gguf.h"

#include "base/clock.h"
#include "base/file.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *rel, size_t *len) {
    char *buf = NULL;
    hl_err err;
    if (hl_read_file(hl_test_shared(rel), 64u << 20, &buf, len, &err) != 0) {
        hl_test_fail(__FILE__, __LINE__, "cannot read %s: %s", rel, err.msg);
        return NULL;
    }
    return buf;
}

/* Opens an exact-size heap copy so ASan sees any read past the end. */
static int open_copy(const void *data, size_t len, hl_err *err) {
    void *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    gguf_file *f = NULL;
    int rc = gguf_open_memory(&f, copy, len, err);
    if (rc == 0) {
        /* walk everything a caller could touch */
        for (int64_t i = 0; i < gguf_n_kv(f); i++) {
            const gguf_kv *kv = gguf_kv_at(f, i);
            gguf_arr a;
            if (gguf_kv_arr(kv, &a) == 0 && a.type == GGUF_STRING && a.n) (void)gguf_arr_str(&a, a.n - 1);
        }
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            volatile uint8_t last = ((const uint8_t *)t->data)[t->size - 1];
            (void)last;
        }
        gguf_close(f);
    } else if (rc != HL_ENOMEM) {
        CHECK(err->msg[0] != 0);
    }
    free(copy);
    return rc;
}

static int64_t kv_int(gguf_file *f, const char *key) {
    int64_t v = -12345;
    CHECK_EQ(gguf_get_int(f, key, &v), 0);
    return v;
}

static int str_eq(gguf_str s, const char *want) { return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0; }

/* Facts from models/README.md: 5 layers, dim 64, 8 heads, 4 KV heads, FFN
 * 172, 512-token SentencePiece vocabulary, separator/padding 0xFFFFFFFF. */
static void check_stories(const char *rel, hl_type matrix_type) {
    gguf_file *f;
    hl_err err;
    int rc = gguf_open(&f, hl_test_shared(rel), &err);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "%s: %s\n", rel, err.msg);
        return;
    }
    CHECK_EQ(gguf_version(f), 3);
    CHECK_EQ(gguf_alignment(f), 32);
    CHECK_EQ(kv_int(f, "llama.block_count"), 5);
    CHECK_EQ(kv_int(f, "llama.embedding_length"), 64);
    CHECK_EQ(kv_int(f, "llama.attention.head_count"), 8);
    CHECK_EQ(kv_int(f, "llama.attention.head_count_kv"), 4);
    CHECK_EQ(kv_int(f, "llama.feed_forward_length"), 172);
    CHECK_EQ(kv_int(f, "tokenizer.ggml.seperator_token_id"), 0xFFFFFFFFll);
    CHECK_EQ(kv_int(f, "tokenizer.ggml.padding_token_id"), 0xFFFFFFFFll);
    gguf_str s;
    CHECK_EQ(gguf_get_str(f, "general.architecture", &s), 0);
    CHECK(str_eq(s, "llama"));
    CHECK_EQ(gguf_get_str(f, "llama.block_count", &s), HL_EINVAL);
    CHECK_EQ(gguf_get_str(f, "no.such.key", &s), HL_ENOENT);
    double eps = 0;
    CHECK_EQ(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
    CHECK_NEAR(eps, 1e-5, 1e-9);
    gguf_arr toks;
    CHECK_EQ(gguf_get_arr(f, "tokenizer.ggml.tokens", &toks), 0);
    CHECK_EQ(toks.type, GGUF_STRING);
    CHECK_EQ(toks.n, 512);
    CHECK(str_eq(gguf_arr_str(&toks, 1), "<s>"));
    CHECK(str_eq(gguf_arr_str(&toks, 2), "</s>"));
    CHECK_EQ(gguf_n_tensors(f), 48); /* 3 global + 5 x 9 per layer */
    const gguf_tensor *t = gguf_find_tensor(f, "blk.4.ffn_down.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ(t->n_dims, 2);
        CHECK_EQ(t->ne[0], 172);
        CHECK_EQ(t->ne[1], 64);
        /* rows of 172 cannot be block-quantized: those stay F32 */
        CHECK_EQ(t->type, matrix_type == HL_TYPE_F16 ? HL_TYPE_F16 : HL_TYPE_F32);
    }
    t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    CHECK(t && t->type == matrix_type && t->ne[0] == 64 && t->ne[1] == 64);
    if (t) CHECK_EQ(t->size, hl_row_size(matrix_type, 64) * 64);
    CHECK(gguf_find_tensor(f, "blk.5.attn_q.weight") == NULL);
    gguf_close(f);
}

TEST(stories_all_types) {
    check_stories("models/stories260K.gguf", HL_TYPE_F32);
    check_stories("models/stories260K-F16.gguf", HL_TYPE_F16);
    check_stories("models/stories260K-Q8_0.gguf", HL_TYPE_Q8_0);
    check_stories("models/stories260K-Q5_0.gguf", HL_TYPE_Q5_0);
    check_stories("models/stories260K-Q5_1.gguf", HL_TYPE_Q5_1);
    check_stories("models/stories260K-Q4_0.gguf", HL_TYPE_Q4_0);
    check_stories("models/stories260K-Q4_1.gguf", HL_TYPE_Q4_1);
}

TEST(tiny_random_vocab) {
    gguf_file *f;
    hl_err err;
    CHECK_EQ(gguf_open(&f, hl_test_shared("models/llama-2-tiny-random.gguf"), &err), 0);
    gguf_arr toks, scores;
    CHECK_EQ(gguf_get_arr(f, "tokenizer.ggml.tokens", &toks), 0);
    CHECK_EQ(toks.n, 32000);
    CHECK(str_eq(gguf_arr_str(&toks, 0), "<unk>"));
    CHECK(str_eq(gguf_arr_str(&toks, 31999), "\xe7\xbb\x99")); /* last Llama 2 token */
    CHECK_EQ(gguf_get_arr(f, "tokenizer.ggml.scores", &scores), 0);
    CHECK_EQ(scores.type, GGUF_F32);
    CHECK_EQ(scores.n, 32000);
    CHECK_EQ(kv_int(f, "llama.block_count"), 1);
    gguf_close(f);
}

TEST(tokenizer_vocabs_open) {
    static const char *const names[] = {"baichuan", "bert-bge", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2",
                                        "gpt-neox", "llama-spm", "mpt", "phi-3", "refact", "starcoder"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/tokenizer/ggml-vocab-%s.gguf", names[i]);
        gguf_file *f;
        hl_err err;
        int rc = gguf_open(&f, hl_test_shared(rel), &err);
        CHECK_EQ(rc, 0);
        if (rc) {
            fprintf(stderr, "%s: %s\n", rel, err.msg);
            continue;
        }
        gguf_arr toks;
        CHECK_EQ(gguf_get_arr(f, "tokenizer.ggml.tokens", &toks), 0);
        CHECK(toks.n > 1000);
        for (uint64_t j = 0; j < toks.n; j++) (void)gguf_arr_str(&toks, j);
        CHECK_EQ(gguf_n_tensors(f), 0);
        gguf_close(f);
    }
}

static void check_open_msg(const char *rel, const char *want_suffix, int want_rc) {
    gguf_file *f = NULL;
    hl_err err = {0};
    const char *path = hl_test_shared(rel);
    int rc = gguf_open(&f, path, &err);
    CHECK_EQ(rc, want_rc);
    CHECK(f == NULL);
    char want[1200];
    snprintf(want, sizeof want, "%s: %s", path, want_suffix);
    CHECK_STREQ(err.msg, want);
}

TEST(invalid_shared_files) {
    check_open_msg("models/invalid/stories260k-gguf-v1.gguf",
                   "unsupported GGUF version 1 (this reader supports versions 2 and 3)", HL_ENOTSUP);
    check_open_msg("models/invalid/stories260k-v2-q8_0-misaligned-rows.gguf",
                   "tensor blk.0.ffn_down.weight: row length 172 is not a multiple of the Q8_0 block size 32", HL_EINVAL);
}

TEST(missing_and_not_gguf) {
    gguf_file *f;
    hl_err err;
    CHECK_EQ(gguf_open(&f, "/nonexistent/x.gguf", &err), HL_ENOENT);
    CHECK_EQ(open_copy("GGML\3\0\0\0", 8, &err), HL_EINVAL);
    CHECK_STREQ(err.msg, "not a GGUF file: it starts with 'GGML' instead of the magic 'GGUF'");
    CHECK_EQ(open_copy("\x7f" "ELF", 4, &err), HL_EINVAL);
    CHECK_STREQ(err.msg, "not a GGUF file: it starts with 7f 45 4c 46 instead of the magic 'GGUF'");
    CHECK_EQ(open_copy("GG", 2, &err), HL_EINVAL);
    /* big-endian: version 3 stored as 00 00 00 03 */
    CHECK_EQ(open_copy("GGUF\0\0\0\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24, &err), HL_ENOTSUP);
    CHECK(strstr(err.msg, "big-endian") != NULL);
}

/* Every prefix of the header region, and a sample of prefixes inside the
 * tensor data, must be refused cleanly (no crash, an error message). */
TEST(truncation_every_header_byte) {
    size_t len;
    char *buf = slurp("models/stories260K-Q4_0.gguf", &len);
    if (!buf) return;
    gguf_file *f;
    hl_err err;
    CHECK_EQ(gguf_open_memory(&f, buf, len, &err), 0);
    size_t data_off = (size_t)gguf_data_offset(f);
    gguf_close(f);
    for (size_t cut = 0; cut < data_off + 64; cut++) {
        int rc = open_copy(buf, cut, &err);
        CHECK(rc != 0);
        if (rc == 0) fprintf(stderr, "prefix of %zu bytes opened\n", cut);
    }
    for (size_t cut = data_off + 64; cut < len; cut += 997) CHECK(open_copy(buf, cut, &err) != 0);
    CHECK_EQ(open_copy(buf, len - 1, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "model file truncated: tensor output.weight extends past end of file") != NULL ||
          strstr(err.msg, "model file truncated: tensor ") != NULL);
    CHECK_EQ(open_copy(buf, len, &err), 0);
    free(buf);
}

TEST(truncation_vocab_sampled) {
    size_t len;
    char *buf = slurp("models/tokenizer/ggml-vocab-gpt-2.gguf", &len);
    if (!buf) return;
    hl_err err;
    for (size_t cut = 0; cut < len; cut += cut < 4096 ? 1 : 4099) CHECK(open_copy(buf, cut, &err) != 0);
    CHECK_EQ(open_copy(buf, len, &err), 0);
    free(buf);
}

/* ---- corrupted fields, patched into a small file made by the writer ---- */

static const char *tmp_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/hl_test_gguf_%ld_%s.gguf", (long)getpid(), tag);
    return buf;
}

/* Writes a two-tensor file: key "a.b" (u32 7), then tensors t0 (F32 [32 x 2])
 * and t1 (Q8_0 [64]); returns its bytes. Layout facts (offsets of fields) are
 * computed from the format, not taken from our reader. */
static char *small_file(size_t *len) {
    gguf_writer *w = gguf_writer_new();
    gguf_set_u32(w, "a.b", 7);
    float t0[64];
    for (int i = 0; i < 64; i++) t0[i] = (float)i;
    uint8_t t1[68] = {0};
    int64_t ne0[2] = {32, 2}, ne1[1] = {64};
    hl_err err;
    CHECK_EQ(gguf_add_tensor(w, "t0", HL_TYPE_F32, 2, ne0, t0, sizeof t0, 0, &err), 0);
    CHECK_EQ(gguf_add_tensor(w, "t1", HL_TYPE_Q8_0, 1, ne1, t1, sizeof t1, 0, &err), 0);
    char path[256];
    tmp_path(path, sizeof path, "small");
    CHECK_EQ(gguf_write(w, path, &err), 0);
    gguf_writer_free(w);
    char *buf = NULL;
    CHECK_EQ(hl_read_file(path, 1 << 20, &buf, len, &err), 0);
    unlink(path);
    return buf;
}

/* byte offsets in small_file's image */
enum {
    OFF_VERSION = 4, OFF_NT = 8, OFF_NKV = 16,
    OFF_KEYLEN = 24, OFF_KEY = 32, OFF_VTYPE = 35, OFF_VAL = 39,
    OFF_T0 = 43, /* name len(8) "t0" n_dims(4) dims(16) type(4) offset(8) */
    OFF_T0_NDIMS = OFF_T0 + 10, OFF_T0_DIM0 = OFF_T0 + 14, OFF_T0_TYPE = OFF_T0 + 30, OFF_T0_OFFSET = OFF_T0 + 34,
    OFF_T1 = OFF_T0 + 42,
    OFF_T1_NAME = OFF_T1 + 8, OFF_T1_TYPE = OFF_T1 + 22, OFF_T1_OFFSET = OFF_T1 + 26,
};

static void put64(char *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }
static void put32(char *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }

static void expect_patch(const char *img, size_t len, void (*patch)(char *), int want_rc, const char *want_sub) {
    char *b = malloc(len);
    memcpy(b, img, len);
    patch(b);
    hl_err err = {0};
    int rc = open_copy(b, len, &err);
    CHECK_EQ(rc, want_rc);
    if (!strstr(err.msg, want_sub)) hl_test_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", err.msg, want_sub);
    free(b);
}

static void p_magic(char *b) { b[0] = 'X'; }
static void p_version4(char *b) { put32(b, OFF_VERSION, 4); }
static void p_huge_nkv(char *b) { put64(b, OFF_NKV, 1ull << 40); }
static void p_huge_nt(char *b) { put64(b, OFF_NT, 0xFFFFFFFFFFFFFFFFull); }
static void p_huge_keylen(char *b) { put64(b, OFF_KEYLEN, 1ull << 62); }
static void p_bad_vtype(char *b) { put32(b, OFF_VTYPE, 13); }
static void p_ndims5(char *b) { put32(b, OFF_T0_NDIMS, 5); }
static void p_dim0(char *b) { put64(b, OFF_T0_DIM0, 0); }
static void p_dim_huge(char *b) { put64(b, OFF_T0_DIM0, 1ull << 62); }
static void p_type_unknown(char *b) { put32(b, OFF_T0_TYPE, 4); }
static void p_type_huge(char *b) { put32(b, OFF_T0_TYPE, 1000); }
static void p_misaligned(char *b) { put64(b, OFF_T1_OFFSET, 256 + 4); }
static void p_overlap(char *b) { put64(b, OFF_T1_OFFSET, 224); }
static void p_past_end(char *b) { put64(b, OFF_T1_OFFSET, 1ull << 40); }
static void p_dup_tensor(char *b) { b[OFF_T1_NAME + 1] = '0'; }
static void p_nul_key(char *b) { b[OFF_KEY + 1] = 0; }
static void p_t1_f32(char *b) { put32(b, OFF_T1_TYPE, HL_TYPE_F32); } /* 64 f32 = 256 bytes > file */

TEST(corrupted_fields) {
    size_t len;
    char *img = small_file(&len);
    if (!img) return;
    /* sanity of the layout assumptions */
    CHECK_EQ(memcmp(img + OFF_KEY, "a.b", 3), 0);
    CHECK_EQ(memcmp(img + OFF_T1_NAME, "t1", 2), 0);
    hl_err err;
    CHECK_EQ(open_copy(img, len, &err), 0);
    expect_patch(img, len, p_magic, HL_EINVAL, "not a GGUF file");
    expect_patch(img, len, p_version4, HL_ENOTSUP, "unsupported GGUF version 4 (this reader supports versions 2 and 3)");
    expect_patch(img, len, p_huge_nkv, HL_EINVAL, "header claims 1099511627776 metadata entries");
    expect_patch(img, len, p_huge_nt, HL_EINVAL, "header claims 18446744073709551615 tensors");
    expect_patch(img, len, p_huge_keylen, HL_EINVAL, "key length 4611686018427387904 at offset 24 exceeds the limit");
    expect_patch(img, len, p_bad_vtype, HL_EINVAL, "key 'a.b': unknown value type 13 at offset 35");
    expect_patch(img, len, p_ndims5, HL_EINVAL, "tensor t0: n_dims 5 is out of range (1..4)");
    expect_patch(img, len, p_dim0, HL_EINVAL, "tensor t0: dimension 0 is 0");
    expect_patch(img, len, p_dim_huge, HL_EINVAL, "tensor t0: element count overflows");
    expect_patch(img, len, p_type_unknown, HL_ENOTSUP, "tensor t0 has unknown or unsupported tensor type 4");
    expect_patch(img, len, p_type_huge, HL_ENOTSUP, "tensor t0 has unknown or unsupported tensor type 1000");
    expect_patch(img, len, p_misaligned, HL_EINVAL, "tensor t1: data offset 260 is not a multiple of the alignment 32");
    expect_patch(img, len, p_overlap, HL_EINVAL, "tensors t0 (offset 0, size 256) and t1 (offset 224) overlap");
    expect_patch(img, len, p_past_end, HL_EINVAL, "model file truncated: tensor t1 extends past end of file");
    expect_patch(img, len, p_dup_tensor, HL_EINVAL, "duplicate tensor name 't0' (tensors #0 and #1)");
    expect_patch(img, len, p_nul_key, HL_EINVAL, "metadata key #0 contains a NUL byte");
    expect_patch(img, len, p_t1_f32, HL_EINVAL, "tensor t1 extends past end of file");
    free(img);
}

/* Hand-built images for value-level corruption: header + one kv. */
static size_t build_kv_image(char *b, const void *val, size_t vlen, uint32_t vtype) {
    memcpy(b, "GGUF", 4);
    put32(b, 4, 3);
    put64(b, 8, 0);
    put64(b, 16, 1);
    put64(b, 24, 1);
    b[32] = 'k';
    put32(b, 33, vtype);
    memcpy(b + 37, val, vlen);
    return 37 + vlen;
}

TEST(corrupted_values) {
    char img[4096], val[2048];
    hl_err err;
    /* huge string length */
    put64(val, 0, 1ull << 60);
    CHECK_EQ(open_copy(img, build_kv_image(img, val, 8, GGUF_STRING), &err), HL_EINVAL);
    CHECK(strstr(err.msg, "key 'k': string value at offset 45 needs 1152921504606846976 bytes") != NULL);
    /* array with huge count */
    put32(val, 0, GGUF_U32);
    put64(val, 4, 1ull << 61);
    CHECK_EQ(open_copy(img, build_kv_image(img, val, 12, GGUF_ARRAY), &err), HL_EINVAL);
    CHECK(strstr(err.msg, "array of 2305843009213693952 u32 elements") != NULL);
    /* array of unknown element type */
    put32(val, 0, 77);
    put64(val, 4, 0);
    CHECK_EQ(open_copy(img, build_kv_image(img, val, 12, GGUF_ARRAY), &err), HL_EINVAL);
    CHECK(strstr(err.msg, "unknown array element type 77") != NULL);
    /* empty arrays of strings and of arrays (found by the fuzzer: their
     * index pools stay unallocated) */
    put32(val, 0, GGUF_STRING);
    put64(val, 4, 0);
    CHECK_EQ(open_copy(img, build_kv_image(img, val, 12, GGUF_ARRAY), &err), 0);
    put32(val, 0, GGUF_ARRAY);
    CHECK_EQ(open_copy(img, build_kv_image(img, val, 12, GGUF_ARRAY), &err), 0);
    /* bool that is neither 0 nor 1 */
    val[0] = 2;
    CHECK_EQ(open_copy(img, build_kv_image(img, val, 1, GGUF_BOOL), &err), HL_EINVAL);
    CHECK(strstr(err.msg, "bool value 2") != NULL);
    /* nesting: 8 levels of arrays are fine, 9 are refused */
    for (int depth = 8; depth <= 9; depth++) {
        size_t n = 0;
        for (int d = 0; d < depth; d++) {
            put32(val, n, d + 1 < depth ? GGUF_ARRAY : GGUF_U8);
            put64(val, n + 4, 1);
            n += 12;
        }
        val[n++] = 5;
        int rc = open_copy(img, build_kv_image(img, val, n, GGUF_ARRAY), &err);
        if (depth == 8) {
            CHECK_EQ(rc, 0);
        } else {
            CHECK_EQ(rc, HL_EINVAL);
            CHECK(strstr(err.msg, "arrays nested deeper than 8 levels") != NULL);
        }
    }
    /* duplicate keys */
    size_t n = build_kv_image(img, "\1\0\0\0", 4, GGUF_U32);
    put64(img, 16, 2);
    memcpy(img + n, img + 24, 17);
    CHECK_EQ(open_copy(img, n + 17, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "duplicate metadata key 'k' (entries #0 and #1)") != NULL);
    /* bad alignment values */
    uint32_t al[] = {0, 24, 1u << 31};
    for (int i = 0; i < 3; i++) {
        char b[128];
        memcpy(b, "GGUF", 4);
        put32(b, 4, 3);
        put64(b, 8, 0);
        put64(b, 16, 1);
        put64(b, 24, 17);
        memcpy(b + 32, "general.alignment", 17);
        put32(b, 49, GGUF_U32);
        put32(b, 53, al[i]);
        CHECK_EQ(open_copy(b, 57, &err), HL_EINVAL);
        CHECK(strstr(err.msg, "is not a power of two") != NULL);
    }
}

/* ---- writer round trip -------------------------------------------------- */

TEST(writer_round_trip) {
    gguf_writer *w = gguf_writer_new();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -(1ll << 50);
    double f64 = 3.141592653589793;
    gguf_set_scalar(w, "v.u8", GGUF_U8, &u8);
    gguf_set_scalar(w, "v.i8", GGUF_I8, &i8);
    gguf_set_scalar(w, "v.u16", GGUF_U16, &u16);
    gguf_set_scalar(w, "v.i16", GGUF_I16, &i16);
    gguf_set_u32(w, "v.u32", 0xFFFFFFFFu);
    gguf_set_i32(w, "v.i32", -7);
    gguf_set_f32(w, "v.f32", 0.5f);
    gguf_set_bool(w, "v.bool", 1);
    gguf_set_str(w, "v.str", "hello \"world\"\n");
    gguf_set_u64(w, "v.u64", 0xFFFFFFFFFFFFFFFFull);
    gguf_set_scalar(w, "v.i64", GGUF_I64, &i64);
    gguf_set_scalar(w, "v.f64", GGUF_F64, &f64);
    gguf_set_u32(w, "v.replaced", 1);
    gguf_set_u32(w, "v.replaced", 2);
    const char *strs[] = {"a", "", "ccc"};
    gguf_set_arr_str(w, "a.str", strs, 3);
    int32_t ints[] = {1, -2, 3};
    gguf_set_arr_i32(w, "a.i32", ints, 3);
    float fl[] = {1.5f, -2.25f};
    gguf_set_arr_f32(w, "a.f32", fl, 2);
    uint8_t bools[] = {1, 0, 1};
    gguf_set_arr(w, "a.bool", GGUF_BOOL, bools, 3);
    gguf_set_arr(w, "a.empty", GGUF_U8, NULL, 0);
    /* nested: array of 2 arrays of u16 {[1,2], [3]} */
    char nest[64];
    size_t n = 0;
    put32(nest, n, GGUF_U16), n += 4;
    uint16_t e[] = {1, 2, 3};
    for (int k = 0; k < 2; k++) {
        put32(nest, n, GGUF_U16);
        put64(nest, n + 4, k == 0 ? 2 : 1);
        n += 12;
        memcpy(nest + n, k == 0 ? e : e + 2, k == 0 ? 4 : 2);
        n += k == 0 ? 4 : 2;
    }
    char raw[96];
    put32(raw, 0, GGUF_ARRAY);
    put64(raw, 4, 2);
    memcpy(raw + 12, nest + 4, n - 4);
    gguf_set_raw(w, "a.nested", GGUF_ARRAY, raw, 12 + n - 4);

    float t0[3 * 64];
    for (int i = 0; i < 3 * 64; i++) t0[i] = (float)i * 0.25f;
    uint8_t q[2 * 18 * 2];
    for (size_t i = 0; i < sizeof q; i++) q[i] = (uint8_t)(i * 7);
    uint16_t h[4] = {0x3c00, 0x4000, 0xbc00, 0};
    int64_t ne_a[2] = {64, 3}, ne_b[2] = {64, 2}, ne_c[3] = {2, 1, 2};
    hl_err err;
    CHECK_EQ(gguf_add_tensor(w, "t.f32", HL_TYPE_F32, 2, ne_a, t0, sizeof t0, 0, &err), 0);
    CHECK_EQ(gguf_add_tensor(w, "t.q4_0", HL_TYPE_Q4_0, 2, ne_b, q, sizeof q, 1, &err), 0);
    CHECK_EQ(gguf_add_tensor(w, "t.f16", HL_TYPE_F16, 3, ne_c, h, sizeof h, 0, &err), 0);
    /* refusals */
    CHECK_EQ(gguf_add_tensor(w, "t.f16", HL_TYPE_F16, 3, ne_c, h, sizeof h, 0, &err), HL_EINVAL);
    CHECK_EQ(gguf_add_tensor(w, "bad", HL_TYPE_Q4_0, 1, (int64_t[]){33}, q, 18, 0, &err), HL_EINVAL);
    CHECK_STREQ(err.msg, "tensor bad: row length 33 is not a multiple of the Q4_0 block size 32");
    CHECK_EQ(gguf_add_tensor(w, "bad", HL_TYPE_F32, 1, (int64_t[]){3}, t0, 8, 0, &err), HL_EINVAL);

    char path[256];
    tmp_path(path, sizeof path, "rt");
    CHECK_EQ(gguf_write(w, path, &err), 0);
    gguf_writer_free(w);

    gguf_file *f;
    CHECK_EQ(gguf_open(&f, path, &err), 0);
    CHECK_EQ(gguf_version(f), 3);
    CHECK_EQ(gguf_n_kv(f), 19);
    int64_t v;
    CHECK(gguf_get_int(f, "v.u8", &v) == 0 && v == 200);
    CHECK(gguf_get_int(f, "v.i8", &v) == 0 && v == -100);
    CHECK(gguf_get_int(f, "v.u16", &v) == 0 && v == 60000);
    CHECK(gguf_get_int(f, "v.i16", &v) == 0 && v == -30000);
    CHECK(gguf_get_int(f, "v.u32", &v) == 0 && v == 0xFFFFFFFFll);
    CHECK(gguf_get_int(f, "v.i32", &v) == 0 && v == -7);
    CHECK(gguf_get_int(f, "v.i64", &v) == 0 && v == i64);
    CHECK(gguf_get_int(f, "v.replaced", &v) == 0 && v == 2);
    CHECK_EQ(gguf_get_int(f, "v.u64", &v), HL_EINVAL); /* above INT64_MAX */
    CHECK_EQ(gguf_kv_u64(gguf_find(f, "v.u64")), 0xFFFFFFFFFFFFFFFFull);
    double d;
    CHECK(gguf_get_float(f, "v.f32", &d) == 0 && d == 0.5);
    CHECK(gguf_get_float(f, "v.f64", &d) == 0 && d == f64);
    int b = 0;
    CHECK(gguf_get_bool(f, "v.bool", &b) == 0 && b == 1);
    gguf_str s;
    CHECK(gguf_get_str(f, "v.str", &s) == 0 && str_eq(s, "hello \"world\"\n"));
    gguf_arr a, sub;
    CHECK(gguf_get_arr(f, "a.str", &a) == 0 && a.type == GGUF_STRING && a.n == 3);
    CHECK(str_eq(gguf_arr_str(&a, 0), "a") && str_eq(gguf_arr_str(&a, 1), "") && str_eq(gguf_arr_str(&a, 2), "ccc"));
    CHECK(gguf_get_arr(f, "a.i32", &a) == 0 && a.n == 3 && gguf_arr_int(&a, 1) == -2);
    CHECK(gguf_get_arr(f, "a.f32", &a) == 0 && a.n == 2 && gguf_arr_float(&a, 1) == -2.25);
    CHECK(gguf_get_arr(f, "a.bool", &a) == 0 && a.n == 3 && gguf_arr_int(&a, 1) == 0 && gguf_arr_int(&a, 2) == 1);
    CHECK(gguf_get_arr(f, "a.empty", &a) == 0 && a.n == 0 && a.type == GGUF_U8);
    CHECK(gguf_get_arr(f, "a.nested", &a) == 0 && a.type == GGUF_ARRAY && a.n == 2);
    CHECK(gguf_arr_get_arr(&a, 0, &sub) == 0 && sub.type == GGUF_U16 && sub.n == 2 && gguf_arr_int(&sub, 1) == 2);
    CHECK(gguf_arr_get_arr(&a, 1, &sub) == 0 && sub.n == 1 && gguf_arr_int(&sub, 0) == 3);
    CHECK_EQ(gguf_arr_get_arr(&sub, 0, &a), HL_EINVAL);
    CHECK_EQ(gguf_n_tensors(f), 3);
    const gguf_tensor *t = gguf_find_tensor(f, "t.f32");
    CHECK(t && t->size == sizeof t0 && memcmp(t->data, t0, sizeof t0) == 0 && t->offset == 0);
    t = gguf_find_tensor(f, "t.q4_0");
    CHECK(t && t->type == HL_TYPE_Q4_0 && t->size == sizeof q && memcmp(t->data, q, sizeof q) == 0);
    CHECK(t && t->offset % 32 == 0);
    t = gguf_find_tensor(f, "t.f16");
    CHECK(t && t->n_dims == 3 && t->ne[0] == 2 && t->ne[1] == 1 && t->ne[2] == 2 && t->ne[3] == 1);
    CHECK(t && memcmp(t->data, h, sizeof h) == 0);
    CHECK_EQ((gguf_data_offset(f) % 32), 0);

    /* copy all kvs into a second file with alignment 64 */
    gguf_writer *w2 = gguf_writer_new();
    gguf_set_kv_from(w2, f);
    gguf_set_u32(w2, "general.alignment", 64);
    CHECK_EQ(gguf_add_tensor(w2, "x", HL_TYPE_F32, 1, (int64_t[]){3}, t0, 12, 0, &err), 0);
    CHECK_EQ(gguf_add_tensor(w2, "y", HL_TYPE_F32, 1, (int64_t[]){3}, t0, 12, 0, &err), 0);
    char path2[256];
    tmp_path(path2, sizeof path2, "rt2");
    CHECK_EQ(gguf_write(w2, path2, &err), 0);
    gguf_writer_free(w2);
    gguf_file *f2;
    CHECK_EQ(gguf_open(&f2, path2, &err), 0);
    CHECK_EQ(gguf_alignment(f2), 64);
    CHECK_EQ(gguf_n_kv(f2), 20);
    CHECK_EQ(gguf_find_tensor(f2, "y")->offset, 64);
    CHECK(gguf_get_arr(f2, "a.nested", &a) == 0 && gguf_arr_get_arr(&a, 1, &sub) == 0 && gguf_arr_int(&sub, 0) == 3);
    CHECK(gguf_get_str(f2, "v.str", &s) == 0 && str_eq(s, "hello \"world\"\n"));

    /* an alignment the reader would refuse is refused at write time */
    gguf_writer *w3 = gguf_writer_new();
    gguf_set_u32(w3, "general.alignment", 48);
    char path3[256];
    CHECK_EQ(gguf_write(w3, tmp_path(path3, sizeof path3, "rt3"), &err), HL_EINVAL);
    CHECK_STREQ(err.msg, "general.alignment 48 is not a power of two between 1 and 1073741824");
    CHECK(access(path3, F_OK) != 0);
    gguf_writer_free(w3);

    FILE *null = fopen("/dev/null", "w");
    CHECK_EQ(gguf_print(null, f2, 1), 0);
    fclose(null);
    hl_buf j = {0};
    CHECK_EQ(gguf_dump_json(&j, f2, 2), 0);
    CHECK(strstr(j.data, "\"key\":\"a.str\",\"type\":\"array\",\"value\":{\"type\":\"string\",\"count\":3,\"values\":[\"a\",\"\"]}") != NULL);
    hl_buf_free(&j);
    gguf_close(f2);
    gguf_close(f);
    unlink(path);
    unlink(path2);
}

/* A tensor gathered from borrowed parts (a MoE layer's experts) reads back as
 * the parts one after another, aligned like any other; a size that does not
 * match the shape is refused as for a plain tensor. */
TEST(writer_parts) {
    uint16_t e0[6] = {1, 2, 3, 4, 5, 6}, e1[6] = {7, 8, 9, 10, 11, 12}, e2[6] = {13, 14, 15, 16, 17, 18};
    const void *parts[3] = {e0, e1, e2};
    float after[2] = {1.5f, -2.0f};
    int64_t ne[3] = {3, 2, 3};
    hl_err err;
    gguf_writer *w = gguf_writer_new();
    CHECK_EQ(gguf_add_tensor_parts(w, "exps", HL_TYPE_F16, 3, ne, parts, sizeof e0, 3, &err), 0);
    CHECK_EQ(gguf_add_tensor(w, "after", HL_TYPE_F32, 1, (int64_t[]){2}, after, sizeof after, 0, &err), 0);
    CHECK_EQ(gguf_add_tensor_parts(w, "short", HL_TYPE_F16, 3, ne, parts, sizeof e0, 2, &err), HL_EINVAL);
    CHECK_STREQ(err.msg, "tensor short: data is 24 bytes, but shape and type F16 need 36");
    CHECK_EQ(gguf_add_tensor_parts(w, "none", HL_TYPE_F16, 3, ne, parts, sizeof e0, 0, &err), HL_EINVAL);
    char path[256];
    tmp_path(path, sizeof path, "parts");
    CHECK_EQ(gguf_write(w, path, &err), 0);
    gguf_writer_free(w);
    gguf_file *f;
    CHECK_EQ(gguf_open(&f, path, &err), 0);
    CHECK_EQ(gguf_n_tensors(f), 2);
    const gguf_tensor *t = gguf_find_tensor(f, "exps");
    CHECK(t && t->n_dims == 3 && t->ne[2] == 3 && t->size == 3 * sizeof e0);
    CHECK(t && memcmp(t->data, e0, sizeof e0) == 0 && memcmp((const uint8_t *)t->data + sizeof e0, e1, sizeof e1) == 0 &&
          memcmp((const uint8_t *)t->data + 2 * sizeof e0, e2, sizeof e2) == 0);
    t = gguf_find_tensor(f, "after");
    CHECK(t && t->offset == 64 && memcmp(t->data, after, sizeof after) == 0);
    gguf_close(f);
    unlink(path);
}

/* The big real model opens in milliseconds (only the header is parsed). */
TEST(open_big_model_fast) {
    const char *p = hl_test_model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    if (!p) return;
    int64_t t0 = hl_now_ns();
    gguf_file *f;
    hl_err err;
    CHECK_EQ(gguf_open(&f, p, &err), 0);
    int64_t dt = hl_now_ns() - t0;
    fprintf(stderr, "opened %s in %.2f ms\n", p, dt / 1e6);
    CHECK(dt < 500 * 1000000ll);
    gguf_arr toks;
    CHECK_EQ(gguf_get_arr(f, "tokenizer.ggml.tokens", &toks), 0);
    CHECK(toks.n > 150000);
    gguf_close(f);
}

/* The inspect listing names every key and tensor with the facts of the
 * models README (512 tokens, 48 tensors, ffn_down rows of 172). */
TEST(print_listing) {
    gguf_file *f;
    hl_err err;
    CHECK_EQ(gguf_open(&f, hl_test_shared("models/stories260K-Q4_0.gguf"), &err), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    CHECK_EQ(gguf_print(mem, f, 1), 0);
    fclose(mem);
    CHECK(strstr(text, "GGUF version 3") != NULL);
    CHECK(strstr(text, "tokenizer.ggml.tokens") && strstr(text, "[string x 512] [\"<unk>\", \"<s>\", \"</s>\""));
    CHECK(strstr(text, "tokenizer.ggml.seperator_token_id") && strstr(text, "4294967295"));
    CHECK(strstr(text, "tensors (48):") != NULL);
    CHECK(strstr(text, "blk.0.ffn_down.weight") && strstr(text, "172 x 64"));
    for (int64_t i = 0; i < gguf_n_kv(f); i++) CHECK(strstr(text, gguf_kv_key(gguf_kv_at(f, i))) != NULL);
    free(text);
    gguf_close(f);
}
