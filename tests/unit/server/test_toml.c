/* The server's TOML-subset reader and configuration file: valid documents
 * (every value form the subset has), every error with its file:line:col,
 * the limits, and the configuration's precedence (defaults < file <
 * environment). Expected values come from the TOML 1.0 specification, worked
 * out by hand; the commented defaults the server writes are checked against
 * srv_config_defaults by uncommenting them. */
#include "harness.h"
#include "server/server.h"
#include "server/toml.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *text, srv_toml *t, hl_err *err) { return srv_toml_parse(text, strlen(text), "f.toml", t, err); }

/* Parses text, expects failure with exactly msg (and code). */
static void expect_err(const char *text, int code, const char *msg) {
    srv_toml t;
    hl_err err = {0};
    int rc = parse(text, &t, &err);
    CHECK_EQ(rc, code);
    CHECK_STREQ(err.msg, msg);
    CHECK_EQ(t.n, 0);
    srv_toml_free(&t);
}

TEST(toml_valid_document) {
    const char *doc =
        "# a comment\n"
        "top = \"x\"  # trailing comment\n"
        "\n"
        "[server]\n"
        "host = \"0.0.0.0\"\n"
        "port = 8_080\n"
        "\"quoted key\" = 'lit\\n'\n"
        "a.b = true\n"
        "hex = 0xff\n"
        "oct = 0o17\n"
        "bin = 0b101\n"
        "neg = -42\n"
        "pos = +7\n"
        "f = 1.5e3\n"
        "g = -0.25\n"
        "ninf = -inf\n"
        "off = false\n"
        "arr = [ 1, 2,\n"
        "  3, # comment inside\n"
        "]\n"
        "nested = [[1], [\"a\", 'b']]\n"
        "empty = []\n"
        "esc = \"tab\\t\\\"q\\\" \\u00e9 \\U0001F600 \\\\\"\n"
        "[ engine . x ]\n"
        "k = 0\n";
    srv_toml t;
    hl_err err = {0};
    CHECK_EQ(parse(doc, &t, &err), 0);
    CHECK_EQ(t.n, 19);
    const srv_toml_val *v;
    CHECK((v = srv_toml_get(&t, "top")) && v->type == SRV_TOML_STR && !strcmp(v->s, "x"));
    CHECK((v = srv_toml_get(&t, "server.host")) && v->type == SRV_TOML_STR && !strcmp(v->s, "0.0.0.0"));
    CHECK((v = srv_toml_get(&t, "server.port")) && v->type == SRV_TOML_INT && v->i == 8080);
    CHECK(v && v->line == 6 && v->col == 8);
    /* a literal string keeps its backslash */
    CHECK((v = srv_toml_get(&t, "server.quoted key")) && v->type == SRV_TOML_STR && !strcmp(v->s, "lit\\n"));
    CHECK((v = srv_toml_get(&t, "server.a.b")) && v->type == SRV_TOML_BOOL && v->i == 1);
    CHECK((v = srv_toml_get(&t, "server.hex")) && v->i == 255);
    CHECK((v = srv_toml_get(&t, "server.oct")) && v->i == 15);
    CHECK((v = srv_toml_get(&t, "server.bin")) && v->i == 5);
    CHECK((v = srv_toml_get(&t, "server.neg")) && v->i == -42);
    CHECK((v = srv_toml_get(&t, "server.pos")) && v->i == 7);
    CHECK((v = srv_toml_get(&t, "server.f")) && v->type == SRV_TOML_FLOAT && v->f == 1500.0);
    CHECK((v = srv_toml_get(&t, "server.g")) && v->type == SRV_TOML_FLOAT && v->f == -0.25);
    CHECK((v = srv_toml_get(&t, "server.ninf")) && v->type == SRV_TOML_FLOAT && isinf(v->f) && v->f < 0);
    CHECK((v = srv_toml_get(&t, "server.off")) && v->type == SRV_TOML_BOOL && v->i == 0);
    CHECK((v = srv_toml_get(&t, "server.arr")) && v->type == SRV_TOML_ARRAY && v->n_items == 3);
    if (v && v->n_items == 3) CHECK(v->items[0].i == 1 && v->items[2].i == 3 && v->items[2].line == 19);
    CHECK((v = srv_toml_get(&t, "server.nested")) && v->n_items == 2);
    if (v && v->n_items == 2) {
        CHECK(v->items[0].type == SRV_TOML_ARRAY && v->items[0].n_items == 1 && v->items[0].items[0].i == 1);
        CHECK(v->items[1].n_items == 2 && !strcmp(v->items[1].items[1].s, "b"));
    }
    CHECK((v = srv_toml_get(&t, "server.empty")) && v->type == SRV_TOML_ARRAY && v->n_items == 0);
    CHECK((v = srv_toml_get(&t, "server.esc")) && v->s && !strcmp(v->s, "tab\t\"q\" \xc3\xa9 \xf0\x9f\x98\x80 \\"));
    CHECK((v = srv_toml_get(&t, "engine.x.k")) && v->i == 0);
    CHECK(srv_toml_get(&t, "server.missing") == NULL);
    srv_toml_free(&t);
}

TEST(toml_crlf_empty_and_comments_only) {
    srv_toml t;
    hl_err err = {0};
    CHECK_EQ(parse("[a]\r\nx = 1\r\ny = 'z'\r\n", &t, &err), 0);
    CHECK_EQ(t.n, 2);
    const srv_toml_val *v = srv_toml_get(&t, "a.y");
    CHECK(v && !strcmp(v->s, "z") && v->line == 3);
    srv_toml_free(&t);
    CHECK_EQ(parse("", &t, &err), 0);
    CHECK_EQ(t.n, 0);
    srv_toml_free(&t);
    CHECK_EQ(parse("# only\n\n   # comments\n", &t, &err), 0);
    CHECK_EQ(t.n, 0);
    srv_toml_free(&t);
    /* an empty quoted key and an empty table name are valid TOML */
    CHECK_EQ(parse("\"\" = 1\n[\"\"]\nk = 2\n", &t, &err), 0);
    CHECK(srv_toml_get(&t, "") && srv_toml_get(&t, ".k"));
    srv_toml_free(&t);
}

TEST(toml_errors_point_at_line_and_column) {
    expect_err("a = 1\nb = \"x\n", HL_EINVAL, "f.toml:2:7: unterminated string");
    expect_err("a = 1\n\n  a = 2\n", HL_EINVAL, "f.toml:3:3: key 'a' is defined twice");
    expect_err("[t]\nk = 1\n[s]\n[t]\n", HL_EINVAL, "f.toml:4:3: table [t] is defined twice");
    expect_err("x = {a = 1}\n", HL_EINVAL, "f.toml:1:5: inline tables are not supported");
    expect_err("[[arr]]\n", HL_EINVAL, "f.toml:1:2: arrays of tables ([[...]]) are not supported");
    expect_err("s = \"\"\"x\"\"\"\n", HL_EINVAL, "f.toml:1:6: multi-line strings are not supported");
    expect_err("s = '''x'''\n", HL_EINVAL, "f.toml:1:6: multi-line strings are not supported");
    expect_err("d = 1979-05-27\n", HL_EINVAL, "f.toml:1:15: not a valid number: '1979-05-27'");
    expect_err("n = 0123\n", HL_EINVAL, "f.toml:1:9: leading zeros are not allowed: '0123'");
    expect_err("n = 0x\n", HL_EINVAL, "f.toml:1:7: not a valid number: '0x'");
    expect_err("n = 0x-5\n", HL_EINVAL, "f.toml:1:9: not a valid number: '0x-5'");
    expect_err("n = 9223372036854775808\n", HL_EINVAL, "f.toml:1:24: number out of range: '9223372036854775808'");
    expect_err("n = 1.5e\n", HL_EINVAL, "f.toml:1:9: not a valid number: '1.5e'");
    expect_err("a = 1 b = 2\n", HL_EINVAL, "f.toml:1:7: expected the end of the line, found 'b'");
    expect_err("a 1\n", HL_EINVAL, "f.toml:1:3: expected '=' after the key");
    expect_err("= 1\n", HL_EINVAL, "f.toml:1:1: expected a key");
    expect_err("a =\n", HL_EINVAL, "f.toml:1:4: expected a value (string, number, boolean or array)");
    expect_err("a = yes\n", HL_EINVAL, "f.toml:1:5: expected a value (string, number, boolean or array)");
    expect_err("a = \"\\q\"\n", HL_EINVAL, "f.toml:1:7: unknown escape sequence");
    expect_err("a = \"\\u12\"\n", HL_EINVAL, "f.toml:1:10: bad \\u escape: expected a hex digit");
    expect_err("a = \"\\uD800\"\n", HL_EINVAL, "f.toml:1:6: \\u escape is not a valid code point");
    expect_err("a = \"x\x01\"\n", HL_EINVAL, "f.toml:1:7: control character in a string");
    expect_err("a = [1 2]\n", HL_EINVAL, "f.toml:1:8: expected ',' or ']' in an array");
    expect_err("[t\nk = 1\n", HL_EINVAL, "f.toml:1:3: expected ']' after the table name");
    expect_err("[]\n", HL_EINVAL, "f.toml:1:2: expected a key");
    /* columns count characters, not bytes: the é is one column */
    expect_err("\"\xc3\xa9\" = [1 2]\n", HL_EINVAL, "f.toml:1:10: expected ',' or ']' in an array");
    expect_err("a = '\xff'\n", HL_EINVAL, "f.toml:1:8: string is not valid UTF-8");
}

TEST(toml_limits) {
    expect_err("a = [[[[[[[[[1]]]]]]]]]\n", HL_EINVAL, "f.toml:1:14: arrays nested too deeply");
    srv_toml t;
    hl_err err = {0};
    /* eight levels are still fine */
    CHECK_EQ(parse("a = [[[[[[[[1]]]]]]]]\n", &t, &err), 0);
    srv_toml_free(&t);
    /* a NUL byte: counted length, not C string */
    CHECK_EQ(srv_toml_parse("a = 1\0b", 7, "f.toml", &t, &err), HL_EINVAL);
    CHECK_STREQ(err.msg, "f.toml: contains a NUL byte");
    /* size limit */
    size_t big = SRV_TOML_MAX_BYTES + 1;
    char *s = malloc(big);
    if (s) {
        memset(s, '#', big);
        CHECK_EQ(srv_toml_parse(s, big, "f.toml", &t, &err), HL_ERANGE);
        CHECK(strstr(err.msg, "larger than") != NULL);
        memset(s, ' ', big);
        CHECK_EQ(srv_toml_parse(s, big - 1, "f.toml", &t, &err), 0); /* exactly the limit: fine */
        srv_toml_free(&t);
        free(s);
    }
    /* key count limit (the duplicate check is quadratic) */
    hl_buf b = {0};
    for (int i = 0; i <= SRV_TOML_MAX_KEYS; i++) hl_buf_printf(&b, "k%d = %d\n", i, i);
    CHECK_EQ(srv_toml_parse(b.data, b.len, "f.toml", &t, &err), HL_ERANGE);
    CHECK(strstr(err.msg, "f.toml:4097:1: more than 4096 keys") != NULL);
    hl_buf_free(&b);
    /* long arrays */
    hl_buf_puts(&b, "a = [");
    for (int i = 0; i < 70000; i++) hl_buf_puts(&b, "1,");
    hl_buf_puts(&b, "]\n");
    CHECK_EQ(srv_toml_parse(b.data, b.len, "f.toml", &t, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "array too long") != NULL);
    hl_buf_free(&b);
}

/* ---- the configuration file --------------------------------------------- */

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/hl_test_toml_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) n = 0;
    close(fd);
    return path;
}

/* Loads text as a config file over the defaults; returns rc, fills msg. */
static int load(const char *text, srv_config *c, char *msg, size_t cap, char **path_out) {
    srv_config_defaults(c);
    char *path = write_tmp(text);
    if (!path) return -100;
    hl_err err = {0};
    int rc = srv_config_load_file(c, path, 0, &err);
    snprintf(msg, cap, "%s", err.msg);
    if (path_out) *path_out = path;
    else {
        unlink(path);
        free(path);
    }
    return rc;
}

TEST(config_file_values) {
    srv_config c;
    char msg[1024];
    int rc = load("[server]\nport = 8080\norigins = [\"https://a.example\", \"https://b.example,https://c.example\"]\n"
                  "api_key = 'k-12345678'\nmax_body = \"1MiB\"\nlog_format = \"json\"\n"
                  "[models]\nkeep_alive = \"1h30m\"\nmax_loaded = 2\n"
                  "[engine]\nkv_budget = \"256MiB\"\nprefix_cache = false\nthreads = 2\n",
                  &c, msg, sizeof msg, NULL);
    CHECK_EQ(rc, 0);
    CHECK_EQ(c.port, 8080);
    CHECK_EQ(c.n_origins, 3);
    if (c.n_origins == 3) CHECK_STREQ(c.origins[2], "https://c.example");
    CHECK_STREQ(c.api_key, "k-12345678");
    CHECK_EQ(c.max_body_bytes, 1048576);
    CHECK_EQ(c.log_json, 1);
    CHECK_EQ(c.keep_alive_ns, 5400ll * 1000000000ll);
    CHECK_EQ(c.max_loaded, 2);
    CHECK_EQ(c.kv_bytes, 256ll << 20);
    CHECK_EQ(c.prefix_cache, 0);
    CHECK_EQ(c.threads, 2);
    CHECK_STREQ(c.host, "127.0.0.1"); /* untouched keys keep their defaults */
    srv_config_free(&c);
    /* keep_alive as an integer is seconds; negative is forever */
    CHECK_EQ(load("[models]\nkeep_alive = -1\n", &c, msg, sizeof msg, NULL), 0);
    CHECK_EQ(c.keep_alive_ns, -1);
    srv_config_free(&c);
    CHECK_EQ(load("[models]\nkeep_alive = 9223372036854775807\n", &c, msg, sizeof msg, NULL), 0);
    CHECK(c.keep_alive_ns > 0);
    srv_config_free(&c);
}

TEST(config_file_errors_name_the_spot) {
    srv_config c;
    char msg[1024], want[1200];
    char *path = NULL;
    struct {
        const char *text, *tail;
        int code;
    } cases[] = {
        {"[server]\nbogus = 1\n", ":2:9: unknown setting 'server.bogus'", HL_EINVAL},
        {"[server]\nport = \"80\"\n", ":2:8: server.port must be an integer, not a string", HL_EINVAL},
        {"[server]\nport = 70000\n", ":2:8: server.port must be between 0 and 65535", HL_ERANGE},
        {"[engine]\nprefix_cache = 1\n", ":2:16: engine.prefix_cache must be true or false, not an integer", HL_EINVAL},
        {"[engine]\nkv_budget = \"lots\"\n", ":2:13: invalid size \"lots\" (use e.g. \"512MiB\", \"2GB\")", HL_EINVAL},
        {"[models]\nkeep_alive = \"5 minutes\"\n", ":2:14: invalid duration \"5 minutes\": unknown unit (ns, us, ms, s, m, h)", HL_EINVAL},
        {"[server]\nlog_format = \"xml\"\n", ":2:14: log_format must be \"pretty\" or \"json\"", HL_EINVAL},
        {"[server]\norigins = [1]\n", ":2:12: origins must hold strings", HL_EINVAL},
        {"[server]\nmax_body = 10\n", ":2:12: server.max_body must be between 1024 and 4294967296 bytes", HL_ERANGE},
        {"[server]\nport = 1\nport = 2\n", ":3:1: key 'server.port' is defined twice", HL_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = load(cases[i].text, &c, msg, sizeof msg, &path);
        CHECK_EQ(rc, cases[i].code);
        snprintf(want, sizeof want, "%s%s", path ? path : "", cases[i].tail);
        CHECK_STREQ(msg, want);
        if (path) unlink(path);
        free(path);
        path = NULL;
        srv_config_free(&c);
    }
}

/* "# key = value": a commented-out setting (other comments are prose). */
static int is_setting_comment(const char *p, size_t n) {
    if (n < 7 || p[0] != '#' || p[1] != ' ') return 0;
    size_t k = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz_");
    return k > 0 && 2 + k + 3 <= n && !memcmp(p + 2 + k, " = ", 3);
}

/* The commented defaults written on first start, uncommented, are the defaults. */
TEST(config_default_text_matches_defaults) {
    const char *text = srv_config_default_text();
    hl_buf b = {0};
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        /* "# key = value" lines are settings; other comments stay comments */
        if (is_setting_comment(p, n))
            hl_buf_append(&b, p + 2, n - 2);
        else
            hl_buf_append(&b, p, n);
        hl_buf_putc(&b, '\n');
        p += n + (nl != NULL);
    }
    srv_config c, d;
    char msg[1024];
    int rc = load(b.data, &c, msg, sizeof msg, NULL);
    CHECK_EQ(rc, 0);
    if (rc) fprintf(stderr, "%s\n%s", msg, b.data);
    srv_config_defaults(&d);
    hl_buf pc = {0}, pd = {0};
    free(c.config_path);
    c.config_path = NULL;
    srv_config_print(&c, &pc);
    srv_config_print(&d, &pd);
    CHECK_STREQ(pc.data, pd.data);
    /* and at least the settings we know of were uncommented */
    CHECK(strstr(b.data, "\nport = 11434\n") && strstr(b.data, "\nprefix_cache = true\n"));
    hl_buf_free(&pc);
    hl_buf_free(&pd);
    hl_buf_free(&b);
    srv_config_free(&c);
    srv_config_free(&d);
}

TEST(config_precedence_file_then_env) {
    srv_config c;
    char msg[1024];
    char *path = NULL;
    CHECK_EQ(load("[server]\nport = 1111\n[models]\nmax_loaded = 5\nkeep_alive = \"1m\"\n", &c, msg, sizeof msg, &path), 0);
    setenv("HYPERLAMA_HOST", "0.0.0.0:2222", 1);
    setenv("HYPERLAMA_MAX_LOADED_MODELS", "7", 1);
    hl_err err = {0};
    CHECK_EQ(srv_config_apply_env(&c, &err), 0);
    CHECK_EQ(c.port, 2222);            /* environment over file */
    CHECK_STREQ(c.host, "0.0.0.0");
    CHECK_EQ(c.max_loaded, 7);
    CHECK_EQ(c.keep_alive_ns, 60ll * 1000000000ll); /* file over default */
    setenv("HYPERLAMA_MAX_LOADED_MODELS", "many", 1);
    CHECK_EQ(srv_config_apply_env(&c, &err), HL_EINVAL);
    CHECK(strstr(err.msg, "HYPERLAMA_MAX_LOADED_MODELS") != NULL);
    unsetenv("HYPERLAMA_HOST");
    unsetenv("HYPERLAMA_MAX_LOADED_MODELS");
    srv_config_free(&c);
    if (path) unlink(path);
    free(path);
    /* a missing file: nothing changes, or (create) the commented defaults are written */
    srv_config_defaults(&c);
    char dir[] = "/tmp/hl_test_cfg_XXXXXX";
    if (mkdtemp(dir)) {
        char p2[256];
        snprintf(p2, sizeof p2, "%s/sub/config.toml", dir);
        CHECK_EQ(srv_config_load_file(&c, p2, 0, &err), 0);
        CHECK(access(p2, F_OK) != 0);
        CHECK_EQ(srv_config_load_file(&c, p2, 1, &err), 0);
        CHECK(access(p2, F_OK) == 0);
        unlink(p2);
        snprintf(p2, sizeof p2, "%s/sub", dir);
        rmdir(p2);
        rmdir(dir);
    }
    srv_config_free(&c);
}

TEST(durations_and_sizes) {
    int64_t v;
    hl_err err;
    CHECK_EQ(srv_parse_duration("5m", &v, &err), 0); CHECK_EQ(v, 300ll * 1000000000ll);
    CHECK_EQ(srv_parse_duration("1h30m", &v, &err), 0); CHECK_EQ(v, 5400ll * 1000000000ll);
    CHECK_EQ(srv_parse_duration("250ms", &v, &err), 0); CHECK_EQ(v, 250000000);
    CHECK_EQ(srv_parse_duration("30", &v, &err), 0); CHECK_EQ(v, 30ll * 1000000000ll);
    CHECK_EQ(srv_parse_duration("-1", &v, &err), 0); CHECK_EQ(v, -1);
    CHECK_EQ(srv_parse_duration("0", &v, &err), 0); CHECK_EQ(v, 0);
    CHECK_EQ(srv_parse_duration("5x", &v, &err), HL_EINVAL);
    CHECK_EQ(srv_parse_duration("", &v, &err), HL_EINVAL);
    CHECK_EQ(srv_parse_duration("nan", &v, &err), HL_EINVAL);
    CHECK_EQ(srv_parse_duration("1e999h", &v, &err), HL_EINVAL);
    CHECK_EQ(srv_parse_bytes("256MiB", &v, &err), 0); CHECK_EQ(v, 256ll << 20);
    CHECK_EQ(srv_parse_bytes("2GB", &v, &err), 0); CHECK_EQ(v, 2000000000ll);
    CHECK_EQ(srv_parse_bytes("1048576", &v, &err), 0); CHECK_EQ(v, 1048576);
    CHECK_EQ(srv_parse_bytes("1 KiB", &v, &err), 0); CHECK_EQ(v, 1024);
    CHECK_EQ(srv_parse_bytes("-1", &v, &err), HL_EINVAL);
    CHECK_EQ(srv_parse_bytes("9e30", &v, &err), HL_ERANGE);
    CHECK_EQ(srv_parse_bytes("12 parsecs", &v, &err), HL_EINVAL);
}
