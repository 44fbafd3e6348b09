/* The store verbs: list/ls, show, rm, cp, create, pull, push, import. Like
 * Ollama's CLI they talk to the server (starting one in the background when
 * none answers, see client.h): GET /api/tags, POST /api/show, DELETE
 * /api/delete, POST /api/copy, and /api/create and /api/pull whose NDJSON
 * progress drives the same progress bar. Output follows Ollama's CLI (the
 * column layout of list, the sections of show). `import` works on the local
 * store directly: it reads another program's files, which only this machine
 * can see. */
#include "cli/cli.h"
#include "cli/client.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/json_write.h"
#include "store/modelfile.h"
#include "store/store.h"

#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static int open_store(store **s) {
    hl_err err = {0};
    if (store_open(s, NULL, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int fail(store *s, const hl_err *err) {
    fprintf(stderr, "Error: %s\n", err->msg);
    store_close(s);
    return 1;
}

void cli_unknown_flag(const char *arg) {
    /* cobra's wording, as Ollama prints it */
    if (arg[1] != '-') fprintf(stderr, "Error: unknown shorthand flag: '%c' in %s\n", arg[1], arg);
    else fprintf(stderr, "Error: unknown flag: %.*s\n", (int)strcspn(arg, "="), arg);
}

int cli_connect(cli_client *c) {
    hl_err err = {0};
    if (cli_client_init(c, &err) || cli_client_ensure(c, 10000, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* A JSON request body {"k1": v1, ...} with string values. */
static char *json_body(const char *k1, const char *v1, const char *k2, const char *v2) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    if (k1) { hl_jw_key(&w, k1); hl_jw_str(&w, v1); }
    if (k2) { hl_jw_key(&w, k2); hl_jw_str(&w, v2); }
    hl_jw_obj_end(&w);
    return hl_buf_take(&b);
}

/* "2024-05-01T10:20:30.123Z" (or with a +hh:mm offset) → unix seconds. */
int64_t cli_parse_iso(const char *s) {
    struct tm tm = {0};
    int n = 0;
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = (int64_t)timegm(&tm);
    const char *p = s + n;
    if (*p == '.') while (*++p >= '0' && *p <= '9') {}
    int oh, om;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%d:%d", &oh, &om) == 2) t -= (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    return t;
}

static size_t edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 256 || nb > 256) return SIZE_MAX;
    size_t row[257];
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

char *cli_suggest(cli_client *c, const char *name) {
    struct json_object *tags, *models;
    if (cli_json(c, "GET", "/api/tags", NULL, &tags, NULL)) return NULL;
    hl_buf b = {0};
    if (tags && json_object_object_get_ex(tags, "models", &models) && json_object_is_type(models, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(models); i++) {
            const char *disp = cli_jstr(json_object_array_get_idx(models, i), "name");
            if (!disp) continue;
            /* the bare model part: no host/namespace, no tag */
            char bare[512];
            const char *slash = strrchr(disp, '/');
            snprintf(bare, sizeof bare, "%s", slash ? slash + 1 : disp);
            char *colon = strchr(bare, ':');
            if (colon) *colon = 0;
            if (edit_distance(name, disp) <= 3 || edit_distance(name, bare) <= 2 || strcasestr(disp, name)) {
                if (b.len) hl_buf_puts(&b, ", ");
                hl_buf_puts(&b, disp);
            }
        }
    }
    if (tags) json_object_put(tags);
    if (!b.len || b.oom) {
        hl_buf_free(&b);
        return NULL;
    }
    return hl_buf_take(&b);
}

/* Prints a not-found error with near matches, as the store would. */
static void print_not_found(cli_client *c, const char *name, const hl_err *err) {
    char *sug = err->code == HL_ENOENT ? cli_suggest(c, name) : NULL;
    if (sug) fprintf(stderr, "Error: %s; did you mean: %s?\n", err->msg, sug);
    else if (err->code == HL_ENOENT) fprintf(stderr, "Error: %s; try \"hyperlama pull %s\"\n", err->msg, name);
    else fprintf(stderr, "Error: %s\n", err->msg);
    free(sug);
}

/* Columns padded to the widest cell, 4 spaces apart, as Ollama's tables. */
void cli_print_table(const char *const *hdr, int ncol, char (*cells)[8][256], size_t nrow) {
    size_t w[8];
    for (int c = 0; c < ncol; c++) w[c] = strlen(hdr[c]);
    for (size_t i = 0; i < nrow; i++)
        for (int c = 0; c < ncol; c++)
            if (strlen(cells[i][c]) > w[c]) w[c] = strlen(cells[i][c]);
    for (int c = 0; c < ncol; c++) {
        if (c < ncol - 1) printf("%-*s    ", (int)w[c], hdr[c]);
        else printf("%s\n", hdr[c]);
    }
    for (size_t i = 0; i < nrow; i++)
        for (int c = 0; c < ncol; c++) {
            if (c < ncol - 1) printf("%-*s    ", (int)w[c], cells[i][c]);
            else printf("%s\n", cells[i][c]);
        }
}

/* ---- list ---- */
int cmd_list(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("List models\n\nUsage:\n  hyperlama list [flags]\n\nAliases:\n  list, ls\n\n"
               "Models live in $HYPERLAMA_MODELS (default ~/.hyperlama/models) of the server\n"
               "at $HYPERLAMA_HOST (default 127.0.0.1:11434).\n");
        return 0;
    }
    if (argc > 0) return cli_no_arguments(argv[0]);
    cli_client c;
    if (cli_connect(&c)) return 1;
    hl_err err = {0};
    struct json_object *tags, *models = NULL;
    if (cli_json(&c, "GET", "/api/tags", NULL, &tags, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    if (tags) json_object_object_get_ex(tags, "models", &models);
    size_t n = models && json_object_is_type(models, json_type_array) ? json_object_array_length(models) : 0;
    char (*cells)[8][256] = calloc(n ? n : 1, sizeof *cells);
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < n && cells; i++) {
        struct json_object *m = json_object_array_get_idx(models, i);
        const char *name = cli_jstr(m, "name"), *digest = cli_jstr(m, "digest");
        if (digest && !strncmp(digest, "sha256:", 7)) digest += 7;
        snprintf(cells[i][0], 256, "%s", name ? name : "");
        snprintf(cells[i][1], 256, "%.12s", digest ? digest : "");
        store_human_bytes(cli_jint(m, "size"), cells[i][2], 256);
        store_human_time(cli_parse_iso(cli_jstr(m, "modified_at")), now, cells[i][3], 256);
    }
    static const char *const hdr[4] = {"NAME", "ID", "SIZE", "MODIFIED"};
    if (cells) cli_print_table(hdr, 4, cells, n);
    free(cells);
    if (tags) json_object_put(tags);
    return 0;
}

/* ---- show ---- */
static void print_indented(const char *text, int max_lines) {
    int lines = 0;
    const char *p = text;
    while (*p && (max_lines <= 0 || lines < max_lines)) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0 || lines > 0) printf("    %.*s\n", (int)n, p);
        lines++;
        p = e ? e + 1 : p + n;
    }
}

/* /api/show's "parameters" text: one "key value" line each, the value as
 * JSON (strings quoted). Returned as key/value pairs with plain values. */
int cli_parse_param_text(const char *text, store_modelfile *mf) {
    hl_err e;
    for (const char *p = text ? text : ""; *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char line[8192];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        p += n + (eol ? 1 : 0);
        char *key = line;
        while (*key == ' ') key++;
        char *val = key + strcspn(key, " \t");
        if (!*key || !*val) continue;
        *val++ = 0;
        while (*val == ' ' || *val == '\t') val++;
        struct json_object *v = json_tokener_parse(val);
        const char *plain = v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : val;
        int rc = store_modelfile_add(mf, STORE_MF_PARAMETER, key, plain, &e);
        if (v) json_object_put(v);
        if (rc) return rc;
    }
    return 0;
}

static void print_params(const char *text, int bare) {
    store_modelfile mf = {0};
    if (cli_parse_param_text(text, &mf)) {
        store_modelfile_free(&mf);
        return;
    }
    size_t w = 0;
    for (size_t i = 0; i < mf.n; i++)
        if (strlen(mf.cmds[i].key) > w) w = strlen(mf.cmds[i].key);
    for (size_t i = 0; i < mf.n; i++) {
        const char *k = mf.cmds[i].key, *v = mf.cmds[i].value;
        int quote = !strcmp(k, "stop");
        if (bare) printf("%-*s %s%s%s\n", (int)w + 4, k, quote ? "\"" : "", v, quote ? "\"" : "");
        else printf("    %-*s    %s%s%s\n", (int)w, k, quote ? "\"" : "", v, quote ? "\"" : "");
    }
    store_modelfile_free(&mf);
}

int cli_show_model(cli_client *c, const char *name, struct json_object **out) {
    hl_err err = {0};
    char *body = json_body("model", name, NULL, NULL);
    int rc = cli_json(c, "POST", "/api/show", body, out, &err);
    free(body);
    if (rc) print_not_found(c, name, &err);
    return rc;
}

/* The hardware-fit row: the estimate `run` checks before loading, for the
 * context the model's num_ctx parameter (else the default) asks for. */
static void print_fit(struct json_object *s) {
    cli_mem_shape m;
    if (cli_mem_shape_show(s, &m, NULL)) return;
    int32_t num_ctx = 0;
    store_modelfile p = {0};
    if (cli_parse_param_text(cli_jstr(s, "parameters"), &p) == 0)
        for (size_t i = 0; i < p.n; i++)
            if (!strcmp(p.cmds[i].key, "num_ctx")) num_ctx = atoi(p.cmds[i].value);
    store_modelfile_free(&p);
    cli_mem_need n;
    cli_mem_estimate(&m, num_ctx, &n);
    char line[768];
    cli_mem_fit_line(&n, line, sizeof line);
    printf("    %-20s%s\n", cli_mem_fits(&n) ? "fits in memory" : "does not fit", line);
}

/* The default `show` page from an /api/show reply. */
void cli_print_show(struct json_object *s) {
    struct json_object *info = NULL, *details = NULL, *v;
    json_object_object_get_ex(s, "model_info", &info);
    json_object_object_get_ex(s, "details", &details);
    const char *arch = cli_jstr(info, "general.architecture");
    char key[160];
    long long ctx = 0, embd = 0;
    if (arch) {
        snprintf(key, sizeof key, "%s.context_length", arch);
        if (json_object_object_get_ex(info, key, &v)) ctx = json_object_get_int64(v);
        snprintf(key, sizeof key, "%s.embedding_length", arch);
        if (json_object_object_get_ex(info, key, &v)) embd = json_object_get_int64(v);
    }
    const char *params = cli_jstr(details, "parameter_size"), *quant = cli_jstr(details, "quantization_level");
    printf("  Model\n");
    printf("    %-20s%s\n", "architecture", arch ? arch : "");
    printf("    %-20s%s\n", "parameters", params ? params : "");
    printf("    %-20s%lld\n", "context length", ctx);
    printf("    %-20s%lld\n", "embedding length", embd);
    printf("    %-20s%s\n", "quantization", quant ? quant : "");
    const char *backend = cli_jstr(s, "backend");
    if (backend && *backend) printf("    %-20s%s\n", "backend", backend);
    print_fit(s);
    printf("\n");
    cli_print_show_sections(s);
}

void cli_print_show_sections(struct json_object *s) {
    const char *t = cli_jstr(s, "parameters");
    if (t && *t) {
        printf("  Parameters\n");
        print_params(t, 0);
        printf("\n");
    }
    if ((t = cli_jstr(s, "system")) && *t) {
        printf("  System\n");
        print_indented(t, 2);
        printf("\n");
    }
    if ((t = cli_jstr(s, "license")) && *t) {
        printf("  License\n");
        print_indented(t, 2);
        printf("\n");
    }
}

int cmd_show(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Show information for a model\n\nUsage:\n  hyperlama show MODEL [flags]\n\nFlags:\n"
               "      --license      Show license of a model\n      --modelfile    Show Modelfile of a model\n"
               "      --parameters   Show parameters of a model\n      --system       Show system message of a model\n"
               "      --template     Show template of a model\n");
        return argc < 1 ? 2 : 0;
    }
    const char *name = NULL, *what = NULL;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-') {
            if (!strcmp(argv[i], "--license") || !strcmp(argv[i], "--modelfile") || !strcmp(argv[i], "--parameters") ||
                !strcmp(argv[i], "--system") || !strcmp(argv[i], "--template")) {
                if (what) {
                    fprintf(stderr, "Error: only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified\n");
                    return 2;
                }
                what = argv[i] + 2;
            } else {
                cli_unknown_flag(argv[i]);
                return 2;
            }
        } else if (!name) name = argv[i];
        else {
            fprintf(stderr, "Error: show takes one model\n");
            return 2;
        }
    }
    if (!name) {
        fprintf(stderr, "Error: show needs a model name\n");
        return 2;
    }
    cli_client c;
    if (cli_connect(&c)) return 1;
    struct json_object *s;
    if (cli_show_model(&c, name, &s)) return 1;
    const char *field = what && !strcmp(what, "parameters") ? NULL : what;
    const char *t = field ? cli_jstr(s, field) : NULL;
    if (what && !strcmp(what, "modelfile")) {
        if (t) fputs(t, stdout);
    } else if (field) {
        if (t && *t) printf("%s\n", t);
    } else if (what) {
        print_params(cli_jstr(s, "parameters"), 1);
    } else {
        cli_print_show(s);
    }
    json_object_put(s);
    return 0;
}

/* ---- rm / cp ---- */
int cmd_rm(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Remove a model\n\nUsage:\n  hyperlama rm MODEL [MODEL...]\n");
        return argc < 1 ? 2 : 0;
    }
    cli_client c;
    if (cli_connect(&c)) return 1;
    int status = 0;
    for (int i = 0; i < argc; i++) {
        hl_err err = {0};
        char *body = json_body("model", argv[i], NULL, NULL);
        int rc = cli_request(&c, "DELETE", "/api/delete", body, NULL, NULL, &err);
        free(body);
        if (rc) {
            fprintf(stderr, "Error: %s\n", err.msg);
            status = 1;
        } else {
            printf("deleted '%s'\n", argv[i]);
        }
    }
    return status;
}

int cmd_cp(int argc, char **argv) {
    if (wants_help(argc, argv) || argc != 2) {
        printf("Copy a model\n\nUsage:\n  hyperlama cp SOURCE DESTINATION\n");
        return argc != 2 && !wants_help(argc, argv) ? 2 : 0;
    }
    cli_client c;
    if (cli_connect(&c)) return 1;
    hl_err err = {0};
    char *body = json_body("source", argv[0], "destination", argv[1]);
    int rc = cli_request(&c, "POST", "/api/copy", body, NULL, NULL, &err);
    free(body);
    if (rc) {
        print_not_found(&c, argv[0], &err);
        return 1;
    }
    printf("copied '%s' to '%s'\n", argv[0], argv[1]);
    return 0;
}

static void on_warn_print(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "warning: %s\n", msg);
}

/* FROM as the server must read it: a path (relative to the Modelfile, or
 * ~/...) becomes absolute, since the server's working directory is not
 * ours; a store name stays as it is. Same rule as the store's create. */
static void absolute_from(const char *v, const char *base_dir, char *out, size_t cap) {
    int looks = v[0] == '/' || v[0] == '.' || v[0] == '~' || strstr(v, ".gguf") || strchr(v, '\\');
    char path[PATH_MAX + 512];
    if (v[0] == '/') snprintf(path, sizeof path, "%s", v);
    else if (v[0] == '~' && v[1] == '/' && getenv("HOME")) snprintf(path, sizeof path, "%s%s", getenv("HOME"), v + 1);
    else snprintf(path, sizeof path, "%s/%s", base_dir, v);
    if (looks || access(path, R_OK) == 0) snprintf(out, cap, "%s", path);
    else snprintf(out, cap, "%s", v);
}

/* The /api/create body for a server on another machine, as Ollama's CLI
 * builds it: the GGUF uploaded as a blob ("files"), the other instructions
 * as fields. */
static int remote_create_body(cli_client *c, const store_modelfile *mf, const char *name, const char *quant, hl_buf *b,
                              hl_err *err) {
    hl_jw w;
    hl_jw_init(&w, b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model"); hl_jw_str(&w, name);
    if (quant) { hl_jw_key(&w, "quantize"); hl_jw_str(&w, quant); }
    hl_buf license = {0}, msgs = {0};
    hl_jw mw;
    hl_jw_init(&mw, &msgs);
    hl_jw_arr_begin(&mw);
    int rc = 0;
    for (size_t i = 0; !rc && i < mf->n; i++) {
        const store_mf_cmd *cmd = &mf->cmds[i];
        switch (cmd->kind) {
        case STORE_MF_FROM:
            if (cmd->value[0] == '/') {
                char digest[72];
                if (access(cmd->value, R_OK) != 0) {
                    rc = hl_err_set(err, HL_ENOENT, "line %d: FROM %s: no such file", cmd->line, cmd->value);
                    break;
                }
                struct stat fst;
                if (stat(cmd->value, &fst) == 0 && S_ISDIR(fst.st_mode)) {
                    rc = hl_err_set(err, HL_ENOTSUP, "line %d: FROM %s is a folder: a remote server cannot be sent a "
                                    "checkpoint to convert; run create on the server's machine", cmd->line, cmd->value);
                    break;
                }
                fprintf(stderr, "uploading %s\n", cmd->value);
                if ((rc = cli_upload_blob(c, cmd->value, digest, err))) break;
                const char *base = strrchr(cmd->value, '/') + 1;
                hl_jw_key(&w, "files");
                hl_jw_obj_begin(&w);
                hl_jw_key(&w, base); hl_jw_str(&w, digest);
                hl_jw_obj_end(&w);
            } else {
                hl_jw_key(&w, "from"); hl_jw_str(&w, cmd->value);
            }
            break;
        case STORE_MF_TEMPLATE: hl_jw_key(&w, "template"); hl_jw_str(&w, cmd->value); break;
        case STORE_MF_SYSTEM: hl_jw_key(&w, "system"); hl_jw_str(&w, cmd->value); break;
        case STORE_MF_LICENSE:
            if (license.len) hl_buf_puts(&license, "\n\n");
            hl_buf_puts(&license, cmd->value);
            break;
        case STORE_MF_MESSAGE:
            hl_jw_obj_begin(&mw);
            hl_jw_key(&mw, "role"); hl_jw_str(&mw, cmd->key);
            hl_jw_key(&mw, "content"); hl_jw_str(&mw, cmd->value);
            hl_jw_obj_end(&mw);
            break;
        case STORE_MF_ADAPTER:
            rc = hl_err_set(err, HL_ENOTSUP, "line %d: ADAPTER is not supported yet", cmd->line);
            break;
        case STORE_MF_PARAMETER: break;
        }
    }
    hl_jw_arr_end(&mw);
    char *params = NULL;
    if (!rc) rc = store_params_json(mf, &params, NULL, NULL, err);
    if (!rc) {
        if (params) { hl_jw_key(&w, "parameters"); hl_jw_raw(&w, params, strlen(params)); }
        if (license.len) { hl_jw_key(&w, "license"); hl_jw_str(&w, license.data); }
        if (msgs.len > 2) { hl_jw_key(&w, "messages"); hl_jw_raw(&w, msgs.data, msgs.len); }
    }
    hl_jw_obj_end(&w);
    free(params);
    hl_buf_free(&license);
    hl_buf_free(&msgs);
    return rc;
}

int cmd_create(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Create a model from a Modelfile\n\nUsage:\n  hyperlama create MODEL [flags]\n\nFlags:\n"
               "  -f, --file string       Name of the Modelfile (default \"Modelfile\")\n"
               "  -q, --quantize string   Quantize model to this level (e.g. q4_K_M, q8_0)\n");
        return argc < 1 ? 2 : 0;
    }
    const char *name = NULL, *file = "Modelfile", *quant = NULL;
    for (int i = 0; i < argc; i++) {
        int bad = 0;
        const char *v;
        if ((v = cli_flag_value("-f", argc, argv, &i, &bad)) || (v = cli_flag_value("--file", argc, argv, &i, &bad))) file = v;
        else if ((v = cli_flag_value("-q", argc, argv, &i, &bad)) || (v = cli_flag_value("--quantize", argc, argv, &i, &bad))) quant = v;
        else if (bad) return 2;
        else if (argv[i][0] == '-') {
            cli_unknown_flag(argv[i]);
            return 2;
        } else name = argv[i];
    }
    if (!name) {
        fprintf(stderr, "Error: create needs a model name\n");
        return 2;
    }
    hl_err err = {0};
    char *text;
    size_t len;
    if (hl_read_file(file, STORE_MODELFILE_MAX, &text, &len, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    /* parsed here, so syntax errors name lines of the user's file and
     * deprecated parameters warn on this terminal */
    store_modelfile mf = {0};
    char *params = NULL;
    int rc = store_modelfile_parse(text, len, &mf, &err);
    free(text);
    if (!rc) rc = store_params_json(&mf, &params, on_warn_print, NULL, &err);
    free(params);
    char *dir_copy = strdup(file), base[PATH_MAX];
    if (!rc && (!dir_copy || !realpath(dirname(dir_copy), base))) rc = hl_err_set(&err, HL_EIO, "cannot resolve the folder of %s", file);
    free(dir_copy);
    for (size_t i = 0; !rc && i < mf.n; i++) {
        if (mf.cmds[i].kind != STORE_MF_FROM && mf.cmds[i].kind != STORE_MF_ADAPTER) continue;
        char abs[PATH_MAX + 600];
        absolute_from(mf.cmds[i].value, base, abs, sizeof abs);
        char *v = strdup(abs);
        if (!v) rc = hl_err_set(&err, HL_ENOMEM, "out of memory");
        else {
            free(mf.cmds[i].value);
            mf.cmds[i].value = v;
        }
    }
    cli_client c;
    if (rc) fprintf(stderr, "Error: %s\n", err.msg);
    if (rc || cli_connect(&c)) {
        store_modelfile_free(&mf);
        return 1;
    }
    hl_buf b = {0};
    if (cli_client_is_local(&c)) {
        /* the server sees our files: it reads (and hard-links) them itself */
        char *out = store_modelfile_format(&mf);
        hl_jw w;
        hl_jw_init(&w, &b);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "model"); hl_jw_str(&w, name);
        hl_jw_key(&w, "modelfile"); hl_jw_str(&w, out ? out : "");
        if (quant) { hl_jw_key(&w, "quantize"); hl_jw_str(&w, quant); }
        hl_jw_obj_end(&w);
        free(out);
    } else {
        rc = remote_create_body(&c, &mf, name, quant, &b, &err);
    }
    store_modelfile_free(&mf);
    if (rc || b.oom) {
        fprintf(stderr, "Error: %s\n", rc ? err.msg : "out of memory");
        hl_buf_free(&b);
        return 1;
    }
    cli_progress ui = {.tty = isatty(2)};
    rc = cli_stream(&c, "/api/create", b.data, cli_progress_line, &ui, &err);
    cli_progress_finish(&ui);
    hl_buf_free(&b);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int cli_pull_model(cli_client *c, const char *name, int insecure) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model"); hl_jw_str(&w, name);
    if (insecure) { hl_jw_key(&w, "insecure"); hl_jw_bool(&w, 1); }
    hl_jw_obj_end(&w);
    hl_err err = {0};
    cli_progress ui = {.tty = isatty(2)};
    int rc = cli_stream(c, "/api/pull", b.data, cli_progress_line, &ui, &err);
    cli_progress_finish(&ui);
    hl_buf_free(&b);
    if (rc) fprintf(stderr, "Error: %s\n", rc == 1 ? "cancelled" : err.msg);
    return rc ? -1 : 0;
}

int cmd_pull(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Pull a model from a registry\n\nUsage:\n  hyperlama pull MODEL [flags]\n\n"
               "MODEL is [host/][namespace/]model[:tag] (default registry.ollama.ai/library/...:latest),\n"
               "hf.co/ORG/REPO[:QUANT], or an https:// URL of a .gguf file.\n\nFlags:\n"
               "      --insecure   Use an insecure registry (http to a non-loopback host)\n\n"
               "Environment:\n  HYPERLAMA_REGISTRY   base URL used for registry.ollama.ai (for mirrors and tests;\n"
               "                       read by the server)\n");
        return argc < 1 ? 2 : 0;
    }
    const char *name = NULL;
    int insecure = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--insecure")) insecure = 1;
        else if (argv[i][0] == '-') {
            cli_unknown_flag(argv[i]);
            return 2;
        } else name = argv[i];
    }
    if (!name) {
        fprintf(stderr, "Error: pull needs a model name\n");
        return 2;
    }
    cli_client c;
    if (cli_connect(&c)) return 1;
    return cli_pull_model(&c, name, insecure) ? 1 : 0;
}

int cmd_push(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("Push a model to a registry\n\nUsage:\n  hyperlama push MODEL\n\n(not supported yet)\n");
        return 0;
    }
    fprintf(stderr, "Error: push is not supported yet; copy the blobs and manifest from $HYPERLAMA_MODELS instead\n");
    return 1;
}

int cmd_import(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Import models from another store\n\nUsage:\n  hyperlama import --from-ollama [MODEL] [flags]\n\n"
               "Brings every model (or one) of an Ollama store in, by hard link where the\n"
               "filesystems allow it (else by copy), without downloading.\n\nFlags:\n"
               "      --from-ollama     Import from Ollama's store ($OLLAMA_MODELS or ~/.ollama/models)\n"
               "      --path string     Ollama store folder (overrides $OLLAMA_MODELS)\n");
        return argc < 1 ? 2 : 0;
    }
    const char *name = NULL, *path = NULL;
    int from_ollama = 0;
    for (int i = 0; i < argc; i++) {
        int bad = 0;
        const char *v;
        if (!strcmp(argv[i], "--from-ollama")) from_ollama = 1;
        else if ((v = cli_flag_value("--path", argc, argv, &i, &bad))) path = v;
        else if (bad) return 2;
        else if (argv[i][0] == '-') {
            cli_unknown_flag(argv[i]);
            return 2;
        } else name = argv[i];
    }
    if (!from_ollama) {
        fprintf(stderr, "Error: import needs --from-ollama (the only source supported)\n");
        return 2;
    }
    store *s;
    if (open_store(&s)) return 1;
    hl_err err = {0};
    cli_progress ui = {.tty = isatty(2)};
    store_ops ops = {.progress = cli_progress_report, .progress_ctx = &ui};
    int n = 0;
    int rc = store_import_ollama(s, path, name, &ops, &n, &err);
    cli_progress_finish(&ui);
    if (rc) return fail(s, &err);
    printf("imported %d model%s\n", n, n == 1 ? "" : "s");
    store_close(s);
    return 0;
}
