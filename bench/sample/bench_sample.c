/* Times hl_sampler_sample on a realistic vocabulary (default 151936, Qwen2's)
 * for the common configurations: greedy, Ollama's defaults (top-k 40), top-p
 * alone over the whole vocabulary, min-p, and with logprobs, on two logit
 * rows: "peaked" (20 strong tokens at 15..20 over a tail of spread ~2, like a
 * confident language model) and "flat" (strong tokens only ~2 spreads above
 * the tail, so the nucleus holds most of the vocabulary: the worst case).
 * Usage: bench_sample [n_vocab] [iterations] */
#include "base/clock.h"
#include "sample/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float rnd(uint64_t *x) {
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*x >> 40) & 0xFFFFFF) / (float)0x1000000;
}

int main(int argc, char **argv) {
    int32_t nv = argc > 1 ? atoi(argv[1]) : 151936;
    int iters = argc > 2 ? atoi(argv[2]) : 200;
    if (nv <= 0 || iters <= 0) {
        fprintf(stderr, "usage: bench_sample [n_vocab > 0] [iterations > 0]\n");
        return 2;
    }
    float *lg = malloc((size_t)nv * sizeof *lg);
    if (!lg) return 1;
    uint64_t x = 1;
    for (int row = 0; row < 2; row++) {
    const float head = row == 0 ? 15.0f : 8.0f;
    for (int32_t i = 0; i < nv; i++) lg[i] = (rnd(&x) + rnd(&x) + rnd(&x) - 1.5f) * 4.0f;
    for (int j = 0; j < 20; j++) lg[(int32_t)(rnd(&x) * (float)nv)] = head + (float)j * 0.25f;

    struct { const char *name; float temp; int32_t k; float tp, mp; int lp; } cfg[] = {
        {"greedy", 0, 40, 0.9f, 0, 0},
        {"ollama defaults (k40 p0.9 rp1.1)", 0.8f, 40, 0.9f, 0, 0},
        {"defaults + 5 top logprobs", 0.8f, 40, 0.9f, 0, 1},
        {"top-p 0.9 alone (k off)", 0.8f, 0, 0.9f, 0, 0},
        {"top-p 0.95 + min-p 0.05 (k off)", 1.0f, 0, 0.95f, 0.05f, 0},
        {"temperature only (k, p off)", 1.0f, 0, 1.0f, 0, 0},
        {"top-k 1000 (heap path)", 0.8f, 1000, 0.9f, 0, 0},
        {"top-k 5000 (quickselect path)", 0.8f, 5000, 0.9f, 0, 0},
    };
    printf("%s row: n_vocab %d, %d iterations each\n", row == 0 ? "peaked" : "flat", nv, iters);
    {
        /* a yardstick for shared machines: one copy of the row, which every
         * configuration pays at least once */
        float *tmp = malloc((size_t)nv * sizeof *tmp);
        if (!tmp) return 1;
        int64_t best = INT64_MAX;
        for (int i = 0; i < iters; i++) {
            int64_t a = hl_now_ns();
            memcpy(tmp, lg, (size_t)nv * sizeof *tmp);
            __asm__ volatile("" : : "r"(tmp) : "memory");
            int64_t d = hl_now_ns() - a;
            best = d < best ? d : best;
        }
        printf("%-36s                  best %8.1f us\n", "(yardstick: memcpy of the row)", (double)best / 1e3);
        free(tmp);
    }
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        hl_sampling_params p = hl_sampling_default_params();
        p.temperature = cfg[c].temp;
        p.top_k = cfg[c].k;
        p.top_p = cfg[c].tp;
        p.min_p = cfg[c].mp;
        p.n_top_logprobs = cfg[c].lp ? 5 : 0;
        p.has_seed = 1;
        p.seed = 7;
        hl_sampler *s;
        hl_err err;
        if (hl_sampler_new(&s, &p, nv, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < 64; i++) hl_sampler_accept(s, (int32_t)(rnd(&x) * (float)nv));
        hl_token_logprobs lp;
        int64_t t0 = hl_now_ns();
        int64_t best = INT64_MAX;
        for (int i = 0; i < iters; i++) {
            int64_t a = hl_now_ns();
            int32_t t = hl_sampler_sample(s, lg, cfg[c].lp ? &lp : NULL);
            int64_t d = hl_now_ns() - a;
            best = d < best ? d : best;
            hl_sampler_accept(s, t);
        }
        double mean = (double)(hl_now_ns() - t0) / iters / 1e3;
        printf("%-36s mean %8.1f us   best %8.1f us\n", cfg[c].name, mean, (double)best / 1e3);
        hl_sampler_free(s);
    }
    }
    free(lg);
    return 0;
}
