/* placeholder: replaced by the real interpreter */
#include "gotmpl/gotmpl.h"
#include <stdlib.h>
#include <string.h>
struct gotmpl { char *text; };
int gotmpl_parse(gotmpl **out, const char *text, size_t len, hl_err *err) {
    (void)err;
    *out = calloc(1, sizeof **out);
    (*out)->text = strndup(text, len);
    return 0;
}
void gotmpl_free(gotmpl *t) { if (t) free(t->text); free(t); }
int gotmpl_render(const gotmpl *t, struct json_object *data, hl_buf *out, hl_err *err) {
    (void)data; (void)err; hl_buf_puts(out, t->text); return 0;
}
