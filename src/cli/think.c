/* How `run` prints an answer whose thinking is split from its content:
 * "Thinking..." then the thinking dimmed, then "...done thinking." and the
 * content, as Ollama's CLI prints it. The escape codes only go to a
 * terminal; --hidethinking prints the content alone. */
#include "cli/cli.h"

#include <stdio.h>
#include <unistd.h>

#define DIM "\x1b[2m"
#define RESET "\x1b[0m"

void cli_think_print(cli_think_out *t, const char *thinking, size_t nt, const char *content, size_t nc) {
    int tty = isatty(STDOUT_FILENO);
    if (nt && !t->hide) {
        if (!t->in_think) fputs(tty ? DIM "Thinking...\n" : "Thinking...\n", stdout);
        t->in_think = 1;
        fwrite(thinking, 1, nt, stdout);
    }
    if (nc) {
        cli_think_end(t);
        fwrite(content, 1, nc, stdout);
    }
    fflush(stdout);
}

void cli_think_end(cli_think_out *t) {
    if (!t->in_think) return;
    fputs(isatty(STDOUT_FILENO) ? "\n...done thinking.\n\n" RESET : "\n...done thinking.\n\n", stdout);
    t->in_think = 0;
    fflush(stdout);
}
