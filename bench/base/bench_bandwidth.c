/* Memory read bandwidth: the decode speed limit (tokens/s <= bandwidth /
 * weight bytes). Each thread sums its share of a buffer much larger than the
 * caches; the best of several passes is reported, in GB/s (1e9 bytes).
 *
 *   bench_bandwidth [--threads N] [--mib SIZE] [--passes P] [--json] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} job;

static void *reader(void *arg) {
    job *j = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 8 <= j->n; i += 8) {
        a += j->p[i] + j->p[i + 4];
        b += j->p[i + 1] + j->p[i + 5];
        c += j->p[i + 2] + j->p[i + 6];
        d += j->p[i + 3] + j->p[i + 7];
    }
    j->sum = a + b + c + d;
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = 1, passes = 10, json = 0;
    size_t mib = 1024;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc) passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: bench_bandwidth [--threads N] [--mib SIZE] [--passes P] [--json]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || passes < 1 || mib < 16) return 2;
    size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i;
    pthread_t tid[256];
    job jobs[256];
    double best = 0;
    uint64_t check = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            size_t lo = n * (size_t)t / (size_t)threads, hi = n * (size_t)(t + 1) / (size_t)threads;
            jobs[t] = (job){.p = buf + lo, .n = hi - lo};
            pthread_create(&tid[t], NULL, reader, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            check += jobs[t].sum;
        }
        double gbs = (double)(n * sizeof *buf) / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    if (json) printf("{\"threads\":%d,\"read_gbs\":%.2f,\"check\":%llu}\n", threads, best, (unsigned long long)(check & 1));
    else printf("read bandwidth, %d thread(s): %.2f GB/s\n", threads, best);
    free(buf);
    return 0;
}
