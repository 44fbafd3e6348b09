/* The registry's WWW-Authenticate parser (store/registry.h): Bearer
 * challenges as Docker/OCI distribution and Ollama's registry send them, in
 * any parameter order, with quoted values holding commas, escapes and
 * spaces; and outside input that must be refused with a reason (other
 * schemes, no realm, unterminated quotes, control characters, repeated
 * parameters, stray characters, oversize headers), never read past len. */
#include "harness.h"

#include "store/registry.h"

#include <stdlib.h>
#include <string.h>

static int parse(const char *h, store_auth_challenge *c, hl_err *err) { return store_www_auth_parse(h, strlen(h), c, err); }

TEST(www_auth_docker_hub) {
    store_auth_challenge c;
    hl_err err = {0};
    CHECK_EQ(parse("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                   "scope=\"repository:library/ubuntu:pull\"", &c, &err), 0);
    CHECK_STREQ(c.realm, "https://auth.docker.io/token");
    CHECK_STREQ(c.service, "registry.docker.io");
    CHECK_STREQ(c.scope, "repository:library/ubuntu:pull");
}

TEST(www_auth_any_order_spaces_case_commas_escapes) {
    store_auth_challenge c;
    hl_err err = {0};
    CHECK_EQ(parse("  bearer   SCOPE=\"repository:a/b:pull,push\" ,  service = \"x, \\\"quoted\\\" y\",realm=\"https://r/t?a=1\"",
                   &c, &err), 0);
    CHECK_STREQ(c.realm, "https://r/t?a=1");
    CHECK_STREQ(c.service, "x, \"quoted\" y");
    CHECK_STREQ(c.scope, "repository:a/b:pull,push");
    /* token (unquoted) values, unknown parameters ignored, empty list elements */
    CHECK_EQ(parse("Bearer realm=\"https://r/t\",,error=insufficient_scope, service=svc,", &c, &err), 0);
    CHECK_STREQ(c.service, "svc");
    CHECK_STREQ(c.scope, "");
    /* a following challenge ends the Bearer one */
    CHECK_EQ(parse("Bearer realm=\"https://r/t\", Basic realm=\"x\"", &c, &err), 0);
    CHECK_STREQ(c.realm, "https://r/t");
}

TEST(www_auth_respects_len) {
    store_auth_challenge c;
    hl_err err = {0};
    const char *h = "Bearer realm=\"https://r/t\"GARBAGE";
    CHECK_EQ(store_www_auth_parse(h, strlen(h) - 7, &c, &err), 0);
    CHECK_STREQ(c.realm, "https://r/t");
    /* cut inside the quotes: unterminated, whatever follows in memory */
    CHECK(store_www_auth_parse(h, 20, &c, &err) != 0);
}

TEST(www_auth_malformed) {
    static const struct { const char *h, *why; } bad[] = {
        {"", "no authentication scheme"},
        {"   ", "no authentication scheme"},
        {"Basic realm=\"x\"", "only Bearer"},
        {"Bearerrealm=\"x\"", "only Bearer"},
        {"Bearer", "without a realm"},
        {"Bearer service=\"s\"", "without a realm"},
        {"Bearer realm=\"https://r/t", "unterminated"},
        {"Bearer realm=\"https://r/t\\", "unterminated"},
        {"Bearer realm=", "no value"},
        {"Bearer realm", "no value"},
        {"Bearer realm=\"\"", "empty"},
        {"Bearer =\"x\"", "parameter name"},
        {"Bearer realm=\"a\" x", "expected ','"},
        {"Bearer realm=\"a\"\"b\"", "expected ','"},
        {"Bearer realm=\"a\",realm=\"b\"", "twice"},
        {"Bearer realm=\"a\nb\"", "control character"},
        {"Bearer realm=\"a\", scope=\"x\x7f\"", "control character"},
        {"Bearer, realm=\"a\"", "unexpected character"},
        {"Bearer realm=a;b", "expected ','"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_auth_challenge c;
        memset(&c, 0x55, sizeof c);
        hl_err err = {0};
        if (parse(bad[i].h, &c, &err) == 0) {
            hl_test_fail(__FILE__, __LINE__, "accepted '%s'", bad[i].h);
            continue;
        }
        if (!strstr(err.msg, bad[i].why)) hl_test_fail(__FILE__, __LINE__, "'%s': message '%s' lacks '%s'", bad[i].h, err.msg, bad[i].why);
        CHECK(c.realm[0] == 0); /* nothing half-parsed is left behind */
    }
    /* embedded NUL inside len */
    store_auth_challenge c;
    hl_err err = {0};
    CHECK(store_www_auth_parse("Bearer realm=\"a\0b\"", 18, &c, &err) != 0);
}

TEST(www_auth_limits) {
    store_auth_challenge c;
    hl_err err = {0};
    size_t n = STORE_AUTH_HEADER_MAX + 10;
    char *h = malloc(n + 1);
    memcpy(h, "Bearer realm=\"", 14);
    memset(h + 14, 'a', n - 15);
    h[n - 1] = '"';
    h[n] = 0;
    CHECK(store_www_auth_parse(h, n, &c, &err) != 0);
    CHECK(strstr(err.msg, "too long") != NULL);
    /* a realm longer than its field, inside the header limit */
    size_t m = sizeof c.realm + 100;
    memset(h + 14, 'b', m);
    h[14 + m] = '"';
    CHECK(store_www_auth_parse(h, 15 + m, &c, &err) != 0);
    CHECK(strstr(err.msg, "realm is too long") != NULL);
    free(h);
}
