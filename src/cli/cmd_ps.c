/* `ps` and `stop`: the server's loaded models. `ps` prints GET /api/ps as
 * Ollama's table (NAME ID SIZE PROCESSOR CONTEXT UNTIL); `stop MODEL` unloads
 * one with an empty generate request carrying keep_alive 0, as Ollama's CLI
 * does, after checking that the model is loaded at all. */
#include "cli/cli.h"
#include "cli/client.h"

#include "base/buf.h"
#include "base/json_write.h"
#include "store/store.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* GET /api/ps's "models" array (owned by *root; caller puts *root). */
static struct json_object *running(cli_client *c, struct json_object **root) {
    hl_err err = {0};
    struct json_object *models = NULL;
    if (cli_json(c, "GET", "/api/ps", NULL, root, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return NULL;
    }
    if (!*root || !json_object_object_get_ex(*root, "models", &models) || !json_object_is_type(models, json_type_array)) {
        fprintf(stderr, "Error: the server's /api/ps reply has no \"models\" list\n");
        return NULL;
    }
    return models;
}

/* Ollama's PROCESSOR column: the share of the model in GPU memory. */
static void processor(long long size, long long vram, char *out, size_t cap) {
    if (vram <= 0 || size <= 0) snprintf(out, cap, "100%% CPU");
    else if (vram >= size) snprintf(out, cap, "100%% GPU");
    else {
        int gpu = (int)(100.0 * (double)vram / (double)size + 0.5);
        snprintf(out, cap, "%d%%/%d%% CPU/GPU", 100 - gpu, gpu);
    }
}

int cmd_ps(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("List running models\n\nUsage:\n  hyperlama ps [flags]\n\nFlags:\n  -h, --help   help for ps\n");
        return 0;
    }
    if (argc > 0) return cli_no_arguments(argv[0]);
    cli_client c;
    if (cli_connect(&c)) return 1;
    struct json_object *root = NULL, *models = running(&c, &root);
    if (!models) {
        if (root) json_object_put(root);
        return 1;
    }
    size_t n = json_object_array_length(models);
    char (*cells)[8][256] = calloc(n ? n : 1, sizeof *cells);
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < n && cells; i++) {
        struct json_object *m = json_object_array_get_idx(models, i);
        const char *name = cli_jstr(m, "name"), *digest = cli_jstr(m, "digest");
        if (digest && !strncmp(digest, "sha256:", 7)) digest += 7;
        snprintf(cells[i][0], 256, "%s", name ? name : "");
        snprintf(cells[i][1], 256, "%.12s", digest ? digest : "");
        store_human_bytes(cli_jint(m, "size"), cells[i][2], 256);
        processor(cli_jint(m, "size"), cli_jint(m, "size_vram"), cells[i][3], 256);
        snprintf(cells[i][4], 256, "%lld", cli_jint(m, "context_length"));
        int64_t until = cli_parse_iso(cli_jstr(m, "expires_at"));
        if (until <= 0) snprintf(cells[i][5], 256, "Never");
        else if (until - now > 20ll * 365 * 86400) snprintf(cells[i][5], 256, "Forever");
        else if (until < now) snprintf(cells[i][5], 256, "Stopping...");
        else store_human_time(until, now, cells[i][5], 256);
    }
    static const char *const hdr[6] = {"NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"};
    if (cells) cli_print_table(hdr, 6, cells, n);
    free(cells);
    json_object_put(root);
    return 0;
}

/* "name" and "name:latest" are the same model. */
static int same_model(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (!strcasecmp(a, b)) return 1;
    if (!strchr(a, ':') && lb == la + 7 && !strncasecmp(a, b, la) && !strcasecmp(b + la, ":latest")) return 1;
    if (!strchr(b, ':') && la == lb + 7 && !strncasecmp(a, b, lb) && !strcasecmp(a + lb, ":latest")) return 1;
    return 0;
}

int cmd_stop(int argc, char **argv) {
    if (wants_help(argc, argv) || argc != 1) {
        printf("Stop a running model\n\nUsage:\n  hyperlama stop MODEL [flags]\n\nFlags:\n  -h, --help   help for stop\n");
        if (!wants_help(argc, argv)) {
            fprintf(stderr, "Error: accepts 1 arg(s), received %d\n", argc);
            return 2;
        }
        return 0;
    }
    if (argv[0][0] == '-') {
        cli_unknown_flag(argv[0]);
        return 2;
    }
    cli_client c;
    if (cli_connect(&c)) return 1;
    struct json_object *root = NULL, *models = running(&c, &root);
    if (!models) {
        if (root) json_object_put(root);
        return 1;
    }
    const char *found = NULL;
    for (size_t i = 0; i < json_object_array_length(models) && !found; i++) {
        struct json_object *m = json_object_array_get_idx(models, i);
        const char *name = cli_jstr(m, "name"), *model = cli_jstr(m, "model");
        if ((name && same_model(argv[0], name)) || (model && same_model(argv[0], model))) found = name ? name : model;
    }
    if (!found) {
        fprintf(stderr, "Error: couldn't find model \"%s\" to stop\n", argv[0]);
        json_object_put(root);
        return 1;
    }
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model"); hl_jw_str(&w, argv[0]);
    hl_jw_key(&w, "keep_alive"); hl_jw_int(&w, 0);
    hl_jw_key(&w, "stream"); hl_jw_bool(&w, 0);
    hl_jw_obj_end(&w);
    json_object_put(root);
    hl_err err = {0};
    struct json_object *reply = NULL;
    int rc = cli_json(&c, "POST", "/api/generate", b.data, &reply, &err);
    hl_buf_free(&b);
    if (reply) json_object_put(reply);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
