/* hyperlama: the command-line entry point (placeholder until the verbs land). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hyperlama version 0.1.0\n");
        return 0;
    }
    fprintf(stderr, "usage: hyperlama COMMAND ...\n");
    return 2;
}
