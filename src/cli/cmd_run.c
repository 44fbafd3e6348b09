/* `hyperlama run MODEL [PROMPT]`: one answer streamed to stdout, or an
 * interactive multi-turn chat when no prompt is given and stdin is a terminal
 * (piped stdin becomes the prompt, as with Ollama). A store name runs through
 * the server (run_remote.c); a GGUF path runs here, in-process, as does a
 * store model loaded with /load from such a chat (Modelfile TEMPLATE via
 * gotmpl, SYSTEM, MESSAGEs, PARAMETERs: defaults < PARAMETERs < flags <
 * /set parameter). Before loading, the weights plus the KV cache for the
 * context are checked against available memory (cli_check_memory in
 * memfit.c, used by both paths and by show's hardware-fit line). */
#include "cli/cli.h"
#include "cli/client.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "gguf/gguf.h"
#include "gotmpl/gotmpl.h"
#include "store/modelfile.h"
#include "store/store.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Set by SIGINT while an answer streams: stops that answer, not the program. */
static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static int emit_stdout(void *user, const char *text, size_t n) {
    (void)user;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    return g_interrupted;
}

static void print_duration(const char *label, int64_t ns) {
    double s = (double)ns / 1e9;
    if (s >= 1) fprintf(stderr, "%-22s%.6gs\n", label, s);
    else fprintf(stderr, "%-22s%.6gms\n", label, s * 1e3);
}

/* Ollama's --verbose block. */
static void print_stats(const hl_gen_stats *st, int64_t total_ns, int64_t load_ns) {
    print_duration("total duration:", total_ns);
    print_duration("load duration:", load_ns);
    fprintf(stderr, "%-22s%d token(s)\n", "prompt eval count:", st->prompt_tokens);
    print_duration("prompt eval duration:", st->prompt_ns);
    fprintf(stderr, "%-22s%.2f tokens/s\n", "prompt eval rate:",
            st->prompt_ns > 0 ? st->prompt_tokens / ((double)st->prompt_ns / 1e9) : 0.0);
    fprintf(stderr, "%-22s%d token(s)\n", "eval count:", st->gen_tokens);
    print_duration("eval duration:", st->gen_ns);
    fprintf(stderr, "%-22s%.2f tokens/s\n", "eval rate:",
            st->gen_ns > 0 ? st->gen_tokens / ((double)st->gen_ns / 1e9) : 0.0);
}

/* A growing list of chat messages (role + owned content). */
typedef struct conversation {
    chat_message *msgs;
    size_t n, cap;
} conversation;

static const char *role_const(const char *r) {
    static const char *roles[] = {"system", "user", "assistant", "tool"};
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(r, roles[i])) return roles[i];
    return "user";
}

static int conv_add(conversation *c, const char *role, const char *content, size_t len) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return -1;
        c->msgs = m;
        c->cap = cap;
    }
    char *copy = strndup(content, len);
    if (!copy) return -1;
    c->msgs[c->n++] = (chat_message){.role = role_const(role), .content = copy};
    return 0;
}

static void conv_clear(conversation *c, size_t keep) {
    while (c->n > keep) free((char *)c->msgs[--c->n].content);
}

static void conv_free(conversation *c) {
    conv_clear(c, 0);
    free(c->msgs);
}

/* ---- the model being run and its settings ---- */

typedef struct run_state {
    int argc;
    char **argv;           /* the verb's arguments: flags are re-applied over model params */
    char *name;            /* as the user typed it (store name or path) */
    store *st;             /* NULL until a store name is used */
    store_model sm;        /* zero for a GGUF path */
    int from_store;
    hl_loaded *lm;
    hl_session *s;
    store_modelfile model_params; /* the model's PARAMETER lines */
    store_modelfile user_params;  /* /set parameter lines (win over flags) */
    char *system;          /* the current system message, or NULL */
    cli_gen_opts o;        /* effective options */
    int verbose;
} run_state;

static int parse_num(const char *v, double *d) {
    char *end;
    errno = 0;
    *d = strtod(v, &end);
    return errno || end == v || *end;
}

/* One Ollama option onto the generation options (values already checked by
 * store_param_check). Options we do not use (mirostat, num_gpu ...) are
 * accepted and ignored, as Ollama ignores those its runner lacks. */
static void apply_param(cli_gen_opts *o, const char *key, const char *value) {
    double d;
    if (!strcmp(key, "stop")) {
        if (o->n_stops < HL_CLI_MAX_STOPS) o->stops[o->n_stops++] = value;
        return;
    }
    if (parse_num(value, &d)) return;
    hl_sampling_params *sp = &o->sampling;
    if (!strcmp(key, "temperature")) sp->temperature = (float)d;
    else if (!strcmp(key, "top_k")) sp->top_k = (int32_t)d;
    else if (!strcmp(key, "top_p")) sp->top_p = (float)d;
    else if (!strcmp(key, "min_p")) sp->min_p = (float)d;
    else if (!strcmp(key, "typical_p")) sp->typical_p = (float)d;
    else if (!strcmp(key, "repeat_penalty")) sp->repeat_penalty = (float)d;
    else if (!strcmp(key, "repeat_last_n")) sp->repeat_last_n = (int32_t)d;
    else if (!strcmp(key, "presence_penalty")) sp->presence_penalty = (float)d;
    else if (!strcmp(key, "frequency_penalty")) sp->frequency_penalty = (float)d;
    else if (!strcmp(key, "seed")) {
        sp->has_seed = d >= 0;
        sp->seed = (uint64_t)(d >= 0 ? d : 0);
    } else if (!strcmp(key, "num_predict")) o->num_predict = d < 0 ? -1 : (int32_t)d;
    else if (!strcmp(key, "num_ctx")) o->session.num_ctx = (int32_t)d;
    else if (!strcmp(key, "num_thread")) o->session.n_threads = (int32_t)d;
    else if (!strcmp(key, "num_batch")) o->session.n_batch = (int32_t)d;
}

static int has_stop(const store_modelfile *mf) {
    for (size_t i = 0; i < mf->n; i++)
        if (!strcmp(mf->cmds[i].key, "stop")) return 1;
    return 0;
}

/* defaults < model PARAMETERs < flags < /set parameter. A later layer that
 * sets stop strings replaces the earlier ones. */
static int rs_effective(run_state *rs) {
    cli_gen_opts flags;
    cli_gen_opts_default(&flags);
    for (int i = 0; i < rs->argc; i++)
        if (cli_parse_gen_opt(&flags, rs->argc, rs->argv, &i) < 0) return -1;
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    for (size_t i = 0; i < rs->model_params.n; i++)
        apply_param(&o, rs->model_params.cmds[i].key, rs->model_params.cmds[i].value);
    if (flags.n_stops) o.n_stops = 0;
    for (int i = 0; i < rs->argc; i++) cli_parse_gen_opt(&o, rs->argc, rs->argv, &i);
    if (has_stop(&rs->user_params)) o.n_stops = 0;
    for (size_t i = 0; i < rs->user_params.n; i++)
        apply_param(&o, rs->user_params.cmds[i].key, rs->user_params.cmds[i].value);
    o.verbose = o.verbose || rs->verbose;
    o.system = rs->system;
    /* a loaded model without a chat template can only take raw prompts */
    if (rs->lm && !rs->sm.template_text && !rs->lm->tmpl) o.raw = 1;
    rs->o = o;
    return 0;
}

/* ---- loading ---- */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void rs_unload(run_state *rs) {
    if (rs->s) hl_session_free(rs->s);
    if (rs->lm) hl_loaded_free(rs->lm);
    rs->s = NULL;
    rs->lm = NULL;
    store_model_free(&rs->sm);
    memset(&rs->sm, 0, sizeof rs->sm);
    store_modelfile_free(&rs->model_params);
    memset(&rs->model_params, 0, sizeof rs->model_params);
    free(rs->name);
    rs->name = NULL;
    rs->from_store = 0;
}

static int open_store_once(run_state *rs) {
    hl_err err = {0};
    if (rs->st) return 0;
    if (store_open(&rs->st, NULL, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Resolves name (path or store name; pulls a missing store model), checks
 * memory, loads, and starts a session. Prints errors. */
static int rs_load(run_state *rs, const char *name) {
    hl_err err = {0};
    rs_unload(rs);
    rs->name = strdup(name);
    const char *path = name;
    if (!file_exists(name)) {
        store_name sn;
        if (store_name_parse(name, &sn, &err)) {
            fprintf(stderr, "Error: %s is neither a file nor a model name: %s\n", name, err.msg);
            return -1;
        }
        if (open_store_once(rs)) return -1;
        int rc = store_resolve(rs->st, name, &rs->sm, &err);
        if (rc == HL_ENOENT) {
            /* like Ollama: pull what the store lacks, then run it */
            char *sugg = store_suggest(rs->st, name);
            char *av[] = {(char *)name};
            if (cmd_pull(1, av) != 0) {
                if (sugg) fprintf(stderr, "Did you mean: %s?\n", sugg);
                free(sugg);
                return -1;
            }
            free(sugg);
            memset(&rs->sm, 0, sizeof rs->sm);
            rc = store_resolve(rs->st, name, &rs->sm, &err);
        }
        if (rc) {
            fprintf(stderr, "Error: %s\n", err.msg);
            return -1;
        }
        if (!rs->sm.model_path) {
            fprintf(stderr, "Error: model %s has no model layer\n", name);
            return -1;
        }
        if (rs->sm.has_adapter) hl_warn("%s has an ADAPTER layer; adapters are not supported yet and are ignored", name);
        rs->from_store = 1;
        path = rs->sm.model_path;
        if (rs->sm.params_json && store_params_from_json(rs->sm.params_json, &rs->model_params, &err)) {
            fprintf(stderr, "Error: model %s parameters: %s\n", name, err.msg);
            return -1;
        }
        if (!rs->system && rs->sm.system) rs->system = strdup(rs->sm.system);
    }
    if (rs_effective(rs)) return -1;
    if (cli_check_memory(path, rs->o.session.num_ctx, rs->o.session.kv_type == HL_TYPE_Q8_0, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    if (cli_load_model(path, &rs->lm)) return -1;
    if (hl_session_new(&rs->s, rs->lm, &rs->o.session, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* ---- one answer ---- */

typedef struct capture {
    hl_buf text;
    int echo;
} capture;

static int emit_capture(void *user, const char *text, size_t n) {
    capture *c = user;
    hl_buf_append(&c->text, text, n);
    if (c->echo) emit_stdout(NULL, text, n);
    return g_interrupted;
}

/* The whole conversation as the template sees it: system, the Modelfile's
 * MESSAGEs, then this chat's turns. */
static int build_messages(const run_state *rs, const conversation *conv, conversation *all) {
    if (rs->system && conv_add(all, "system", rs->system, strlen(rs->system))) return -1;
    if (rs->sm.messages_json) {
        store_modelfile mf = {0};
        hl_err e;
        if (store_messages_from_json(rs->sm.messages_json, &mf, &e) == 0)
            for (size_t i = 0; i < mf.n; i++) conv_add(all, mf.cmds[i].key, mf.cmds[i].value, strlen(mf.cmds[i].value));
        store_modelfile_free(&mf);
    }
    for (size_t i = 0; i < conv->n; i++) conv_add(all, conv->msgs[i].role, conv->msgs[i].content, strlen(conv->msgs[i].content));
    return 0;
}

static int render_prompt(const run_state *rs, const conversation *conv, char **out, hl_err *err) {
    conversation all = {0};
    build_messages(rs, conv, &all);
    int rc;
    if (rs->sm.template_text) {
        gotmpl_msg *m = calloc(all.n + 1, sizeof *m);
        if (!m) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        else {
            for (size_t i = 0; i < all.n; i++) m[i] = (gotmpl_msg){.role = all.msgs[i].role, .content = all.msgs[i].content};
            gotmpl_chat c = {.msgs = m, .n_msgs = all.n};
            hl_buf b = {0};
            rc = gotmpl_render_chat(rs->sm.template_text, strlen(rs->sm.template_text), &c, &b, err);
            *out = rc ? NULL : hl_buf_take(&b);
            if (!rc && !*out) *out = strdup("");
            hl_buf_free(&b);
            free(m);
        }
    } else {
        rc = hl_loaded_render_chat(rs->lm, all.msgs, all.n, out, err);
    }
    conv_free(&all);
    return rc;
}

static int has_template(const run_state *rs) { return rs->sm.template_text || rs->lm->tmpl; }

/* Renders (or takes raw) the prompt, generates, streams. The answer text is
 * returned in cap->text for the conversation. */
static int answer(run_state *rs, const conversation *conv, const char *raw_prompt, capture *cap) {
    hl_err err = {0};
    char *prompt = NULL;
    const cli_gen_opts *o = &rs->o;
    if (raw_prompt) prompt = strdup(raw_prompt);
    else if (render_prompt(rs, conv, &prompt, &err) != 0) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = hl_loaded_tokenize_prompt(rs->lm, prompt, &ids, &n_ids, &err);
    free(prompt);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    hl_gen_params gp = {.sampling = o->sampling, .num_predict = o->num_predict, .stops = o->stops, .n_stops = o->n_stops};
    hl_gen_stats st;
    int64_t t0 = hl_now_ns();
    g_interrupted = 0;
    rc = hl_session_generate(rs->s, ids, n_ids, &gp, emit_capture, cap, &st, &err);
    int64_t total = hl_now_ns() - t0;
    free(ids);
    if (rc) {
        fprintf(stderr, "\nError: %s\n", err.msg);
        return -1;
    }
    /* scripting (--raw into a pipe) gets only the generated text */
    if (cap->echo && (!o->raw || isatty(STDOUT_FILENO))) fputc('\n', stdout);
    fflush(stdout);
    if (o->verbose) {
        if (cap->echo) fputc('\n', stderr);
        print_stats(&st, total, rs->lm->load_ns);
    }
    return 0;
}

static char *read_all_stdin(void) {
    hl_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) hl_buf_append(&b, chunk, n);
    return hl_buf_take(&b);
}

/* ---- the interactive chat ---- */

static int needs_new_session(const char *key) {
    return !strcmp(key, "num_ctx") || !strcmp(key, "num_thread") || !strcmp(key, "num_batch");
}

static void set_parameter(run_state *rs, char **w, int n) {
    if (cli_store_user_param(&rs->user_params, w, n)) return;
    hl_err err = {0};
    const char *key = w[0];
    rs_effective(rs);
    if (needs_new_session(key)) {
        hl_session *s;
        if (hl_session_new(&s, rs->lm, &rs->o.session, &err)) {
            printf("Couldn't set parameter: %s\n\n", err.msg);
            return;
        }
        hl_session_free(rs->s);
        rs->s = s;
    }
    cli_print_param_set(w, n);
}

/* What /show reads for the model of this chat: the server's /api/show for a
 * store model (what `show` prints), or a reply built here for a GGUF file
 * run by path (no server needed). Caller puts; NULL after printing an error. */
static struct json_object *show_reply(run_state *rs) {
    struct json_object *o = NULL;
    if (rs->from_store) {
        cli_client c;
        if (cli_connect(&c) || cli_show_model(&c, rs->name, &o)) return NULL;
        return o;
    }
    if (!(o = json_object_new_object())) return NULL;
    char mf[4200];
    snprintf(mf, sizeof mf, "# Modelfile generated by \"hyperlama show\"\nFROM %s\n", rs->name);
    json_object_object_add(o, "modelfile", json_object_new_string(mf));
    json_object_object_add(o, "parameters", json_object_new_string(""));
    if (rs->lm->tmpl_src) json_object_object_add(o, "template", json_object_new_string(rs->lm->tmpl_src));
    return o;
}

static void show(run_state *rs, const char *what) {
    if (what && !strcmp(what, "info") && !rs->from_store) {
        /* a file has no store details: its path and context, then the sections */
        printf("  Model\n    %-16s%s\n    %-16s%d\n\n", "file", rs->name, "context length", hl_session_num_ctx(rs->s));
        struct json_object *o = show_reply(rs), *now = o ? cli_session_show(o, &rs->user_params, rs->system) : NULL;
        if (now) cli_print_show_sections(now);
        if (now) json_object_put(now);
        if (o) json_object_put(o);
        return;
    }
    struct json_object *o = what && *what ? show_reply(rs) : NULL;
    if (what && *what && !o) return;
    cli_repl_show(o, &rs->user_params, rs->system, what);
    if (o) json_object_put(o);
}

/* /save NAME: a new store model FROM the current one with this session's
 * system message, parameters and messages. */
static void save(run_state *rs, const conversation *conv, const char *name) {
    hl_err err = {0};
    if (!name || !*name) {
        printf("Usage:\n  /save <modelname>\n");
        return;
    }
    if (open_store_once(rs)) return;
    store_modelfile mf = {0};
    char from[4096];
    if (rs->from_store) snprintf(from, sizeof from, "%s", rs->sm.info.full);
    else if (!realpath(rs->name, from)) snprintf(from, sizeof from, "%s", rs->name);
    int rc = store_modelfile_add(&mf, STORE_MF_FROM, NULL, from, &err);
    for (size_t i = 0; !rc && i < rs->user_params.n; i++)
        rc = store_modelfile_add(&mf, STORE_MF_PARAMETER, rs->user_params.cmds[i].key, rs->user_params.cmds[i].value, &err);
    if (!rc && rs->system) rc = store_modelfile_add(&mf, STORE_MF_SYSTEM, NULL, rs->system, &err);
    for (size_t i = 0; !rc && i < conv->n; i++)
        rc = store_modelfile_add(&mf, STORE_MF_MESSAGE, conv->msgs[i].role, conv->msgs[i].content, &err);
    char *text = rc ? NULL : store_modelfile_format(&mf);
    store_modelfile_free(&mf);
    if (!rc && !text) rc = hl_err_set(&err, HL_ENOMEM, "out of memory");
    store_ops ops = {0};
    if (!rc) rc = store_create(rs->st, name, text, strlen(text), NULL, &ops, &err);
    free(text);
    if (rc) printf("error: %s\n", err.msg);
    else printf("Created new model '%s'\n", name);
}


/* ---- the chat's operations (cli_repl drives them) ---- */

typedef struct run_chat {
    run_state *rs;     /* borrowed */
    conversation conv; /* this chat's turns */
} run_chat;

static void chat_answer(void *ctx, const char *text) {
    run_chat *c = ctx;
    conv_add(&c->conv, "user", text, strlen(text));
    capture cap = {.echo = 1};
    if (answer(c->rs, &c->conv, c->rs->o.raw ? c->conv.msgs[c->conv.n - 1].content : NULL, &cap) == 0) {
        conv_add(&c->conv, "assistant", cap.text.data ? cap.text.data : "", cap.text.len);
    } else {
        conv_clear(&c->conv, c->conv.n - 1); /* drop the unanswered turn */
    }
    hl_buf_free(&cap.text);
}

static void chat_clear(void *ctx) {
    run_chat *c = ctx;
    conv_clear(&c->conv, 0);
    hl_session_reset(c->rs->s);
}

static void chat_set_parameter(void *ctx, char **w, int n) { set_parameter(((run_chat *)ctx)->rs, w, n); }

static void chat_set_system(void *ctx, char *text) {
    run_state *rs = ((run_chat *)ctx)->rs;
    free(rs->system);
    rs->system = text;
    rs_effective(rs);
}

static void chat_set_verbose(void *ctx, int on) {
    run_state *rs = ((run_chat *)ctx)->rs;
    rs->verbose = on;
    rs_effective(rs);
}

static void chat_show(void *ctx, const char *what) { show(((run_chat *)ctx)->rs, what); }

static int chat_load(void *ctx, const char *name) {
    run_chat *c = ctx;
    run_state *rs = c->rs;
    char *keep_sys = rs->system;
    rs->system = NULL; /* the new model's SYSTEM applies */
    store_modelfile_free(&rs->user_params);
    memset(&rs->user_params, 0, sizeof rs->user_params);
    if (rs_load(rs, name)) {
        rs->system = keep_sys;
        return 1;
    }
    free(keep_sys);
    conv_clear(&c->conv, 0);
    if (!has_template(rs)) rs->o.raw = 1;
    return 0;
}

static void chat_save(void *ctx, const char *name) {
    run_chat *c = ctx;
    save(c->rs, &c->conv, name);
}

static const cli_chat_ops CHAT_OPS = {
    .answer = chat_answer, .clear = chat_clear, .set_parameter = chat_set_parameter,
    .set_system = chat_set_system, .set_verbose = chat_set_verbose, .show = chat_show,
    .load = chat_load, .save = chat_save,
};

/* Interactive chat with the model loaded here. */
static int repl(run_state *rs) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if (!rs->o.raw && !has_template(rs)) {
        hl_warn("%s has no usable chat template; sending prompts as is", rs->name);
        rs->o.raw = 1;
    }
    run_chat c = {.rs = rs};
    int rc = cli_repl(&CHAT_OPS, &c, &g_interrupted);
    conv_free(&c.conv);
    return rc;
}

static void usage(FILE *out) {
    fprintf(out, "Run a model\n\nUsage:\n  hyperlama run MODEL [PROMPT] [flags]\n\n"
                 "MODEL is a model name from the store (pulled first when missing) or a path to a\n"
                 "GGUF file. Without PROMPT, starts an interactive chat (or reads the prompt from\n"
                 "stdin when it is not a terminal). The model's Modelfile PARAMETERs are the\n"
                 "defaults; flags override them.\n\n");
    cli_print_gen_opts_help(out);
}

int cmd_run(int argc, char **argv) {
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    const char *model = NULL;
    hl_buf prompt = {0};
    int have_prompt = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            hl_buf_free(&prompt);
            return 0;
        }
        int r = cli_parse_gen_opt(&o, argc, argv, &i);
        if (r > 0) continue;
        if (r == 0 && argv[i][0] == '-' && argv[i][1]) cli_unknown_flag(argv[i]);
        if (r < 0 || (argv[i][0] == '-' && argv[i][1])) {
            hl_buf_free(&prompt);
            return 2;
        }
        if (!model) model = argv[i];
        else {
            if (have_prompt) hl_buf_putc(&prompt, ' ');
            hl_buf_puts(&prompt, argv[i]);
            have_prompt = 1;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (!have_prompt && !isatty(STDIN_FILENO)) {
        char *in = read_all_stdin();
        hl_buf_puts(&prompt, in ? in : "");
        free(in);
        have_prompt = 1;
    }
    /* a store name runs through the server, as with Ollama; a GGUF path
     * stays in this process */
    store_name sn;
    hl_err name_err = {0};
    if (!file_exists(model) && store_name_parse(model, &sn, &name_err) == 0) {
        int rrc = cli_run_remote(argc, argv, model, have_prompt ? (prompt.data ? prompt.data : "") : NULL);
        hl_buf_free(&prompt);
        return rrc;
    }
    run_state rs = {.argc = argc, .argv = argv};
    if (o.system) rs.system = strdup(o.system);
    int rc = 0;
    if (rs_load(&rs, model)) rc = 1;
    else if (have_prompt) {
        conversation conv = {0};
        conv_add(&conv, "user", prompt.data ? prompt.data : "", prompt.len);
        if (!rs.o.raw && !has_template(&rs)) {
            hl_warn("%s has no usable chat template; sending the prompt as is", model);
            rs.o.raw = 1;
        }
        capture cap = {.echo = 1};
        struct sigaction sa = {0};
        sa.sa_handler = on_sigint;
        sigaction(SIGINT, &sa, NULL);
        rc = answer(&rs, &conv, rs.o.raw ? (prompt.data ? prompt.data : "") : NULL, &cap) ? 1 : 0;
        hl_buf_free(&cap.text);
        conv_free(&conv);
    } else {
        rc = repl(&rs);
    }
    rs_unload(&rs);
    store_modelfile_free(&rs.user_params);
    free(rs.system);
    if (rs.st) store_close(rs.st);
    hl_buf_free(&prompt);
    return rc;
}
