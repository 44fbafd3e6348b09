/* `hyperlama run NAME` through the server, as Ollama's CLI runs a model: the
 * model is looked up with /api/show (pulled with /api/pull when the server
 * lacks it), loaded with an empty /api/generate, and every answer streams
 * from /api/chat (or /api/generate with "raw" for --raw and for models
 * without a chat template). The server applies the model's TEMPLATE, SYSTEM,
 * MESSAGEs and PARAMETERs; this side sends the conversation, a system
 * message the user set, and `options` built from the flags and the chat's
 * /set parameter lines (those win). Ctrl+C closes the stream, which the
 * server takes as a cancel. Running a GGUF file by path stays in-process
 * (cmd_run.c). */
#include "cli/cli.h"
#include "cli/client.h"

#include "base/buf.h"
#include "base/json_write.h"
#include "store/modelfile.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_cancel;

static void on_sigint(int sig) {
    (void)sig;
    g_cancel = 1;
}

typedef struct remote {
    cli_client c;
    char *name;                /* as the user typed it */
    struct json_object *show;  /* the model's /api/show reply */
    int argc;
    char **argv;               /* the verb's arguments (flags become options) */
    store_modelfile user;      /* /set parameter lines */
    char *system;              /* set by --system or /set system; NULL: the model's */
    int raw, verbose, no_template;
    int think_set, think, hide_thinking; /* --think / /set think | nothink */
    const char *think_level;
    char *format;              /* --format as the "format" field's JSON, or NULL */
    hl_buf msgs;               /* the conversation as JSON objects, comma-separated */
} remote;

/* ---- options ---- */

/* Writes an Ollama option value typed as the server expects it. */
static void put_value(hl_jw *w, const char *v) {
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (!errno && end != v && !*end) { hl_jw_int(w, i); return; }
    double d = strtod(v, &end);
    if (!errno && end != v && !*end) { hl_jw_double(w, d); return; }
    if (!strcmp(v, "true") || !strcmp(v, "false")) { hl_jw_bool(w, v[0] == 't'); return; }
    hl_jw_str(w, v);
}

static const struct {
    const char *flag, *key;
} FLAG_KEYS[] = {
    {"--temperature", "temperature"}, {"--top-p", "top_p"}, {"--min-p", "min_p"}, {"--typical-p", "typical_p"},
    {"--repeat-penalty", "repeat_penalty"}, {"--presence-penalty", "presence_penalty"},
    {"--frequency-penalty", "frequency_penalty"}, {"--top-k", "top_k"}, {"--repeat-last-n", "repeat_last_n"},
    {"--seed", "seed"}, {"--num-predict", "num_predict"}, {"--num-ctx", "num_ctx"}, {"--threads", "num_thread"},
    {"--batch-size", "num_batch"}, {"--speculative", "speculative"}, {"--num-draft", "num_draft"},
    {"--draft-model", "draft_model"}, {"--num-gpu", "num_gpu"},
};

static int user_has(const remote *r, const char *key) {
    for (size_t i = 0; i < r->user.n; i++)
        if (!strcmp(r->user.cmds[i].key, key)) return 1;
    return 0;
}

/* "options": flags (already validated by cli_parse_gen_opt), then /set
 * parameter lines over them; a layer that sets stop replaces the stops. */
static void put_options(const remote *r, hl_jw *w) {
    hl_jw_key(w, "options");
    hl_jw_obj_begin(w);
    for (size_t k = 0; k < sizeof FLAG_KEYS / sizeof FLAG_KEYS[0]; k++) {
        if (user_has(r, FLAG_KEYS[k].key)) continue;
        const char *last = NULL;
        for (int i = 0; i < r->argc; i++) {
            int bad = 0;
            const char *v = cli_flag_value(FLAG_KEYS[k].flag, r->argc, r->argv, &i, &bad);
            if (v) last = v;
        }
        if (last) { hl_jw_key(w, FLAG_KEYS[k].key); put_value(w, last); }
    }
    int stops = 0;
    if (!user_has(r, "stop"))
        for (int i = 0; i < r->argc; i++) {
            int bad = 0;
            const char *v = cli_flag_value("--stop", r->argc, r->argv, &i, &bad);
            if (!v) continue;
            if (!stops++) { hl_jw_key(w, "stop"); hl_jw_arr_begin(w); }
            hl_jw_str(w, v);
        }
    for (size_t i = 0; i < r->user.n; i++) {
        if (strcmp(r->user.cmds[i].key, "stop")) continue;
        if (!stops++) { hl_jw_key(w, "stop"); hl_jw_arr_begin(w); }
        hl_jw_str(w, r->user.cmds[i].value);
    }
    if (stops) hl_jw_arr_end(w);
    for (size_t i = 0; i < r->user.n; i++) {
        if (!strcmp(r->user.cmds[i].key, "stop")) continue;
        hl_jw_key(w, r->user.cmds[i].key);
        put_value(w, r->user.cmds[i].value);
    }
    hl_jw_obj_end(w);
}

/* ---- the model ---- */

/* FROM of the model's Modelfile: the GGUF blob, when this machine sees it. */
static char *model_file(struct json_object *show) {
    const char *mf = cli_jstr(show, "modelfile");
    store_modelfile m = {0};
    hl_err e;
    char *path = NULL;
    if (mf && store_modelfile_parse_loose(mf, strlen(mf), &m, &e) == 0)
        for (size_t i = 0; i < m.n && !path; i++)
            if (m.cmds[i].kind == STORE_MF_FROM && access(m.cmds[i].value, R_OK) == 0) path = strdup(m.cmds[i].value);
    store_modelfile_free(&m);
    return path;
}

static int num_ctx_of(const remote *r) {
    for (size_t i = r->user.n; i-- > 0;)
        if (!strcmp(r->user.cmds[i].key, "num_ctx")) return atoi(r->user.cmds[i].value);
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    for (int i = 0; i < r->argc; i++) cli_parse_gen_opt(&o, r->argc, r->argv, &i);
    if (o.engine.num_ctx) return o.engine.num_ctx;
    store_modelfile p = {0};
    int n = 0;
    if (cli_parse_param_text(cli_jstr(r->show, "parameters"), &p) == 0)
        for (size_t i = 0; i < p.n; i++)
            if (!strcmp(p.cmds[i].key, "num_ctx")) n = atoi(p.cmds[i].value);
    store_modelfile_free(&p);
    return n;
}

/* Resolves name on the server (pulling it when missing, like Ollama), checks
 * memory where the weights are visible here, and loads it. Prints errors. */
static int load(remote *r, const char *name) {
    struct json_object *show = NULL;
    hl_err err = {0};
    char *body = NULL;
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model"); hl_jw_str(&w, name);
    hl_jw_obj_end(&w);
    body = hl_buf_take(&b);
    int rc = cli_json(&r->c, "POST", "/api/show", body, &show, &err);
    if (rc == HL_ENOENT) {
        char *sugg = cli_suggest(&r->c, name);
        if (cli_pull_model(&r->c, name, 0)) {
            if (sugg) fprintf(stderr, "Did you mean: %s?\n", sugg);
            free(sugg);
            free(body);
            return -1;
        }
        free(sugg);
        rc = cli_json(&r->c, "POST", "/api/show", body, &show, &err);
    }
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        free(body);
        return -1;
    }
    if (r->show) json_object_put(r->show);
    r->show = show;
    free(r->name);
    r->name = strdup(name);
    char *path = model_file(show);
    if (path) {
        rc = cli_check_memory(path, num_ctx_of(r), 0 /* the server's type is its own: count f16, the larger */, &err);
        free(path);
        if (rc) {
            fprintf(stderr, "Error: %s\n", err.msg);
            free(body);
            return -1;
        }
    }
    /* an empty generate loads the model, so the first answer does not wait */
    struct json_object *reply = NULL;
    rc = cli_json(&r->c, "POST", "/api/generate", body, &reply, &err);
    free(body);
    if (reply) json_object_put(reply);
    if (rc == 1) return -1;
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* ---- one answer ---- */

typedef struct answer_ctx {
    hl_buf text;
    int chat;
    cli_think_out to;
    struct json_object *final; /* the done line (owned) */
} answer_ctx;

static int on_line(void *ctx, struct json_object *o) {
    answer_ctx *a = ctx;
    const char *t = NULL;
    struct json_object *msg, *done;
    const char *th = NULL;
    if (a->chat && json_object_object_get_ex(o, "message", &msg)) t = cli_jstr(msg, "content"), th = cli_jstr(msg, "thinking");
    else if (!a->chat) t = cli_jstr(o, "response"), th = cli_jstr(o, "thinking");
    if ((t && *t) || (th && *th)) {
        cli_think_print(&a->to, th ? th : "", th ? strlen(th) : 0, t ? t : "", t ? strlen(t) : 0);
        if (t) hl_buf_puts(&a->text, t);
    }
    if (json_object_object_get_ex(o, "done", &done) && json_object_get_boolean(done)) {
        if (a->final) json_object_put(a->final);
        a->final = json_object_get(o);
    }
    return 0;
}

static void print_duration(const char *label, long long ns) {
    double s = (double)ns / 1e9;
    if (s >= 1) fprintf(stderr, "%-22s%.6gs\n", label, s);
    else fprintf(stderr, "%-22s%.6gms\n", label, s * 1e3);
}

/* Ollama's --verbose block, from the stream's final object. */
static void print_stats(struct json_object *f) {
    long long pc = cli_jint(f, "prompt_eval_count"), pd = cli_jint(f, "prompt_eval_duration");
    long long ec = cli_jint(f, "eval_count"), ed = cli_jint(f, "eval_duration");
    print_duration("total duration:", cli_jint(f, "total_duration"));
    print_duration("load duration:", cli_jint(f, "load_duration"));
    fprintf(stderr, "%-22s%lld token(s)\n", "prompt eval count:", pc);
    print_duration("prompt eval duration:", pd);
    fprintf(stderr, "%-22s%.2f tokens/s\n", "prompt eval rate:", pd > 0 ? (double)pc / ((double)pd / 1e9) : 0.0);
    fprintf(stderr, "%-22s%lld token(s)\n", "eval count:", ec);
    print_duration("eval duration:", ed);
    fprintf(stderr, "%-22s%.2f tokens/s\n", "eval rate:", ed > 0 ? (double)ec / ((double)ed / 1e9) : 0.0);
    long long dc = cli_jint(f, "draft_count"), da = cli_jint(f, "draft_accepted_count");
    fprintf(stderr, "%-22s%lld token(s)\n", "draft count:", dc);
    fprintf(stderr, "%-22s%lld token(s) (%.1f%%)\n", "draft accepted:", da, dc > 0 ? 100.0 * (double)da / (double)dc : 0.0);
}

static void put_msg(hl_buf *out, const char *role, const char *content) {
    hl_jw w;
    if (out->len) hl_buf_putc(out, ',');
    hl_jw_init(&w, out);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "role"); hl_jw_str(&w, role);
    hl_jw_key(&w, "content"); hl_jw_str(&w, content);
    hl_jw_obj_end(&w);
}

/* Sends the conversation plus prompt; on success appends both turns. The
 * answer streams to stdout. Returns 0, or -1 (error printed). */
static int answer(remote *r, const char *prompt) {
    int raw = r->raw || r->no_template;
    for (;;) {
        hl_buf b = {0};
        hl_jw w;
        hl_jw_init(&w, &b);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "model"); hl_jw_str(&w, r->name);
        if (raw) {
            hl_jw_key(&w, "prompt"); hl_jw_str(&w, prompt);
            hl_jw_key(&w, "raw"); hl_jw_bool(&w, 1);
        } else {
            hl_buf m = {0};
            if (r->system) put_msg(&m, "system", r->system);
            if (r->msgs.len) {
                if (m.len) hl_buf_putc(&m, ',');
                hl_buf_append(&m, r->msgs.data, r->msgs.len);
            }
            put_msg(&m, "user", prompt);
            hl_buf arr = {0};
            hl_buf_putc(&arr, '[');
            if (m.data) hl_buf_append(&arr, m.data, m.len);
            hl_buf_putc(&arr, ']');
            hl_jw_key(&w, "messages");
            hl_jw_raw(&w, arr.data, arr.len);
            hl_buf_free(&arr);
            hl_buf_free(&m);
        }
        if (r->think_set) {
            hl_jw_key(&w, "think");
            if (r->think && r->think_level) hl_jw_str(&w, r->think_level);
            else hl_jw_bool(&w, r->think);
        }
        if (r->format) { /* the API's own field: the server builds the grammar */
            hl_jw_key(&w, "format");
            hl_jw_raw(&w, r->format, strlen(r->format));
        }
        put_options(r, &w);
        hl_jw_obj_end(&w);
        answer_ctx a = {.chat = !raw, .to = {.hide = r->hide_thinking}};
        hl_err err = {0};
        g_cancel = 0;
        int rc = cli_stream(&r->c, raw ? "/api/generate" : "/api/chat", b.data, on_line, &a, &err);
        hl_buf_free(&b);
        if (rc < 0 && !raw && !a.text.len && strstr(err.msg, "no chat template")) {
            /* as the in-process path does: a model without a template gets the prompt as is */
            fprintf(stderr, "warning: %s has no usable chat template; sending prompts as is\n", r->name);
            r->no_template = raw = 1;
            if (a.final) json_object_put(a.final);
            hl_buf_free(&a.text);
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "%sError: %s\n", a.text.len ? "\n" : "", err.msg);
            if (a.final) json_object_put(a.final);
            hl_buf_free(&a.text);
            return -1;
        }
        cli_think_end(&a.to);
        if (!raw) {
            put_msg(&r->msgs, "user", prompt);
            put_msg(&r->msgs, "assistant", a.text.data ? a.text.data : "");
        }
        /* scripting (--raw into a pipe) gets only the generated text */
        if (!r->raw || isatty(STDOUT_FILENO)) fputc('\n', stdout);
        fflush(stdout);
        if (r->verbose && a.final) {
            fputc('\n', stderr);
            print_stats(a.final);
        }
        if (a.final) json_object_put(a.final);
        hl_buf_free(&a.text);
        return 0;
    }
}

/* ---- the interactive chat ---- */

static void set_parameter(remote *r, char **w, int n) {
    if (cli_store_user_param(&r->user, w, n) == 0) cli_print_param_set(w, n);
}

static void show(remote *r, const char *what) { cli_repl_show(r->show, &r->user, r->system, what); }

/* /save NAME: a model FROM the current one with this session's system
 * message, parameters and messages, created by the server. */
static void save(remote *r, const char *name) {
    hl_err err = {0};
    if (!name || !*name) {
        printf("Usage:\n  /save <modelname>\n");
        return;
    }
    store_modelfile mf = {0};
    int rc = store_modelfile_add(&mf, STORE_MF_FROM, NULL, r->name, &err);
    for (size_t i = 0; !rc && i < r->user.n; i++)
        rc = store_modelfile_add(&mf, STORE_MF_PARAMETER, r->user.cmds[i].key, r->user.cmds[i].value, &err);
    if (!rc && r->system) rc = store_modelfile_add(&mf, STORE_MF_SYSTEM, NULL, r->system, &err);
    if (!rc && r->msgs.len) {
        char *arr = malloc(r->msgs.len + 3);
        if (arr) {
            snprintf(arr, r->msgs.len + 3, "[%s]", r->msgs.data);
            rc = store_messages_from_json(arr, &mf, &err);
            free(arr);
        }
    }
    char *text = rc ? NULL : store_modelfile_format(&mf);
    store_modelfile_free(&mf);
    if (!rc && !text) rc = hl_err_set(&err, HL_ENOMEM, "out of memory");
    if (!rc) {
        hl_buf b = {0};
        hl_jw w;
        hl_jw_init(&w, &b);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "model"); hl_jw_str(&w, name);
        hl_jw_key(&w, "modelfile"); hl_jw_str(&w, text);
        hl_jw_key(&w, "stream"); hl_jw_bool(&w, 0);
        hl_jw_obj_end(&w);
        struct json_object *reply = NULL;
        rc = cli_json(&r->c, "POST", "/api/create", b.data, &reply, &err);
        if (!rc && reply && cli_jstr(reply, "error")) rc = hl_err_set(&err, HL_EINVAL, "%s", cli_jstr(reply, "error"));
        if (reply) json_object_put(reply);
        hl_buf_free(&b);
    }
    free(text);
    if (rc) printf("error: %s\n", err.msg);
    else printf("Created new model '%s'\n", name);
}

/* ---- the chat's operations (cli_repl drives them) ---- */

static void chat_answer(void *ctx, const char *text) { answer(ctx, text); }

static void chat_clear(void *ctx) { hl_buf_reset(&((remote *)ctx)->msgs); }

static void chat_set_parameter(void *ctx, char **w, int n) { set_parameter(ctx, w, n); }

static void chat_set_system(void *ctx, char *text) {
    remote *r = ctx;
    free(r->system);
    r->system = text;
}

static void chat_set_verbose(void *ctx, int on) { ((remote *)ctx)->verbose = on; }

static void chat_set_think(void *ctx, int on) {
    remote *r = ctx;
    r->think_set = 1;
    r->think = on;
    r->think_level = NULL;
}

static int chat_set_format(void *ctx, const char *format) {
    remote *r = ctx;
    char *json = NULL;
    hl_err err = {0};
    if (format && cli_format_json(format, &json, &err)) {
        printf("Error: %s\n", err.msg);
        return -1;
    }
    free(r->format);
    r->format = json;
    return 0;
}

static void chat_show(void *ctx, const char *what) { show(ctx, what); }

static int chat_load(void *ctx, const char *name) {
    remote *r = ctx;
    store_modelfile_free(&r->user);
    memset(&r->user, 0, sizeof r->user);
    free(r->system);
    r->system = NULL; /* the new model's SYSTEM applies */
    r->no_template = 0;
    hl_buf_reset(&r->msgs);
    return load(r, name) ? 1 : 0;
}

static void chat_save(void *ctx, const char *name) { save(ctx, name); }

static const cli_chat_ops CHAT_OPS = {
    .answer = chat_answer, .clear = chat_clear, .set_parameter = chat_set_parameter,
    .set_system = chat_set_system, .set_verbose = chat_set_verbose, .set_think = chat_set_think,
    .set_format = chat_set_format, .show = chat_show,
    .load = chat_load, .save = chat_save,
};

int cli_run_remote(int argc, char **argv, const char *model, const char *prompt) {
    remote r = {.argc = argc, .argv = argv};
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    for (int i = 0; i < argc; i++) cli_parse_gen_opt(&o, argc, argv, &i);
    r.raw = o.raw;
    r.verbose = o.verbose;
    r.think_set = o.think_set, r.think = o.think, r.think_level = o.think_level, r.hide_thinking = o.hide_thinking;
    if (o.system) r.system = strdup(o.system);
    hl_err ferr = {0};
    if (cli_format_json(o.format, &r.format, &ferr)) {
        fprintf(stderr, "Error: %s\n", ferr.msg);
        free(r.system);
        return 1;
    }
    if (cli_connect(&r.c)) {
        free(r.system);
        free(r.format);
        return 1;
    }
    r.c.cancel = &g_cancel;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    int rc = load(&r, model) ? 1 : 0;
    if (!rc && cli_show_is_embedding(r.show)) {
        if (prompt) rc = cli_embed_remote(&r.c, model, prompt);
        else {
            fprintf(stderr, "Error: %s is an embedding model: give the text to embed (hyperlama run %s TEXT)\n", model, model);
            rc = 1;
        }
    } else if (!rc)
        rc = prompt ? (answer(&r, prompt) ? 1 : 0) : cli_repl(&CHAT_OPS, &r, &g_cancel);
    if (r.show) json_object_put(r.show);
    store_modelfile_free(&r.user);
    hl_buf_free(&r.msgs);
    free(r.system);
    free(r.format);
    free(r.name);
    return rc;
}
