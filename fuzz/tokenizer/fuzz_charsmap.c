/* libFuzzer target: the Unigram model's precompiled charsmap reader and
 * normalizer (src/tokenizer/ugm.c) on arbitrary blobs. The input's first two
 * bytes give the charsmap's length, the charsmap follows, the rest is text
 * encoded with it by a small fixed "t5" vocabulary (written to a temporary
 * GGUF once and loaded through tok_load). A charsmap tok_ugm_init accepts
 * must never make the trie walk or the replacement strings read outside the
 * blob (ASan), and every id is in range. The vocabulary is this target's
 * own, so it swaps the charsmap through the internal tok_ugm_init. */
#include "gguf/gguf.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tok_vocab *vocab(void) {
    static tok_vocab *v;
    if (v) return v;
    static const char *const toks[] = {"<pad>", "</s>", "<unk>", "\xe2\x96\x81", "a", "b", "ab", "\xe2\x96\x81\x61",
                                       "\xc3\xa9", "fi", "A", " ", "x"};
    enum { N = sizeof toks / sizeof *toks };
    float scores[N];
    int32_t types[N];
    for (int i = 0; i < N; i++) scores[i] = -(float)i, types[i] = i < 2 ? 3 : i == 2 ? 2 : 1;
    char path[] = "/tmp/fuzz_charsmap_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    gguf_writer *w = gguf_writer_new();
    gguf_set_str(w, "tokenizer.ggml.model", "t5");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, N);
    gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, N);
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, N);
    gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 2);
    gguf_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", 1);
    hl_err err = {0};
    gguf_file *f = NULL;
    if (gguf_write(w, path, &err) || gguf_open(&f, path, &err) || tok_load(&v, f, &err)) {
        fprintf(stderr, "fuzz_charsmap: %s\n", err.msg);
        abort(); /* a harness setup error, not a finding */
    }
    gguf_close(f);
    gguf_writer_free(w);
    unlink(path);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1u << 16)) return 0;
    tok_vocab *v = vocab();
    size_t cl = (size_t)data[0] | (size_t)data[1] << 8;
    if (cl > size - 2) cl = size - 2;
    free(v->charsmap);
    v->charsmap = NULL;
    hl_err err;
    if (tok_ugm_init(v, data + 2, cl, &err) != 0) return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(v, (const char *)data + 2 + cl, size - 2 - cl, 1, 1, &ids, &n, &err) != 0) abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->n) abort();
    free(ids);
    return 0;
}
