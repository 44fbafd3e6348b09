/* What both paths of `run` share in the interactive chat (in-process for a
 * GGUF file in cmd_run.c, through the server in run_remote.c): the help
 * texts of the slash commands, word splitting and unquoting of command
 * lines, and where the input history lives. */
#include "cli/cli.h"

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
