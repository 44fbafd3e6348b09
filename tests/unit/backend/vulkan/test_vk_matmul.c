/* The Vulkan matrix products against the reference backend (the scalar
 * oracle), for every weight type with a kernel, over the shape classes the
 * kernels must handle (16 weight types, F32 to Q6_K, IQ4_NL, IQ4_XS, MXFP4): odd weight-row counts, k = 32 (one block; not for K-quants), k a
 * multiple of 256 and not of 64, batches of 1, 7 and 64 rows, with and
 * without bias. Bound: test_ops.c's 2e-6 * (sum_k |w_jk x_ik| + |b_j|)
 * (the integer block sums are the oracle's; only the float order of the
 * block partial sums differs: a tree of 64 strided shares here).
 *
 * Batch invariance: each row of a 64-row product equals, bit for bit, the
 * same row computed alone (the scheduler relies on it).
 *
 * Device choice: `auto` never takes a CPU implementation (lavapipe) unless
 * allowed; checked when the only devices are CPU ones. */
#define HL_OPS_UNDER_TEST_VULKAN 1
#include "backend/ref/ops_harness.h"

#include "backend/vulkan/vk_device.h"

#include <math.h>

static const hl_type vk_types[] = {HL_TYPE_F32,  HL_TYPE_F16,  HL_TYPE_BF16, HL_TYPE_Q4_0, HL_TYPE_Q4_1,
                                   HL_TYPE_Q5_0, HL_TYPE_Q5_1, HL_TYPE_Q8_0, HL_TYPE_Q2_K, HL_TYPE_Q3_K,
                                   HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K, HL_TYPE_IQ4_NL, HL_TYPE_IQ4_XS,
                                   HL_TYPE_MXFP4};
#define N_VK_TYPES (sizeof vk_types / sizeof vk_types[0])

/* one product on a backend: out [m][n] */
static int product(hl_backend *be, const hl_tensor *w, const hl_tensor *b, const float *x, int32_t m, float *out,
                   hl_err *err) {
    hl_batch_token toks[64];
    for (int32_t i = 0; i < m; i++) toks[i] = (hl_batch_token){i, i, 0, 0};
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, m, &seq, 1};
    hl_op op = {.kind = HL_OP_MATMUL, .layer = 0, .in = HL_BUF_ATTN_IN, .out = HL_BUF_Q, .w = w, .b = b,
                .n_in = w->ne0, .n_out = w->ne1};
    hl_op_io io = {.batch = &batch};
    io.buf[HL_BUF_ATTN_IN] = (float *)x;
    io.buf[HL_BUF_Q] = out;
    return be->ops->run_op(be, &op, &io, err);
}

TEST(vk_matmul_shapes) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    hl_backend *vk = s.ut[0].be;
    rng r = {0xBADC0DEull};
    static const int64_t ks[] = {32, 256, 768, 4096}, ns[] = {1, 37, 130};
    static const int32_t ms[] = {1, 7, 64};
    stats st = {0};
    int expected = 0;
    for (size_t ti = 0; ti < N_VK_TYPES; ti++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                hl_type t = vk_types[ti];
                int64_t K = ks[ki], N = ns[ni];
                if (K % hl_type_get(t)->blck) continue; /* K-quants: k a multiple of 256 */
                if (K == 4096 && N == 130) continue;    /* the largest shape once is enough (time) */
                expected += 3 * 2;
                float *wf = rnd_vec(&r, N * K, -1.0f, 1.0f), *bias = rnd_vec(&r, N, -0.5f, 0.5f);
                float *x = rnd_vec(&r, 64 * K, -2.0f, 2.0f), *wd = malloc((size_t)(N * K) * sizeof *wd);
                size_t rb = hl_row_size(t, K);
                void *wq = aligned_alloc(64, (rb * (size_t)N + 63) & ~(size_t)63);
                if (t == HL_TYPE_MXFP4) { /* no quantizer (files come converted): random blocks, scales 2^-8..2^3 */
                    uint8_t *bq = wq;
                    for (size_t i = 0; i < rb * (size_t)N; i++)
                        bq[i] = i % 17 == 0 ? (uint8_t)(120 + rnd(&r) % 12) : (uint8_t)rnd(&r);
                } else
                    CHECK_EQ(hl_quantize(t, wf, wq, N * K), rb * (size_t)N);
                CHECK_EQ(hl_dequantize(t, wq, wd, N * K), 0);
                hl_tensor tw = {.data = wq, .type = t, .ne0 = K, .ne1 = N, .row_bytes = rb};
                snprintf(tw.name, sizeof tw.name, "blk.0.attn_q.weight");
                hl_tensor tb = vec_tensor(bias, N, "blk.0.attn_q.bias");
                float *got = malloc((size_t)(64 * N) * sizeof *got), *want = malloc((size_t)(64 * N) * sizeof *want);
                float *alone = malloc((size_t)N * sizeof *alone);
                double *bound = malloc((size_t)(64 * N) * sizeof *bound);
                for (int mi = 0; mi < 3; mi++)
                    for (int wb = 0; wb < 2; wb++) {
                        int32_t M = ms[mi];
                        hl_err err = {0};
                        char label[96];
                        snprintf(label, sizeof label, "%s k=%lld n=%lld m=%d%s", hl_type_name(t), (long long)K,
                                 (long long)N, M, wb ? " bias" : "");
                        if (product(vk, &tw, wb ? &tb : NULL, x, M, got, &err)) {
                            hl_test_fail(__FILE__, __LINE__, "%s on vulkan: %s", label, err.msg);
                            continue;
                        }
                        CHECK_EQ(product(s.ref, &tw, wb ? &tb : NULL, x, M, want, &err), 0);
                        for (int64_t i = 0; i < M; i++)
                            for (int64_t j = 0; j < N; j++) {
                                double mag = 0;
                                for (int64_t k = 0; k < K; k++) mag += fabs((double)wd[j * K + k] * x[i * K + k]);
                                bound[i * N + j] = 2e-6 * (mag + (wb ? fabs(bias[j]) : 0.0));
                            }
                        compare(&st, label, "vulkan", got, want, bound, M * N);
                        if (M == 64) { /* batch invariance: row 41 alone */
                            int arc = product(vk, &tw, wb ? &tb : NULL, x + 41 * K, 1, alone, &err);
                            CHECK_EQ(arc, 0);
                            if (!arc && memcmp(alone, got + 41 * N, (size_t)N * sizeof *alone) != 0)
                                hl_test_fail(__FILE__, __LINE__, "%s: row 41 of 64 differs from the row computed alone", label);
                        }
                    }
                free(wf), free(bias), free(x), free(wd), free(wq), free(got), free(want), free(alone), free(bound);
            }
    stats_print("matmul shapes", "vulkan", &st);
    CHECK(st.cases == expected);
    suite_close(&s);
}

TEST(vk_auto_never_picks_a_cpu_device) {
    hl_vk_instance *vi = NULL;
    hl_err err = {0};
    int rc = hl_vk_instance_open(&vi, &err);
    if (rc == HL_ENOTSUP && !vulkan_required()) {
        hl_test_skip(err.msg);
        return;
    }
    if (rc) {
        hl_test_fail(__FILE__, __LINE__, "Vulkan instance: %s", err.msg);
        return;
    }
    int gpus = 0, cpus = 0;
    for (uint32_t i = 0; i < vi->n_devices; i++) {
        char desc[512];
        hl_vk_describe(&vi->devices[i], desc, sizeof desc);
        printf("    device %u: %s\n", i, desc);
        if (!vi->devices[i].usable) continue;
        if (vi->devices[i].type == VK_PHYSICAL_DEVICE_TYPE_CPU) cpus++;
        else gpus++;
    }
    int pick = hl_vk_pick(vi, -1, 0, &err);
    if (gpus == 0) {
        CHECK(pick < 0);
        CHECK(strstr(err.msg, "no usable Vulkan GPU") != NULL);
        printf("    auto without a GPU: %s\n", err.msg);
    } else {
        CHECK(pick >= 0 && vi->devices[pick].type != VK_PHYSICAL_DEVICE_TYPE_CPU);
    }
    if (cpus) {
        int any = hl_vk_pick(vi, -1, 1, &err);
        CHECK(any >= 0);
    }
    CHECK(hl_vk_pick(vi, (int)vi->n_devices, 1, &err) < 0 && strstr(err.msg, "does not exist") != NULL);
    hl_vk_instance_close(vi);
}

TEST(vk_refuses_what_it_cannot_run) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    hl_backend *vk = s.ut[0].be;
    hl_err err = {0};
    /* an op without a kernel (routed experts): the backend names it and its layer */
    hl_op ops[2] = {{.kind = HL_OP_EMBED, .layer = -1, .out = HL_BUF_X}, {.kind = HL_OP_MOE, .layer = 3}};
    hl_plan plan = {.arch = "llama", .ops = ops, .n_ops = 2};
    CHECK_EQ(vk->ops->supports(vk, &plan, &err), HL_ENOTSUP);
    CHECK(strstr(err.msg, "moe") != NULL && strstr(err.msg, "layer 3") != NULL);
    /* a weight type without a kernel (an activation format as a weight): named */
    rng r = {7};
    float *x = rnd_vec(&r, 256, -1, 1), out[4];
    size_t rb = hl_row_size(HL_TYPE_Q8_K, 256);
    void *wq = calloc(4, rb);
    hl_tensor tw = {.data = wq, .type = HL_TYPE_Q8_K, .ne0 = 256, .ne1 = 4, .row_bytes = rb};
    CHECK_EQ(product(vk, &tw, NULL, x, 1, out, &err), HL_ENOTSUP);
    CHECK(strstr(err.msg, "Q8_K") != NULL);
    free(x), free(wq);
    suite_close(&s);
}
