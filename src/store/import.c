#include "store/store_internal.h"
int store_import_ollama(store *s, const char *r, const char *name, const store_ops *ops, int *n, hl_err *err) { (void)s;(void)r;(void)name;(void)ops;(void)n; return hl_err_set(err, HL_ENOTSUP, "todo"); }
