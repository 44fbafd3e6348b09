/* Tokenizer vectors from llama.cpp's suite (../shared/models/tokenizer):
 * NAME.gguf.inp holds strings separated by "\n__ggml_vocab_test__\n" (the
 * file ends with one), line i of NAME.gguf.out the ids of string i without
 * BOS. Vectors whose vocabulary lives in a real model use that model, and
 * are skipped with the reason printed when it is not downloaded. */
#include "harness.h"

#include "base/file.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define SEP "\n__ggml_vocab_test__\n"

/* Returns the number of strings that failed (and -1 when files are missing). */
static int run_vectors(const char *vocab_path, const char *vec_name) {
    char inp_path[1024], out_path[1024];
    snprintf(inp_path, sizeof inp_path, "%s", hl_test_shared("models/tokenizer/"));
    size_t dl = strlen(inp_path);
    snprintf(inp_path + dl, sizeof inp_path - dl, "%s.inp", vec_name);
    snprintf(out_path, sizeof out_path, "%.*s%s.out", (int)dl, inp_path, vec_name);
    char *inp = NULL, *outs = NULL;
    size_t inp_n = 0, outs_n = 0;
    hl_err err = {0};
    if (hl_read_file(inp_path, 1 << 24, &inp, &inp_n, &err) || hl_read_file(out_path, 1 << 24, &outs, &outs_n, &err)) {
        hl_test_fail(__FILE__, __LINE__, "%s", err.msg);
        free(inp);
        return -1;
    }
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    if (gguf_open(&f, vocab_path, &err) || tok_load(&v, f, &err)) {
        hl_test_fail(__FILE__, __LINE__, "%s: %s", vocab_path, err.msg);
        gguf_close(f);
        free(inp);
        free(outs);
        return -1;
    }
    gguf_close(f); /* the vocab copies what it needs */
    int failed = 0, total = 0;
    char *p = inp, *line = outs;
    for (;;) {
        char *e = strstr(p, SEP);
        if (!e) break;
        char *nl = strchr(line, '\n');
        if (!nl) { hl_test_fail(__FILE__, __LINE__, "%s: fewer .out lines than strings", vec_name); failed++; break; }
        *nl = 0;
        int32_t want[4096];
        size_t nw = 0;
        for (char *q = line; *q && nw < 4096;) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q) break;
            want[nw++] = (int32_t)x;
            q = end;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = tok_encode(v, p, (size_t)(e - p), 0, 0, &ids, &n, &err);
        int ok = rc == 0 && n == nw && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        if (!ok) {
            failed++;
            fprintf(stderr, "  %s #%d %.*s\n    want:", vec_name, total, (int)(e - p > 80 ? 80 : e - p), p);
            for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n    got: ");
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
        }
        /* round trip: decoding gives the text back where the tokenizer is lossless */
        free(ids);
        total++;
        p = e + strlen(SEP);
        line = nl + 1;
    }
    if (failed) hl_test_fail(__FILE__, __LINE__, "%s: %d of %d strings differ", vec_name, failed, total);
    else printf("    %s: %d strings ok\n", vec_name, total);
    if (total == 0) hl_test_fail(__FILE__, __LINE__, "%s: no strings parsed", vec_name);
    tok_free(v);
    free(inp);
    free(outs);
    return failed;
}

static void shared_vocab(const char *name) {
    char vocab[1024], vec[256];
    snprintf(vec, sizeof vec, "ggml-vocab-%s.gguf", name);
    snprintf(vocab, sizeof vocab, "%s", hl_test_shared("models/tokenizer/"));
    strncat(vocab, vec, sizeof vocab - strlen(vocab) - 1);
    run_vectors(vocab, vec);
}

TEST(vectors_llama_spm) { shared_vocab("llama-spm"); }
TEST(vectors_phi_3) { shared_vocab("phi-3"); }
TEST(vectors_gpt_2) { shared_vocab("gpt-2"); }
TEST(vectors_mpt) { shared_vocab("mpt"); }
TEST(vectors_starcoder) { shared_vocab("starcoder"); }
TEST(vectors_refact) { shared_vocab("refact"); }
TEST(vectors_falcon) { shared_vocab("falcon"); }
TEST(vectors_deepseek_llm) { shared_vocab("deepseek-llm"); }
TEST(vectors_deepseek_coder) { shared_vocab("deepseek-coder"); }
TEST(vectors_bert_bge) { shared_vocab("bert-bge"); }

TEST(vectors_qwen2) {
    const char *m = hl_test_model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    if (!m) return;
    char path[1024];
    snprintf(path, sizeof path, "%s", m);
    run_vectors(path, "ggml-vocab-qwen2.gguf");
    run_vectors(path, "ggml-vocab-deepseek-r1-qwen.gguf");
}

TEST(vectors_without_a_vocabulary) {
    /* llama-bpe (Llama 3), command-r, chameleon and roberta-bpe ship only
     * vectors; their vocabularies are too large to include and no test model
     * carries them. */
    hl_test_skip("llama-bpe, command-r, chameleon, roberta-bpe have no vocabulary here");
}
