/* A dump tool disguised as a unit test, for the Python reference tests
 * (tests/gguf/): with HL_GGUF_DUMP=<file.gguf> it writes gguf_dump_json of
 * that file (every array element) to HL_GGUF_DUMP_OUT, or the open error as
 * {"error": ...}. Without the variable its test does nothing, so the unit
 * test runner passes it. */
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
