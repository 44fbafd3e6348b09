/* `hyperlama run MODEL [PROMPT]`: one answer streamed to stdout, or an
 * interactive multi-turn chat when no prompt is given and stdin is a terminal
 * (piped stdin becomes the prompt, as with Ollama). */
#include "cli/cli.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"

#include <editline/readline.h>
#include <locale.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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
    c->msgs[c->n++] = (chat_message){.role = role, .content = copy};
    return 0;
}

static void conv_clear(conversation *c, size_t keep) {
    while (c->n > keep) free((char *)c->msgs[--c->n].content);
}

static void conv_free(conversation *c) {
    conv_clear(c, 0);
    free(c->msgs);
}

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

/* Renders (or takes raw) the prompt, generates, streams. The answer text is
 * returned in cap->text for the conversation. */
static int answer(hl_session *s, const hl_loaded *lm, const cli_gen_opts *o, const conversation *conv,
                  const char *raw_prompt, capture *cap) {
    hl_err err = {0};
    char *prompt = NULL;
    int rc;
    if (raw_prompt) prompt = strdup(raw_prompt);
    else if ((rc = hl_loaded_render_chat(lm, conv->msgs, conv->n, &prompt, &err)) != 0) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = hl_loaded_tokenize_prompt(lm, prompt, &ids, &n_ids, &err);
    free(prompt);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return -1;
    }
    hl_gen_params gp = {.sampling = o->sampling, .num_predict = o->num_predict, .stops = o->stops, .n_stops = o->n_stops};
    hl_gen_stats st;
    int64_t t0 = hl_now_ns();
    g_interrupted = 0;
    rc = hl_session_generate(s, ids, n_ids, &gp, emit_capture, cap, &st, &err);
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
        print_stats(&st, total, lm->load_ns);
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

static void print_repl_help(void) {
    printf("Available Commands:\n"
           "  /clear          Clear session context\n"
           "  /bye            Exit\n"
           "  /?, /help       Help for a command\n\n"
           "Use \"\"\" to begin a multi-line message.\n\n");
}

/* Interactive chat: >>> prompt, line editing and history, """ blocks. */
static int repl(hl_session *s, const hl_loaded *lm, const cli_gen_opts *o) {
    setlocale(LC_ALL, "");
    conversation conv = {0};
    if (o->system) conv_add(&conv, "system", o->system, strlen(o->system));
    size_t base = conv.n;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    hl_buf multi = {0};
    int in_multi = 0;
    for (;;) {
        g_interrupted = 0;
        char *line = readline(in_multi ? "... " : ">>> ");
        if (!line) { /* Ctrl+D */
            if (in_multi) { in_multi = 0; hl_buf_reset(&multi); printf("\n"); continue; }
            break;
        }
        if (g_interrupted) { /* Ctrl+C at the prompt clears the line */
            free(line);
            in_multi = 0;
            hl_buf_reset(&multi);
            printf("\nUse Ctrl + d or /bye to exit.\n");
            continue;
        }
        if (*line) add_history(line);
        if (in_multi) {
            char *end = strstr(line, "\"\"\"");
            if (end) {
                hl_buf_append(&multi, line, (size_t)(end - line));
                in_multi = 0;
                free(line);
                line = hl_buf_take(&multi);
            } else {
                hl_buf_puts(&multi, line);
                hl_buf_putc(&multi, '\n');
                free(line);
                continue;
            }
        } else if (strncmp(line, "\"\"\"", 3) == 0) {
            const char *rest = line + 3;
            char *end = strstr(rest, "\"\"\"");
            if (end) {
                char *t = strndup(rest, (size_t)(end - rest));
                free(line);
                line = t;
            } else {
                hl_buf_puts(&multi, rest);
                if (*rest) hl_buf_putc(&multi, '\n');
                in_multi = 1;
                free(line);
                continue;
            }
        } else if (line[0] == '/') {
            if (strcmp(line, "/bye") == 0 || strcmp(line, "/exit") == 0) {
                free(line);
                break;
            } else if (strcmp(line, "/clear") == 0) {
                conv_clear(&conv, base);
                hl_session_reset(s);
                printf("Cleared session context\n");
            } else if (strcmp(line, "/?") == 0 || strcmp(line, "/help") == 0) {
                print_repl_help();
            } else {
                printf("Unknown command '%s'. Type /? for help\n", line);
            }
            free(line);
            continue;
        }
        if (!*line) {
            free(line);
            continue;
        }
        conv_add(&conv, "user", line, strlen(line));
        free(line);
        capture cap = {.echo = 1};
        if (answer(s, lm, o, &conv, o->raw ? conv.msgs[conv.n - 1].content : NULL, &cap) == 0) {
            conv_add(&conv, "assistant", cap.text.data ? cap.text.data : "", cap.text.len);
        } else {
            conv_clear(&conv, conv.n - 1); /* drop the unanswered turn */
        }
        printf("\n");
        hl_buf_free(&cap.text);
    }
    hl_buf_free(&multi);
    conv_free(&conv);
    return 0;
}

static void usage(FILE *out) {
    fprintf(out, "Run a model\n\nUsage:\n  hyperlama run MODEL [PROMPT] [flags]\n\n"
                 "MODEL is a path to a GGUF file. Without PROMPT, starts an interactive chat\n"
                 "(or reads the prompt from stdin when it is not a terminal).\n\n");
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
            return 0;
        }
        int r = cli_parse_gen_opt(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "Error: unknown flag: %s\n", argv[i]);
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
        hl_buf_puts(&prompt, in);
        free(in);
        have_prompt = 1;
    }
    hl_loaded *lm;
    if (cli_load_model(model, &lm)) {
        hl_buf_free(&prompt);
        return 1;
    }
    hl_session *s;
    hl_err err = {0};
    if (hl_session_new(&s, lm, &o.session, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        hl_loaded_free(lm);
        hl_buf_free(&prompt);
        return 1;
    }
    int rc = 0;
    if (have_prompt) {
        conversation conv = {0};
        if (o.system) conv_add(&conv, "system", o.system, strlen(o.system));
        conv_add(&conv, "user", prompt.data ? prompt.data : "", prompt.len);
        if (!o.raw && !lm->tmpl) {
            hl_warn("%s has no usable chat template; sending the prompt as is", model);
            o.raw = 1;
        }
        capture cap = {.echo = 1};
        struct sigaction sa = {0};
        sa.sa_handler = on_sigint;
        sigaction(SIGINT, &sa, NULL);
        rc = answer(s, lm, &o, &conv, o.raw ? (prompt.data ? prompt.data : "") : NULL, &cap) ? 1 : 0;
        hl_buf_free(&cap.text);
        conv_free(&conv);
    } else {
        if (!o.raw && !lm->tmpl) {
            hl_warn("%s has no usable chat template; sending prompts as is", model);
            o.raw = 1;
        }
        rc = repl(s, lm, &o);
    }
    hl_session_free(s);
    hl_loaded_free(lm);
    hl_buf_free(&prompt);
    return rc;
}
