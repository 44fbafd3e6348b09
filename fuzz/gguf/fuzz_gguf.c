/* libFuzzer target for the GGUF reader: parses the input as a GGUF image,
 * then walks everything a caller can reach (every kv, every array element
 * including nested arrays and strings, every tensor's first and last byte)
 * and runs the printer and the JSON dump, so any out-of-bounds access the
 * validation misses shows up under ASan. */
#include "gguf/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t walk_arr(const gguf_arr *a, int depth) {
    uint64_t acc = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        switch (a->type) {
        case GGUF_STRING: {
            gguf_str s = gguf_arr_str(a, i);
            if (s.len) acc += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
            break;
        }
        case GGUF_ARRAY: {
            gguf_arr sub;
            if (gguf_arr_get_arr(a, i, &sub) == 0) acc += walk_arr(&sub, depth + 1);
            break;
        }
        case GGUF_F32: case GGUF_F64: acc += (uint64_t)(gguf_arr_float(a, i) != 0); break;
        default: acc += (uint64_t)gguf_arr_int(a, i);
        }
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f;
    hl_err err;
    if (gguf_open_memory(&f, data, size, &err) != 0) {
        if (!err.msg[0]) abort(); /* every refusal must say why */
        return 0;
    }
    volatile uint64_t acc = 0;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        if (gguf_find(f, gguf_kv_key(kv)) != kv) abort();
        gguf_arr a;
        if (gguf_kv_arr(kv, &a) == 0) acc += walk_arr(&a, 0);
        gguf_str s = gguf_kv_str(kv);
        if (s.len) acc += (uint8_t)s.ptr[s.len - 1];
        acc += (uint64_t)gguf_kv_int(kv) + (uint64_t)(gguf_kv_float(kv) != 0);
        int64_t iv;
        double dv;
        gguf_get_int(f, gguf_kv_key(kv), &iv);
        gguf_get_float(f, gguf_kv_key(kv), &dv);
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t) abort();
        const uint8_t *p = t->data;
        acc += p[0] + p[t->size - 1];
    }
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        gguf_print(null, f, 1);
        fclose(null);
    }
    hl_buf b = {0};
    gguf_dump_json(&b, f, 16);
    hl_buf_free(&b);
    gguf_close(f);
    (void)acc;
    return 0;
}
