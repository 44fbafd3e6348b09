/* Matmul throughput per weight type and shape (SmolLM2-135M and
 * Qwen2.5-1.5B projections): m = 1 reports GB/s of weight bytes read (decode
 * is bandwidth-bound), m = 512 reports GOP/s (2 ops per multiply-add;
 * prefill is compute-bound), each with 1 and 2 threads, median of several
 * runs. Usage: bench_matmul [type ...] [-m M] [-t threads] [-r reps] [-s shapes]
 * [-c] (shapes: smol, qwen, all; -m M times that batch size alone, any M). -c ("cold") rotates through enough copies
 * of the weights (>= 96 MiB) that every call reads them from DRAM, as decode
 * does once a model is larger than the L3 cache; without it, shapes smaller
 * than the L3 are timed from cache. Also times hl_pool_barrier. */
#include "backend/cpu/cpu.h"
#include "base/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct { int64_t n, k; const char *what; } shape;
static const shape smol[] = {{576, 576, "smol q/o"}, {1536, 576, "smol up"}, {576, 1536, "smol down"}, {49152, 576, "smol lm_head"}};
static const shape qwen[] = {{1536, 1536, "qwen q/o"}, {256, 1536, "qwen k/v"}, {8960, 1536, "qwen up"}, {1536, 8960, "qwen down"}, {151936, 1536, "qwen lm_head"}};

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* wall seconds; *cpu gets the process CPU seconds (all threads): on a shared
 * machine, work / cpu time is closer to what a quiet machine gives */
/* Random quantized values with normal, moderate scales: random bytes in the
 * f16 scale fields would give subnormals and NaNs, whose float assists make
 * the kernels look slower than they are on real weights. */
static void fill_weights(hl_type t, uint8_t *w, size_t wsz) {
    uint32_t r = 12345;
    for (size_t i = 0; i < wsz; i++) {
        r = r * 1664525u + 1013904223u;
        w[i] = (uint8_t)(r >> 24);
    }
    const hl_type_traits *tr = hl_type_get(t);
    const hl_f16 d = hl_f32_to_f16(0.01f), dm = hl_f32_to_f16(0.002f);
    if (!tr->quantized) {
        if (t == HL_TYPE_F32)
            for (size_t i = 0; i < wsz / 4; i++) ((float *)w)[i] = (float)(i % 97) * 0.01f;
        else
            for (size_t i = 0; i < wsz / 2; i++) ((uint16_t *)w)[i] = t == HL_TYPE_F16 ? d : hl_f32_to_bf16(0.01f);
        return;
    }
    for (size_t b = 0; b + tr->size <= wsz; b += tr->size) {
        uint8_t *blk = w + b;
        switch (t) {
        case HL_TYPE_Q2_K: memcpy(blk + 80, &d, 2); memcpy(blk + 82, &dm, 2); break;
        case HL_TYPE_Q3_K: memcpy(blk + 108, &d, 2); break;
        case HL_TYPE_Q6_K: memcpy(blk + 208, &d, 2); break;
        case HL_TYPE_Q4_1: case HL_TYPE_Q5_1: case HL_TYPE_Q4_K: case HL_TYPE_Q5_K:
            memcpy(blk, &d, 2); memcpy(blk + 2, &dm, 2); break;
        case HL_TYPE_MXFP4: blk[0] = 120; break; /* e8m0 exponent: scale 2^-8 */
        default: memcpy(blk, &d, 2); break; /* Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: d first */
        }
    }
}

static double run_once(hl_pool *pool, hl_type t, const void *w, int64_t n, int64_t k, const float *x, int64_t m,
                       float *out, void *scratch, double *cpu) {
    double c0 = cpu_s();
    int64_t t0 = hl_now_ns();
    hl_matmul(pool, t, w, n, k, x, m, out, n, scratch);
    double wall = (double)(hl_now_ns() - t0) * 1e-9;
    *cpu = cpu_s() - c0;
    return wall;
}

static void bench(hl_type t, const shape *s, int64_t m, int nt, int reps, int cold) {
    size_t wsz = hl_row_size(t, s->k) * (size_t)s->n;
    /* cold: copies of the weights used in turn, 96 MiB at least in all */
    int ncopy = cold ? (int)((((size_t)96 << 20) + wsz - 1) / wsz) : 1;
    uint8_t *w = malloc(wsz * (size_t)ncopy);
    fill_weights(t, w, wsz);
    for (int c = 1; c < ncopy; c++) memcpy(w + (size_t)c * wsz, w, wsz);
    float *x = malloc(sizeof(float) * (size_t)(m * s->k));
    for (int64_t i = 0; i < m * s->k; i++) x[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    float *out = malloc(sizeof(float) * (size_t)(m * s->n));
    void *scratch = malloc(hl_matmul_act_size(t, m, s->k));
    hl_pool *pool = hl_pool_new(nt);
    double ts[64], cs[64];
    if (reps > 64) reps = 64;
    run_once(pool, t, w, s->n, s->k, x, m, out, scratch, &cs[0]); /* warm-up */
    for (int r = 0; r < reps; r++)
        ts[r] = run_once(pool, t, w + (size_t)((r + 1) % ncopy) * wsz, s->n, s->k, x, m, out, scratch, &cs[r]);
    qsort(ts, (size_t)reps, sizeof(double), cmp_d);
    qsort(cs, (size_t)reps, sizeof(double), cmp_d);
    double cpu_per_thread = cs[reps / 2] / nt;
    /* median, and best (the best is what a quiet machine gives; the box is shared) */
    double med = ts[reps / 2], best = ts[0];
    if (m == 1)
        printf("%-5s %-13s %6lldx%-5lld m=%-4lld t=%d  %9.1f us  %6.1f GB/s (best %6.1f, per cpu-s %6.1f)\n",
               hl_type_name(t), s->what, (long long)s->n, (long long)s->k, (long long)m, nt, med * 1e6,
               (double)wsz / med * 1e-9, (double)wsz / best * 1e-9, (double)wsz / cpu_per_thread * 1e-9);
    else
        printf("%-5s %-13s %6lldx%-5lld m=%-4lld t=%d  %9.1f us  %6.1f GOP/s (best %6.1f, per cpu-s %6.1f)\n",
               hl_type_name(t), s->what, (long long)s->n, (long long)s->k, (long long)m, nt, med * 1e6,
               2.0 * (double)m * s->n * s->k / med * 1e-9, 2.0 * (double)m * s->n * s->k / best * 1e-9,
               2.0 * (double)m * s->n * s->k / cpu_per_thread * 1e-9);
    fflush(stdout);
    hl_pool_free(pool);
    free(w); free(x); free(out); free(scratch);
}

typedef struct { hl_pool *pool; int iters; } bar_ctx;
static void bar_fn(void *v, int ith, int nth) {
    bar_ctx *c = v;
    for (int i = 0; i < c->iters; i++) hl_pool_barrier(c->pool);
}
static void bench_barrier(int nt) {
    hl_pool *pool = hl_pool_new(nt);
    bar_ctx c = {pool, 100000};
    hl_pool_run(pool, bar_fn, &c);
    double ts[7];
    for (int r = 0; r < 7; r++) {
        int64_t t0 = hl_now_ns();
        hl_pool_run(pool, bar_fn, &c);
        ts[r] = (double)(hl_now_ns() - t0) / c.iters;
    }
    qsort(ts, 7, sizeof(double), cmp_d);
    int64_t t0 = hl_now_ns();
    for (int i = 0; i < 10000; i++) hl_pool_run(pool, bar_fn, &(bar_ctx){pool, 0});
    double run_ns = (double)(hl_now_ns() - t0) / 10000;
    printf("pool t=%d: barrier %.0f ns (median), empty hl_pool_run %.0f ns\n", nt, ts[3], run_ns);
    if (nt == 2) {
        t0 = hl_now_ns();
        for (int i = 0; i < 100000; i++) __builtin_ia32_pause();
        printf("pause: %.1f ns each\n", (double)(hl_now_ns() - t0) / 100000);
    }
    hl_pool_free(pool);
}

int main(int argc, char **argv) {
    hl_type types[16];
    int nt_types = 0, reps = 7, only_t = 0, cold = 0;
    int64_t only_m = 0;
    const char *shapes = "all";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) only_m = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) only_t = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(argv[i], "-c")) cold = 1;
        else if (!strcmp(argv[i], "barrier")) { bench_barrier(2); bench_barrier(1); return 0; }
        else {
            int t = hl_type_from_name(argv[i]);
            if (t < 0 || !hl_matmul_supported((hl_type)t)) { fprintf(stderr, "unknown/unsupported type %s\n", argv[i]); return 2; }
            if (nt_types < 16) types[nt_types++] = (hl_type)t;
        }
    }
    if (!nt_types) { types[0] = HL_TYPE_Q4_1; types[1] = HL_TYPE_Q4_K; types[2] = HL_TYPE_Q6_K; nt_types = 3; }
    printf("kernels: %s%s\n", hl_cpu_simd_level(), cold ? ", weights cold (from DRAM)" : "");
    bench_barrier(2);
    for (int ti = 0; ti < nt_types; ti++) {
        for (int si = 0; si < 2; si++) {
            const shape *sh = si == 0 ? smol : qwen;
            int cnt = si == 0 ? 4 : 5;
            if ((si == 0 && !strcmp(shapes, "qwen")) || (si == 1 && !strcmp(shapes, "smol"))) continue;
            for (int c = 0; c < cnt; c++)
                for (int mi = 0; mi < (only_m ? 1 : 2); mi++) {
                    int64_t m = only_m ? only_m : mi == 0 ? 1 : 512;
                    if (m >= 64 && sh[c].n > 20000) continue; /* lm_head at 512 rows: minutes, skip */
                    if (sh[c].k % (int64_t)hl_type_get(types[ti])->blck) continue; /* K-quants need k % 256 == 0 */
                    for (int nt = 1; nt <= 2; nt++)
                        if (!only_t || nt == only_t) bench(types[ti], &sh[c], m, nt, m == 1 ? reps : 3, cold);
                }
        }
    }
    return 0;
}
