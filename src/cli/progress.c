/* Progress of pull, create and import as Ollama's CLI shows it: on a
 * terminal, one redrawn bar per blob (percent, bytes, rate, ETA) and each
 * other status on its own line; without one (a log, a pipe), each status
 * once and each blob once when complete, so a log never repeats a line
 * however the reports of parallel blobs interleave. Reports come from the
 * store (import, in-process) or from the server's NDJSON lines. */
#include "cli/cli.h"
#include "cli/client.h"

#include "base/clock.h"
#include "store/store.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Prints line to stderr unless it was printed before (no terminal). */
static void print_once(cli_progress *ui, const char *line) {
    for (size_t i = 0; i < ui->n_printed; i++)
        if (!strcmp(ui->printed[i], line)) return;
    char **v = realloc(ui->printed, (ui->n_printed + 1) * sizeof *v);
    char *copy = strdup(line);
    if (!v || !copy) { /* out of memory: printing twice beats not at all */
        if (v) ui->printed = v;
        free(copy);
    } else {
        ui->printed = v;
        ui->printed[ui->n_printed++] = copy;
    }
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/* No terminal: one line per status, and a blob's line once it is complete
 * ("pulling 1a2b3c4d5e6f: 100% 1.1 GB"). */
static void progress_plain(cli_progress *ui, const store_progress *p) {
    if (p->total <= 0 || !p->digest) {
        print_once(ui, p->status);
        return;
    }
    if (p->completed < p->total) return;
    char total[32], line[384];
    store_human_bytes(p->total, total, sizeof total);
    snprintf(line, sizeof line, "%s: 100%% %s", p->status, total);
    print_once(ui, line);
}

static void fmt_dur(double s, char *out, size_t cap) {
    if (s < 0 || s > 1e7) { snprintf(out, cap, "--"); return; }
    int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
    if (h) snprintf(out, cap, "%dh%dm", h, m);
    else if (m) snprintf(out, cap, "%dm%ds", m, sec);
    else snprintf(out, cap, "%ds", sec);
}

void cli_progress_report(void *ctx, const store_progress *p) {
    cli_progress *ui = ctx;
    if (!ui->tty) {
        progress_plain(ui, p);
        return;
    }
    int64_t now = hl_now_ns();
    int same = !strcmp(ui->last_status, p->status);
    if (p->total <= 0 || !p->digest) {
        if (same) return;
        if (ui->last_status[0]) fputc('\n', stderr);
        fprintf(stderr, "%s", p->status);
        snprintf(ui->last_status, sizeof ui->last_status, "%s", p->status);
        fflush(stderr);
        return;
    }
    if (!same) {
        if (ui->last_status[0]) fputc('\n', stderr);
        snprintf(ui->last_status, sizeof ui->last_status, "%s", p->status);
        ui->t0_ns = now;
        ui->last_completed = p->completed;
        ui->rate = 0;
        ui->last_draw_ns = 0;
    }
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

void cli_progress_finish(cli_progress *ui) {
    if (ui->tty && ui->last_status[0]) fputc('\n', stderr);
    for (size_t i = 0; i < ui->n_printed; i++) free(ui->printed[i]);
    free(ui->printed);
    ui->printed = NULL;
    ui->n_printed = 0;
}

/* The server's NDJSON progress lines of create and pull. */
int cli_progress_line(void *ctx, struct json_object *o) {
    const char *status = cli_jstr(o, "status");
    if (!status) return 0;
    store_progress p = {.status = status, .digest = cli_jstr(o, "digest"), .total = cli_jint(o, "total"),
                        .completed = cli_jint(o, "completed")};
    cli_progress_report(ctx, &p);
    return 0;
}
