/* libFuzzer target: the sentencepiece ModelProto reader (src/store/
 * convert_spm.c) on arbitrary bytes, as `create` meets a tokenizer.model in
 * a downloaded checkpoint. Besides memory safety it checks what the
 * converter relies on: every accepted piece is a NUL-terminated string of
 * its own, types are sentencepiece's 1..6, and the charsmap length matches
 * its buffer. A violation traps so libFuzzer reports it with the input. */
#include "store/convert.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0;
    store_spm m;
    hl_err err;
    if (store_spm_parse(data, size, &m, &err) == 0) {
        if (m.n <= 0 || (m.charsmap_len > 0) != (m.charsmap != NULL)) __builtin_trap();
        for (int64_t i = 0; i < m.n; i++) {
            if (!m.pieces[i] || strlen(m.pieces[i]) > size) __builtin_trap();
            if (m.types[i] < 1 || m.types[i] > 6) __builtin_trap();
        }
        store_spm_free(&m);
    }
    return 0;
}
