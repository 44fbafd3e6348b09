/* The Vulkan matrix products against the reference backend (the scalar
 * oracle), for every weight type with a kernel, over the shape classes the
 * kernels must handle (16 weight types, F32 to Q6_K, IQ4_NL, IQ4_XS, MXFP4): odd weight-row counts, k = 32 (one block; not for K-quants), k a
 * multiple of 256 and not of 64, batches of 1, 7 and 64 rows, with and
 * without bias. Bound: test_ops.c's 2e-6 * (sum_k |w_jk x_ik| + |b_j|)
 * (the integer block sums are the oracle's; only the float order of the
 * block partial sums differs: strided shares added by a tree of 64, or by
 * the subgroup's lanes, here). On the backend's default kernels (the
 * subgroup ones on a device with subgroup arithmetic, lavapipe included).
 *
 * Batch invariance: each row of a 64-row product equals, bit for bit, the
 * same row computed alone (the scheduler relies on it).
 *
 * Both kinds of matrix product (vk_compute.h: the subgroup kernels of
 * matvec.comp, taken where the device has subgroup arithmetic, and the
 * shared-memory ones of matmul.comp) for the decode shapes: m = 1..9 (9 is
 * a second pass of 8 rows over the weights), n odd and not a multiple of
 * the rows per work group, against the oracle within the bound above, every
 * row of every m bit-equal to the row alone, and rows of one block (no
 * float order left to differ) bit-equal to the oracle for every quantized
 * type (the integer block sums and the block's float expression are the
 * oracle's). Every weight type has a subgroup kernel.
 *
 * Integer dot products: the int-dot builds of the quantized subgroup
 * kernels give the same bits as the plain ones (integer sums are exact),
 * every quantized type, direct and tiled pipelines.
 *
 * Prefill tiling (forced on: auto leaves it off on lavapipe): rows of m = 1,
 * 7, 64 and 200 (the direct pipeline up to 8 rows, the tiled one above)
 * bit-equal to the same rows alone, for float, 32-value and 256-value types.
 *
 * Device choice: `auto` never takes a CPU implementation (lavapipe) unless
 * allowed; checked when the only devices are CPU ones. */
#define HL_OPS_UNDER_TEST_VULKAN 1
#include "backend/ref/ops_harness.h"

#include "backend/vulkan/vk_compute.h"
#include "backend/vulkan/vk_device.h"

#include <math.h>

static const hl_type vk_types[] = {HL_TYPE_F32,  HL_TYPE_F16,  HL_TYPE_BF16, HL_TYPE_Q4_0, HL_TYPE_Q4_1,
                                   HL_TYPE_Q5_0, HL_TYPE_Q5_1, HL_TYPE_Q8_0, HL_TYPE_Q2_K, HL_TYPE_Q3_K,
                                   HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K, HL_TYPE_IQ4_NL, HL_TYPE_IQ4_XS,
                                   HL_TYPE_MXFP4};
#define N_VK_TYPES (sizeof vk_types / sizeof vk_types[0])

/* one product on a backend: out [m][n] */
/* n rows of k random weights of type t named `name`: the float originals
 * (*wf), the rows in type t (*wq, 64-byte aligned; the tensor's data) and
 * their dequantized values (*wd), all owned by the caller. MXFP4 has no
 * quantizer (files come converted): its blocks are random, scales 2^-8..2^3. */
static hl_tensor random_weights(rng *r, hl_type t, int64_t n, int64_t k, const char *name, float **wf, void **wq,
                                float **wd) {
    *wf = rnd_vec(r, n * k, -1.0f, 1.0f);
    *wd = malloc((size_t)(n * k) * sizeof **wd);
    size_t rb = hl_row_size(t, k);
    *wq = aligned_alloc(64, (rb * (size_t)n + 63) & ~(size_t)63);
    if (t == HL_TYPE_MXFP4) {
        uint8_t *bq = *wq;
        for (size_t i = 0; i < rb * (size_t)n; i++) bq[i] = i % 17 == 0 ? (uint8_t)(120 + rnd(r) % 12) : (uint8_t)rnd(r);
    } else
        CHECK_EQ(hl_quantize(t, *wf, *wq, n * k), rb * (size_t)n);
    CHECK_EQ(hl_dequantize(t, *wq, *wd, n * k), 0);
    hl_tensor tw = {.data = *wq, .type = t, .ne0 = k, .ne1 = n, .row_bytes = rb};
    snprintf(tw.name, sizeof tw.name, "%s", name);
    return tw;
}

enum { MAX_M = 256 }; /* the most rows of one product here */

static int product(hl_backend *be, const hl_tensor *w, const hl_tensor *b, const float *x, int32_t m, float *out,
                   hl_err *err) {
    hl_batch_token toks[MAX_M];
    if (m > MAX_M) return hl_err_set(err, HL_EINVAL, "test: %d rows (at most %d)", m, MAX_M);
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
                float *wf, *wd, *bias = rnd_vec(&r, N, -0.5f, 0.5f), *x = rnd_vec(&r, 64 * K, -2.0f, 2.0f);
                void *wq;
                hl_tensor tw = random_weights(&r, t, N, K, "blk.0.attn_q.weight", &wf, &wq, &wd);
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

/* the Vulkan backend with the matrix products of `kind` (HL_VK_MATVEC_*), on
 * the device the suite uses; NULL with the reason in err */
static hl_backend *open_kind(int kind, hl_err *err) {
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE");
    hl_vulkan_backend_params p = {.device = dev && *dev ? atoi(dev) : -1, .allow_cpu = 1, .matvec = kind};
    hl_backend *be = NULL;
    return hl_backend_vulkan_new(&be, &p, err) ? NULL : be;
}

TEST(vk_matmul_decode_paths) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    const char *desc = hl_backend_vulkan_device(s.ut[0].be);
    const int has_subgroup = strstr(desc, "with arithmetic") != NULL;
    printf("    default: %s\n", desc);
    /* auto takes the subgroup kernels exactly when the device has them */
    CHECK((strstr(desc, "matmul: subgroup") != NULL) == has_subgroup);
    static const int kinds[2] = {1 /* subgroup */, 2 /* shared memory */};
    rng r = {0x5EEDull};
    for (int ki = 0; ki < 2; ki++) {
        hl_err err = {0};
        hl_backend *vk = open_kind(kinds[ki], &err);
        if (!vk) {
            if (kinds[ki] == 1 && !has_subgroup) { /* a device without: the refusal says so */
                CHECK(strstr(err.msg, "subgroup") != NULL);
                printf("    subgroup kernels: not on this device (%s)\n", err.msg);
                continue;
            }
            hl_test_fail(__FILE__, __LINE__, "vulkan backend with matvec kind %d: %s", kinds[ki], err.msg);
            continue;
        }
        const char *kd = hl_backend_vulkan_device(vk);
        CHECK(strstr(kd, kinds[ki] == 1 ? "matmul: subgroup" : "matmul: shared memory") != NULL);
        stats st = {0};
        int exact_rows = 0, inv_rows = 0;
        for (size_t ti = 0; ti < N_VK_TYPES; ti++) {
            const hl_type t = vk_types[ti];
            const int64_t blk = hl_type_get(t)->blck, quant = blk > 1;
            /* one block (quantized) or one 16-byte load (float); a few blocks
             * not a multiple of the lanes; float rows of odd length */
            const int64_t ks[3] = {quant ? blk : (t == HL_TYPE_F32 ? 4 : 8), quant ? (blk == 32 ? 288 : 768) : 200,
                                   quant ? 0 : 37};
            static const int64_t ns[] = {1, 13, 37};
            for (int kk = 0; kk < 3 && ks[kk]; kk++)
                for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                    const int64_t K = ks[kk], N = ns[ni];
                    const int wb = N == 13; /* with bias */
                    float *wf, *wd, *bias = rnd_vec(&r, N, -0.5f, 0.5f), *x = rnd_vec(&r, 9 * K, -2.0f, 2.0f);
                    void *wq;
                    hl_tensor tw = random_weights(&r, t, N, K, "blk.0.ffn_down.weight", &wf, &wq, &wd);
                    hl_tensor tb = vec_tensor(bias, N, "blk.0.ffn_down.bias");
                    float *want = malloc((size_t)(9 * N) * sizeof *want), *alone = malloc((size_t)(9 * N) * sizeof *alone);
                    float *got = malloc((size_t)(9 * N) * sizeof *got);
                    double *bound = malloc((size_t)(9 * N) * sizeof *bound);
                    CHECK_EQ(product(s.ref, &tw, wb ? &tb : NULL, x, 9, want, &err), 0);
                    for (int64_t i = 0; i < 9; i++)
                        for (int64_t j = 0; j < N; j++) {
                            double mag = 0;
                            for (int64_t k = 0; k < K; k++) mag += fabs((double)wd[j * K + k] * x[i * K + k]);
                            bound[i * N + j] = 2e-6 * (mag + (wb ? fabs(bias[j]) : 0.0));
                        }
                    int ok = 1;
                    for (int64_t i = 0; i < 9 && ok; i++) /* every row alone */
                        if (product(vk, &tw, wb ? &tb : NULL, x + i * K, 1, alone + i * N, &err)) {
                            hl_test_fail(__FILE__, __LINE__, "%s k=%lld n=%lld alone on vulkan: %s", hl_type_name(t),
                                         (long long)K, (long long)N, err.msg);
                            ok = 0;
                        }
                    for (int32_t M = 1; M <= 9 && ok; M++) {
                        char label[128];
                        snprintf(label, sizeof label, "%s k=%lld n=%lld m=%d%s (%s)", hl_type_name(t), (long long)K,
                                 (long long)N, M, wb ? " bias" : "", kinds[ki] == 1 ? "subgroup" : "shared");
                        if (product(vk, &tw, wb ? &tb : NULL, x, M, got, &err)) {
                            hl_test_fail(__FILE__, __LINE__, "%s on vulkan: %s", label, err.msg);
                            break;
                        }
                        compare(&st, label, "vulkan", got, want, bound, M * N);
                        if (memcmp(got, alone, (size_t)(M * N) * sizeof *got) != 0) {
                            int64_t e = 0;
                            while (got[e] == alone[e]) e++;
                            hl_test_fail(__FILE__, __LINE__, "%s: row %lld column %lld is %.9g, alone %.9g, oracle %.9g", label,
                                         (long long)(e / N), (long long)(e % N), got[e], alone[e], want[e]);
                        }
                        else
                            inv_rows += M;
                        if (quant && K == blk && !wb) { /* one block: the oracle's bits */
                            if (memcmp(got, want, (size_t)(M * N) * sizeof *got) != 0)
                                for (int64_t e = 0; e < M * N; e++)
                                    if (got[e] != want[e]) {
                                        hl_test_fail(__FILE__, __LINE__, "%s: one-block row %lld: %.9g, the oracle %.9g",
                                                     label, (long long)e, got[e], want[e]);
                                        break;
                                    }
                            exact_rows += M;
                        }
                    }
                    free(wf), free(bias), free(x), free(wd), free(wq), free(want), free(alone), free(got), free(bound);
                }
        }
        char what[64];
        snprintf(what, sizeof what, "decode %s", kinds[ki] == 1 ? "subgroup" : "shared memory");
        stats_print(what, "vulkan", &st);
        printf("    %d rows bit-equal to the row alone, %d one-block rows compared with the oracle bit for bit\n",
               inv_rows, exact_rows);
        hl_backend_free(vk);
    }
    suite_close(&s);
}

TEST(vk_matvec_setting) {
    /* HYPERLAMA_VULKAN_MATVEC is read only when the parameters say auto; a
     * bad value is refused by name */
    hl_err err = {0};
    setenv("HYPERLAMA_VULKAN_MATVEC", "fastest", 1);
    hl_backend *be = open_kind(0, &err);
    unsetenv("HYPERLAMA_VULKAN_MATVEC");
    if (!be && strstr(err.msg, "HYPERLAMA_VULKAN_MATVEC") == NULL) { /* no device at all */
        if (!vulkan_required()) {
            hl_test_skip(err.msg);
            return;
        }
        hl_test_fail(__FILE__, __LINE__, "vulkan backend: %s", err.msg);
        return;
    }
    CHECK(be == NULL && strstr(err.msg, "fastest") != NULL && strstr(err.msg, "shared") != NULL);
    hl_backend_free(be);
    setenv("HYPERLAMA_VULKAN_MATVEC", "shared", 1);
    be = open_kind(0, &err);
    unsetenv("HYPERLAMA_VULKAN_MATVEC");
    CHECK(be != NULL);
    if (be) CHECK(strstr(hl_backend_vulkan_device(be), "matmul: shared memory") != NULL);
    hl_backend_free(be);
    /* HYPERLAMA_VULKAN_INT_DOT likewise: refused by name, off honoured */
    setenv("HYPERLAMA_VULKAN_INT_DOT", "sometimes", 1);
    be = open_kind(0, &err);
    CHECK(be == NULL && strstr(err.msg, "HYPERLAMA_VULKAN_INT_DOT") != NULL && strstr(err.msg, "sometimes") != NULL);
    hl_backend_free(be);
    setenv("HYPERLAMA_VULKAN_INT_DOT", "off", 1);
    be = open_kind(0, &err);
    unsetenv("HYPERLAMA_VULKAN_INT_DOT");
    CHECK(be != NULL);
    if (be) CHECK(strstr(strstr(hl_backend_vulkan_device(be), "matmul:"), "int8 dot") == NULL);
    hl_backend_free(be);
    /* HYPERLAMA_VULKAN_TILED: on gives the tiled pipelines; auto, none on a
     * CPU implementation (lavapipe), and on the subgroup kernels of a GPU */
    setenv("HYPERLAMA_VULKAN_TILED", "on", 1);
    be = open_kind(0, &err);
    unsetenv("HYPERLAMA_VULKAN_TILED");
    CHECK(be != NULL);
    if (be) CHECK(strstr(hl_backend_vulkan_device(be), "prefill tiles of") != NULL);
    hl_backend_free(be);
    be = open_kind(0, &err);
    CHECK(be != NULL);
    if (be) {
        const char *d = hl_backend_vulkan_device(be);
        CHECK((strstr(d, "prefill tiles of") != NULL) == (strstr(d, "(cpu,") == NULL && strstr(d, "matmul: subgroup") != NULL));
    }
    hl_backend_free(be);
}

/* the Vulkan backend with integer dot products `dot` (HL_VK_INT_DOT_*) and
 * tiled pipelines `tiled` (HL_VK_TILED_*); NULL with the reason in err */
static hl_backend *open_with(int dot, int tiled, hl_err *err) {
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE");
    hl_vulkan_backend_params p = {.device = dev && *dev ? atoi(dev) : -1, .allow_cpu = 1, .matvec = 0, .int_dot = dot,
                                  .tiled = tiled};
    hl_backend *be = NULL;
    return hl_backend_vulkan_new(&be, &p, err) ? NULL : be;
}

static const hl_type quant_types[] = {HL_TYPE_Q4_0, HL_TYPE_Q4_1, HL_TYPE_Q5_0,   HL_TYPE_Q5_1,   HL_TYPE_Q8_0,
                                      HL_TYPE_Q2_K, HL_TYPE_Q3_K, HL_TYPE_Q4_K,   HL_TYPE_Q5_K,   HL_TYPE_Q6_K,
                                      HL_TYPE_IQ4_NL, HL_TYPE_IQ4_XS, HL_TYPE_MXFP4};

/* Integer dot products (matvec.comp -DINT_DOT, OpSDot) against the plain
 * multiplies, for every quantized type, on the direct pipeline (m = 1, 7)
 * and the tiled one (m = 64): integer sums are exact, so the outputs must
 * be the same bits; and both within the bound of the oracle. Where the
 * device has no integer dot products, `on` must be refused by name. */
TEST(vk_matmul_int_dot_same_bits) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    hl_err err = {0};
    hl_backend *on = open_with(HL_VK_INT_DOT_ON, HL_VK_TILED_ON, &err), *off = NULL;
    const char *desc = hl_backend_vulkan_device(s.ut[0].be);
    if (!on) {
        CHECK(strstr(desc, "int8 dot") == NULL || strstr(desc, "with arithmetic") == NULL);
        CHECK(strstr(err.msg, "HYPERLAMA_VULKAN_INT_DOT") != NULL);
        printf("    integer dot products: not on this device (%s)\n", err.msg);
        return suite_close(&s);
    }
    off = open_with(HL_VK_INT_DOT_OFF, HL_VK_TILED_ON, &err);
    CHECK(off != NULL);
    if (!off) {
        hl_backend_free(on);
        return suite_close(&s);
    }
    CHECK(strstr(hl_backend_vulkan_device(on), "int8 dot)") != NULL || strstr(hl_backend_vulkan_device(on), "int8 dot,") != NULL);
    CHECK(strstr(strstr(hl_backend_vulkan_device(off), "matmul:"), "int8 dot") == NULL);
    rng r = {0xD07ull};
    stats st = {0};
    int same = 0;
    static const int32_t ms[] = {1, 7, 64};
    for (size_t ti = 0; ti < sizeof quant_types / sizeof quant_types[0]; ti++) {
        const hl_type t = quant_types[ti];
        const int64_t K = hl_type_get(t)->blck == 32 ? 288 : 768, N = 37;
        float *wf, *wd, *x = rnd_vec(&r, 64 * K, -2.0f, 2.0f);
        void *wq;
        hl_tensor tw = random_weights(&r, t, N, K, "blk.0.ffn_up.weight", &wf, &wq, &wd);
        float *a = malloc((size_t)(64 * N) * sizeof *a), *b = malloc((size_t)(64 * N) * sizeof *b);
        float *want = malloc((size_t)(64 * N) * sizeof *want);
        double *bound = malloc((size_t)(64 * N) * sizeof *bound);
        CHECK_EQ(product(s.ref, &tw, NULL, x, 64, want, &err), 0);
        for (int64_t i = 0; i < 64; i++)
            for (int64_t j = 0; j < N; j++) {
                double mag = 0;
                for (int64_t k = 0; k < K; k++) mag += fabs((double)wd[j * K + k] * x[i * K + k]);
                bound[i * N + j] = 2e-6 * mag;
            }
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const int32_t M = ms[mi];
            char label[96];
            snprintf(label, sizeof label, "%s k=%lld n=%lld m=%d", hl_type_name(t), (long long)K, (long long)N, M);
            if (product(on, &tw, NULL, x, M, a, &err) || product(off, &tw, NULL, x, M, b, &err)) {
                hl_test_fail(__FILE__, __LINE__, "%s on vulkan: %s", label, err.msg);
                continue;
            }
            compare(&st, label, "vulkan int dot", a, want, bound, M * N);
            if (memcmp(a, b, (size_t)(M * N) * sizeof *a) != 0) {
                int64_t e = 0;
                while (a[e] == b[e]) e++;
                hl_test_fail(__FILE__, __LINE__, "%s: int dot %.9g, plain %.9g at row %lld column %lld", label, a[e], b[e],
                             (long long)(e / N), (long long)(e % N));
            } else
                same++;
        }
        free(wf), free(wd), free(x), free(wq), free(a), free(b), free(want), free(bound);
    }
    stats_print("int dot", "vulkan", &st);
    printf("    %d of %d products the same bits with and without integer dot products\n", same,
           (int)(3 * (sizeof quant_types / sizeof quant_types[0])));
    CHECK(same == (int)(3 * (sizeof quant_types / sizeof quant_types[0])));
    hl_backend_free(on);
    hl_backend_free(off);
    suite_close(&s);
}

/* Batch invariance across the direct and the tiled pipelines: rows of
 * products of m = 1, 7, 64 and 200 rows (200: six full tiles of 32 and a
 * part) against the same rows computed alone, bit for bit, for float,
 * 32-value and 256-value types, and each within the oracle's bound. */
TEST(vk_matmul_batch_invariance) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    hl_err err = {0};
    const int has_subgroup = strstr(hl_backend_vulkan_device(s.ut[0].be), "matmul: subgroup") != NULL;
    hl_backend *vk = has_subgroup ? open_with(HL_VK_INT_DOT_AUTO, HL_VK_TILED_ON, &err) : NULL;
    if (has_subgroup && !vk) {
        hl_test_fail(__FILE__, __LINE__, "vulkan backend with tiled products: %s", err.msg);
        return suite_close(&s);
    }
    if (!vk) vk = s.ut[0].be; /* the shared-memory kernels: one kind for every m */
    else CHECK(strstr(hl_backend_vulkan_device(vk), "prefill tiles of") != NULL);
    static const hl_type types[] = {HL_TYPE_F16, HL_TYPE_Q4_0, HL_TYPE_Q5_1, HL_TYPE_Q8_0, HL_TYPE_MXFP4,
                                    HL_TYPE_Q2_K, HL_TYPE_Q4_K, HL_TYPE_Q6_K, HL_TYPE_IQ4_XS};
    static const int32_t ms[] = {1, 7, 64, 200};
    static const int32_t probe[] = {0, 3, 6, 31, 32, 41, 63, 100, 192, 199}; /* rows computed alone */
    enum { N_PROBE = sizeof probe / sizeof probe[0] };
    rng r = {0xB47Cull};
    stats st = {0};
    int rows_same = 0, rows_checked = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const hl_type t = types[ti];
        const int64_t K = hl_type_get(t)->blck == 256 ? 1024 : 320, N = 19;
        float *wf, *wd, *x = rnd_vec(&r, 200 * K, -2.0f, 2.0f), *bias = rnd_vec(&r, N, -0.5f, 0.5f);
        void *wq;
        hl_tensor tw = random_weights(&r, t, N, K, "blk.0.attn_output.weight", &wf, &wq, &wd);
        hl_tensor tb = vec_tensor(bias, N, "blk.0.attn_output.bias");
        float *got = malloc((size_t)(200 * N) * sizeof *got), *want = malloc((size_t)(200 * N) * sizeof *want);
        float *alone = malloc((size_t)(N_PROBE * N) * sizeof *alone);
        double *bound = malloc((size_t)(200 * N) * sizeof *bound);
        CHECK_EQ(product(s.ref, &tw, &tb, x, 200, want, &err), 0);
        for (int64_t i = 0; i < 200; i++)
            for (int64_t j = 0; j < N; j++) {
                double mag = fabs(bias[j]);
                for (int64_t k = 0; k < K; k++) mag += fabs((double)wd[j * K + k] * x[i * K + k]);
                bound[i * N + j] = 2e-6 * mag;
            }
        int ok = 1;
        for (int pi = 0; pi < N_PROBE && ok; pi++)
            if (product(vk, &tw, &tb, x + probe[pi] * K, 1, alone + pi * N, &err)) {
                hl_test_fail(__FILE__, __LINE__, "%s alone on vulkan: %s", hl_type_name(t), err.msg);
                ok = 0;
            }
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0] && ok; mi++) {
            const int32_t M = ms[mi];
            char label[96];
            snprintf(label, sizeof label, "%s k=%lld n=%lld m=%d bias", hl_type_name(t), (long long)K, (long long)N, M);
            if (product(vk, &tw, &tb, x, M, got, &err)) {
                hl_test_fail(__FILE__, __LINE__, "%s on vulkan: %s", label, err.msg);
                continue;
            }
            compare(&st, label, "vulkan", got, want, bound, M * N);
            for (int pi = 0; pi < N_PROBE; pi++) {
                if (probe[pi] >= M) continue;
                rows_checked++;
                const float *g = got + (int64_t)probe[pi] * N, *al = alone + pi * N;
                if (memcmp(g, al, (size_t)N * sizeof *g) == 0) {
                    rows_same++;
                    continue;
                }
                int64_t e = 0;
                while (g[e] == al[e]) e++;
                hl_test_fail(__FILE__, __LINE__, "%s: row %d column %lld is %.9g, alone %.9g", label, probe[pi],
                             (long long)e, g[e], al[e]);
            }
        }
        free(wf), free(wd), free(x), free(bias), free(wq), free(got), free(want), free(alone), free(bound);
    }
    stats_print("batch invariance", "vulkan", &st);
    printf("    %d of %d probed rows bit-equal to the row alone (m = 1, 7, 64, 200)\n", rows_same, rows_checked);
    CHECK(rows_checked > 0 && rows_same == rows_checked);
    if (vk != s.ut[0].be) hl_backend_free(vk);
    suite_close(&s);
}

/* the embedded SPIR-V of every kernel and of the subgroup matrix products */
#define VK_SPV_DECL(name) extern const uint32_t hl_vk_spv_##name[], hl_vk_spv_##name##_words;
HL_VK_KERNELS(VK_SPV_DECL)
#undef VK_SPV_DECL
#define VK_MV_DECL(t) extern const uint32_t hl_vk_spv_matvec_##t[], hl_vk_spv_matvec_##t##_words;
#define VK_MV_Q_DECL(t, unit) VK_MV_DECL(t) extern const uint32_t hl_vk_spv_matvec_dot_##t[], hl_vk_spv_matvec_dot_##t##_words;
HL_VK_MATVEC_FLOAT(VK_MV_DECL)
HL_VK_MATVEC_QUANT(VK_MV_Q_DECL)
#undef VK_MV_DECL
#undef VK_MV_Q_DECL

/* GLSL.std.450 Fma instructions in a SPIR-V module (-1: malformed) */
static int count_fma(const uint32_t *w, uint32_t n) {
    uint32_t glsl = 0;
    int fma = 0;
    for (uint32_t at = 5; at < n;) {
        uint32_t len = w[at] >> 16, op = w[at] & 0xffff;
        if (len == 0 || at + len > n) return -1;
        if (op == 11 && len >= 3 && !strcmp((const char *)&w[at + 2], "GLSL.std.450")) glsl = w[at + 1];
        if (op == 12 && len >= 5 && w[at + 3] == glsl && w[at + 4] == 50) fma++;
        at += len;
    }
    return fma;
}

/* The matrix products and the activation converters never call fma(), and
 * every block value is `precise`: an Fma in their modules means the
 * optimizer fused one anyway (spirv-opt's unrolled copies once lost
 * `precise`, so a row's value depended on its place in the batch). Checked
 * on the embedded modules, no device needed. (The other kernels are
 * compared within tolerances; spirv-opt fuses there.) */
TEST(vk_kernels_have_no_fused_multiply_add) {
    struct { const char *name; const uint32_t *code; uint32_t words; } mods[] = {
#define VK_MOD(name) {#name, hl_vk_spv_##name, hl_vk_spv_##name##_words},
        HL_VK_KERNELS(VK_MOD)
#undef VK_MOD
#define VK_MV_MOD(t) {"matvec_" #t, hl_vk_spv_matvec_##t, hl_vk_spv_matvec_##t##_words},
#define VK_MV_Q_MOD(t, unit) VK_MV_MOD(t) {"matvec_dot_" #t, hl_vk_spv_matvec_dot_##t, hl_vk_spv_matvec_dot_##t##_words},
        HL_VK_MATVEC_FLOAT(VK_MV_MOD)
        HL_VK_MATVEC_QUANT(VK_MV_Q_MOD)
#undef VK_MV_MOD
#undef VK_MV_Q_MOD
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        if (strncmp(mods[i].name, "matmul_", 7) && strncmp(mods[i].name, "matvec_", 7) && strncmp(mods[i].name, "quant_", 6))
            continue;
        checked++;
        int n = count_fma(mods[i].code, mods[i].words);
        if (n != 0) hl_test_fail(__FILE__, __LINE__, "kernel %s: %d fused multiply-adds%s", mods[i].name, n,
                                 n < 0 ? " (malformed SPIR-V)" : "");
    }
    printf("    %d SPIR-V modules (matrix products, activation converters) checked for Fma\n", checked);
    CHECK(checked == 3 + 16 + 16 + 13); /* converters, matmul_*, matvec_*, matvec_dot_* */
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
