/* A dump tool disguised as a unit test, for the Python reference tests
 * (tests/gguf/): with HL_GGUF_DUMP=<file.gguf> it writes gguf_dump_json of
 * that file (every array element) to HL_GGUF_DUMP_OUT, or the open error as
 * {"error": ...}. With HL_GGUF_REWRITE=<in> and HL_GGUF_REWRITE_OUT=<out>
 * it copies every kv and tensor of <in> into <out> with our writer, so the
 * Python side can read the copy with gguf.GGUFReader. Without the variables
 * its tests do nothing, so the unit test runner passes them. */
#include "gguf/gguf.h"

#include "base/file.h"
#include "base/json_write.h"
#include "harness.h"

#include <stdlib.h>

TEST(dump_json_when_asked) {
    const char *in = getenv("HL_GGUF_DUMP"), *out = getenv("HL_GGUF_DUMP_OUT");
    if (!in || !out) return;
    hl_buf b = {0};
    gguf_file *f;
    hl_err err;
    if (gguf_open(&f, in, &err) == 0) {
        CHECK_EQ(gguf_dump_json(&b, f, -1), 0);
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
    CHECK_EQ(hl_write_file_atomic(out, b.data, b.len, &err), 0);
    hl_buf_free(&b);
}

TEST(rewrite_when_asked) {
    const char *in = getenv("HL_GGUF_REWRITE"), *out = getenv("HL_GGUF_REWRITE_OUT");
    if (!in || !out) return;
    gguf_file *f;
    hl_err err;
    int rc = gguf_open(&f, in, &err);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    gguf_writer *w = gguf_writer_new();
    gguf_set_kv_from(w, f);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK_EQ(gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, 1, &err), 0);
    }
    rc = gguf_write(w, out, &err);
    CHECK_EQ(rc, 0);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    gguf_writer_free(w);
    gguf_close(f);
}
