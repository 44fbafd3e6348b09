/* libFuzzer target for the tokenizer: loads the shared GPT-2 (byte-level
 * BPE), llama-spm (SentencePiece) and bert-bge (WordPiece) vocabularies once
 * ($HL_SHARED_DIR, default ../shared), then encodes arbitrary bytes with
 * every vocabulary, with and without special-token parsing, and decodes the
 * ids whole and streamed. Property: byte-level BPE round-trips valid UTF-8
 * exactly (decode(encode(x)) == x), and streaming gives the same bytes as
 * whole decoding. */
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuzz_state {
    tok_vocab *gpt2, *spm, *bert;
} fuzz_state;

static tok_vocab *load(const char *name) {
    const char *dir = getenv("HL_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tokenizer/%s", dir && *dir ? dir : "../shared", name);
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    hl_err err = {0};
    if (gguf_open(&f, path, &err) != 0 || tok_load(&v, f, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err.msg);
        abort(); /* a harness setup error, not a finding */
    }
    gguf_close(f);
    return v;
}

/* libFuzzer offers no context pointer: the vocabularies live here, loaded once */
static fuzz_state *state(void) {
    static fuzz_state st;
    if (!st.gpt2) {
        st.gpt2 = load("ggml-vocab-gpt-2.gguf");
        st.spm = load("ggml-vocab-llama-spm.gguf");
        st.bert = load("ggml-vocab-bert-bge.gguf");
    }
    return &st;
}

static void check(const tok_vocab *v, const uint8_t *data, size_t size, int parse_special, int roundtrip) {
    int32_t *ids = NULL;
    size_t n = 0;
    hl_err err = {0};
    if (tok_encode(v, (const char *)data, size, 1, parse_special, &ids, &n, &err) != 0) abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(v)) abort();
    char *text = NULL;
    size_t tl = 0;
    if (tok_decode(v, ids, n, 0, &text, &tl, &err) != 0) abort();
    if (roundtrip && (tl != size || memcmp(text, data, size) != 0)) abort();
    /* streaming yields the same bytes as whole decoding */
    tok_stream st;
    tok_stream_init(&st, v, 0);
    size_t cap = tok_stream_bound(v);
    char *chunk = malloc(cap), *all = malloc(tl + n * cap + 16);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int k = tok_stream_push(&st, ids[i], chunk, cap);
        if (k < 0) abort();
        memcpy(all + len, chunk, (size_t)k);
        len += (size_t)k;
    }
    len += (size_t)tok_stream_flush(&st, all + len, 16);
    if (len != tl || memcmp(all, text, tl) != 0) abort();
    free(chunk);
    free(all);
    free(text);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    fuzz_state *st = state();
    int valid = hl_utf8_valid((const char *)data, size);
    check(st->gpt2, data, size, 0, valid);
    check(st->gpt2, data, size, 1, 0);
    check(st->spm, data, size, 1, 0);
    check(st->bert, data, size, 0, 0);
    return 0;
}
