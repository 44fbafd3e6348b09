/* libFuzzer target: grammar text from outside (a request's "grammar" GBNF or
 * a JSON Schema in "format" / "response_format") through the parser or the
 * schema compiler, then the recognizer over the rest of the input. The first
 * byte picks GBNF (even) or JSON Schema (odd); a NUL byte separates the
 * grammar from the text to match. Errors are fine; crashes, leaks, UB and
 * hangs are not. */
#include "grammar/grammar.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int schema = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    const char *sep = memchr(text, 0, n);
    size_t gl = sep ? (size_t)(sep - text) : n;
    hl_err err;
    hl_grammar *g = NULL;
    if (schema) {
        hl_buf b = {0};
        if (hl_json_schema_to_gbnf(text, gl, "", &b, &err) == 0) hl_grammar_parse(&g, b.data, b.len, &err);
        hl_buf_free(&b);
    } else {
        hl_grammar_parse(&g, text, gl, &err);
    }
    if (g) {
        int prefix_ok;
        if (sep) hl_grammar_accepts(g, sep + 1, n - gl - 1, &prefix_ok);
        hl_grammar_accepts(g, text, gl < 256 ? gl : 256, &prefix_ok);
        hl_grammar_free(g);
    }
    return 0;
}
