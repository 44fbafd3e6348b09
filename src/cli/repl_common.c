/* What both paths of `run` share in the interactive chat (in-process for a
 * GGUF file in cmd_run.c, through the server in run_remote.c): the chat
 * loop itself (cli_repl: prompts, line editing and history, Ctrl+C/Ctrl+D,
 * """ blocks, slash-command parsing and the messages that do not depend
 * on the path), the help texts of the slash commands, word splitting and
 * unquoting of command lines, and where the input history lives. What a
 * command does to the model or conversation is the path's cli_chat_ops. */
#include "cli/cli.h"
#include "store/modelfile.h"
#include "base/buf.h"

#include <editline/readline.h>
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
           "  /set quiet             Disable LLM stats\n\n");
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
