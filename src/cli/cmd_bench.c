/* `hyperlama bench MODEL`: prompt processing (pp, default 512 tokens in one
 * step) and text generation (tg, default 128 tokens one per step) speed,
 * measured through the engine and its scheduler — the path every answer
 * takes — as llama-bench measures them: after one warm-up run, each
 * repetition starts from an empty context (the prefix cache is off, so
 * nothing is reused); tokens are drawn at random from the vocabulary with a
 * fixed seed; sampling is greedy and end tokens do not end generation.
 *
 * What is timed (the engine's own clock, from the DONE event's stats):
 *   pp  a request of pp tokens with num_predict 1: prompt_ns, from admission
 *       to the first token sampled, covers the one forward step over the pp
 *       tokens and sampling its last row. t/s = pp / prompt_ns.
 *   tg  a one-token prompt with num_predict tg: the prompt step (a one-token
 *       forward at position 0) gives the first token, then each of tg - 1
 *       decode steps gives one more. gen_ns runs from the first token sampled
 *       to the last, so it covers exactly those tg - 1 steps:
 *       t/s = (tg - 1) / gen_ns. With -n 1 there is no decode step; the one
 *       token's step (prompt_ns) is timed instead.
 *   sN  with --streams N (a comma list: 8,32,64): N requests of a one-token
 *       prompt each and -n tokens, submitted together (the engine batches
 *       them: continuous batching's aggregate decode); t/s = N * (n - 1)
 *       tokens over the wall time from the last first token to the last
 *       token, i.e. the decode steps only.
 * Prints per test the mean ± stddev, the median and the spread (10th and
 * 90th percentiles, interpolated between the sorted samples as numpy's
 * default does), the backend that ran it (--backend, --num-gpu) and the
 * peak RSS. */
#include "cli/cli.h"
#include "base/clock.h"
#include "base/json_write.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define BENCH_MAX_REPS 64

typedef struct bench_result {
    char name[32];          /* "pp512", "tg128" */
    double ts[BENCH_MAX_REPS]; /* tokens/s per repetition */
    int reps;
} bench_result;

typedef struct bench_summary {
    double mean, sd, median, p10, p90;
} bench_summary;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted[0..n): linear between the closest ranks. */
static double quantile(const double *sorted, int n, double q) {
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

static bench_summary summarize(const bench_result *r) {
    bench_summary m;
    double s = 0, s2 = 0, sorted[BENCH_MAX_REPS];
    for (int i = 0; i < r->reps; i++) s += r->ts[i];
    m.mean = s / r->reps;
    for (int i = 0; i < r->reps; i++) s2 += (r->ts[i] - m.mean) * (r->ts[i] - m.mean);
    m.sd = r->reps > 1 ? sqrt(s2 / (r->reps - 1)) : 0;
    memcpy(sorted, r->ts, sizeof(double) * (size_t)r->reps);
    qsort(sorted, (size_t)r->reps, sizeof(double), cmp_double);
    m.median = quantile(sorted, r->reps, 0.5);
    m.p10 = quantile(sorted, r->reps, 0.1);
    m.p90 = quantile(sorted, r->reps, 0.9);
    return m;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One timed request: n_prompt tokens, then num_predict tokens. */
static int bench_once(hl_engine *e, const int32_t *toks, int n_prompt, int num_predict, hl_choice_stats *st,
                      hl_err *err) {
    hl_request r = {.prompt = toks, .n_prompt = (size_t)n_prompt, .num_predict = num_predict, .n_choices = 1,
                    .ignore_eos = 1};
    r.sampling = hl_sampling_default_params();
    r.sampling.temperature = 0;
    r.sampling.repeat_penalty = 1;
    int rc = cli_engine_generate(e, &r, NULL, NULL, NULL, st, err);
    if (rc) return rc;
    if (st->gen_tokens != num_predict)
        return hl_err_set(err, HL_EINVAL, "the engine generated %d of %d tokens (%s)", st->gen_tokens, num_predict,
                          st->done_reason ? st->done_reason : "?");
    return HL_OK;
}

static double rate(double tokens, int64_t ns) { return ns > 0 ? tokens / ((double)ns / 1e9) : 0.0; }

#define BENCH_MAX_STREAMS 256

/* n concurrent requests of one prompt token and num_predict tokens: the
 * aggregate decode rate over the span in which all of them decode (from the
 * last first token to the last token). */
static int bench_streams(hl_engine *e, const int32_t *toks, int n, int num_predict, double *ts, hl_err *err) {
    hl_handle *h[BENCH_MAX_STREAMS];
    int64_t first[BENCH_MAX_STREAMS], last[BENCH_MAX_STREAMS];
    int done[BENCH_MAX_STREAMS] = {0}, got[BENCH_MAX_STREAMS] = {0}, rc = 0, n_sub = 0;
    for (int i = 0; i < n && !rc; i++, n_sub++) {
        hl_request r = {.prompt = &toks[i], .n_prompt = 1, .num_predict = num_predict, .n_choices = 1, .ignore_eos = 1};
        r.sampling = hl_sampling_default_params();
        r.sampling.temperature = 0;
        r.sampling.repeat_penalty = 1;
        first[i] = last[i] = 0;
        if ((rc = hl_engine_submit(e, &r, NULL, NULL, &h[i], err))) break;
    }
    for (int left = n_sub; left > 0 && !rc;) {
        for (int i = 0; i < n_sub && !rc; i++) {
            hl_event ev;
            if (done[i] || !hl_handle_wait(h[i], &ev, 1)) continue;
            if (ev.type == HL_EVENT_ERROR) rc = hl_err_set(err, HL_EINVAL, "%s", ev.error);
            else if (ev.type == HL_EVENT_TOKEN || (ev.type == HL_EVENT_DONE && ev.n_text)) {
                int64_t now = hl_now_ns();
                if (!got[i]++) first[i] = now;
                last[i] = now;
            }
            if (ev.type == HL_EVENT_DONE) {
                done[i] = 1, left--;
                if (ev.stats.gen_tokens != num_predict)
                    rc = hl_err_set(err, HL_EINVAL, "stream %d generated %d of %d tokens", i, ev.stats.gen_tokens, num_predict);
            }
        }
    }
    int64_t t0 = 0, t1 = 0;
    for (int i = 0; i < n_sub; i++) {
        if (first[i] > t0) t0 = first[i];
        if (last[i] > t1) t1 = last[i];
        hl_handle_release(h[i]);
    }
    *ts = rate((double)n * (num_predict - 1), t1 - t0);
    return rc;
}

static void print_json(const char *model, const hl_loaded *lm, int threads, const char *backend, const char *device,
                       const bench_result *res, int n_res, double rss_mib) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model"); hl_jw_str(&w, model);
    hl_jw_key(&w, "threads"); hl_jw_int(&w, threads);
    hl_jw_key(&w, "simd"); hl_jw_str(&w, hl_cpu_simd_level());
    hl_jw_key(&w, "backend"); hl_jw_str(&w, backend);
    hl_jw_key(&w, "device"); hl_jw_str(&w, device);
    hl_jw_key(&w, "weight_bytes"); hl_jw_uint(&w, hl_model_weight_bytes(lm->model));
    hl_jw_key(&w, "peak_rss_mib"); hl_jw_double(&w, rss_mib);
    hl_jw_key(&w, "results"); hl_jw_arr_begin(&w);
    for (int i = 0; i < n_res; i++) {
        bench_summary m = summarize(&res[i]);
        hl_jw_obj_begin(&w);
        hl_jw_key(&w, "test"); hl_jw_str(&w, res[i].name);
        hl_jw_key(&w, "mean"); hl_jw_double(&w, m.mean);
        hl_jw_key(&w, "stddev"); hl_jw_double(&w, m.sd);
        hl_jw_key(&w, "median"); hl_jw_double(&w, m.median);
        hl_jw_key(&w, "p10"); hl_jw_double(&w, m.p10);
        hl_jw_key(&w, "p90"); hl_jw_double(&w, m.p90);
        hl_jw_key(&w, "samples"); hl_jw_arr_begin(&w);
        for (int k = 0; k < res[i].reps; k++) hl_jw_double(&w, res[i].ts[k]);
        hl_jw_arr_end(&w);
        hl_jw_obj_end(&w);
    }
    hl_jw_arr_end(&w);
    hl_jw_obj_end(&w);
    printf("%s\n", b.data);
    hl_buf_free(&b);
}

static void print_table(const hl_loaded *lm, int threads, const char *backend, const char *device, const bench_result *res,
                        int n_res, double rss_mib) {
    const hl_hparams *hp = hl_model_hparams(lm->model);
    printf("| %-28s | %9s | %-7s | %7s | %8s | %20s | %9s | %19s |\n", "model", "size", "simd", "threads", "test",
           "t/s (mean ± sd)", "median", "p10 / p90");
    printf("| %.28s | %.9s | %.7s | %.7s | %.8s | %.20s | %.9s | %.19s |\n", "------------------------------",
           "----------", "-------", "-------", "--------", "----------------------", "---------",
           "-------------------");
    for (int i = 0; i < n_res; i++) {
        bench_summary m = summarize(&res[i]);
        char ts[32], spread[48];
        snprintf(ts, sizeof ts, "%.2f ± %.2f", m.mean, m.sd);
        snprintf(spread, sizeof spread, "%.2f / %.2f", m.p10, m.p90);
        printf("| %-28.28s | %5.1f MiB | %-7s | %7d | %8s | %20s | %9.2f | %19s |\n", hp->name[0] ? hp->name : hp->arch,
               (double)hl_model_weight_bytes(lm->model) / (1024.0 * 1024.0), hl_cpu_simd_level(), threads, res[i].name,
               ts, m.median, spread);
    }
    printf("backend: %s%s%s\npeak RSS: %.1f MiB\n", backend, *device ? " on " : "", device, rss_mib);
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int pp = 512, tg = 128, reps = 5, json = 0, bad = 0, streams[8], n_streams = 0;
    cli_gen_opts o;
    cli_gen_opts_default(&o);
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_flag_value("-p", argc, argv, &i, &bad))) pp = atoi(v);
        else if ((v = cli_flag_value("-n", argc, argv, &i, &bad))) tg = atoi(v);
        else if ((v = cli_flag_value("-r", argc, argv, &i, &bad))) reps = atoi(v);
        else if ((v = cli_flag_value("--streams", argc, argv, &i, &bad))) {
            for (const char *q = v; *q && n_streams < 8; q = strchr(q, ',') ? strchr(q, ',') + 1 : q + strlen(q)) {
                int k = atoi(q);
                if (k < 1 || k > BENCH_MAX_STREAMS) {
                    fprintf(stderr, "Error: --streams takes counts from 1 to %d (got \"%s\")\n", BENCH_MAX_STREAMS, v);
                    return 2;
                }
                streams[n_streams++] = k;
            }
        }
        else if (bad) return 2;
        else if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: hyperlama bench MODEL [-p 512] [-n 128] [-r 5] [--streams 8,32,64] [--backend cpu|vulkan|vulkan:N]\n"
                   "                       [--num-gpu N] [--threads N] [--kv-cache-type f16|q8_0] [--json]\n\n"
                   "Measures prompt processing (-p tokens in one step) and generation (-n tokens,\n"
                   "one per step) in tokens/s through the engine, over -r repetitions after a\n"
                   "warm-up, each from an empty context. 0 skips a test. Prints the mean, the\n"
                   "standard deviation, the median and the 10th/90th percentiles. --streams N,...\n"
                   "adds aggregate decode of N concurrent streams of -n tokens each (sN).\n");
            return 0;
        } else {
            if (cli_parse_gen_opt_or_model(&o, argc, argv, &i, &model) < 0) return 2;
        }
    }
    if (!model || pp < 0 || tg < 0 || reps < 1 || reps > BENCH_MAX_REPS) {
        fprintf(stderr, "Usage: hyperlama bench MODEL [-p 512] [-n 128] [-r 5 (1..64)] [--threads N] [--json]\n");
        return 2;
    }
    hl_loaded *lm;
    if (cli_load_model(model, &lm)) return 1;
    const hl_hparams *hp = hl_model_hparams(lm->model);
    hl_err err = {0};
    /* room for the longest test and the tokens it generates; pp in one step */
    int n_tok = pp > tg ? pp : tg;
    o.engine.num_ctx = n_tok + 16;
    if (o.engine.n_batch < pp) o.engine.n_batch = pp > 0 ? pp : 1;
    o.engine.prefix_cache = 0;
    for (int k = 0; k < n_streams; k++)
        if (streams[k] > o.engine.max_seqs) o.engine.max_seqs = streams[k];
    int32_t ctx = cli_run_ctx(o.engine.num_ctx, hp->n_ctx_train);
    if (ctx <= n_tok) {
        fprintf(stderr, "Error: %s%d needs %d positions, but the model's context is %d tokens: use a smaller %s\n",
                pp >= tg ? "pp" : "tg", n_tok, n_tok + 1, ctx, pp >= tg ? "-p" : "-n");
        hl_loaded_free(lm);
        return 1;
    }
    hl_engine *e = NULL;
    cli_compute cc;
    if (cli_compute_open(&cc, &o.engine, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        hl_loaded_free(lm);
        return 1;
    }
    if (cli_engine_open(lm, &o.engine, &cc, &e, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        cli_compute_close(&cc);
        hl_loaded_free(lm);
        return 1;
    }
    int n_draw = n_tok > BENCH_MAX_STREAMS ? n_tok : BENCH_MAX_STREAMS;
    int32_t *toks = malloc((size_t)(n_draw + 1) * sizeof *toks);
    if (!toks) {
        fprintf(stderr, "Error: out of memory\n");
        hl_engine_free(e);
        cli_compute_close(&cc);
        hl_loaded_free(lm);
        return 1;
    }
    uint64_t seed = 42;
    for (int i = 0; i < n_draw + 1; i++) toks[i] = (int32_t)(splitmix(&seed) % (uint64_t)hp->n_vocab);

    bench_result res[2 + 8];
    int n_res = 0, rc = 0;
    hl_choice_stats st;
    if (pp > 0) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "pp%d", pp);
        for (int rep = -1; rep < reps && !rc; rep++) {
            rc = bench_once(e, toks, pp, 1, &st, &err);
            if (!rc && rep >= 0) r->ts[r->reps++] = rate(pp, st.prompt_ns);
        }
    }
    if (tg > 0 && !rc) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "tg%d", tg);
        for (int rep = -1; rep < reps && !rc; rep++) {
            rc = bench_once(e, toks, 1, tg, &st, &err);
            if (!rc && rep >= 0) r->ts[r->reps++] = tg > 1 ? rate(tg - 1, st.gen_ns) : rate(1, st.prompt_ns);
        }
    }
    for (int k = 0; k < n_streams && tg > 1 && !rc; k++) {
        bench_result *r = &res[n_res++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "s%d", streams[k]);
        for (int rep = -1; rep < reps && !rc; rep++) {
            double ts = 0;
            rc = bench_streams(e, toks, streams[k], tg, &ts, &err);
            if (!rc && rep >= 0) r->ts[r->reps++] = ts;
        }
    }
    const char *device = hl_backend_description(cc.be);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
    } else {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double rss_mib = (double)ru.ru_maxrss / 1024.0;
        const char *be = hl_engine_backend_name(e);
        if (json) print_json(model, lm, hl_engine_n_threads(e), be, device, res, n_res, rss_mib);
        else print_table(lm, hl_engine_n_threads(e), be, device, res, n_res, rss_mib);
    }
    free(toks);
    hl_engine_free(e);
    cli_compute_close(&cc);
    hl_loaded_free(lm);
    return rc ? 1 : 0;
}
