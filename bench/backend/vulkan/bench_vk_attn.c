/* The Vulkan backend's attention alone (HL_OP_ATTN through run_op), for
 * timing the kernels against themselves: a pool of one layer filled with N
 * random positions (KV_STORE), then, repeated, a causal prefill of all N
 * tokens in one batch and a decode of the last position. Prints the median
 * and min-max of the repetitions in ms (run_op's time: the host copies of q
 * and the output are included; on lavapipe, a CPU driver, they are memcpy).
 *
 *   bench_vk_attn [N [n_head n_head_kv head_dim [f16|q8_0 [reps]]]]
 * Defaults: 512 positions, 12/2 heads of 128 (Qwen2.5-1.5B's shape), f16, 5
 * reps. HYPERLAMA_VULKAN_DEVICE picks the device (default 0; CPU devices allowed). */
#include "backend/backend.h"
#include "backend/vulkan/vulkan.h"
#include "base/clock.h"
#include "base/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, int n) {
    qsort(ms, (size_t)n, sizeof *ms, cmp_d);
    printf("%-22s median %8.2f ms  (min %.2f, max %.2f, %d runs)\n", what, ms[n / 2], ms[0], ms[n - 1], n);
}

int main(int argc, char **argv) {
    const int32_t N = argc > 1 ? atoi(argv[1]) : 512, nh = argc > 4 ? atoi(argv[2]) : 12;
    const int32_t nkv = argc > 4 ? atoi(argv[3]) : 2, hd = argc > 4 ? atoi(argv[4]) : 128;
    const int q8 = argc > 5 && !strcmp(argv[5], "q8_0"), reps = argc > 6 ? atoi(argv[6]) : 5, BS = 16;
    if (N <= 0 || nh <= 0 || nkv <= 0 || nh % nkv || hd <= 0 || reps <= 0 || reps > 100) {
        fprintf(stderr, "usage: bench_vk_attn [N [n_head n_head_kv head_dim [f16|q8_0 [reps]]]]\n");
        return 2;
    }
    hl_err err = {0};
    hl_backend *be = NULL;
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE");
    hl_vulkan_backend_params vp = {.device = dev && *dev ? atoi(dev) : 0, .allow_cpu = 1};
    if (hl_backend_vulkan_new(&be, &vp, &err)) {
        fprintf(stderr, "bench_vk_attn: %s\n", err.msg);
        return 1;
    }
    printf("device: %s\nattention: %d positions, %d/%d heads of %d, %s KV in blocks of %d\n", hl_backend_vulkan_device(be), N,
           nh, nkv, hd, q8 ? "q8_0" : "f16", BS);
    const int32_t nb = (N + BS - 1) / BS;
    int32_t *table = malloc((size_t)nb * sizeof *table);
    for (int32_t i = 0; i < nb; i++) table[i] = nb - 1 - i;
    hl_batch_seq seq = {table, nb};
    hl_batch_token *bt = malloc((size_t)N * sizeof *bt);
    for (int32_t t = 0; t < N; t++) bt[t] = (hl_batch_token){0, t, 0, 0};
    hl_batch all = {bt, N, &seq, 1}, last = {bt + N - 1, 1, &seq, 1};
    hl_kv_params kp = {.n_layer = 1, .n_head_kv = nkv, .head_dim_k = hd, .head_dim_v = hd, .n_blocks = nb,
                       .block_size = BS, .type = q8 ? HL_TYPE_Q8_0 : HL_TYPE_F16};
    hl_kv_cache *kv = NULL;
    int rc = be->ops->kv_new(be, &kp, &kv, &err);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    const size_t nkvf = (size_t)N * nkv * hd, nq = (size_t)N * nh * hd;
    float *k = malloc(nkvf * sizeof *k), *v = malloc(nkvf * sizeof *v), *q = malloc(nq * sizeof *q), *o = malloc(nq * sizeof *o);
    for (size_t i = 0; i < nkvf + nq; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float x = (float)(s >> 40) / 16777216.0f * 2.0f - 1.0f;
        if (i < nkvf) k[i] = x, v[i] = -x;
        else q[i - nkvf] = x;
    }
    hl_op st = {.kind = HL_OP_KV_STORE, .layer = 0, .in = HL_BUF_K, .in2 = HL_BUF_V, .n_in = nkv * hd};
    st.p.kv.n_head_kv = nkv, st.p.kv.head_dim_k = hd, st.p.kv.head_dim_v = hd;
    hl_op_io sio = {.batch = &all, .kv = kv};
    sio.buf[HL_BUF_K] = k, sio.buf[HL_BUF_V] = v;
    if (!rc) rc = be->ops->run_op(be, &st, &sio, &err);
    hl_op at = {.kind = HL_OP_ATTN, .layer = 0, .in = HL_BUF_Q, .out = HL_BUF_ATTN, .n_in = nh * hd, .n_out = nh * hd};
    at.p.attn.n_head = nh, at.p.attn.n_head_kv = nkv, at.p.attn.head_dim_k = hd, at.p.attn.head_dim_v = hd;
    at.p.attn.scale = 1.0f / sqrtf((float)hd), at.p.attn.causal = 1;
    double *pre = malloc((size_t)reps * sizeof *pre), *dec = malloc((size_t)reps * sizeof *dec);
    for (int r = 0; r < reps && !rc; r++) {
        hl_op_io io = {.batch = &all, .kv = kv};
        io.buf[HL_BUF_Q] = q, io.buf[HL_BUF_ATTN] = o;
        int64_t t0 = hl_now_ns();
        rc = be->ops->run_op(be, &at, &io, &err);
        pre[r] = (double)(hl_now_ns() - t0) / 1e6;
        io.batch = &last, io.buf[HL_BUF_Q] = q + (size_t)(N - 1) * nh * hd;
        t0 = hl_now_ns();
        if (!rc) rc = be->ops->run_op(be, &at, &io, &err);
        dec[r] = (double)(hl_now_ns() - t0) / 1e6;
    }
    if (rc) fprintf(stderr, "bench_vk_attn: %s\n", err.msg);
    else {
        char what[64];
        snprintf(what, sizeof what, "prefill %d tokens", N);
        report(what, pre, reps);
        snprintf(what, sizeof what, "decode at %d", N - 1);
        report(what, dec, reps);
    }
    if (kv) be->ops->kv_free(be, kv);
    hl_backend_free(be);
    free(table), free(bt), free(k), free(v), free(q), free(o), free(pre), free(dec);
    return rc ? 1 : 0;
}
