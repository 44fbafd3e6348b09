/* Forward-pass benchmark: prefill and greedy decode throughput for one model,
 * optionally with several sequences decoding together in one batch.
 *
 *   bench_forward MODEL [-t threads] [-p prompt_len] [-n gen_len] [-s n_seqs] [-k k] [-c chunk] [--ids 1,2,3]
 *                 [-b backend]
 *
 * -c sets the prefill step: up to that many prompt tokens per forward pass
 * (default 512, the server's num_batch; -c 16384 -p 16384 is one step, as
 * `hyperlama bench -p 16384` takes it). Prompts go to 65536 tokens, one run
 * and no warm-up, so a long prompt is timed once.
 *
 * -k K makes every decode step carry K + 1 rows per sequence (positions
 * p .. p + K, logits at each), as a speculative step verifying K drafted
 * tokens does; the drafted tokens are the sequence's last token repeated,
 * which costs the same as real drafts. "steps/s" is then K + 1-row steps.
 *
 * -b names the backend as --backend does (default cpu; vulkan:0 is lavapipe
 * here, where the CPU seconds printed beside each rate, lavapipe's threads
 * included, are steadier than wall time on a loaded machine).
 *
 * Prints prefill tokens/s, decode tokens/s (all sequences together), and the
 * weight bandwidth decode implies (weight bytes x steps / time), plus the
 * greedy ids of sequence 0 so a script can decode them to text. */
#include "model/model.h"

#include "base/clock.h"

#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

/* CPU seconds of the whole process (all threads): on a busy machine, wall
 * time measures the neighbours; with one thread CPU time is closer to what a
 * quiet machine would show. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [-t threads] [-p prompt_len] [-n gen_len] [-s n_seqs] [-k k] [-c chunk] [--ids a,b,c] [-b backend]\n",
                argv[0]);
        return 2;
    }
    int threads = 2, n_prompt = 32, n_gen = 32, n_seqs = 1, k_draft = 0, chunk = 512;
    const char *backend = "cpu";
    static int32_t ids[65536];
    int n_ids = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-b")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) n_seqs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-k")) k_draft = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) chunk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ids")) {
            char *s = argv[i + 1];
            while (*s && n_ids < 65536) {
                ids[n_ids++] = (int32_t)strtol(s, &s, 10);
                if (*s == ',') s++;
            }
        }
    }
    if (n_ids) n_prompt = n_ids;
    if (n_prompt < 1 || n_prompt > 65536 || n_gen < 0 || n_seqs < 1 || n_seqs > 64 || k_draft < 0 ||
        k_draft > 63 || chunk < 1 || chunk > 65536) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    hl_err err = {0};
    hl_model *m;
    if (hl_model_load(&m, argv[1], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const hl_hparams *hp = hl_model_hparams(m);
    if (!n_ids)
        for (int i = 0; i < n_prompt; i++) ids[i] = (int32_t)((i * 7919 + 13) % hp->n_vocab);
    const int rows = k_draft + 1; /* rows per sequence per decode step */
    int bs = 16, per_seq = (n_prompt + n_gen * rows + bs) / bs + 1;
    hl_kv_params kp = hl_model_kv_params(m, per_seq * n_seqs, bs);
    hl_kv_cache *kv;
    hl_forward_ctx *ctx;
    int max_tokens = n_prompt * n_seqs > chunk ? chunk : n_prompt * n_seqs;
    if (max_tokens < n_seqs * rows) max_tokens = n_seqs * rows;
    hl_pool *pool = hl_pool_new(threads);
    hl_backend *be = NULL;
    if (hl_backend_open(&be, backend, pool, &err) || hl_forward_ctx_new(&ctx, m, be, max_tokens, &err) ||
        hl_forward_kv_new(ctx, kp.n_blocks, bs, kp.type, &kv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)per_seq * n_seqs);
    hl_batch_seq *seqs = malloc(sizeof *seqs * (size_t)n_seqs);
    for (int s = 0; s < n_seqs; s++) {
        for (int j = 0; j < per_seq; j++) tables[s * per_seq + j] = s * per_seq + j;
        seqs[s] = (hl_batch_seq){tables + s * per_seq, per_seq};
    }
    hl_batch_token *bt = malloc(sizeof *bt * (size_t)max_tokens);
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab * (size_t)(max_tokens > n_seqs * rows ? max_tokens : n_seqs * rows));
    int32_t *last = malloc(sizeof(int32_t) * (size_t)n_seqs);
    int32_t *gen = malloc(sizeof(int32_t) * (size_t)(n_gen + 1));

    /* prefill: every sequence's prompt, in chunks of max_tokens */
    double c0 = cpu_seconds();
    int64_t t0 = hl_now_ns();
    int total = n_prompt * n_seqs, done = 0;
    while (done < total) {
        int n = total - done < max_tokens ? total - done : max_tokens, nw = 0;
        for (int i = 0; i < n; i++) {
            int g = done + i, s = g / n_prompt, p = g % n_prompt;
            bt[i] = (hl_batch_token){ids[p], p, s, p == n_prompt - 1};
            if (bt[i].logits) nw++;
        }
        if (hl_model_forward(ctx, kv, &(hl_batch){bt, n, seqs, n_seqs}, logits, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        int row = 0;
        for (int i = 0; i < n; i++)
            if (bt[i].logits) last[bt[i].seq] = argmax(logits + (size_t)row++ * hp->n_vocab, hp->n_vocab);
        done += n;
    }
    int64_t t1 = hl_now_ns();
    double c1 = cpu_seconds();
    gen[0] = last[0];
    for (int step = 0; step < n_gen; step++) {
        for (int s = 0; s < n_seqs; s++)
            for (int r = 0; r < rows; r++)
                bt[s * rows + r] = (hl_batch_token){last[s], n_prompt + step * rows + r, s, 1};
        if (hl_model_forward(ctx, kv, &(hl_batch){bt, n_seqs * rows, seqs, n_seqs}, logits, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (int s = 0; s < n_seqs; s++) last[s] = argmax(logits + (size_t)s * rows * hp->n_vocab, hp->n_vocab);
        gen[step + 1] = last[0];
    }
    int64_t t2 = hl_now_ns();
    double c2 = cpu_seconds();
    double pf = (double)(t1 - t0) / 1e9, dc = (double)(t2 - t1) / 1e9;
    printf("model %s (%s), backend %s, %d threads, simd %s, weights %.1f MB\n", hp->name, hp->arch,
           hl_forward_backend_name(ctx), threads, hl_cpu_simd_level(), (double)hl_model_weight_bytes(m) / 1e6);
    printf("prefill: %d tokens in %.3f s = %.1f tok/s (cpu %.3f s)\n", total, pf, total / pf, c1 - c0);
    if (n_gen > 0)
        printf("decode:  %d seqs x %d rows x %d steps in %.3f s = %.2f tok/s (%.2f steps/s, %.1f GB/s of weights; cpu %.3f s = %.2f ms/step)\n",
               n_seqs, rows, n_gen, dc, n_seqs * n_gen / dc, n_gen / dc, (double)hl_model_weight_bytes(m) * n_gen / dc / 1e9, c2 - c1,
               (c2 - c1) * 1e3 / n_gen);
    printf("ids:");
    for (int i = 0; i < n_gen; i++) printf("%s%d", i ? "," : " ", gen[i]);
    printf("\n");
    free(gen);
    free(last);
    free(logits);
    free(bt);
    free(seqs);
    free(tables);
    hl_forward_kv_free(ctx, kv);
    hl_forward_ctx_free(ctx);
    hl_backend_free(be);
    hl_pool_free(pool);
    hl_model_free(m);
    return 0;
}
