/* Grammar mask cost: how long one sequence's mask takes per generated token,
 * at batch 1 and with 16 sequences stepping together, over a real
 * vocabulary and a nested JSON Schema.
 *
 *   bench_grammar MODEL.gguf [STEPS] [SCHEMA.json]
 *
 * Each sequence follows its own random walk (tokens drawn among the allowed
 * ones, as the grammar tests do), so the states are the ones generation
 * meets: keys, strings, numbers, nesting. Reported: the vocabulary index
 * build time, then per token the mean, median, p90, p99 and max of mask + accept
 * (cache hits included, as in generation), the cold (uncached) mean, and at
 * batch 16 the time of one step's 16 masks on one thread (the engine spreads
 * them over its pool). */
#include "base/clock.h"
#include "gguf/gguf.h"
#include "grammar/grammar.h"
#include "base/file.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000},"
    "\"name\":{\"type\":\"string\",\"maxLength\":40},"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"admin\",\"dev\",\"ops\",\"guest\"]},\"maxItems\":4},"
    "\"address\":{\"type\":\"object\",\"properties\":{"
    "\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"},"
    "\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"},"
    "\"geo\":{\"type\":\"object\",\"properties\":{\"lat\":{\"type\":\"number\"},\"lon\":{\"type\":\"number\"}},"
    "\"required\":[\"lat\",\"lon\"],\"additionalProperties\":false}},"
    "\"required\":[\"street\",\"city\",\"zip\"],\"additionalProperties\":false},"
    "\"history\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"when\":{\"type\":\"string\",\"format\":\"date\"},\"what\":{\"type\":\"string\"},"
    "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"when\",\"what\",\"ok\"],\"additionalProperties\":false}}},"
    "\"required\":[\"id\",\"name\",\"email\",\"address\",\"history\"],\"additionalProperties\":false}";

static uint64_t rng(uint64_t *s) {
    uint64_t x = *s += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct walker {
    hl_logits_proc *p;
    uint64_t seed;
    int steps;
} walker;

/* One step of w: mask, draw, accept; restarts the walk when it completes. */
static int64_t step(walker *w, hl_grammar *g, hl_grammar_vocab *v, float *logits, int32_t nv, int32_t *cand) {
    for (int32_t t = 0; t < nv; t++) logits[t] = 0;
    int64_t t0 = hl_now_ns();
    w->p->vt->mask(w->p, logits, nv);
    int64_t dt = hl_now_ns() - t0;
    int32_t nc = 0, npref = 0;
    for (int32_t t = 0; t < nv; t++)
        if (logits[t] == 0 && !hl_grammar_vocab_is_eog(v, t)) cand[nc++] = t;
    /* prefer short structural tokens half the time so walks finish */
    for (int32_t i = 0; i < nc; i++) {
        size_t n;
        const char *s = hl_grammar_vocab_bytes(v, cand[i], &n);
        if (n == 1 && !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z') && (unsigned char)s[0] > ' ') cand[nc + npref++] = cand[i];
    }
    uint64_t r = rng(&w->seed);
    int done = hl_grammar_proc_state(w->p) != 0 || nc == 0 || ++w->steps > 600;
    if (done) {
        hl_err err;
        w->p->vt->free(w->p);
        w->p = NULL;
        hl_grammar_proc_new(&w->p, g, 0, v, &err);
        w->steps = 0;
        return dt;
    }
    int32_t t = npref && (r >> 8) % 10 < 6 ? cand[nc + (r >> 16) % (uint64_t)npref] : cand[(r >> 16) % (uint64_t)nc];
    int64_t t1 = hl_now_ns();
    w->p->vt->accept(w->p, t);
    return dt + (hl_now_ns() - t1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grammar MODEL.gguf [STEPS] [SCHEMA.json]\n");
        return 2;
    }
    int steps = argc > 2 ? atoi(argv[2]) : 300;
    hl_err err = {0};
    char *schema = NULL;
    size_t ns = 0;
    if (argc > 3 && hl_read_file(argv[3], 1 << 24, &schema, &ns, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    gguf_file *f = NULL;
    tok_vocab *tok = NULL;
    if (gguf_open(&f, argv[1], &err) || tok_load(&tok, f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    gguf_close(f);
    hl_grammar *g = NULL;
    if (hl_grammar_from_json_schema(&g, schema ? schema : SCHEMA, schema ? ns : strlen(SCHEMA), &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t t0 = hl_now_ns();
    hl_grammar_vocab *v = NULL;
    if (hl_grammar_vocab_new(&v, tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t t_vocab = hl_now_ns() - t0;
    int32_t nv = hl_grammar_vocab_n(v);
    float *logits = malloc((size_t)nv * sizeof *logits);
    int32_t *cand = malloc((size_t)nv * 2 * sizeof *cand);
    int64_t *times = malloc((size_t)steps * 16 * sizeof *times);
    printf("vocabulary: %d tokens, index built in %.1f ms\n", nv, t_vocab / 1e6);

    /* batch 1 */
    walker w = {.seed = 1};
    hl_grammar_proc_new(&w.p, g, 0, v, &err);
    int64_t sum = 0;
    for (int i = 0; i < steps; i++) sum += times[i] = step(&w, g, v, logits, nv, cand);
    qsort(times, (size_t)steps, sizeof *times, cmp_i64);
    printf("batch 1:  mask+accept per token: mean %.3f ms, median %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (%d tokens)\n",
           sum / 1e6 / steps, times[steps / 2] / 1e6, times[steps * 9 / 10] / 1e6, times[steps * 99 / 100] / 1e6,
           times[steps - 1] / 1e6, steps);
    w.p->vt->free(w.p);

    /* cold: a fresh processor per step sees no cache (replay one walk) */
    {
        walker c = {.seed = 2};
        hl_grammar_proc_new(&c.p, g, 0, v, &err);
        int64_t cold = 0;
        int n = steps < 100 ? steps : 100;
        for (int i = 0; i < n; i++) {
            hl_logits_proc *fresh = c.p->vt->clone(c.p); /* clones start with an empty cache */
            for (int32_t t = 0; t < nv; t++) logits[t] = 0;
            int64_t a = hl_now_ns();
            fresh->vt->mask(fresh, logits, nv);
            cold += hl_now_ns() - a;
            fresh->vt->free(fresh);
            step(&c, g, v, logits, nv, cand);
        }
        printf("cold (no cache): mask per token: mean %.3f ms\n", cold / 1e6 / n);
        c.p->vt->free(c.p);
    }

    /* batch 16 */
    walker ws[16];
    for (int k = 0; k < 16; k++) {
        ws[k] = (walker){.seed = 100 + (uint64_t)k};
        hl_grammar_proc_new(&ws[k].p, g, 0, v, &err);
    }
    int64_t total = 0;
    int64_t *st = malloc((size_t)steps * sizeof *st);
    for (int i = 0; i < steps; i++) {
        int64_t s = 0;
        for (int k = 0; k < 16; k++) s += step(&ws[k], g, v, logits, nv, cand);
        st[i] = s;
        total += s;
    }
    qsort(st, (size_t)steps, sizeof *st, cmp_i64);
    printf("batch 16: one step's 16 masks (one thread): mean %.3f ms, median %.3f ms, p90 %.3f ms, p99 %.3f ms; per token %.3f ms\n",
           total / 1e6 / steps, st[steps / 2] / 1e6, st[steps * 9 / 10] / 1e6, st[steps * 99 / 100] / 1e6,
           total / 1e6 / steps / 16);
    for (int k = 0; k < 16; k++) ws[k].p->vt->free(ws[k].p);
    free(st), free(times), free(cand), free(logits), free(schema);
    hl_grammar_vocab_unref(v);
    hl_grammar_free(g);
    tok_free(tok);
    return 0;
}
