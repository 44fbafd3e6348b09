/* What both paths of `run` share in the interactive chat (in-process for a
 * GGUF file in cmd_run.c, through the server in run_remote.c): the chat
 * loop itself (cli_repl: prompts, line editing and history, Ctrl+C/Ctrl+D,
 * """ blocks, slash-command parsing and the messages that do not depend
 * on the path), the help texts of the slash commands, word splitting and
 * unquoting of command lines, where the input history lives, and /show:
 * the model's /api/show reply as this session has changed it (/set
 * parameter and /set system show up in info, modelfile, parameters and
 * system, as in Ollama). What a command does to the model or conversation
 * is the path's cli_chat_ops. */
#include "cli/cli.h"
#include "cli/client.h"
#include "store/modelfile.h"
#include "base/buf.h"

#include <editline/readline.h>
#include <json-c/json.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void help_main(void) {
    printf("Available Commands:\n"
           "  /set            Set session variables\n"
           "  /show           Show model information\n"
           "  /load <model>   Load a session or model\n"
           "  /save <model>   Save your current session\n"
           "  /clear          Clear session context\n"
           "  /bye            Exit\n"
           "  /?, /help       Help for a command\n"
           "  /? shortcuts    Help for keyboard shortcuts\n\n"
           "Use \"\"\" to begin a multi-line message.\n\n");
}

static void help_set(void) {
    printf("Available Commands:\n"
           "  /set parameter ...     Set a parameter\n"
           "  /set system <string>   Set system message\n"
           "  /set history           Enable history\n"
           "  /set nohistory         Disable history\n"
           "  /set verbose           Show LLM stats\n"
           "  /set quiet             Disable LLM stats\n"
           "  /set think             Enable thinking\n"
           "  /set nothink           Disable thinking\n"
           "  /set format json       Enable JSON mode (or a JSON Schema, inline or @FILE)\n"
           "  /set noformat          Disable formatting\n\n");
}

static void help_show(void) {
    printf("Available Commands:\n"
           "  /show info         Show details for this model\n"
           "  /show license      Show model license\n"
           "  /show modelfile    Show Modelfile for this model\n"
           "  /show parameters   Show parameters for this model\n"
           "  /show system       Show system message\n"
           "  /show template     Show prompt template\n\n");
}

static void help_shortcuts(void) {
    printf("Available keyboard shortcuts:\n"
           "  Ctrl + a            Move to the beginning of the line (Home)\n"
           "  Ctrl + e            Move to the end of the line (End)\n"
           "  Ctrl + k            Delete the sentence after the cursor\n"
           "  Ctrl + u            Delete the sentence before the cursor\n"
           "  Ctrl + w            Delete the word before the cursor\n\n"
           "  Ctrl + l            Clear the screen\n"
           "  Ctrl + c            Stop the model from responding\n"
           "  Ctrl + d            Exit hyperlama (/bye)\n\n");
}

static void help_parameters(void) {
    printf("Available Parameters:\n"
           "  /set parameter seed <int>             Random number seed\n"
           "  /set parameter num_predict <int>      Max number of tokens to predict\n"
           "  /set parameter top_k <int>            Pick from top k num of tokens\n"
           "  /set parameter top_p <float>          Pick token based on sum of probabilities\n"
           "  /set parameter min_p <float>          Pick token based on top token probability * min_p\n"
           "  /set parameter num_ctx <int>          Set the context size\n"
           "  /set parameter temperature <float>    Set creativity level\n"
           "  /set parameter repeat_penalty <float> How strongly to penalize repetitions\n"
           "  /set parameter repeat_last_n <int>    Set how far back to look for repetitions\n"
           "  /set parameter num_gpu <int>          The number of layers to send to the GPU\n"
           "  /set parameter stop <string> <string> ...   Set the stop parameters\n\n");
}

void cli_repl_help(const char *topic) {
    if (!strcmp(topic, "set") || !strcmp(topic, "/set")) help_set();
    else if (!strcmp(topic, "show") || !strcmp(topic, "/show")) help_show();
    else if (!strcmp(topic, "shortcut") || !strcmp(topic, "shortcuts")) help_shortcuts();
    else if (!strcmp(topic, "parameters")) help_parameters();
    else help_main();
}

/* Splits s on spaces into at most max words (in place). */
int cli_split_words(char *s, char **w, int max) {
    int n = 0;
    for (char *p = strtok(s, " \t"); p && n < max; p = strtok(NULL, " \t")) w[n++] = p;
    return n;
}

void cli_unquote(char *s) {
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        memmove(s, s + 1, n - 2);
        s[n - 2] = 0;
    }
}

void cli_history_path(char *out, size_t cap) {
    const char *home = getenv("HOME");
    out[0] = 0;
    if (!home || !*home) return;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/.hyperlama", home);
    mkdir(dir, 0755);
    snprintf(out, cap, "%s/history", dir);
}

/* ---- the chat loop ---- */

/* The line editor's state: history on or off, and a """ block being read. */
typedef struct repl_input {
    char hist[4200];
    int use_history;
    hl_buf multi;
    int in_multi, multi_system;
} repl_input;

static void set_system(const cli_chat_ops *ops, void *ctx, char *text) {
    ops->set_system(ctx, text);
    printf("Set system message.\n");
}

/* /set ...: what does not touch the model is handled here. */
static void cmd_set(const cli_chat_ops *ops, void *ctx, repl_input *in, const char *line, char **w, int n) {
    const char *what = n > 1 ? w[1] : "";
    if (!strcmp(what, "parameter")) ops->set_parameter(ctx, w + 2, n - 2);
    else if (!strcmp(what, "system")) {
        const char *p = strstr(line, "system") + 6;
        while (*p == ' ') p++;
        char *s = strdup(p);
        if (s) cli_unquote(s);
        set_system(ops, ctx, s);
    } else if (!strcmp(what, "verbose")) {
        ops->set_verbose(ctx, 1);
        printf("Set 'verbose' mode.\n");
    } else if (!strcmp(what, "think") || !strcmp(what, "nothink")) {
        int on = !strcmp(what, "think");
        if (ops->set_think) ops->set_think(ctx, on);
        printf("Set '%s' mode.\n", what);
    } else if (!strcmp(what, "format") && ops->set_format) {
        const char *p = strstr(line, "format") + 6;
        while (*p == ' ') p++;
        char *f = strdup(p);
        if (f) cli_unquote(f);
        if (!f || !*f) printf("Invalid or missing format. For 'json' mode use '/set format json'\n");
        else if (ops->set_format(ctx, f) == 0) {
            if (!strcmp(f, "json")) printf("Set format to 'json' mode.\n");
            else printf("Set format to the JSON Schema.\n");
        }
        free(f);
    } else if (!strcmp(what, "noformat") && ops->set_format) {
        ops->set_format(ctx, NULL);
        printf("Disabled format.\n");
    } else if (!strcmp(what, "quiet")) {
        ops->set_verbose(ctx, 0);
        printf("Set 'quiet' mode.\n");
    } else if (!strcmp(what, "history")) {
        in->use_history = in->hist[0] != 0;
        printf("Set 'history' mode.\n");
    } else if (!strcmp(what, "nohistory")) {
        in->use_history = 0;
        printf("Set 'nohistory' mode.\n");
    } else if (!*what) cli_repl_help("set");
    else printf("Unknown command '/set %s'. Type /? for help\n", what);
}

/* One slash-command line. Returns 0 to go on, 1 to end the chat (/bye),
 * -1 to end it with failure (a /load that failed). */
static int slash_command(const cli_chat_ops *ops, void *ctx, repl_input *in, const char *line) {
    char *w[64];
    char *copy = strdup(line);
    if (!copy) return -1;
    int n = cli_split_words(copy, w, 64);
    const char *cmd = n ? w[0] : "/";
    int rc = 0;
    if (!strcmp(cmd, "/bye") || !strcmp(cmd, "/exit")) {
        rc = 1;
    } else if (!strcmp(cmd, "/clear")) {
        ops->clear(ctx);
        printf("Cleared session context\n");
    } else if (!strcmp(cmd, "/?") || !strcmp(cmd, "/help")) {
        cli_repl_help(n > 1 ? w[1] : "");
    } else if (!strcmp(cmd, "/set")) {
        cmd_set(ops, ctx, in, line, w, n);
    } else if (!strcmp(cmd, "/show")) {
        ops->show(ctx, n > 1 ? w[1] : NULL);
    } else if (!strcmp(cmd, "/load")) {
        if (n < 2) printf("Usage:\n  /load <modelname>\n");
        else {
            printf("Loading model '%s'\n", w[1]);
            if (ops->load(ctx, w[1])) rc = -1;
        }
    } else if (!strcmp(cmd, "/save")) {
        ops->save(ctx, n > 1 ? w[1] : NULL);
    } else {
        printf("Unknown command '%s'. Type /? for help\n", cmd);
    }
    free(copy);
    return rc;
}

/* Starts or continues a """ block. Returns the finished text (owned) to
 * send or to take as the system message (in->multi_system), or NULL while
 * the block goes on. Takes line. */
static char *multi_line(repl_input *in, char *line) {
    if (in->in_multi) {
        char *end = strstr(line, "\"\"\"");
        if (!end) {
            hl_buf_puts(&in->multi, line);
            hl_buf_putc(&in->multi, '\n');
            free(line);
            return NULL;
        }
        hl_buf_append(&in->multi, line, (size_t)(end - line));
        in->in_multi = 0;
        free(line);
        char *text = hl_buf_take(&in->multi);
        return text ? text : strdup("");
    }
    in->multi_system = line[0] == '/';
    const char *rest = line + (in->multi_system ? 15 : 3);
    char *end = strstr(rest, "\"\"\"");
    if (end) {
        char *t = strndup(rest, (size_t)(end - rest));
        free(line);
        return t;
    }
    hl_buf_puts(&in->multi, rest);
    if (*rest) hl_buf_putc(&in->multi, '\n');
    in->in_multi = 1;
    free(line);
    return NULL;
}

int cli_repl(const cli_chat_ops *ops, void *ctx, volatile sig_atomic_t *interrupted) {
    setlocale(LC_ALL, "");
    repl_input in = {0};
    cli_history_path(in.hist, sizeof in.hist);
    in.use_history = in.hist[0] != 0;
    if (in.use_history) read_history(in.hist);
    int rc = 0;
    for (;;) {
        *interrupted = 0;
        char *line = readline(in.in_multi ? "... " : ">>> ");
        if (!line) { /* Ctrl+D */
            if (in.in_multi) { in.in_multi = 0; hl_buf_reset(&in.multi); printf("\n"); continue; }
            break;
        }
        if (*interrupted) { /* Ctrl+C at the prompt clears the line */
            free(line);
            in.in_multi = 0;
            hl_buf_reset(&in.multi);
            printf("\nUse Ctrl + d or /bye to exit.\n");
            continue;
        }
        if (*line && in.use_history) {
            add_history(line);
            write_history(in.hist);
        }
        if (in.in_multi || strncmp(line, "\"\"\"", 3) == 0 || strncmp(line, "/set system \"\"\"", 15) == 0) {
            line = multi_line(&in, line);
            if (!line) continue;
            if (in.multi_system) {
                set_system(ops, ctx, line);
                continue;
            }
        } else if (line[0] == '/') {
            int r = slash_command(ops, ctx, &in, line);
            free(line);
            if (r < 0) rc = 1;
            if (r) break;
            continue;
        }
        if (!*line) {
            free(line);
            continue;
        }
        ops->answer(ctx, line);
        free(line);
        printf("\n");
    }
    hl_buf_free(&in.multi);
    return rc;
}

/* ---- /set parameter, shared by both paths ---- */

/* Validates words w[1..n) as values of parameter w[0] and stores them in the
 * session's parameters, replacing earlier values of that key (every value
 * for stop, which may repeat). Prints the help or the error; -1 then. */
int cli_store_user_param(store_modelfile *user, char **w, int n) {
    if (n < 2) {
        cli_repl_help("parameters");
        return -1;
    }
    hl_err err = {0};
    const char *key = w[0];
    for (int i = 1; i < n; i++) {
        int dep = 0;
        if (store_param_check(key, w[i], &dep, &err)) {
            printf("Couldn't set parameter: %s\n\n", err.msg);
            return -1;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < user->n; i++) {
        if (!strcmp(user->cmds[i].key, key)) {
            free(user->cmds[i].key);
            free(user->cmds[i].value);
        } else user->cmds[k++] = user->cmds[i];
    }
    user->n = k;
    for (int i = 1; i < (strcmp(key, "stop") ? 2 : n); i++) store_modelfile_add(user, STORE_MF_PARAMETER, key, w[i], &err);
    return 0;
}

/* The confirmation Ollama prints after /set parameter. */
void cli_print_param_set(char **w, int n) {
    const char *key = w[0];
    if (!strcmp(key, "stop")) {
        printf("Set parameter '%s' to '", key);
        for (int i = 1; i < n; i++) printf("%s%s", i > 1 ? ", " : "", w[i]);
        printf("'\n");
    } else printf("Set parameter '%s' to '%s'\n", key, w[1]);
}

/* Parameters as `/show parameters` lists them. */
void cli_print_param_list(const store_modelfile *mf) {
    for (size_t i = 0; i < mf->n; i++) {
        const char *k = mf->cmds[i].key, *v = mf->cmds[i].value;
        if (!strcmp(k, "stop")) printf("%-30s \"%s\"\n", k, v);
        else printf("%-30s %s\n", k, v);
    }
}

/* ---- /show in a chat: the model as this session has changed it ---- */

/* A parameter value as /api/show's "parameters" text writes it (JSON:
 * numbers and booleans bare, anything else a string). */
static void put_param_value(hl_buf *b, const char *v) {
    char *end;
    if (*v && (strtod(v, &end), !*end) && !strchr(v, ' ')) hl_buf_puts(b, v);
    else if (!strcmp(v, "true") || !strcmp(v, "false")) hl_buf_puts(b, v);
    else {
        struct json_object *s = json_object_new_string(v);
        hl_buf_puts(b, s ? json_object_to_json_string_ext(s, JSON_C_TO_STRING_NOSLASHESCAPE) : "\"\"");
        json_object_put(s);
    }
}

static int user_sets(const store_modelfile *user, const char *key) {
    for (size_t i = 0; user && i < user->n; i++)
        if (!strcmp(user->cmds[i].key, key)) return 1;
    return 0;
}

/* The model's parameters with the session's over them (a key the user set
 * replaces every model value of that key, as the request options do). */
static char *merged_params_text(const char *model_text, const store_modelfile *user) {
    store_modelfile mp = {0};
    hl_buf b = {0};
    cli_parse_param_text(model_text, &mp);
    for (size_t i = 0; i < mp.n; i++) {
        if (user_sets(user, mp.cmds[i].key)) continue;
        hl_buf_printf(&b, "%-30s ", mp.cmds[i].key);
        put_param_value(&b, mp.cmds[i].value);
        hl_buf_putc(&b, '\n');
    }
    for (size_t i = 0; user && i < user->n; i++) {
        hl_buf_printf(&b, "%-30s ", user->cmds[i].key);
        put_param_value(&b, user->cmds[i].value);
        hl_buf_putc(&b, '\n');
    }
    store_modelfile_free(&mp);
    char *t = hl_buf_take(&b);
    return t ? t : strdup("");
}

/* Where an instruction goes in a Modelfile show writes: FROM, TEMPLATE,
 * SYSTEM, PARAMETERs, MESSAGEs, LICENSE, ADAPTER. */
static int kind_rank(store_mf_kind k) {
    switch (k) {
    case STORE_MF_FROM: return 0;
    case STORE_MF_TEMPLATE: return 1;
    case STORE_MF_SYSTEM: return 2;
    case STORE_MF_PARAMETER: return 3;
    case STORE_MF_MESSAGE: return 4;
    case STORE_MF_LICENSE: return 5;
    default: return 6;
    }
}

/* The model's Modelfile with the session's SYSTEM and PARAMETERs in place
 * of the model's; its leading comment block is kept. NULL when the text
 * does not parse (it then stays as the server wrote it). */
static char *merged_modelfile(const char *text, const store_modelfile *user, const char *system) {
    store_modelfile in = {0}, out = {0};
    hl_err e;
    if (!text || store_modelfile_parse_loose(text, strlen(text), &in, &e)) {
        store_modelfile_free(&in);
        return NULL;
    }
    int rc = 0;
    for (int rank = 0; rank <= 6 && !rc; rank++) {
        if (rank == 2 && system && *system) rc = store_modelfile_add(&out, STORE_MF_SYSTEM, NULL, system, &e);
        for (size_t i = 0; i < in.n && !rc; i++) {
            const store_mf_cmd *c = &in.cmds[i];
            if (kind_rank(c->kind) != rank) continue;
            if (c->kind == STORE_MF_SYSTEM && system) continue;
            if (c->kind == STORE_MF_PARAMETER && user_sets(user, c->key)) continue;
            rc = store_modelfile_add(&out, c->kind, c->key, c->value, &e);
        }
        if (rank == 3)
            for (size_t i = 0; user && i < user->n && !rc; i++)
                rc = store_modelfile_add(&out, STORE_MF_PARAMETER, user->cmds[i].key, user->cmds[i].value, &e);
    }
    char *body = rc ? NULL : store_modelfile_format(&out);
    store_modelfile_free(&in);
    store_modelfile_free(&out);
    if (!body) return NULL;
    hl_buf b = {0};
    for (const char *p = text; *p == '#';) { /* "# Modelfile generated by ..." */
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p + 1) : strlen(p);
        hl_buf_append(&b, p, n);
        p += n;
        if (*p == '\n') {
            hl_buf_putc(&b, '\n');
            p++;
        }
    }
    hl_buf_puts(&b, body);
    free(body);
    return hl_buf_take(&b);
}

static void set_str(struct json_object *o, const char *key, const char *v) {
    struct json_object *s = v ? json_object_new_string(v) : NULL;
    if (s) json_object_object_add(o, key, s);
}

struct json_object *cli_session_show(struct json_object *show, const store_modelfile *user, const char *system) {
    struct json_object *o = NULL;
    if (!show || json_object_deep_copy(show, &o, NULL) != 0 || !o) return NULL;
    char *params = merged_params_text(cli_jstr(show, "parameters"), user);
    set_str(o, "parameters", params);
    free(params);
    if (system) set_str(o, "system", system);
    char *mf = merged_modelfile(cli_jstr(show, "modelfile"), user, system);
    set_str(o, "modelfile", mf);
    free(mf);
    return o;
}

void cli_repl_show(struct json_object *show, const store_modelfile *user, const char *system, const char *what) {
    const char *t;
    if (!what || !*what) {
        cli_repl_help("show");
        return;
    }
    struct json_object *now = cli_session_show(show, user, system);
    struct json_object *s = now ? now : show;
    if (!strcmp(what, "info")) {
        cli_print_show(s);
    } else if (!strcmp(what, "license")) {
        if ((t = cli_jstr(s, "license")) && *t) printf("%s\n", t);
        else printf("No license was specified for this model.\n");
    } else if (!strcmp(what, "modelfile")) {
        printf("%s\n", (t = cli_jstr(s, "modelfile")) ? t : "");
    } else if (!strcmp(what, "parameters")) {
        /* Ollama's split: what the model says, then what this chat set */
        store_modelfile mp = {0};
        cli_parse_param_text(cli_jstr(show, "parameters"), &mp);
        int n_user = user ? (int)user->n : 0;
        if (!mp.n && !n_user) printf("No parameters were specified for this model.\n");
        if (mp.n) {
            printf("Model defined parameters:\n");
            cli_print_param_list(&mp);
        }
        if (n_user) {
            printf("%sUser defined parameters:\n", mp.n ? "\n" : "");
            cli_print_param_list(user);
        }
        printf("\n");
        store_modelfile_free(&mp);
    } else if (!strcmp(what, "system")) {
        if ((t = cli_jstr(s, "system")) && *t) printf("%s\n\n", t);
        else printf("No system message was specified for this model.\n");
    } else if (!strcmp(what, "template")) {
        if ((t = cli_jstr(s, "template")) && *t) printf("%s\n", t);
        else printf("No prompt template was specified for this model.\n");
    } else {
        printf("Unknown command '/show %s'. Type /? for help\n", what);
    }
    if (now) json_object_put(now);
}
