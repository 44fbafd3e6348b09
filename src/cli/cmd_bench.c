/* `hyperlama bench MODEL`: prompt processing (pp, default 512 tokens in one
 * batch) and text generation (tg, default 128 tokens one at a time) speed, as
 * llama-bench measures them: each repetition starts from an empty context,
 * after one warm-up run; tokens are drawn at random from the vocabulary with a
 * fixed seed. Prints mean ± stddev and the median tokens/s, and the peak RSS. */
#include "cli/cli.h"
#include "base/clock.h"
#include "base/json_write.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct bench_result {
    const char *test; /* "pp512", "tg128" */
    char name[32];
    int n_tokens;
    double ts[64];    /* tokens/s per repetition */
    int reps;
} bench_result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarize(const bench_result *r, double *mean, double *sd, double *median) {
    double s = 0, s2 = 0, sorted[64];
    for (int i = 0; i < r->reps; i++) s += r->ts[i];
    *mean = s / r->reps;
    for (int i = 0; i < r->reps; i++) s2 += (r->ts[i] - *mean) * (r->ts[i] - *mean);
    *sd = r->reps > 1 ? sqrt(s2 / (r->reps - 1)) : 0;
    memcpy(sorted, r->ts, sizeof(double) * (size_t)r->reps);
    qsort(sorted, (size_t)r->reps, sizeof(double), cmp_double);
    *median = r->reps % 2 ? sorted[r->reps / 2] : 0.5 * (sorted[r->reps / 2 - 1] + sorted[r->reps / 2]);
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int pp = 512, tg = 128, reps = 5, json = 0, bad = 0;
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_flag_value("-p", argc, argv, &i, &bad))) pp = atoi(v);
        else if ((v = cli_flag_value("-n", argc, argv, &i, &bad))) tg = atoi(v);
        else if ((v = cli_flag_value("-r", argc, argv, &i, &bad))) reps = atoi(v);
        else if (bad) return 2;
        else if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: hyperlama bench MODEL [-p 512] [-n 128] [-r 5] [--threads N] [--kv-cache-type f16|q8_0] [--json]\n\n"
                   "Measures prompt processing (-p tokens in one batch) and generation (-n tokens,\n"
                   "one per step) in tokens/s over -r repetitions after a warm-up. 0 skips a test.\n");
            return 0;
        } else {
            int r = cli_parse_gen_opt(&o, argc, argv, &i);
            if (r < 0) return 2;
            if (r > 0) continue;
            if (!model) model = argv[i];
            else {
                fprintf(stderr, "Error: unexpected argument '%s'\n", argv[i]);
                return 2;
            }
        }
    }
    if (!model || pp < 0 || tg < 0 || reps < 1 || reps > 64) {
        fprintf(stderr, "Usage: hyperlama bench MODEL [-p 512] [-n 128] [-r 5 (1..64)] [--threads N] [--json]\n");
        return 2;
    }
    hl_loaded *lm;
    if (cli_load_model(model, &lm)) return 1;
    const hl_hparams *hp = hl_model_hparams(lm->model);
    hl_err err = {0};
    o.session.num_ctx = (pp > tg ? pp : tg) + 16;
    if (o.session.n_batch <= 0 || o.session.n_batch < pp) o.session.n_batch = pp > 0 ? pp : 1;
    hl_session *s = NULL;
    int rc = 0;
    if (hl_session_new(&s, lm, &o.session, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        hl_loaded_free(lm);
        return 1;
    }
    int n_tok = pp > tg ? pp : tg;
    int32_t *toks = malloc((size_t)(n_tok + 1) * sizeof *toks);
    uint64_t seed = 42;
    for (int i = 0; i < n_tok + 1; i++) toks[i] = (int32_t)(splitmix(&seed) % (uint64_t)hp->n_vocab);

    bench_result res[2];
    int n_res = 0;
    if (pp > 0) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "pp%d", pp);
        r->n_tokens = pp;
        for (int rep = -1; rep < reps && !rc; rep++) {
            hl_session_reset(s);
            int64_t t0 = hl_now_ns();
            rc = hl_session_eval(s, toks, (size_t)pp, 0, NULL, &err);
            double sec = (double)(hl_now_ns() - t0) / 1e9;
            if (rep >= 0) r->ts[r->reps++] = pp / sec;
        }
    }
    if (tg > 0 && !rc) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "tg%d", tg);
        r->n_tokens = tg;
        for (int rep = -1; rep < reps && !rc; rep++) {
            hl_session_reset(s);
            int64_t t0 = hl_now_ns();
            for (int i = 0; i < tg && !rc; i++) rc = hl_session_eval(s, &toks[i], 1, 0, NULL, &err);
            double sec = (double)(hl_now_ns() - t0) / 1e9;
            if (rep >= 0) r->ts[r->reps++] = tg / sec;
        }
    }
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
    } else {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double rss_mib = (double)ru.ru_maxrss / 1024.0;
        size_t wbytes = hl_model_weight_bytes(lm->model);
        if (json) {
            hl_buf b = {0};
            hl_jw w;
            hl_jw_init(&w, &b);
            hl_jw_obj_begin(&w);
            hl_jw_key(&w, "model"); hl_jw_str(&w, model);
            hl_jw_key(&w, "threads"); hl_jw_int(&w, hl_session_n_threads(s));
            hl_jw_key(&w, "simd"); hl_jw_str(&w, hl_cpu_simd_level());
            hl_jw_key(&w, "weight_bytes"); hl_jw_uint(&w, wbytes);
            hl_jw_key(&w, "peak_rss_mib"); hl_jw_double(&w, rss_mib);
            hl_jw_key(&w, "results"); hl_jw_arr_begin(&w);
            for (int i = 0; i < n_res; i++) {
                double mean, sd, med;
                summarize(&res[i], &mean, &sd, &med);
                hl_jw_obj_begin(&w);
                hl_jw_key(&w, "test"); hl_jw_str(&w, res[i].name);
                hl_jw_key(&w, "mean"); hl_jw_double(&w, mean);
                hl_jw_key(&w, "stddev"); hl_jw_double(&w, sd);
                hl_jw_key(&w, "median"); hl_jw_double(&w, med);
                hl_jw_key(&w, "samples"); hl_jw_arr_begin(&w);
                for (int k = 0; k < res[i].reps; k++) hl_jw_double(&w, res[i].ts[k]);
                hl_jw_arr_end(&w);
                hl_jw_obj_end(&w);
            }
            hl_jw_arr_end(&w);
            hl_jw_obj_end(&w);
            printf("%s\n", b.data);
            hl_buf_free(&b);
        } else {
            printf("| %-28s | %9s | %-7s | %7s | %8s | %20s | %9s |\n", "model", "size", "simd", "threads", "test",
                   "t/s (mean ± sd)", "median");
            printf("| %.28s | %.9s | %.7s | %.7s | %.8s | %.20s | %.9s |\n", "------------------------------",
                   "----------", "-------", "-------", "--------", "----------------------", "---------");
            for (int i = 0; i < n_res; i++) {
                double mean, sd, med;
                summarize(&res[i], &mean, &sd, &med);
                char ts[32];
                snprintf(ts, sizeof ts, "%.2f ± %.2f", mean, sd);
                printf("| %-28.28s | %5.1f MiB | %-7s | %7d | %8s | %20s | %9.2f |\n", hp->name[0] ? hp->name : hp->arch,
                       (double)wbytes / (1024.0 * 1024.0), hl_cpu_simd_level(), hl_session_n_threads(s), res[i].name,
                       ts, med);
            }
            printf("peak RSS: %.1f MiB\n", rss_mib);
        }
    }
    free(toks);
    hl_session_free(s);
    hl_loaded_free(lm);
    return rc ? 1 : 0;
}
