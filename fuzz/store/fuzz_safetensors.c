/* libFuzzer target: the SafeTensors header parser (src/store/safetensors.c)
 * on arbitrary bytes, as `create` meets them in a downloaded checkpoint.
 * Besides memory safety it checks what the converter relies on: every
 * accepted tensor lies inside the image, its byte size is its element count
 * times its dtype size, and names are unique. A violation traps so libFuzzer
 * reports it with the input (corpus: mxfp4_u8 holds U8 blocks and scales). */
#include "store/safetensors.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0;
    st_set s = {0};
    hl_err err;
    if (st_parse_image(&s, data, size, 0, "fuzz", &err) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const st_tensor *t = &s.t[i];
            if (t->data < data || t->data + t->size > data + size) __builtin_trap();
            if ((uint64_t)t->n_elems * st_type_size(t->type) != t->size) __builtin_trap();
            int64_t n = 1;
            for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
            if (n != t->n_elems) __builtin_trap();
            if (st_find(&s, t->name) != t) __builtin_trap();
        }
    }
    st_close(&s);
    return 0;
}
