/* Small inspection verbs: `tokenize` (text to token ids as JSON), `inspect`
 * (GGUF metadata and tensors), and `logits` (raw logits of a token sequence,
 * for the reference comparisons: teacher-forced evaluation, runner/eval.h,
 * not generation). */
#include "cli/cli.h"
#include "runner/eval.h"
#include "base/buf.h"
#include "base/json_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    int add_special = 0, parse_special = 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--add-special") == 0) add_special = 1;
        else if (strcmp(argv[i], "--no-parse-special") == 0) parse_special = 0;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: hyperlama tokenize MODEL TEXT [--add-special] [--no-parse-special]\n\n"
                   "Prints the token ids of TEXT as a JSON array. Special-token texts such as\n"
                   "<|im_start|> become their ids unless --no-parse-special; BOS/EOS are added\n"
                   "only with --add-special.\n");
            return 0;
        } else if (!model) model = argv[i];
        else if (!text) text = argv[i];
        else {
            fprintf(stderr, "Error: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model || !text) {
        fprintf(stderr, "Usage: hyperlama tokenize MODEL TEXT [--add-special]\n");
        return 2;
    }
    hl_err err = {0};
    gguf_file *f;
    if (gguf_open(&f, model, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    tok_vocab *v;
    if (tok_load(&v, f, &err)) {
        fprintf(stderr, "Error: %s: %s\n", model, err.msg);
        gguf_close(f);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tok_encode(v, text, strlen(text), add_special, parse_special, &ids, &n, &err);
    if (rc) fprintf(stderr, "Error: %s\n", err.msg);
    else {
        hl_buf b = {0};
        hl_buf_putc(&b, '[');
        for (size_t i = 0; i < n; i++) hl_buf_printf(&b, i ? ",%d" : "%d", ids[i]);
        hl_buf_puts(&b, "]\n");
        fputs(b.data, stdout);
        hl_buf_free(&b);
    }
    free(ids);
    tok_free(v);
    gguf_close(f);
    return rc ? 1 : 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0, tensors = 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--no-tensors") == 0) tensors = 0;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: hyperlama inspect FILE.gguf [--json] [--no-tensors]\n\n"
                   "Prints a GGUF file's metadata and tensor table, after validating the file.\n");
            return 0;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "Error: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "Usage: hyperlama inspect FILE.gguf [--json]\n");
        return 2;
    }
    hl_err err = {0};
    gguf_file *f;
    if (gguf_open(&f, path, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    if (json) {
        hl_buf b = {0};
        gguf_dump_json(&b, f, 16);
        if (b.data) fputs(b.data, stdout);
        fputc('\n', stdout);
        hl_buf_free(&b);
    } else {
        gguf_print(stdout, f, tensors);
    }
    gguf_close(f);
    return 0;
}

/* Parses "1,2,3" into a malloc'ed array. */
static int parse_ids(const char *s, int32_t **out, size_t *n) {
    size_t cap = 16, len = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (len == cap) {
            int32_t *t = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!t) {
                free(ids);
                return -1;
            }
            ids = t;
        }
        ids[len++] = (int32_t)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) {
            free(ids);
            return -1;
        }
    }
    *out = ids;
    *n = len;
    return 0;
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *text = NULL, *outpath = NULL;
    int all = 0, bad = 0;
    long greedy = 0;
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--all") == 0) all = 1;
        else if ((v = cli_flag_value("--tokens", argc, argv, &i, &bad))) tokens = v;
        else if ((v = cli_flag_value("--text", argc, argv, &i, &bad))) text = v;
        else if ((v = cli_flag_value("--out", argc, argv, &i, &bad))) outpath = v;
        else if ((v = cli_flag_value("--greedy", argc, argv, &i, &bad))) greedy = strtol(v, NULL, 10);
        else if (bad) return 2;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: hyperlama logits MODEL (--tokens 1,2,3 | --text TEXT) [--all] [--out FILE] [--greedy N]\n\n"
                   "Evaluates the tokens from position 0 and writes their logits to FILE:\n"
                   "int32 n_rows, int32 n_vocab, then n_rows x n_vocab float32 (every position\n"
                   "with --all, else the last). --greedy N then appends N greedy tokens and\n"
                   "prints their ids as a JSON array. --text tokenizes TEXT as a raw prompt.\n");
            return 0;
        } else {
            if (cli_parse_gen_opt_or_model(&o, argc, argv, &i, &model) < 0) return 2;
        }
    }
    if (!model || (!tokens && !text)) {
        fprintf(stderr, "Usage: hyperlama logits MODEL (--tokens 1,2,3 | --text TEXT) [--all] [--out FILE] [--greedy N]\n");
        return 2;
    }
    hl_loaded *lm;
    if (cli_load_model(model, &lm)) return 1;
    hl_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    if (tokens) {
        if (parse_ids(tokens, &ids, &n) || n == 0) {
            fprintf(stderr, "Error: --tokens expects comma-separated token ids\n");
            hl_loaded_free(lm);
            return 2;
        }
    } else if (hl_loaded_tokenize_prompt(lm, text, &ids, &n, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        hl_loaded_free(lm);
        return 1;
    }
    int32_t n_vocab = hl_model_hparams(lm->model)->n_vocab;
    hl_eval *s = NULL;
    hl_eval_params ep = hl_eval_default_params();
    ep.n_ctx = o.engine.num_ctx;
    if (ep.n_ctx < (int32_t)n + (int32_t)greedy + 1) ep.n_ctx = (int32_t)n + (int32_t)greedy + 1;
    cli_compute cc = {0};
    if (cli_compute_open(&cc, &o.engine, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        hl_loaded_free(lm);
        return 1;
    }
    ep.backend = cc.be;
    ep.n_batch = o.engine.n_batch;
    ep.kv_type = o.engine.kv_type;
    float *logits = NULL;
    size_t rows = all ? n : 1;
    if (hl_eval_new(&s, lm, &ep, &err) ||
        !(logits = malloc(rows * (size_t)n_vocab * sizeof *logits)) ||
        hl_eval_append(s, ids, n, all, logits, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg[0] ? err.msg : "out of memory");
        rc = 1;
        goto done;
    }
    if (outpath) {
        FILE *f = fopen(outpath, "wb");
        int32_t hdr[2] = {(int32_t)rows, n_vocab};
        if (!f || fwrite(hdr, sizeof hdr, 1, f) != 1 || fwrite(logits, sizeof(float) * (size_t)n_vocab, rows, f) != rows) {
            fprintf(stderr, "Error: cannot write %s\n", outpath);
            rc = 1;
        }
        if (f && fclose(f)) rc = 1;
    }
    if (greedy > 0) {
        /* greedy continuation: the argmax of the raw logits, ties to the
         * lowest id (llama.cpp's reference, no sampler chain) */
        const float *last = logits + (rows - 1) * (size_t)n_vocab;
        float *row = malloc((size_t)n_vocab * sizeof *row);
        if (!row) { rc = 1; goto done; }
        memcpy(row, last, (size_t)n_vocab * sizeof *row);
        printf("[");
        for (long g = 0; g < greedy; g++) {
            int32_t best = 0;
            for (int32_t t = 1; t < n_vocab; t++)
                if (row[t] > row[best]) best = t;
            printf(g ? ",%d" : "%d", best);
            if (g + 1 < greedy && hl_eval_append(s, &best, 1, 0, row, &err)) {
                fprintf(stderr, "Error: %s\n", err.msg);
                rc = 1;
                break;
            }
        }
        printf("]\n");
        free(row);
    }
done:
    free(logits);
    free(ids);
    hl_eval_free(s);
    cli_compute_close(&cc);
    hl_loaded_free(lm);
    return rc;
}
