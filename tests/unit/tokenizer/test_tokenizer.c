/* Tokenizer behaviour beyond the vectors: llama.cpp's reference ids for
 * stories260K, special-token parsing, BOS/EOS flags, end-of-generation ids,
 * round trips, streaming detokenization of characters split across tokens,
 * invalid UTF-8, and the speed budget (10 KB prompt, 150k vocab). */
#include "harness.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tok_vocab *load(const char *path) {
    if (!path) return NULL;
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    hl_err err = {0};
    if (gguf_open(&f, path, &err) || tok_load(&v, f, &err)) hl_test_fail(__FILE__, __LINE__, "%s: %s", path, err.msg);
    gguf_close(f);
    return v;
}

static tok_vocab *load_shared(const char *rel) { return load(hl_test_shared(rel)); }

static size_t enc(const tok_vocab *v, const char *s, int add_special, int parse_special, int32_t **ids) {
    size_t n = 0;
    hl_err err = {0};
    if (tok_encode(v, s, strlen(s), add_special, parse_special, ids, &n, &err) != 0) {
        hl_test_fail(__FILE__, __LINE__, "encode: %s", err.msg);
        *ids = NULL;
        return 0;
    }
    return n;
}

static int same(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Streams ids one at a time; every chunk must be valid UTF-8 by itself. */
static char *stream_all(const tok_vocab *v, const int32_t *ids, size_t n, int *chunks_valid) {
    tok_stream st;
    tok_stream_init(&st, v, 0);
    size_t cap = tok_stream_bound(v);
    char *chunk = malloc(cap), *all = calloc(1, n * cap + 16);
    size_t len = 0;
    *chunks_valid = 1;
    for (size_t i = 0; i < n; i++) {
        int k = tok_stream_push(&st, ids[i], chunk, cap);
        CHECK(k >= 0);
        if (k < 0) break;
        if (!hl_utf8_valid(chunk, (size_t)k)) *chunks_valid = 0;
        memcpy(all + len, chunk, (size_t)k);
        len += (size_t)k;
    }
    len += (size_t)tok_stream_flush(&st, all + len, 16);
    all[len] = 0;
    free(chunk);
    return all;
}

TEST(stories260k_matches_llamacpp) {
    tok_vocab *v = load_shared("models/stories260K.gguf");
    if (!v) return;
    static const struct { const char *text; int32_t ids[32]; size_t n; } cases[] = {
        {"Once upon a time", {403, 407, 261, 378}, 4},
        {"Hello world", {346, 306, 414, 263, 304, 341}, 6},
        {" Lily and Tom went to the park.", {410, 317, 269, 274, 287, 263, 377, 267, 265, 282, 295, 433, 426}, 13},
        {"\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x81" "From LLaMA.cpp",
         {410, 231, 192, 163, 232, 168, 192, 242, 191, 132, 453, 420, 287, 307, 438, 412, 446, 447, 426, 429, 339}, 21},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int32_t *ids;
        size_t n = enc(v, cases[c].text, 0, 0, &ids);
        CHECK(same(ids, n, cases[c].ids, cases[c].n));
        free(ids);
    }
    CHECK_EQ(tok_bos(v), 1);
    CHECK_EQ(tok_eos(v), 2);
    CHECK_EQ(tok_pad(v), -1); /* stored as 0xFFFFFFFF */
    /* llama.cpp's greedy continuation decodes to its reported text */
    static const int32_t greedy[] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396,
                                     267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
                                     328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426};
    char *text;
    size_t tl;
    hl_err err = {0};
    CHECK_EQ(tok_decode(v, greedy, sizeof greedy / sizeof *greedy, 0, &text, &tl, &err), 0);
    CHECK_STREQ(text, ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.");
    free(text);
    tok_free(v);
}

TEST(spm_flags_special_and_roundtrip) {
    tok_vocab *v = load_shared("models/tokenizer/ggml-vocab-llama-spm.gguf");
    if (!v) return;
    CHECK_EQ(tok_get_kind(v), TOK_KIND_SPM);
    CHECK(tok_add_bos(v));
    CHECK(!tok_add_eos(v));
    int32_t *a, *b;
    size_t na = enc(v, "Hello world", 1, 0, &a), nb = enc(v, "Hello world", 0, 0, &b);
    CHECK_EQ(na, nb + 1);
    CHECK_EQ(a[0], tok_bos(v));
    CHECK(same(a + 1, na - 1, b, nb));
    free(a);
    free(b);
    /* "<s>" is a control token: one id only when parse_special is on */
    na = enc(v, "<s>Hi</s>", 0, 1, &a);
    CHECK(na >= 3);
    CHECK_EQ(a[0], tok_find(v, "<s>", 3));
    CHECK_EQ(a[na - 1], tok_find(v, "</s>", 4));
    CHECK(tok_is_control(v, a[0]));
    free(a);
    na = enc(v, "<s>Hi</s>", 0, 0, &a);
    for (size_t i = 0; i < na; i++) CHECK(a[i] != 1 && a[i] != 2);
    free(a);
    CHECK(tok_is_eog(v, tok_eos(v)));
    CHECK(!tok_is_eog(v, tok_bos(v)));
    /* decode removes the space prefix; byte-fallback (an emoji) streams whole */
    const char *s = "Hello \xf0\x9f\xa6\x99 w\xc3\xb6rld  \xe6\x97\xa5\xe6\x9c\xac\n\tend";
    na = enc(v, s, 1, 0, &a);
    int saw_byte = 0;
    for (size_t i = 0; i < na; i++) saw_byte |= tok_type(v, a[i]) == TOK_TYPE_BYTE;
    CHECK(saw_byte);
    char *text;
    size_t tl;
    hl_err err = {0};
    CHECK_EQ(tok_decode(v, a, na, 0, &text, &tl, &err), 0);
    CHECK_STREQ(text, s);
    free(text);
    int valid;
    char *streamed = stream_all(v, a, na, &valid);
    CHECK(valid);
    CHECK_STREQ(streamed, s);
    free(streamed);
    free(a);
    /* a piece: U+2581 renders as a space, <0xNN> as its byte, controls as nothing */
    char buf[16];
    int32_t hello = tok_find(v, "\xe2\x96\x81Hello", 8);
    CHECK(hello >= 0);
    CHECK_EQ(tok_piece(v, hello, buf, sizeof buf), 6);
    CHECK(memcmp(buf, " Hello", 6) == 0);
    CHECK_EQ(tok_piece(v, tok_find(v, "<0x41>", 6), buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'A');
    CHECK_EQ(tok_piece(v, tok_bos(v), buf, sizeof buf), 0);
    CHECK_EQ(tok_piece_ex(v, tok_bos(v), 1, buf, sizeof buf), 3);
    CHECK(tok_piece(v, -1, buf, sizeof buf) < 0);
    CHECK(tok_piece(v, tok_n_vocab(v), buf, sizeof buf) < 0);
    tok_free(v);
}

TEST(stream_splits_characters_across_byte_level_tokens) {
    tok_vocab *v = load_shared("models/tokenizer/ggml-vocab-gpt-2.gguf");
    if (!v) return;
    CHECK(!tok_add_bos(v));
    /* rare CJK and emoji are split into several byte-level tokens in GPT-2 */
    const char *s = "\xf0\x9f\xa6\x99 \xe9\xbe\x98\xe9\xbe\x98 caf\xc3\xa9 \xf0\x9f\x98\x81!";
    int32_t *a;
    size_t na = enc(v, s, 0, 0, &a);
    char buf[64];
    int partial = 0; /* some token must hold an incomplete character */
    for (size_t i = 0; i < na; i++) {
        int k = tok_piece(v, a[i], buf, sizeof buf);
        CHECK(k >= 0);
        if (k > 0 && !hl_utf8_valid(buf, (size_t)k)) partial = 1;
    }
    CHECK(partial);
    int valid;
    char *streamed = stream_all(v, a, na, &valid);
    CHECK(valid);
    CHECK_STREQ(streamed, s);
    free(streamed);
    free(a);
    /* a character cut off at the end comes out at flush */
    tok_stream st;
    tok_stream_init(&st, v, 0);
    char out[256];
    int32_t first = v ? tok_find(v, "\xc3\xb0", 2) : -1; /* byte 0xF0 in GPT-2's alphabet */
    CHECK(first >= 0);
    CHECK_EQ(tok_stream_push(&st, first, out, sizeof out), 0);
    CHECK_EQ(tok_stream_flush(&st, out, sizeof out), 1);
    CHECK_EQ((unsigned char)out[0], 0xF0);
    /* invalid UTF-8 input does not crash and encodes to something */
    const char bad[] = "a\xff\xfe\xc3(\xe2\x82 z\x80";
    int32_t *ids;
    size_t n;
    hl_err err = {0};
    CHECK_EQ(tok_encode(v, bad, sizeof bad - 1, 1, 1, &ids, &n, &err), 0);
    CHECK(n > 0);
    free(ids);
    CHECK_EQ(tok_encode(v, "", 0, 1, 1, &ids, &n, &err), 0);
    CHECK_EQ(n, 0);
    free(ids);
    tok_free(v);
}

TEST(bert_cls_sep) {
    tok_vocab *v = load_shared("models/tokenizer/ggml-vocab-bert-bge.gguf");
    if (!v) return;
    int32_t *a;
    size_t na = enc(v, "Hello World", 1, 0, &a);
    CHECK(na >= 3);
    CHECK_EQ(a[0], tok_find(v, "[CLS]", 5));
    CHECK_EQ(a[na - 1], tok_find(v, "[SEP]", 5));
    char *text;
    size_t tl;
    hl_err err = {0};
    CHECK_EQ(tok_decode(v, a, na, 0, &text, &tl, &err), 0);
    CHECK_STREQ(text, "hello world");
    free(text);
    free(a);
    tok_free(v);
}

TEST(qwen_specials_eog_and_speed) {
    const char *m = hl_test_model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    if (!m) return;
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    hl_err lerr = {0};
    int64_t t0 = hl_now_ns();
    if (gguf_open(&f, m, &lerr) != 0) { hl_test_fail(__FILE__, __LINE__, "%s", lerr.msg); return; }
    int64_t t1 = hl_now_ns();
    if (tok_load(&v, f, &lerr) != 0) hl_test_fail(__FILE__, __LINE__, "%s", lerr.msg);
    int64_t t2 = hl_now_ns();
    gguf_close(f);
    if (!v) return;
    printf("    gguf_open %.1f ms, tok_load %d tokens: %.1f ms\n", (double)(t1 - t0) / 1e6, tok_n_vocab(v),
           (double)(t2 - t1) / 1e6);
    int32_t im_start = tok_find(v, "<|im_start|>", 12), im_end = tok_find(v, "<|im_end|>", 10);
    int32_t eot = tok_find(v, "<|endoftext|>", 13);
    CHECK(im_start >= 0 && im_end >= 0 && eot >= 0);
    CHECK(tok_is_eog(v, im_end));
    CHECK(tok_is_eog(v, eot));
    CHECK(!tok_is_eog(v, im_start));
    CHECK(!tok_add_bos(v));
    int32_t *a;
    size_t na = enc(v, "<|im_start|>user\nhi<|im_end|>\n", 1, 1, &a);
    CHECK(na >= 4);
    CHECK_EQ(a[0], im_start);
    int has_end = 0;
    for (size_t i = 0; i < na; i++) has_end |= a[i] == im_end;
    CHECK(has_end);
    free(a);
    na = enc(v, "<|im_start|>user", 1, 0, &a);
    for (size_t i = 0; i < na; i++) CHECK(a[i] != im_start);
    free(a);

    /* 10 KB of mixed prose and code, timed over several runs (best of) */
    char *big = malloc(10 * 1024 + 256);
    size_t bl = 0;
    static const char *parts[] = {"def fibonacci(n):\n    return n if n < 2 else fibonacci(n-1) + fibonacci(n-2)\n",
                                  "The quick brown fox jumps over the lazy dog 1234567890. ",
                                  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0 ",
                                  "    \t\r\n  ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "};
    for (int i = 0; bl < 10 * 1024; i++) {
        const char *p = parts[i % 5];
        memcpy(big + bl, p, strlen(p));
        bl += strlen(p);
    }
    int64_t best = INT64_MAX;
    for (int r = 0; r < 5; r++) {
        int32_t *ids;
        size_t n;
        hl_err err = {0};
        int64_t s0 = hl_now_ns();
        CHECK_EQ(tok_encode(v, big, bl, 0, 0, &ids, &n, &err), 0);
        int64_t d = hl_now_ns() - s0;
        if (d < best) best = d;
        char *text;
        size_t tl;
        if (r == 0) {
            CHECK_EQ(tok_decode(v, ids, n, 0, &text, &tl, &err), 0);
            CHECK(tl == bl && memcmp(text, big, bl) == 0);
            free(text);
            printf("    encode %zu bytes -> %zu tokens\n", bl, n);
        }
        free(ids);
    }
    printf("    encode best of 5: %.2f ms\n", (double)best / 1e6);
    CHECK(best < 100 * 1000000LL); /* budget 10 ms in release; slack for sanitizers and busy machines */
    free(big);
    tok_free(v);
}

TEST(smollm2_flags) {
    const char *m = hl_test_model("smollm2-135m-instruct-q4_1.gguf");
    if (!m) return;
    tok_vocab *v = load(m);
    if (!v) return;
    CHECK_STREQ(tok_pre_name(v), "smollm");
    CHECK(!tok_add_bos(v));
    int32_t im_end = tok_find(v, "<|im_end|>", 10);
    CHECK(im_end >= 0 && tok_is_eog(v, im_end));
    tok_free(v);
}

TEST(gemma3_spm_without_space_prefix) {
    const char *m = hl_test_model("gemma-3-270m-q4_k_m.gguf");
    if (!m) return;
    tok_vocab *v = load(m);
    if (!v) return;
    CHECK_EQ(tok_get_kind(v), TOK_KIND_SPM);
    CHECK(tok_add_bos(v));
    int32_t eot = tok_find(v, "<end_of_turn>", 13);
    CHECK(eot >= 0 && tok_is_eog(v, eot));
    /* no space prefix: "Hello" starts without U+2581, and decoding is exact */
    const char *s = "Hello world  \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa6\x99\n";
    int32_t *a;
    size_t na = enc(v, s, 1, 1, &a);
    CHECK(na >= 3);
    CHECK_EQ(a[0], tok_bos(v));
    CHECK_EQ(a[1], tok_find(v, "Hello", 5));
    char *text;
    size_t tl;
    hl_err err = {0};
    CHECK_EQ(tok_decode(v, a, na, 0, &text, &tl, &err), 0);
    CHECK_STREQ(text, s);
    free(text);
    free(a);
    tok_free(v);
}

/* Generation continues a prompt: at every split k of a token sequence, the
 * decoded prompt ids[0..k) followed by the stream primed with it and fed
 * ids[k..n) equals the decoded whole, so the first generated token keeps its
 * leading space (SPM and WordPiece drop it only at the start of the text). */
static void check_prompt_then_stream(const char *rel, const char *text) {
    tok_vocab *v = load_shared(rel);
    if (!v) return;
    int32_t *ids;
    size_t n = enc(v, text, 1, 0, &ids);
    CHECK(n >= 4);
    hl_err err = {0};
    char *whole;
    size_t wl;
    CHECK_EQ(tok_decode(v, ids, n, 0, &whole, &wl, &err), 0);
    size_t cap = tok_stream_bound(v);
    char *chunk = malloc(cap);
    for (size_t k = 0; k <= n; k++) {
        char *head;
        size_t hl;
        CHECK_EQ(tok_decode(v, ids, k, 0, &head, &hl, &err), 0);
        hl_buf got = {0};
        hl_buf_append(&got, head, hl);
        tok_stream st;
        tok_stream_init(&st, v, 0);
        tok_stream_prime(&st, ids, k);
        for (size_t i = k; i < n; i++) {
            int m = tok_stream_push(&st, ids[i], chunk, cap);
            CHECK(m >= 0);
            if (m > 0) hl_buf_append(&got, chunk, (size_t)m);
        }
        int m = tok_stream_flush(&st, chunk, cap);
        hl_buf_append(&got, chunk, (size_t)m);
        CHECK(got.len == wl && memcmp(got.data, whole, wl) == 0);
        if (got.len != wl || memcmp(got.data, whole, wl) != 0)
            hl_test_fail(__FILE__, __LINE__, "%s split at %zu: '%.*s' != '%s'", rel, k, (int)got.len, got.data, whole);
        hl_buf_free(&got);
        free(head);
    }
    free(chunk);
    free(whole);
    free(ids);
    tok_free(v);
}

TEST(prompt_then_stream_equals_whole) {
    check_prompt_then_stream("models/stories260K.gguf", "Once upon a time, there was a little girl.");
    check_prompt_then_stream("models/tokenizer/ggml-vocab-llama-spm.gguf", "Once upon a time, there was caf\xc3\xa9 \xf0\x9f\xa6\x99 x");
    check_prompt_then_stream("models/tokenizer/ggml-vocab-gpt-2.gguf", "Once upon a time, \xe9\xbe\x98 there was");
    check_prompt_then_stream("models/tokenizer/ggml-vocab-bert-bge.gguf", "Once upon a time, there was a girl");
}

/* A tiny byte-level BPE vocabulary written to a temporary GGUF: "h", "i",
 * "hi" (one merge) and the given special tokens (control, as converters
 * store added special tokens). */
static tok_vocab *special_vocab(const char *tag, const char *const *specials, int n_specials) {
    const char *toks[16] = {"h", "i", "hi"};
    int32_t types[16] = {TOK_TYPE_NORMAL, TOK_TYPE_NORMAL, TOK_TYPE_NORMAL};
    int n = 3;
    for (int k = 0; k < n_specials && n < 16; k++) toks[n] = specials[k], types[n++] = TOK_TYPE_CONTROL;
    static const char *const merges[] = {"h i"};
    char path[128];
    snprintf(path, sizeof path, "/tmp/hl_test_tok_%d_%s.gguf", (int)getpid(), tag);
    gguf_writer *w = gguf_writer_new();
    hl_err err = {0};
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    int rc = gguf_write(w, path, &err);
    gguf_writer_free(w);
    if (rc) {
        hl_test_fail(__FILE__, __LINE__, "write %s: %s", path, err.msg);
        return NULL;
    }
    tok_vocab *v = load(path);
    remove(path);
    return v;
}

/* gpt-oss (o200k_harmony): generation ends at <|return|> and <|call|>, not at
 * <|end|> — openai/gpt-oss-20b's generation_config.json lists eos ids 200002
 * (<|return|>), 199999 (<|endoftext|>) and 200012 (<|call|>), and <|end|>
 * (200007) only closes one message of several — and the message framing
 * tokens are rendered, as llama.cpp renders them for this vocabulary. Phi-3's
 * <|end|> (no <|return|>, no <|call|>) stays its end of turn, unrendered. */
TEST(harmony_vocab_eog_and_rendered_markers) {
    static const char *const harmony[] = {"<|endoftext|>", "<|start|>", "<|channel|>", "<|message|>", "<|constrain|>",
                                          "<|end|>", "<|return|>", "<|call|>"};
    tok_vocab *v = special_vocab("harmony", harmony, 8);
    if (!v) return;
    int32_t end = tok_find(v, "<|end|>", 7), ret = tok_find(v, "<|return|>", 10), call = tok_find(v, "<|call|>", 8);
    int32_t eot = tok_find(v, "<|endoftext|>", 13), ch = tok_find(v, "<|channel|>", 11);
    CHECK(end >= 0 && ret >= 0 && call >= 0 && eot >= 0 && ch >= 0);
    CHECK(!tok_is_eog(v, end));
    CHECK(tok_is_eog(v, ret));
    CHECK(tok_is_eog(v, call));
    CHECK(tok_is_eog(v, eot));
    CHECK(tok_eot(v) != end);
    char buf[32];
    for (int k = 1; k <= 5; k++) {
        int32_t id = tok_find(v, harmony[k], strlen(harmony[k]));
        int len = tok_piece(v, id, buf, sizeof buf);
        CHECK(len == (int)strlen(harmony[k]) && !memcmp(buf, harmony[k], (size_t)len));
    }
    CHECK_EQ(tok_piece(v, ret, buf, sizeof buf), 0);
    CHECK_EQ(tok_piece(v, call, buf, sizeof buf), 0);
    /* a streamed reply shows its framing: what the output splitter reads */
    int32_t ids[] = {ch, tok_find(v, "hi", 2), tok_find(v, "<|message|>", 11), tok_find(v, "h", 1), end, ret};
    char *text = NULL;
    size_t tl = 0;
    hl_err err = {0};
    CHECK_EQ(tok_decode(v, ids, 6, 0, &text, &tl, &err), 0);
    CHECK_STREQ(text, "<|channel|>hi<|message|>h<|end|>");
    free(text);
    tok_free(v);

    static const char *const phi[] = {"<|endoftext|>", "<|end|>", "<|user|>"};
    v = special_vocab("phi", phi, 3);
    if (!v) return;
    end = tok_find(v, "<|end|>", 7);
    CHECK(tok_is_eog(v, end));
    CHECK_EQ(tok_piece(v, end, buf, sizeof buf), 0);
    tok_free(v);
}
