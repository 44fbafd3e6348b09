/* hyperlama: the command-line entry point. Dispatches to one function per
 * verb (cli.h); only this file may exit the process. */
#include "cli/cli.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} verbs[] = {
    {"serve", cmd_serve, "Start the server (Ollama and OpenAI APIs)"},
    {"run", cmd_run, "Run a model (one answer, or an interactive chat)"},
    {"bench", cmd_bench, "Measure prompt processing and generation speed"},
    {"tokenize", cmd_tokenize, "Print the token ids of a text"},
    {"inspect", cmd_inspect, "Print a GGUF file's metadata and tensors"},
    {"logits", cmd_logits, "Dump the logits of a token sequence (for reference checks)"},
    {"pull", cmd_pull, "Pull a model from a registry"},
    {"create", cmd_create, "Create a model from a Modelfile"},
    {"show", cmd_show, "Show information for a model"},
    {"list", cmd_list, "List models"},
    {"ls", cmd_list, "List models (alias of list)"},
    {"ps", cmd_ps, "List running models"},
    {"stop", cmd_stop, "Stop a running model"},
    {"cp", cmd_cp, "Copy a model"},
    {"rm", cmd_rm, "Remove a model"},
    {"push", cmd_push, "Push a model to a registry (not supported yet)"},
    {"import", cmd_import, "Import models from an Ollama store"},
};

static void usage(FILE *out) {
    fprintf(out, "Large language model runner\n\nUsage:\n  hyperlama [flags]\n  hyperlama [command]\n\n"
                 "Available Commands:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].help);
    fprintf(out, "  %-10s %s\n\nFlags:\n  -h, --help      help for hyperlama\n  -v, --version   Show version information\n\n"
                 "Use \"hyperlama [command] --help\" for more information about a command.\n",
            "help", "Help about any command");
}

int main(int argc, char **argv) {
    const char *dbg = getenv("HYPERLAMA_DEBUG");
    if (dbg && *dbg && strcmp(dbg, "0") != 0) hl_log_set_level(HL_LOG_DEBUG);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        if (argc >= 3 && strcmp(argv[1], "help") == 0) {
            char *help_argv[] = {(char *)"--help"};
            for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
                if (strcmp(argv[2], verbs[i].name) == 0) return verbs[i].fn(1, help_argv);
        }
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0) {
        printf("hyperlama version %s\n", HL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(argv[1], verbs[i].name) == 0) return verbs[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "Error: unknown command \"%s\" for \"hyperlama\"\n", argv[1]);
    return 2;
}
