/* A reader for the subset of TOML our config file uses: [tables] (dotted
 * names), key = value lines (bare, quoted or dotted keys), basic "..." and
 * literal '...' strings, integers (decimal, 0x/0o/0b, underscores), floats,
 * booleans and arrays of scalars (may span lines). Not supported (refused with
 * a clear error, never misread): multi-line strings, inline tables, arrays of
 * tables, dates. Errors read "file:line:col: what is wrong". Keys are stored
 * flattened ("server.port"); a key or table defined twice is an error.
 * Columns count characters (UTF-8), from 1. Limits: SRV_TOML_MAX_BYTES of
 * text, SRV_TOML_MAX_KEYS keys, arrays nested 8 deep with 65536 items. Part
 * of the server module. */
#ifndef HL_SERVER_TOML_H
#define HL_SERVER_TOML_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

typedef enum srv_toml_type { SRV_TOML_STR = 1, SRV_TOML_INT, SRV_TOML_FLOAT, SRV_TOML_BOOL, SRV_TOML_ARRAY } srv_toml_type;

typedef struct srv_toml_val {
    srv_toml_type type;
    char *s;     /* STR (NUL-terminated UTF-8) */
    int64_t i;   /* INT, BOOL */
    double f;    /* FLOAT (and INT, converted) */
    struct srv_toml_val *items; /* ARRAY */
    size_t n_items;
    int line, col; /* where the value starts, for validation messages */
} srv_toml_val;

typedef struct srv_toml_kv {
    char *key; /* "table.sub.key" */
    srv_toml_val v;
} srv_toml_kv;

typedef struct srv_toml {
    srv_toml_kv *kvs;
    size_t n, cap;
} srv_toml;

#define SRV_TOML_MAX_BYTES (1 << 20)
#define SRV_TOML_MAX_KEYS 4096

/* Parses text[0..n). fname only labels errors. On failure *out is empty. */
int srv_toml_parse(const char *text, size_t n, const char *fname, srv_toml *out, hl_err *err);
const srv_toml_val *srv_toml_get(const srv_toml *t, const char *key); /* NULL if absent */
void srv_toml_free(srv_toml *t);
const char *srv_toml_type_name(srv_toml_type t);

#endif
