/* libFuzzer target: the registry's WWW-Authenticate parser on arbitrary
 * bytes (it reads a header from whatever server a pull talks to). Besides
 * memory safety, it checks the property pull relies on: an accepted
 * challenge has a realm, and writing it back as a canonical header (every
 * value quoted and escaped) parses to the same challenge. A violation traps
 * so libFuzzer reports it with the input. */
#include "store/registry.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static size_t put_quoted(char *out, size_t at, size_t cap, const char *name, const char *v) {
    if (!*v) return at;
    at += (size_t)snprintf(out + at, cap - at, "%s%s=\"", at > 7 ? "," : "", name);
    for (; *v && at + 4 < cap; v++) {
        if (*v == '"' || *v == '\\') out[at++] = '\\';
        out[at++] = *v;
    }
    if (at + 2 < cap) out[at++] = '"';
    out[at] = 0;
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    store_auth_challenge a, b;
    hl_err err;
    if (store_www_auth_parse((const char *)data, size, &a, &err) != 0) return 0;
    if (!a.realm[0]) __builtin_trap();
    static char text[3 * STORE_AUTH_HEADER_MAX];
    size_t at = (size_t)snprintf(text, sizeof text, "Bearer ");
    at = put_quoted(text, at, sizeof text, "realm", a.realm);
    at = put_quoted(text, at, sizeof text, "service", a.service);
    at = put_quoted(text, at, sizeof text, "scope", a.scope);
    if (at > STORE_AUTH_HEADER_MAX) return 0; /* escapes pushed it past the limit */
    if (store_www_auth_parse(text, at, &b, &err) != 0) __builtin_trap();
    if (strcmp(a.realm, b.realm) || strcmp(a.service, b.service) || strcmp(a.scope, b.scope)) __builtin_trap();
    return 0;
}
