/* A tool for the Python reference tests (tests/tokenizer/), not a unit
 * test: built by `make tests` as build/<mode>/tools/dump_tok. It needs
 * HL_TOK_DUMP_MODEL (a GGUF path) and HL_TOK_DUMP_INPUT (exit status 2
 * without them, 1 on an error, message on stderr). The input file holds
 * texts separated by NUL bytes (a trailing NUL is optional); for each text
 * one line is printed to stdout: a JSON array of the ids from
 * tok_encode(add_special = 0, parse_special = 1), or of
 * tok_encode(add_special = HL_TOK_DUMP_ADD_SPECIAL, parse_special =
 * HL_TOK_DUMP_PARSE_SPECIAL) when those are set. With HL_TOK_DUMP_DECODE=1
 * each line is instead the JSON string of decode(encode(text)). */
#include "base/buf.h"
#include "base/file.h"
#include "base/json_write.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

int main(void) {
    const char *model = getenv("HL_TOK_DUMP_MODEL"), *input = getenv("HL_TOK_DUMP_INPUT");
    if (!model || !input) {
        fprintf(stderr, "usage: HL_TOK_DUMP_MODEL=model.gguf HL_TOK_DUMP_INPUT=texts dump_tok\n");
        return 2;
    }
    hl_err err = {0};
    char *data = NULL;
    size_t n = 0;
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    if (hl_read_file(input, (size_t)1 << 30, &data, &n, &err) || gguf_open(&f, model, &err) || tok_load(&v, f, &err)) {
        fprintf(stderr, "dump_tok: %s\n", err.msg);
        free(data);
        gguf_close(f);
        return 1;
    }
    gguf_close(f);
    int add_special = env_int("HL_TOK_DUMP_ADD_SPECIAL", 0), parse_special = env_int("HL_TOK_DUMP_PARSE_SPECIAL", 1);
    int decode = env_int("HL_TOK_DUMP_DECODE", 0);
    hl_buf out = {0};
    int rc = 0;
    for (size_t at = 0; at < n;) {
        const char *e = memchr(data + at, 0, n - at);
        size_t len = e ? (size_t)(e - (data + at)) : n - at;
        int32_t *ids = NULL;
        size_t nid = 0;
        if (tok_encode(v, data + at, len, add_special, parse_special, &ids, &nid, &err) != 0) {
            fprintf(stderr, "dump_tok: encode: %s\n", err.msg);
            rc = 1;
            break;
        }
        hl_buf_reset(&out);
        if (decode) {
            char *text;
            size_t tl;
            if (tok_decode(v, ids, nid, 0, &text, &tl, &err) != 0) {
                fprintf(stderr, "dump_tok: decode: %s\n", err.msg);
                free(ids);
                rc = 1;
                break;
            }
            hl_json_escape(&out, text, tl);
            free(text);
        } else {
            hl_buf_putc(&out, '[');
            for (size_t i = 0; i < nid; i++) hl_buf_printf(&out, i ? ",%d" : "%d", ids[i]);
            hl_buf_putc(&out, ']');
        }
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
        free(ids);
        at += len + 1;
    }
    fflush(stdout);
    hl_buf_free(&out);
    tok_free(v);
    free(data);
    return rc;
}
