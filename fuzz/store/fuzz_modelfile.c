/* libFuzzer target: the Modelfile parser on arbitrary text, and the round-trip
 * property the store relies on (show --modelfile, /save): whatever parses
 * must format to text that parses back to the same commands. A violation
 * traps so libFuzzer reports it with the input. */
#include "store/modelfile.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    store_modelfile a = {0}, b = {0};
    hl_err err;
    if (store_modelfile_parse_loose((const char *)data, size, &a, &err) == 0) {
        char *text = store_modelfile_format(&a);
        if (text) {
            if (store_modelfile_parse_loose(text, strlen(text), &b, &err) != 0) __builtin_trap();
            if (!store_modelfile_equal(&a, &b)) __builtin_trap();
            store_modelfile_free(&b);
            char *json = NULL;
            store_params_json(&a, &json, NULL, NULL, &err);
            free(json);
            free(text);
        }
    }
    store_modelfile_free(&a);
    return 0;
}
