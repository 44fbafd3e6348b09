/* A tool for the Python reference tests (tests/gguf/), not a unit test: built
 * by `make tests` as build/<mode>/tools/dump_gguf.
 *
 * With HL_GGUF_DUMP=<file.gguf> and HL_GGUF_DUMP_OUT=<out.json> it writes
 * gguf_dump_json of that file (every array element) to the output, or the
 * open error as {"error": ..., "code": ...}. With HL_GGUF_REWRITE=<in> and
 * HL_GGUF_REWRITE_OUT=<out> it copies every kv and tensor of <in> into <out>
 * with our writer, so the Python side can read the copy with
 * gguf.GGUFReader. Exit status 0 on success, 1 on an error (message on
 * stderr), 2 when neither pair of variables is set. */
#include "gguf/gguf.h"

#include "base/file.h"
#include "base/json_write.h"

#include <stdio.h>
#include <stdlib.h>

static int dump_json(const char *in, const char *out) {
    hl_buf b = {0};
    gguf_file *f;
    hl_err err = {0};
    int rc = 0;
    if (gguf_open(&f, in, &err) == 0) {
        if (gguf_dump_json(&b, f, -1) != 0) {
            fprintf(stderr, "dump_gguf: gguf_dump_json failed on %s\n", in);
            rc = 1;
        }
        gguf_close(f);
    } else {
        hl_jw w;
        hl_jw_init(&w, &b);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "error");
        hl_jw_str(&w, err.msg);
        hl_jw_key(&w, "code");
        hl_jw_int(&w, err.code);
        hl_jw_obj_end(&w);
    }
    if (rc == 0 && hl_write_file_atomic(out, b.data, b.len, &err) != 0) {
        fprintf(stderr, "dump_gguf: %s\n", err.msg);
        rc = 1;
    }
    hl_buf_free(&b);
    return rc;
}

static int rewrite(const char *in, const char *out) {
    gguf_file *f;
    hl_err err = {0};
    if (gguf_open(&f, in, &err) != 0) {
        fprintf(stderr, "dump_gguf: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    gguf_writer *w = gguf_writer_new();
    gguf_set_kv_from(w, f);
    for (int64_t i = 0; i < gguf_n_tensors(f) && rc == 0; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, 1, &err) != 0) {
            fprintf(stderr, "dump_gguf: tensor %s: %s\n", t->name, err.msg);
            rc = 1;
        }
    }
    if (rc == 0 && gguf_write(w, out, &err) != 0) {
        fprintf(stderr, "dump_gguf: %s\n", err.msg);
        rc = 1;
    }
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}

int main(void) {
    const char *in = getenv("HL_GGUF_DUMP"), *out = getenv("HL_GGUF_DUMP_OUT");
    const char *rin = getenv("HL_GGUF_REWRITE"), *rout = getenv("HL_GGUF_REWRITE_OUT");
    if (in && out) return dump_json(in, out);
    if (rin && rout) return rewrite(rin, rout);
    fprintf(stderr, "usage: HL_GGUF_DUMP=in.gguf HL_GGUF_DUMP_OUT=out.json dump_gguf\n"
                    "       HL_GGUF_REWRITE=in.gguf HL_GGUF_REWRITE_OUT=out.gguf dump_gguf\n");
    return 2;
}
