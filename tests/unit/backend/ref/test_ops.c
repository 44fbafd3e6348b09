/* Ops against the reference backend, part 1 (ops_harness.h runs them on
 * every backend under test): NORM, MATMUL, ROPE, GLU, ACT, ADD, GATHER and
 * EMBED in their variants, the reference itself checked against independent
 * double-precision computations written here (norm, rope, matmul with float
 * weights), supports() refusing an incomplete MOE op (every backend; MOE itself
 * is test_ops_moe.c) and tensor and KV
 * types the reference cannot handle, and the reference's run() of a small
 * plan equal, bit for bit, to its ops run one by one. Part 2 (KV store,
 * attention, KV blocks) is test_ops_kv.c. No expected output is hard-coded.
 *
 * Tolerances (u = 2^-24, the float unit roundoff; "measured" = the CPU
 * backend's largest difference / bound on AVX2, as the test prints it):
 *   EMBED, ADD, GATHER  exact: both dequantize with quant/ and do the same
 *                       single float operation per element.
 *   MATMUL              2e-6 * (sum_k |w_jk x_ik| + |b_j|): the integer sums
 *                       are identical, only the float summation order of the
 *                       block partial sums (and FMA) differ. Worst case for
 *                       k = 512 would be k u = 3e-5; what orders actually
 *                       give is ~1e-7 (measured 1.3e-7 of the sum, 0.067 of
 *                       the bound), so 2e-6 keeps ~15x headroom and still
 *                       catches a lost block. The scalar level is exact.
 *   NORM                1e-6 * (|x^ w| + |w| + |b|): the reference takes the
 *                       statistics in double and rounds once, a float kernel
 *                       rounds the scale and two products (a few u), plus
 *                       cancellation in x - mean when the mean is O(std).
 *                       Measured 0.08.
 *   ROPE                1e-6 * (|x0| + |x1|) on rotated pairs, exact on the
 *                       dims past n_rot: cos/sin are rounded to float from
 *                       double angles, then two products and a sum (or FMA).
 *                       Measured: bit-identical.
 *   GLU, ACT            2e-6 * |y| + 1e-7 * |x| * |up|: exp/tanh (or a
 *                       vector exp polynomial) to a few u relative; y = x *
 *                       sigmoid(.) keeps that relative error. Measured 0.15. */
#include "ops_harness.h"

/* ---- NORM ---- */

TEST(norm_rms_layer_weights_groups) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0x1234567ull};
    const int64_t E = 96, T = 5;
    float *x = rnd_vec(&r, T * E, -1.5f, 2.5f); /* mean ~0.5: LayerNorm removes something */
    float *w = rnd_vec(&r, E, -2.0f, 2.0f), *b = rnd_vec(&r, E, -1.0f, 1.0f);
    hl_tensor tw = vec_tensor(w, E, "blk.0.attn_norm.weight"), tb = vec_tensor(b, E, "blk.0.attn_norm.bias");
    hl_tensor thw = vec_tensor(w, 32, "blk.0.attn_q_norm.weight"), thb = vec_tensor(b, 32, "blk.0.attn_q_norm.bias");
    hl_batch_token toks[5] = {{1, 0, 0, 1}, {2, 1, 0, 0}, {3, 2, 0, 1}, {4, 3, 0, 0}, {5, 4, 0, 1}};
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, (int32_t)T, &seq, 1};
    struct {
        const char *label;
        hl_norm_kind kind;
        const hl_tensor *w, *b;
        int32_t group;
        hl_buf_id in, out;
    } v[] = {
        {"rms w", HL_NORM_RMS, &tw, NULL, E, HL_BUF_X, HL_BUF_ATTN_IN},
        {"rms no weight", HL_NORM_RMS, NULL, NULL, E, HL_BUF_X, HL_BUF_ATTN_IN},
        {"rms in place", HL_NORM_RMS, &tw, NULL, E, HL_BUF_ATTN_OUT, HL_BUF_ATTN_OUT},
        {"layer w b", HL_NORM_LAYER, &tw, &tb, E, HL_BUF_X, HL_BUF_ATTN_IN},
        {"layer w", HL_NORM_LAYER, &tw, NULL, E, HL_BUF_X, HL_BUF_FFN_IN},
        {"layer plain", HL_NORM_LAYER, NULL, NULL, E, HL_BUF_X, HL_BUF_FFN_IN},
        {"rms per head", HL_NORM_RMS, &thw, NULL, 32, HL_BUF_Q, HL_BUF_Q},
        {"rms per head plain", HL_NORM_RMS, NULL, NULL, 32, HL_BUF_K, HL_BUF_K},
        {"layer per head w b", HL_NORM_LAYER, &thw, &thb, 32, HL_BUF_Q, HL_BUF_Q},
        {"rms output rows", HL_NORM_RMS, &tw, NULL, E, HL_BUF_OUT_IN, HL_BUF_OUT_NORM},
    };
    stats st[N_BACKENDS] = {{0}}, oracle = {0};
    double *bound = malloc((size_t)(T * E) * sizeof *bound), *ob = malloc((size_t)(T * E) * sizeof *ob);
    float *dbl = malloc((size_t)(T * E) * sizeof *dbl);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        op_case c = {.label = v[i].label, .batch = &batch, .in = x};
        c.op = (hl_op){.kind = HL_OP_NORM, .layer = 0, .in = v[i].in, .out = v[i].out, .w = v[i].w, .b = v[i].b,
                       .n_in = E, .n_out = E};
        c.op.p.norm.kind = v[i].kind;
        c.op.p.norm.eps = 1e-5f;
        c.op.p.norm.group = v[i].group;
        /* the definition, in double */
        int64_t g = v[i].group, rows = buf_rows(&batch, v[i].in);
        for (int64_t t = 0; t < rows; t++)
            for (int64_t g0 = 0; g0 < E; g0 += g) {
                const float *xs = x + t * E + g0;
                double mean = 0, var = 0;
                if (v[i].kind == HL_NORM_LAYER) {
                    for (int64_t j = 0; j < g; j++) mean += xs[j];
                    mean /= g;
                }
                for (int64_t j = 0; j < g; j++) var += (xs[j] - mean) * (xs[j] - mean);
                var /= g;
                for (int64_t j = 0; j < g; j++) {
                    int64_t wi = g < E ? j : g0 + j;
                    double xh = (xs[j] - mean) / sqrt(var + 1e-5);
                    double wv = v[i].w ? w[wi] : 1.0, bv = v[i].b ? b[wi] : 0.0, y = xh * wv + bv;
                    dbl[t * E + g0 + j] = (float)y;
                    ob[t * E + g0 + j] = 2.4e-7 * fabs(y) + 1e-12; /* one rounding, plus dbl's own */
                    bound[t * E + g0 + j] = 1e-6 * (fabs(xh * wv) + fabs(wv) + fabs(bv));
                }
            }
        op_result ref;
        cross_check(&s, &c, bound, st, &ref);
        if (ref.out) compare(&oracle, c.label, "double", ref.out, dbl, ob, rows * E);
        result_free(&ref);
    }
    print_all("norm", st);
    stats_print("norm ref vs double", "ref", &oracle);
    free(x), free(w), free(b), free(bound), free(ob), free(dbl);
    suite_close(&s);
}

/* ---- MATMUL ---- */

static const hl_type mm_types[] = {HL_TYPE_F32,  HL_TYPE_F16,  HL_TYPE_BF16, HL_TYPE_Q4_0, HL_TYPE_Q4_1,
                                   HL_TYPE_Q5_0, HL_TYPE_Q5_1, HL_TYPE_Q8_0, HL_TYPE_Q2_K, HL_TYPE_Q3_K,
                                   HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K, HL_TYPE_IQ4_NL, HL_TYPE_IQ4_XS};

TEST(matmul_every_weight_type) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0xC0FFEEull};
    const int64_t K = 512, N = 40, MAXM = 17;
    float *wf = rnd_vec(&r, N * K, -1.0f, 1.0f), *bias = rnd_vec(&r, N, -0.5f, 0.5f);
    float *x = rnd_vec(&r, MAXM * K, -1.0f, 1.0f), *wd = malloc((size_t)(N * K) * sizeof *wd);
    double *bound = malloc((size_t)(MAXM * N) * sizeof *bound), *ob = malloc((size_t)(MAXM * N) * sizeof *ob);
    float *dbl = malloc((size_t)(MAXM * N) * sizeof *dbl);
    hl_tensor tb = vec_tensor(bias, N, "blk.0.attn_q.bias");
    hl_batch_token toks[17];
    for (int i = 0; i < 17; i++) toks[i] = (hl_batch_token){i, i, 0, i % 3 == 0};
    hl_batch_seq seq = {NULL, 0};
    stats st[N_BACKENDS] = {{0}}, oracle = {0};
    for (size_t ti = 0; ti < sizeof mm_types / sizeof mm_types[0]; ti++) {
        hl_type t = mm_types[ti];
        CHECK(hl_matmul_supported(t));
        size_t rb = hl_row_size(t, K);
        void *wq = aligned_alloc(64, (rb * N + 63) & ~(size_t)63);
        CHECK_EQ(hl_quantize(t, wf, wq, N * K), rb * N);
        CHECK_EQ(hl_dequantize(t, wq, wd, N * K), 0);
        hl_tensor tw = {.data = wq, .type = t, .ne0 = K, .ne1 = N, .row_bytes = rb};
        snprintf(tw.name, sizeof tw.name, "blk.0.attn_q.weight");
        static const int32_t ms[] = {1, 3, 17};
        for (int mi = 0; mi < 3; mi++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                hl_batch batch = {toks, ms[mi], &seq, 1};
                char label[64];
                snprintf(label, sizeof label, "matmul %s m=%d%s", hl_type_name(t), ms[mi], with_bias ? " bias" : "");
                op_case c = {.label = label, .batch = &batch, .in = x};
                c.op = (hl_op){.kind = HL_OP_MATMUL, .layer = 0, .in = HL_BUF_ATTN_IN, .out = HL_BUF_Q, .w = &tw,
                               .b = with_bias ? &tb : NULL, .n_in = K, .n_out = N};
                for (int64_t i = 0; i < ms[mi]; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double sum = 0, mag = 0;
                        for (int64_t k = 0; k < K; k++) {
                            sum += (double)wd[j * K + k] * x[i * K + k];
                            mag += fabs((double)wd[j * K + k] * x[i * K + k]);
                        }
                        double bj = with_bias ? bias[j] : 0.0;
                        bound[i * N + j] = 2e-6 * (mag + fabs(bj));
                        dbl[i * N + j] = (float)(sum + bj);
                        /* a sequential float sum of K terms: gamma_K * sum|terms|, then the bias add and rounding */
                        double gk = K * 0x1p-24 / (1 - K * 0x1p-24);
                        ob[i * N + j] = gk * mag + 0x1p-23 * (fabs(sum) + fabs(bj)) + 1e-30;
                    }
                op_result ref;
                cross_check(&s, &c, bound, st, &ref);
                /* float weights take float activations: the oracle is a plain float dot */
                if (ref.out && (t == HL_TYPE_F32 || t == HL_TYPE_F16 || t == HL_TYPE_BF16))
                    compare(&oracle, label, "double", ref.out, dbl, ob, ms[mi] * N);
                result_free(&ref);
            }
        /* the logits matmul: rows are the tokens that want logits */
        hl_batch batch = {toks, 7, &seq, 1}; /* tokens 0, 3, 6 want logits */
        op_case c = {.label = "matmul out_norm -> logits", .batch = &batch, .in = x};
        c.op = (hl_op){.kind = HL_OP_MATMUL, .layer = -1, .in = HL_BUF_OUT_NORM, .out = HL_BUF_LOGITS, .w = &tw,
                       .n_in = K, .n_out = N};
        for (int64_t i = 0; i < 3 * N; i++) bound[i] = 1.0; /* recomputed below */
        for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < N; j++) {
                double mag = 0;
                for (int64_t k = 0; k < K; k++) mag += fabs((double)wd[j * K + k] * x[i * K + k]);
                bound[i * N + j] = 2e-6 * mag;
            }
        op_result ref;
        cross_check(&s, &c, bound, st, &ref);
        CHECK_EQ(ref.n, 3 * N);
        result_free(&ref);
        free(wq);
    }
    print_all("matmul (15 types)", st);
    stats_print("matmul F32/F16/BF16 vs double", "ref", &oracle);
    free(wf), free(bias), free(x), free(wd), free(bound), free(ob), free(dbl);
    suite_close(&s);
}

/* ---- ROPE ---- */

TEST(rope_norm_neox_partial) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0xBEEFull};
    const int32_t NH = 3, HD = 32, T = 6;
    const int64_t W = NH * HD;
    hl_batch_token toks[6] = {{0, 0, 0, 0}, {0, 1, 0, 0}, {0, 17, 1, 0}, {0, 255, 1, 0}, {0, 1000, 0, 0}, {0, 4095, 1, 1}};
    hl_batch_seq seqs[2] = {{NULL, 0}, {NULL, 0}};
    hl_batch batch = {toks, T, seqs, 2};
    float *x = rnd_vec(&r, T * W, -2.0f, 2.0f);
    double *bound = malloc((size_t)(T * W) * sizeof *bound), *ob = malloc((size_t)(T * W) * sizeof *ob);
    float *dbl = malloc((size_t)(T * W) * sizeof *dbl);
    double inv_freq[16];
    stats st[N_BACKENDS] = {{0}}, oracle = {0};
    static const int32_t rots[] = {32, 16, 8};
    for (int style = 0; style < 2; style++)
        for (int ri = 0; ri < 3; ri++) {
            int32_t nr = rots[ri], half = nr / 2;
            double base = ri == 1 ? 1000000.0 : 10000.0;
            for (int32_t i = 0; i < half; i++) inv_freq[i] = pow(base, -2.0 * i / nr);
            char label[64];
            /* the partial case also scales the rotated dims (LongRoPE's attn_factor) */
            const double ms = ri == 2 ? 1.3 : 1.0;
            snprintf(label, sizeof label, "rope %s n_rot=%d%s", style ? "neox" : "norm", nr, ri == 2 ? " mscale" : "");
            op_case c = {.label = label, .batch = &batch, .in = x};
            c.op = (hl_op){.kind = HL_OP_ROPE, .layer = 0, .in = HL_BUF_Q, .out = HL_BUF_Q, .n_in = W, .n_out = W};
            c.op.p.rope.style = style ? HL_ROPE_NEOX : HL_ROPE_NORM;
            c.op.p.rope.n_rot = nr;
            c.op.p.rope.head_dim = HD;
            c.op.p.rope.n_head = NH;
            c.op.p.rope.inv_freq = inv_freq;
            c.op.p.rope.mscale = ri == 2 ? (float)ms : 0.0f;
            for (int64_t i = 0; i < T * W; i++) dbl[i] = x[i], bound[i] = ob[i] = 0.0; /* dims past n_rot: untouched */
            for (int32_t t = 0; t < T; t++)
                for (int32_t h = 0; h < NH; h++)
                    for (int32_t i = 0; i < half; i++) {
                        int64_t o = (int64_t)t * W + (int64_t)h * HD;
                        int64_t i0 = o + (style ? i : 2 * i), i1 = o + (style ? i + half : 2 * i + 1);
                        double th = toks[t].pos * inv_freq[i], x0 = x[i0], x1 = x[i1];
                        dbl[i0] = (float)(ms * (x0 * cos(th) - x1 * sin(th)));
                        dbl[i1] = (float)(ms * (x0 * sin(th) + x1 * cos(th)));
                        bound[i0] = bound[i1] = 1e-6 * ms * (fabs(x0) + fabs(x1));
                        /* reference: c, s rounded (u each), two products and a sum in float, then dbl's rounding */
                        ob[i0] = ob[i1] = 6 * 0x1p-24 * ms * (fabs(x0) + fabs(x1));
                    }
            op_result ref;
            cross_check(&s, &c, bound, st, &ref);
            if (ref.out) compare(&oracle, label, "double", ref.out, dbl, ob, T * W);
            result_free(&ref);
        }
    print_all("rope", st);
    stats_print("rope ref vs double", "ref", &oracle);
    free(x), free(bound), free(ob), free(dbl);
    suite_close(&s);
}

/* ---- GLU, ACT, ADD, GATHER, EMBED ---- */

TEST(glu_act_add_gather) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0x61Dull};
    const int64_t F = 200, T = 7; /* 200: not a multiple of the vector width */
    float *g = rnd_vec(&r, T * F, -9.0f, 9.0f), *up = rnd_vec(&r, T * F, -3.0f, 3.0f), *acc = rnd_vec(&r, T * F, -5, 5);
    double *bound = malloc((size_t)(T * F) * sizeof *bound);
    hl_batch_token toks[7];
    for (int i = 0; i < 7; i++) toks[i] = (hl_batch_token){i, i, 0, i == 1 || i == 4 || i == 6};
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, (int32_t)T, &seq, 1};
    stats st[N_BACKENDS] = {{0}}, ste[N_BACKENDS] = {{0}};
    for (int kind = 0; kind < 2; kind++)
        for (int act = 0; act < 3; act++) { /* silu, gelu (tanh), exact gelu (erf: encoders) */
            char label[64];
            snprintf(label, sizeof label, "%s %s", kind ? "act" : "glu", act == 2 ? "gelu_erf" : act ? "gelu" : "silu");
            op_case c = {.label = label, .batch = &batch, .in = g, .in2 = kind ? NULL : up};
            c.op = (hl_op){.kind = kind ? HL_OP_ACT : HL_OP_GLU, .layer = 0, .in = HL_BUF_GATE,
                           .in2 = kind ? HL_BUF_NONE : HL_BUF_UP, .out = HL_BUF_FFN_ACT, .n_in = F, .n_out = F};
            c.op.p.act.act = act == 2 ? HL_ACT_GELU_ERF : act ? HL_ACT_GELU : HL_ACT_SILU;
            for (int64_t i = 0; i < T * F; i++) {
                double x = g[i], m = kind ? 1.0 : up[i];
                double y = act == 2 ? 0.5 * x * (1 + erf(x * 0.7071067811865476))
                           : act ? 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
                                 : x / (1 + exp(-x));
                bound[i] = 2e-6 * fabs(y * m) + 1e-7 * fabs(x * m);
            }
            cross_check(&s, &c, bound, st, NULL);
        }
    /* GLU SWIGLU_CLAMP (gpt-oss, transformers' GptOssExperts): g = min(gate,
     * limit), u = clamp(up, +-limit), (u + 1) * g * sigmoid(alpha * g); a
     * limit of 2.5 clamps both operands somewhere in these ranges */
    {
        op_case c = {.label = "glu swiglu_clamp", .batch = &batch, .in = g, .in2 = up};
        c.op = (hl_op){.kind = HL_OP_GLU, .layer = 0, .in = HL_BUF_GATE, .in2 = HL_BUF_UP, .out = HL_BUF_FFN_ACT,
                       .n_in = F, .n_out = F};
        c.op.p.act.act = HL_ACT_SWIGLU_CLAMP;
        c.op.p.act.alpha = 1.702f;
        c.op.p.act.limit = 2.5f;
        double *want = malloc((size_t)(T * F) * sizeof *want);
        int clamped_g = 0, clamped_u = 0;
        for (int64_t i = 0; i < T * F; i++) {
            double x = g[i] > 2.5 ? 2.5 : g[i], u = up[i] > 2.5 ? 2.5 : up[i] < -2.5 ? -2.5 : up[i];
            clamped_g += g[i] > 2.5f, clamped_u += fabsf(up[i]) > 2.5f;
            want[i] = (u + 1) * x / (1 + exp(-1.702 * x));
            bound[i] = 2e-6 * fabs(want[i]) + 1e-7 * fabs(x * (u + 1));
        }
        CHECK(clamped_g > 0 && clamped_u > 0);
        op_result ref;
        cross_check(&s, &c, bound, st, &ref);
        int off = 0;
        for (int64_t i = 0; ref.out && i < ref.n; i++) off += fabs(ref.out[i] - want[i]) > 1e-6 * (1 + fabs(want[i]));
        CHECK_EQ(off, 0);
        result_free(&ref);
        free(want);
    }
    /* ACT SOFTCAP (gemma2's logits): cap * tanh(x / cap), in place on the
     * logits buffer, over inputs from well inside to beyond the cap */
    {
        op_case c = {.label = "act softcap", .batch = &batch, .in = g};
        c.op = (hl_op){.kind = HL_OP_ACT, .layer = -1, .in = HL_BUF_LOGITS, .out = HL_BUF_LOGITS, .n_in = F, .n_out = F};
        c.op.p.act.act = HL_ACT_SOFTCAP;
        c.op.p.act.cap = 4.0f;
        op_result ref;
        for (int64_t i = 0; i < T * F; i++) bound[i] = 2e-6 * fabs(4.0 * tanh(g[i] / 4.0)) + 1e-7;
        cross_check(&s, &c, bound, st, &ref);
        /* the reference itself against the definition */
        int off = 0;
        for (int64_t i = 0; ref.out && i < ref.n; i++) off += fabs(ref.out[i] - 4.0 * tanh(g[i] / 4.0)) > 1e-6;
        CHECK_EQ(off, 0);
        result_free(&ref);
    }
    /* ADD: residual accumulate, exact */
    op_case ca = {.label = "add", .batch = &batch, .in = g, .out0 = acc};
    ca.op = (hl_op){.kind = HL_OP_ADD, .layer = 0, .in = HL_BUF_FFN_OUT, .out = HL_BUF_X, .n_in = F, .n_out = F};
    op_result ref;
    cross_check(&s, &ca, NULL, ste, &ref);
    int bad = 0;
    for (int64_t i = 0; ref.out && i < T * F; i++) bad += ref.out[i] != acc[i] + g[i];
    CHECK_EQ(bad, 0);
    result_free(&ref);
    /* ADD with a residual scale (granite): out += in * scale, one rounding each, exact */
    op_case cs = ca;
    cs.label = "add scaled";
    cs.op.p.add.scale = 0.22f;
    cross_check(&s, &cs, NULL, ste, &ref);
    bad = 0;
    for (int64_t i = 0; ref.out && i < T * F; i++) bad += ref.out[i] != acc[i] + g[i] * 0.22f;
    CHECK_EQ(bad, 0);
    result_free(&ref);
    /* ACT SCALE (granite's logits / logit_scale), in place, exact */
    op_case cl = {.label = "act scale", .batch = &batch, .in = g};
    cl.op = (hl_op){.kind = HL_OP_ACT, .layer = -1, .in = HL_BUF_LOGITS, .out = HL_BUF_LOGITS, .n_in = F, .n_out = F};
    cl.op.p.act.act = HL_ACT_SCALE;
    cl.op.p.act.cap = 0.4f;
    cross_check(&s, &cl, NULL, ste, &ref);
    bad = 0;
    for (int64_t i = 0; ref.out && i < ref.n; i++) bad += ref.out[i] != g[i] * 0.4f;
    CHECK_EQ(bad, 0);
    result_free(&ref);
    /* GATHER: the rows of tokens 1, 4, 6, exact */
    op_case cg = {.label = "gather", .batch = &batch, .in = g};
    cg.op = (hl_op){.kind = HL_OP_GATHER, .layer = -1, .in = HL_BUF_X, .out = HL_BUF_OUT_IN, .n_in = F, .n_out = F};
    cross_check(&s, &cg, NULL, ste, &ref);
    CHECK_EQ(ref.n, 3 * F);
    static const int rows[3] = {1, 4, 6};
    for (int i = 0; ref.out && i < 3; i++) CHECK(memcmp(ref.out + i * F, g + rows[i] * F, (size_t)F * 4) == 0);
    result_free(&ref);
    print_all("glu/act", st);
    print_all("add/gather (exact)", ste);
    free(g), free(up), free(acc), free(bound);
    suite_close(&s);
}

TEST(embed_types) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0xE3BEDull};
    const int64_t V = 50, E = 256;
    static const hl_type types[] = {HL_TYPE_F32, HL_TYPE_F16, HL_TYPE_BF16, HL_TYPE_Q4_0, HL_TYPE_Q8_0,
                                    HL_TYPE_Q4_K, HL_TYPE_Q6_K, HL_TYPE_IQ4_NL, HL_TYPE_IQ4_XS};
    float *tf = rnd_vec(&r, V * E, -1.0f, 1.0f), *row = malloc((size_t)E * sizeof *row);
    hl_batch_token toks[6];
    for (int i = 0; i < 6; i++) toks[i] = (hl_batch_token){(int32_t)(rnd(&r) % V), i, 0, 0};
    toks[5].token = (int32_t)V - 1; /* the last row */
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, 6, &seq, 1};
    stats st[N_BACKENDS] = {{0}};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int sc = 0; sc < 2; sc++) {
            size_t rb = hl_row_size(types[ti], E);
            void *tab = aligned_alloc(64, (rb * V + 63) & ~(size_t)63);
            CHECK_EQ(hl_quantize(types[ti], tf, tab, V * E), rb * V);
            hl_tensor tt = {.data = tab, .type = types[ti], .ne0 = E, .ne1 = V, .row_bytes = rb};
            snprintf(tt.name, sizeof tt.name, "token_embd.weight");
            char label[64];
            snprintf(label, sizeof label, "embed %s%s", hl_type_name(types[ti]), sc ? " scaled" : "");
            op_case c = {.label = label, .batch = &batch};
            c.op = (hl_op){.kind = HL_OP_EMBED, .layer = -1, .out = HL_BUF_X, .w = &tt, .n_out = E};
            c.op.p.embed.scale = sc ? 16.0f : 1.0f;
            op_result ref;
            cross_check(&s, &c, NULL, st, &ref);
            int bad = 0;
            for (int t = 0; ref.out && t < 6; t++) {
                hl_dequantize(types[ti], (const char *)tab + (size_t)toks[t].token * rb, row, E);
                for (int64_t i = 0; i < E; i++) bad += ref.out[t * E + i] != row[i] * c.op.p.embed.scale;
            }
            CHECK_EQ(bad, 0);
            result_free(&ref);
            free(tab);
        }
    print_all("embed (exact)", st);
    free(tf), free(row);
    suite_close(&s);
}

/* ---- what a backend refuses ---- */

TEST(supports_refuses_moe_and_bad_types) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    float dummy[64] = {0};
    hl_tensor router = vec_tensor(dummy, 16, "blk.0.ffn_gate_inp.weight");
    hl_op moe = {.kind = HL_OP_MOE, .layer = 0, .in = HL_BUF_FFN_IN, .out = HL_BUF_FFN_OUT, .n_in = 16, .n_out = 16};
    moe.p.moe.n_expert = 4;
    moe.p.moe.n_expert_used = 2;
    moe.p.moe.router = &router;
    int32_t layer_ops[2] = {0, 1};
    hl_plan plan = {.arch = "test", .n_embd = 16, .n_vocab = 8, .n_layer = 1, .n_ctx_train = 64,
                    .ops = &moe, .n_ops = 1, .layer_ops = layer_ops};
    plan.kv = (hl_kv_params){.n_layer = 1, .n_head_kv = 1, .head_dim_k = 16, .head_dim_v = 16, .n_blocks = 1};
    plan.bufs[HL_BUF_FFN_IN] = (hl_plan_buf){"ffn_in", 16, 0};
    plan.bufs[HL_BUF_FFN_OUT] = (hl_plan_buf){"ffn_out", 16, 0};
    hl_backend *all[1 + N_BACKENDS] = {s.ref};
    for (int i = 0; i < N_BACKENDS; i++) all[1 + i] = s.ut[i].be;
    for (int i = 0; i < 1 + N_BACKENDS; i++) {
        hl_err err = {0};
        /* a MOE op without its expert tensors: refused (cpu, vulkan: not supported; ref: malformed) */
        int rc = all[i]->ops->supports(all[i], &plan, &err);
        CHECK(rc == HL_ENOTSUP || rc == HL_EINVAL);
        if (!strstr(err.msg, "moe")) hl_test_fail(__FILE__, __LINE__, "%s: \"%s\" does not name moe", hl_backend_name(all[i]), err.msg);
    }
    /* the reference names a tensor it cannot multiply, and a KV type it cannot store */
    hl_tensor bad = {.data = dummy, .type = HL_TYPE_I32, .ne0 = 16, .ne1 = 2, .row_bytes = 64};
    snprintf(bad.name, sizeof bad.name, "blk.0.attn_q.weight");
    hl_op mm = {.kind = HL_OP_MATMUL, .layer = 0, .in = HL_BUF_FFN_IN, .out = HL_BUF_FFN_OUT, .w = &bad, .n_in = 16,
                .n_out = 2};
    plan.ops = &mm;
    plan.bufs[HL_BUF_FFN_OUT].width = 2;
    hl_err err = {0};
    CHECK_EQ(s.ref->ops->supports(s.ref, &plan, &err), HL_ENOTSUP);
    CHECK(strstr(err.msg, "blk.0.attn_q.weight") && strstr(err.msg, "I32"));
    hl_kv_params kp = plan.kv;
    kp.type = HL_TYPE_F32;
    hl_kv_cache *kv = NULL;
    CHECK_EQ(s.ref->ops->kv_new(s.ref, &kp, &kv, &err), HL_ENOTSUP);
    CHECK(kv == NULL && strstr(err.msg, "F32"));
    suite_close(&s);
}

/* ---- the reference's run(): a small plan = its ops one by one ---- */

TEST(ref_run_equals_its_ops) {
    rng r = {0x9A11ull};
    const int64_t E = 64, V = 24;
    float *tab = rnd_vec(&r, V * E, -1, 1), *nw = rnd_vec(&r, E, 0.5f, 1.5f), *wo = rnd_vec(&r, V * E, -1, 1);
    float *w1 = rnd_vec(&r, E * E, -0.2f, 0.2f);
    hl_tensor tt = {.data = tab, .type = HL_TYPE_F32, .ne0 = E, .ne1 = V, .row_bytes = E * 4, .name = "token_embd.weight"};
    hl_tensor tn = vec_tensor(nw, E, "output_norm.weight"), to = tt;
    to.data = wo;
    snprintf(to.name, sizeof to.name, "output.weight");
    hl_tensor t1 = {.data = w1, .type = HL_TYPE_F32, .ne0 = E, .ne1 = E, .row_bytes = E * 4, .name = "blk.0.ffn_down.weight"};
    hl_op ops[7] = {
        {.kind = HL_OP_EMBED, .layer = -1, .out = HL_BUF_X, .w = &tt, .n_out = E, .p.embed.scale = 2.0f},
        {.kind = HL_OP_NORM, .layer = 0, .in = HL_BUF_X, .out = HL_BUF_FFN_IN, .w = &tn, .n_in = E, .n_out = E,
         .p.norm = {HL_NORM_RMS, 1e-6f, (int32_t)E}},
        {.kind = HL_OP_MATMUL, .layer = 0, .in = HL_BUF_FFN_IN, .out = HL_BUF_FFN_OUT, .w = &t1, .n_in = E, .n_out = E},
        {.kind = HL_OP_ADD, .layer = 0, .in = HL_BUF_FFN_OUT, .out = HL_BUF_X, .n_in = E, .n_out = E},
        {.kind = HL_OP_GATHER, .layer = -1, .in = HL_BUF_X, .out = HL_BUF_OUT_IN, .n_in = E, .n_out = E},
        {.kind = HL_OP_NORM, .layer = -1, .in = HL_BUF_OUT_IN, .out = HL_BUF_OUT_NORM, .w = &tn, .n_in = E, .n_out = E,
         .p.norm = {HL_NORM_RMS, 1e-6f, (int32_t)E}},
        {.kind = HL_OP_MATMUL, .layer = -1, .in = HL_BUF_OUT_NORM, .out = HL_BUF_LOGITS, .w = &to, .n_in = E, .n_out = V},
    };
    int32_t layer_ops[2] = {1, 4};
    hl_plan plan = {.arch = "test", .n_embd = (int32_t)E, .n_vocab = (int32_t)V, .n_layer = 1, .n_ctx_train = 16,
                    .ops = ops, .n_ops = 7, .layer_ops = layer_ops};
    plan.kv = (hl_kv_params){.n_layer = 1, .n_head_kv = 1, .head_dim_k = 32, .head_dim_v = 32, .n_blocks = 1};
    static const hl_buf_id used[] = {HL_BUF_X, HL_BUF_FFN_IN, HL_BUF_FFN_OUT, HL_BUF_OUT_IN, HL_BUF_OUT_NORM, HL_BUF_LOGITS};
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        plan.bufs[used[i]] = (hl_plan_buf){hl_buf_name(used[i]), used[i] == HL_BUF_LOGITS ? V : E, i >= 3};
    hl_batch_token toks[5] = {{3, 0, 0, 0}, {7, 1, 0, 1}, {0, 2, 0, 0}, {23, 3, 0, 1}, {11, 4, 0, 0}};
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, 5, &seq, 1};
    hl_err err = {0};
    hl_backend *ref = NULL;
    hl_backend_prog *prog = NULL;
    CHECK_EQ(hl_backend_ref_new(&ref, &err), 0);
    CHECK_EQ(ref->ops->supports(ref, &plan, &err), 0);
    if (ref->ops->prepare(ref, &plan, 8, &prog, &err)) {
        hl_test_fail(__FILE__, __LINE__, "prepare: %s", err.msg);
        hl_backend_free(ref);
        return;
    }
    float logits[2 * 24], expect[2 * 24];
    CHECK_EQ(ref->ops->run(ref, prog, NULL, &batch, &(hl_step_io){.logits = logits}, &err), 0);
    hl_backend_mem mem;
    ref->ops->memory(ref, prog, &mem);
    CHECK(mem.weights == 0 && mem.scratch >= 8 * 5 * E * sizeof(float) && !strcmp(mem.where, "host"));
    /* the same ops through run_op on buffers of their own */
    hl_op_io io = {.batch = &batch};
    float *bufs[HL_BUF_COUNT] = {0};
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        io.buf[used[i]] = bufs[used[i]] = calloc((size_t)(5 * V + 5 * E), sizeof(float));
    io.buf[HL_BUF_LOGITS] = expect;
    for (int i = 0; i < 7; i++) CHECK_EQ(ref->ops->run_op(ref, &ops[i], &io, &err), 0);
    CHECK(memcmp(logits, expect, sizeof logits) == 0);
    /* a batch larger than the program is refused, not overrun */
    hl_batch_token many[9] = {{0}};
    hl_batch big = {many, 9, &seq, 1};
    CHECK_EQ(ref->ops->run(ref, prog, NULL, &big, &(hl_step_io){.logits = logits}, &err), HL_ERANGE);
    for (int i = 0; i < HL_BUF_COUNT; i++) free(bufs[i]);
    ref->ops->release(ref, prog);
    hl_backend_free(ref);
    free(tab), free(nw), free(wo), free(w1);
}
