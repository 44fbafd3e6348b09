/* Vulkan matrix-product timings: one HL_OP_MATMUL (the activation
 * conversion of quant.comp and the product, as a model step records them)
 * on resident device buffers, per weight type and batch size m, median and
 * range of several submissions, with the process CPU seconds of the median
 * run (lavapipe's threads included: on a shared machine, work per CPU
 * second is steadier than wall time); GOP/s counts 2 ops per multiply-add. On
 * lavapipe these are CPU figures (it runs the shaders on the CPU) and say
 * nothing about a GPU. Usage:
 *   bench_vk_matmul [type ...] [-m M,M,...] [-n N] [-k K] [-r reps]
 *                   [--matvec auto|subgroup|shared] [--int-dot auto|on|off] [--tiled auto|on|off]
 * (defaults: q4_k q8_0 q4_0, m 1,8,64,512, n = k = 1536, 5 reps; the device:
 * HYPERLAMA_VULKAN_DEVICE, else the first one, CPU implementations allowed). */
#include "backend/vulkan/vk_ops.h"
#include "base/clock.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int pick(const char *v, const char *const names[3]) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(v, names[i])) return i;
    fprintf(stderr, "bench_vk_matmul: %s: expected %s, %s or %s\n", v, names[0], names[1], names[2]);
    exit(2);
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* one timed product: wall seconds of the submission (record + run), and its CPU seconds */
static int time_one(hl_vk_kernels *kern, const hl_op *op, const hl_vk_op_args *a, double *sec, double *cpu, hl_err *err) {
    hl_vk_rec rec;
    hl_vk_rec_init(&rec, kern);
    int64_t t0 = hl_now_ns();
    double c0 = cpu_s();
    int rc = hl_vk_rec_op(&rec, op, a, err);
    if (!rc) rc = hl_vk_rec_run(&rec, err);
    *sec = (double)(hl_now_ns() - t0) * 1e-9;
    *cpu = cpu_s() - c0;
    hl_vk_rec_free(&rec);
    return rc;
}

int main(int argc, char **argv) {
    static const char *const mv_names[3] = {"auto", "subgroup", "shared"}, *const dot_names[3] = {"auto", "on", "off"};
    const char *types[32];
    int n_types = 0, reps = 5, mv = 0, dot = 0, tiled = 0;
    int64_t n = 1536, k = 1536;
    int32_t ms[16] = {1, 8, 64, 512};
    int n_ms = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            n_ms = 0;
            for (char *s = strtok(argv[++i], ","); s && n_ms < 16; s = strtok(NULL, ",")) ms[n_ms++] = atoi(s);
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) k = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--matvec") && i + 1 < argc) mv = pick(argv[++i], mv_names);
        else if (!strcmp(argv[i], "--int-dot") && i + 1 < argc) dot = pick(argv[++i], dot_names);
        else if (!strcmp(argv[i], "--tiled") && i + 1 < argc) tiled = pick(argv[++i], dot_names);
        else if (argv[i][0] != '-' && n_types < 32) types[n_types++] = argv[i];
        else {
            fprintf(stderr, "usage: bench_vk_matmul [type ...] [-m M,...] [-n N] [-k K] [-r reps] [--matvec KIND] [--int-dot KIND] [--tiled KIND]\n");
            return 2;
        }
    }
    if (!n_types) types[n_types++] = "q4_k", types[n_types++] = "q8_0", types[n_types++] = "q4_0";
    if (reps < 1) reps = 1;
    int32_t max_m = 1;
    for (int i = 0; i < n_ms; i++) max_m = ms[i] > max_m ? ms[i] : max_m;

    hl_err err = {0};
    const hl_vk_kernel_opts ko = {.matvec = (hl_vk_matvec)mv, .int_dot = (hl_vk_int_dot)dot, .tiled = (hl_vk_tiling)tiled};
    hl_vk_instance *vi = NULL;
    hl_vk_device *dev = NULL;
    hl_vk_kernels *kern = NULL;
    const char *de = getenv("HYPERLAMA_VULKAN_DEVICE");
    int idx;
    if (hl_vk_instance_open(&vi, &err) || (idx = hl_vk_pick(vi, de && *de ? atoi(de) : 0, 1, &err)) < 0 ||
        hl_vk_device_open(vi, idx, &dev, &err) || hl_vk_kernels_new(dev, &ko, &kern, &err)) {
        fprintf(stderr, "bench_vk_matmul: %s\n", err.msg);
        hl_vk_kernels_free(kern), hl_vk_device_close(dev), hl_vk_instance_close(vi);
        return 1;
    }
    char desc[512], kd[256];
    hl_vk_describe(&vi->devices[idx], desc, sizeof desc);
    hl_vk_kernels_describe(kern, kd, sizeof kd);
    printf("device: %s\nmatmul: %s\nn %lld, k %lld, %d reps (median, min-max)\n", desc, kd, (long long)n, (long long)k, reps);

    /* activations, the output, a batch of max_m tokens */
    hl_vk_buffer xb, ob;
    hl_batch_token *toks = calloc((size_t)max_m, sizeof *toks);
    float *x = malloc((size_t)(max_m * k) * sizeof *x);
    int rc = !toks || !x;
    if (!rc) rc = hl_vk_buffer_new(dev, (size_t)(max_m * k) * sizeof(float), &xb, &err) ||
                  hl_vk_buffer_new(dev, (size_t)(max_m * n) * sizeof(float), &ob, &err);
    if (rc) {
        fprintf(stderr, "bench_vk_matmul: %s\n", err.msg[0] ? err.msg : "out of memory");
        return 1;
    }
    uint32_t r = 1;
    for (int64_t i = 0; i < max_m * k; i++) r = r * 1664525u + 1013904223u, x[i] = (float)((int)(r >> 9) % 4001 - 2000) / 1000.0f;
    memcpy(xb.map, x, (size_t)(max_m * k) * sizeof *x);
    for (int32_t i = 0; i < max_m; i++) toks[i] = (hl_batch_token){i, i, 0, 0};
    hl_batch_seq seq = {NULL, 0};

    printf("%-8s %6s %10s %18s %10s %10s\n", "type", "m", "ms", "min-max", "GOP/s", "cpu ms");
    for (int ti = 0; ti < n_types; ti++) {
        const int ty = hl_type_from_name(types[ti]);
        const hl_type t = (hl_type)ty;
        if (ty < 0) {
            fprintf(stderr, "bench_vk_matmul: unknown type %s\n", types[ti]);
            continue;
        }
        /* weights: the float rows quantized (real scales, no NaNs) */
        size_t rb = hl_row_size(t, k);
        float *wf = malloc((size_t)(n * k) * sizeof *wf);
        void *wq = malloc(rb * (size_t)n);
        for (int64_t i = 0; i < n * k; i++) r = r * 1664525u + 1013904223u, wf[i] = (float)((int)(r >> 9) % 2001 - 1000) / 1000.0f;
        hl_vk_buffer wb;
        if (t == HL_TYPE_MXFP4 || hl_quantize(t, wf, wq, n * k) != rb * (size_t)n ||
            hl_vk_buffer_new_device(dev, rb * (size_t)n, &wb, &err) || hl_vk_buffer_write(dev, &wb, wq, rb * (size_t)n, &err)) {
            fprintf(stderr, "bench_vk_matmul: %s: %s\n", types[ti], err.msg[0] ? err.msg : "no quantizer");
            free(wf), free(wq);
            continue;
        }
        hl_tensor tw = {.data = wq, .type = t, .ne0 = k, .ne1 = n, .row_bytes = rb};
        snprintf(tw.name, sizeof tw.name, "bench.weight");
        hl_op op = {.kind = HL_OP_MATMUL, .layer = 0, .in = HL_BUF_ATTN_IN, .out = HL_BUF_Q, .w = &tw, .n_in = k, .n_out = n};
        for (int mi = 0; mi < n_ms; mi++) {
            hl_batch batch = {toks, ms[mi], &seq, 1};
            hl_vk_op_args a = {.batch = &batch, .n_wanted = 0, .w = &wb};
            a.buf[HL_BUF_ATTN_IN] = &xb, a.buf[HL_BUF_Q] = &ob;
            double sec[64], cpu[64], warm, wcpu;
            int nr = reps < 64 ? reps : 64;
            if ((rc = time_one(kern, &op, &a, &warm, &wcpu, &err))) { /* the first run: pipelines warm */
                fprintf(stderr, "bench_vk_matmul: %s m=%d: %s\n", types[ti], ms[mi], err.msg);
                break;
            }
            for (int i = 0; i < nr && !rc; i++) rc = time_one(kern, &op, &a, &sec[i], &cpu[i], &err);
            if (rc) break;
            qsort(sec, (size_t)nr, sizeof sec[0], cmp_d);
            qsort(cpu, (size_t)nr, sizeof cpu[0], cmp_d);
            const double med = sec[nr / 2], ops = 2.0 * (double)ms[mi] * (double)n * (double)k;
            char range[48];
            snprintf(range, sizeof range, "%.2f-%.2f", sec[0] * 1e3, sec[nr - 1] * 1e3);
            printf("%-8s %6d %10.2f %18s %10.2f %10.2f\n", types[ti], ms[mi], med * 1e3, range, ops / med * 1e-9,
                   cpu[nr / 2] * 1e3);
        }
        hl_vk_buffer_free(dev, &wb);
        free(wf), free(wq);
    }
    hl_vk_buffer_free(dev, &xb), hl_vk_buffer_free(dev, &ob);
    free(toks), free(x);
    hl_vk_kernels_free(kern), hl_vk_device_close(dev), hl_vk_instance_close(vi);
    return 0;
}
