/* libFuzzer target: the config file's TOML-subset reader on arbitrary bytes,
 * then every string value through the duration and size parsers (the config
 * keys that take them). Errors are fine; crashes, leaks, UB and hangs (the
 * duplicate-key check is quadratic, hence the key limit) are not. */
#include "server/server.h"
#include "server/toml.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv_toml t;
    hl_err err;
    if (srv_toml_parse((const char *)data, size, "fuzz.toml", &t, &err) == 0) {
        for (size_t i = 0; i < t.n; i++) {
            const srv_toml_val *v = &t.kvs[i].v;
            int64_t x;
            if (v->type == SRV_TOML_STR) {
                srv_parse_duration(v->s, &x, &err);
                srv_parse_bytes(v->s, &x, &err);
            }
        }
        srv_toml_free(&t);
    }
    return 0;
}
