/* The store verbs: list/ls, show, rm, cp, create, pull, push, import. Output
 * follows Ollama's CLI (column layout of list, sections of show, the pull
 * progress bar); the work is done by the store library, which never prints. */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/file.h"
#include "store/modelfile.h"
#include "store/store.h"

#include <json-c/json.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- list ---- */
int cmd_list(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("List models\n\nUsage:\n  hyperlama list [flags]\n\nAliases:\n  list, ls\n\n"
               "Models live in $HYPERLAMA_MODELS (default ~/.hyperlama/models).\n");
        return 0;
    }
    store *s;
    if (open_store(&s)) return 1;
    hl_err err = {0};
    store_info *v;
    size_t n;
    if (store_list(s, &v, &n, &err)) return fail(s, &err);
    /* columns padded to the widest cell, 4 spaces apart, as Ollama's table */
    const char *hdr[4] = {"NAME", "ID", "SIZE", "MODIFIED"};
    char (*cells)[4][160] = calloc(n ? n : 1, sizeof *cells);
    size_t w[4];
    for (int c = 0; c < 4; c++) w[c] = strlen(hdr[c]);
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < n && cells; i++) {
        snprintf(cells[i][0], 160, "%s", v[i].name);
        snprintf(cells[i][1], 160, "%s", v[i].id);
        store_human_bytes(v[i].size, cells[i][2], 160);
        store_human_time(v[i].modified, now, cells[i][3], 160);
        for (int c = 0; c < 4; c++)
            if (strlen(cells[i][c]) > w[c]) w[c] = strlen(cells[i][c]);
    }
    for (int c = 0; c < 4; c++) { if (c < 3) printf("%-*s    ", (int)w[c], hdr[c]); else printf("%s\n", hdr[c]); }
    for (size_t i = 0; i < n && cells; i++)
        for (int c = 0; c < 4; c++) { if (c < 3) printf("%-*s    ", (int)w[c], cells[i][c]); else printf("%s\n", cells[i][c]); }
    free(cells);
    free(v);
    store_close(s);
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

static void print_params(const char *json, int bare) {
    store_modelfile mf = {0};
    hl_err e;
    if (store_params_from_json(json, &mf, &e)) return;
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
                fprintf(stderr, "Error: unknown flag: %s\n", argv[i]);
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
    store *s;
    if (open_store(&s)) return 1;
    hl_err err = {0};
    store_model m;
    if (store_load(s, name, &m, &err)) return fail(s, &err);
    if (what && !strcmp(what, "modelfile")) {
        char *mf = store_modelfile_of(&m, m.info.name);
        if (mf) fputs(mf, stdout);
        free(mf);
    } else if (what && !strcmp(what, "license")) {
        if (m.license) printf("%s\n", m.license);
    } else if (what && !strcmp(what, "system")) {
        if (m.system) printf("%s\n", m.system);
    } else if (what && !strcmp(what, "template")) {
        if (m.template_text) printf("%s\n", m.template_text);
    } else if (what && !strcmp(what, "parameters")) {
        if (m.params_json) print_params(m.params_json, 1);
    } else {
        char params[32];
        store_human_params(m.info.n_params, params, sizeof params);
        printf("  Model\n");
        printf("    %-20s%s\n", "architecture", m.info.arch);
        printf("    %-20s%s\n", "parameters", params);
        printf("    %-20s%lld\n", "context length", (long long)m.info.ctx_len);
        printf("    %-20s%lld\n", "embedding length", (long long)m.info.embd_len);
        printf("    %-20s%s\n", "quantization", m.info.quant);
        printf("\n");
        if (m.params_json) {
            printf("  Parameters\n");
            print_params(m.params_json, 0);
            printf("\n");
        }
        if (m.system) {
            printf("  System\n");
            print_indented(m.system, 2);
            printf("\n");
        }
        if (m.license) {
            printf("  License\n");
            print_indented(m.license, 2);
            printf("\n");
        }
    }
    store_model_free(&m);
    store_close(s);
    return 0;
}

/* ---- rm / cp ---- */
int cmd_rm(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Remove a model\n\nUsage:\n  hyperlama rm MODEL [MODEL...]\n");
        return argc < 1 ? 2 : 0;
    }
    store *s;
    if (open_store(&s)) return 1;
    int status = 0;
    for (int i = 0; i < argc; i++) {
        hl_err err = {0};
        if (store_delete(s, argv[i], &err)) {
            fprintf(stderr, "Error: %s\n", err.msg);
            status = 1;
        } else {
            printf("deleted '%s'\n", argv[i]);
        }
    }
    store_close(s);
    return status;
}

int cmd_cp(int argc, char **argv) {
    if (wants_help(argc, argv) || argc != 2) {
        printf("Copy a model\n\nUsage:\n  hyperlama cp SOURCE DESTINATION\n");
        return argc != 2 && !wants_help(argc, argv) ? 2 : 0;
    }
    store *s;
    if (open_store(&s)) return 1;
    hl_err err = {0};
    if (store_copy(s, argv[0], argv[1], &err)) return fail(s, &err);
    printf("copied '%s' to '%s'\n", argv[0], argv[1]);
    store_close(s);
    return 0;
}

/* ---- progress display ---- */
typedef struct progress_ui {
    int tty;
    char last_status[256];
    int64_t t0_ns, last_draw_ns, last_completed;
    double rate;
} progress_ui;

static void fmt_dur(double s, char *out, size_t cap) {
    if (s < 0 || s > 1e7) { snprintf(out, cap, "--"); return; }
    int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
    if (h) snprintf(out, cap, "%dh%dm", h, m);
    else if (m) snprintf(out, cap, "%dm%ds", m, sec);
    else snprintf(out, cap, "%ds", sec);
}

static void on_progress(void *ctx, const store_progress *p) {
    progress_ui *ui = ctx;
    int64_t now = hl_now_ns();
    int same = !strcmp(ui->last_status, p->status);
    if (p->total <= 0 || !p->digest) {
        if (same) return;
        if (ui->tty && ui->last_status[0]) fputc('\n', stderr);
        fprintf(stderr, "%s", p->status);
        if (!ui->tty) fputc('\n', stderr);
        snprintf(ui->last_status, sizeof ui->last_status, "%s", p->status);
        fflush(stderr);
        return;
    }
    if (!same) {
        if (ui->tty && ui->last_status[0]) fputc('\n', stderr);
        snprintf(ui->last_status, sizeof ui->last_status, "%s", p->status);
        ui->t0_ns = now;
        ui->last_completed = p->completed;
        ui->rate = 0;
        ui->last_draw_ns = 0;
        if (!ui->tty) {
            fprintf(stderr, "%s\n", p->status);
            return;
        }
    }
    if (!ui->tty) return;
    if (p->completed < p->total && now - ui->last_draw_ns < 100000000) return;
    double dt = (double)(now - ui->t0_ns) / 1e9;
    if (dt > 0.2) ui->rate = (double)(p->completed - ui->last_completed) / dt;
    ui->last_draw_ns = now;
    int pct = (int)(100.0 * (double)p->completed / (double)p->total);
    char done[32], total[32], rate[32], eta[32];
    store_human_bytes(p->completed, done, sizeof done);
    store_human_bytes(p->total, total, sizeof total);
    store_human_bytes((int64_t)ui->rate, rate, sizeof rate);
    fmt_dur(ui->rate > 0 ? (double)(p->total - p->completed) / ui->rate : -1, eta, sizeof eta);
    char bar[3 * 25 + 1] = {0};
    int filled = pct / 4;
    size_t k = 0;
    for (int i = 0; i < 25; i++) {
        const char *c = i < filled ? "\xe2\x96\x88" : " "; /* U+2588 full block */
        size_t l = strlen(c);
        memcpy(bar + k, c, l);
        k += l;
    }
    bar[k] = 0;
    if (p->completed >= p->total)
        fprintf(stderr, "\r%s %3d%% \xe2\x96\x95%s\xe2\x96\x8f %s\x1b[K", p->status, pct, bar, total);
    else
        fprintf(stderr, "\r%s %3d%% \xe2\x96\x95%s\xe2\x96\x8f %s/%s  %s/s  %s\x1b[K", p->status, pct, bar, done, total,
                rate, eta);
    fflush(stderr);
}

static void finish_progress(progress_ui *ui) {
    if (ui->tty && ui->last_status[0]) fputc('\n', stderr);
}

static void on_warn(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "warning: %s\n", msg);
}

/* ---- create / pull / push / import ---- */
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
            fprintf(stderr, "Error: unknown flag: %s\n", argv[i]);
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
    char *dir_copy = strdup(file);
    store *s;
    if (open_store(&s)) {
        free(text);
        free(dir_copy);
        return 1;
    }
    progress_ui ui = {.tty = isatty(2)};
    store_ops ops = {.progress = on_progress, .progress_ctx = &ui, .quantize = quant, .warn = on_warn};
    int rc = store_create(s, name, text, len, dir_copy ? dirname(dir_copy) : ".", &ops, &err);
    finish_progress(&ui);
    free(text);
    free(dir_copy);
    if (rc) return fail(s, &err);
    store_close(s);
    return 0;
}

int cmd_pull(int argc, char **argv) {
    if (wants_help(argc, argv) || argc < 1) {
        printf("Pull a model from a registry\n\nUsage:\n  hyperlama pull MODEL [flags]\n\n"
               "MODEL is [host/][namespace/]model[:tag] (default registry.ollama.ai/library/...:latest),\n"
               "hf.co/ORG/REPO[:QUANT], or an https:// URL of a .gguf file.\n\nFlags:\n"
               "      --insecure   Use an insecure registry (http to a non-loopback host)\n\n"
               "Environment:\n  HYPERLAMA_REGISTRY   base URL used for registry.ollama.ai (for mirrors and tests)\n");
        return argc < 1 ? 2 : 0;
    }
    const char *name = NULL;
    int insecure = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--insecure")) insecure = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "Error: unknown flag: %s\n", argv[i]);
            return 2;
        } else name = argv[i];
    }
    store *s;
    if (open_store(&s)) return 1;
    hl_err err = {0};
    progress_ui ui = {.tty = isatty(2)};
    store_ops ops = {.progress = on_progress, .progress_ctx = &ui, .insecure = insecure};
    int rc = store_pull(s, name, &ops, &err);
    finish_progress(&ui);
    if (rc) return fail(s, &err);
    store_close(s);
    return 0;
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
            fprintf(stderr, "Error: unknown flag: %s\n", argv[i]);
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
    progress_ui ui = {.tty = isatty(2)};
    store_ops ops = {.progress = on_progress, .progress_ctx = &ui};
    int n = 0;
    int rc = store_import_ollama(s, path, name, &ops, &n, &err);
    finish_progress(&ui);
    if (rc) return fail(s, &err);
    printf("imported %d model%s\n", n, n == 1 ? "" : "s");
    store_close(s);
    return 0;
}
