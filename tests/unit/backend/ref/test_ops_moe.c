/* Ops against the reference backend, part 3: MOE (routed experts). The CPU
 * backend's batched MOE (tokens grouped per expert, one matmul per expert
 * slice; the Vulkan backend's in tests/unit/backend/vulkan/) against the
 * reference's one-token-at-a-time definition, for F32 and quantized experts
 * (Q8_0, Q4_K, MXFP4), both gatings (softmax then top-k with and
 * without renormalization, top-k then softmax), expert biases, a shared
 * expert with its sigmoid gate, and batches of 1, 5 and 17 tokens where
 * several tokens share experts. Then batch invariance: each token of the
 * 17-token batch run alone gives the same bits. Ties in the router (experts
 * with equal rows, so equal logits on every backend) go to the lower
 * expert. The reference's gating is also checked against a double-precision
 * computation written here.
 *
 * Tolerance: both backends convert activations to the same integer formats,
 * so they differ only in float summation order (matmul block sums, the
 * weighted sum): 2e-5 * the largest |output| of the token's row + 1e-6
 * (the matmul bound of test_ops.c is ~1e-7 relative; the MOE output adds k
 * weighted terms and a GLU between two matmuls). Quantized experts: 5e-4
 * relative, because the GLU output is requantized for the down projection
 * and a float-level difference in it can move one 8-bit activation by a
 * step (measured: 1.3e-4 of the row's largest value, Q8_0). No expected
 * output is hard-coded. */
#include "ops_harness.h"

#define NE 8
#define TOPK 2
#define E 256
#define F 256
#define S 512

/* w's n floats as rows of `row` in type t. MXFP4 has no quantizer (files
 * come converted): its blocks are random bytes, scales 2^-10..2^-7 (the
 * values, at most 6 times the scale, as small as w's; larger ones make a
 * one-step change of a requantized GLU value exceed the bound). */
static void *quant(hl_type t, const float *w, int64_t n, int64_t row, size_t *rb) {
    *rb = hl_row_size(t, row);
    void *q = aligned_alloc(64, ((*rb) * (size_t)(n / row) + 63) & ~(size_t)63);
    if (t == HL_TYPE_MXFP4) {
        rng r = {0x3F4Aull ^ (uint64_t)n};
        uint8_t *bq = q;
        for (size_t i = 0; i < (*rb) * (size_t)(n / row); i++)
            bq[i] = i % 17 == 0 ? (uint8_t)(118 + rnd(&r) % 4) : (uint8_t)rnd(&r);
        return q;
    }
    CHECK_EQ(hl_quantize(t, w, q, n), (*rb) * (size_t)(n / row));
    return q;
}

static hl_tensor mat(const void *d, hl_type t, int64_t ne0, int64_t ne1, int64_t ne2, size_t rb, const char *name) {
    hl_tensor x = {.data = d, .type = t, .ne0 = ne0, .ne1 = ne1, .ne2 = ne2, .row_bytes = rb};
    snprintf(x.name, sizeof x.name, "%s", name);
    return x;
}

/* Row-max bound of the reference output. */
static void bounds(const float *ref, int64_t rows, double rel, double *b) {
    for (int64_t t = 0; t < rows; t++) {
        double mx = 0;
        for (int64_t i = 0; i < E; i++) mx = fabs(ref[t * E + i]) > mx ? fabs(ref[t * E + i]) : mx;
        for (int64_t i = 0; i < E; i++) b[t * E + i] = rel * mx + 1e-6;
    }
}

TEST(moe_cpu_equals_reference) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0x40E0ull};
    const int64_t T = 17;
    float *x = rnd_vec(&r, T * E, -1, 1), *wr = rnd_vec(&r, NE * E, -1, 1);
    float *wg = rnd_vec(&r, NE * F * E, -0.1f, 0.1f), *wu = rnd_vec(&r, NE * F * E, -0.1f, 0.1f);
    float *wd = rnd_vec(&r, NE * E * F, -0.1f, 0.1f);
    float *sg = rnd_vec(&r, S * E, -0.1f, 0.1f), *su = rnd_vec(&r, S * E, -0.1f, 0.1f), *sd = rnd_vec(&r, E * S, -0.1f, 0.1f);
    float *gate = rnd_vec(&r, E, -0.2f, 0.2f), *bg = rnd_vec(&r, NE * F, -0.1f, 0.1f), *bd = rnd_vec(&r, NE * E, -0.1f, 0.1f);
    float *br = rnd_vec(&r, NE, -1, 1);
    hl_tensor tr = mat(wr, HL_TYPE_F32, E, NE, 0, E * 4, "blk.0.ffn_gate_inp.weight");
    hl_tensor tgate = vec_tensor(gate, E, "blk.0.ffn_gate_inp_shexp.weight");
    hl_tensor tbg = vec_tensor(bg, NE * F, "blk.0.ffn_gate_exps.bias"), tbd = vec_tensor(bd, NE * E, "blk.0.ffn_down_exps.bias");
    hl_tensor tbr = vec_tensor(br, NE, "blk.0.ffn_gate_inp.bias");
    hl_batch_token toks[17];
    for (int i = 0; i < 17; i++) toks[i] = (hl_batch_token){i, i, 0, 1};
    hl_batch_seq seq = {NULL, 0};
    static const hl_type types[] = {HL_TYPE_F32, HL_TYPE_Q8_0, HL_TYPE_Q4_K, HL_TYPE_MXFP4};
    stats st[N_BACKENDS] = {{0}};
    double *bound = malloc((size_t)(T * E) * sizeof *bound);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        hl_type ty = types[ti];
        size_t rbg, rbu, rbd, rsg, rsu, rsd;
        void *qg = quant(ty, wg, NE * F * E, E, &rbg), *qu = quant(ty, wu, NE * F * E, E, &rbu);
        void *qd = quant(ty, wd, NE * E * F, F, &rbd);
        void *qsg = quant(ty, sg, S * E, E, &rsg), *qsu = quant(ty, su, S * E, E, &rsu), *qsd = quant(ty, sd, E * S, S, &rsd);
        hl_tensor tg = mat(qg, ty, E, F, NE, rbg, "blk.0.ffn_gate_exps.weight");
        hl_tensor tu = mat(qu, ty, E, F, NE, rbu, "blk.0.ffn_up_exps.weight");
        hl_tensor td = mat(qd, ty, F, E, NE, rbd, "blk.0.ffn_down_exps.weight");
        hl_tensor tsg = mat(qsg, ty, E, S, 0, rsg, "blk.0.ffn_gate_shexp.weight");
        hl_tensor tsu = mat(qsu, ty, E, S, 0, rsu, "blk.0.ffn_up_shexp.weight");
        hl_tensor tsd = mat(qsd, ty, S, E, 0, rsd, "blk.0.ffn_down_shexp.weight");
        struct {
            const char *label;
            hl_moe_gating gating;
            int norm, shared, bias;
            hl_act act;
        } v[] = {
            {"softmax-topk", HL_MOE_SOFTMAX_TOPK, 0, 0, 0, HL_ACT_SILU},
            {"softmax-topk norm", HL_MOE_SOFTMAX_TOPK, 1, 0, 0, HL_ACT_SILU},
            {"topk-softmax biases gelu", HL_MOE_TOPK_SOFTMAX, 0, 0, 1, HL_ACT_GELU},
            {"softmax-topk shared+gate", HL_MOE_SOFTMAX_TOPK, 0, 1, 0, HL_ACT_SILU},
            {"softmax-topk shared ungated", HL_MOE_SOFTMAX_TOPK, 1, 2, 0, HL_ACT_SILU},
            {"topk-softmax biases clamped swiglu", HL_MOE_TOPK_SOFTMAX, 0, 0, 2, HL_ACT_SWIGLU_CLAMP}, /* gpt-oss */
        };
        for (size_t vi = 0; vi < sizeof v / sizeof v[0]; vi++) {
            hl_op op = {.kind = HL_OP_MOE, .layer = 0, .in = HL_BUF_FFN_IN, .out = HL_BUF_FFN_OUT, .n_in = E, .n_out = E};
            op.p.moe.n_expert = NE, op.p.moe.n_expert_used = TOPK, op.p.moe.n_ff_exp = F;
            op.p.moe.router = &tr, op.p.moe.gate_exps = &tg, op.p.moe.up_exps = &tu, op.p.moe.down_exps = &td;
            op.p.moe.gating = v[vi].gating, op.p.moe.norm_topk = v[vi].norm, op.p.moe.act = v[vi].act;
            if (v[vi].bias) op.p.moe.router_b = &tbr, op.p.moe.gate_exps_b = &tbg, op.p.moe.down_exps_b = &tbd;
            if (v[vi].bias == 2) op.p.moe.up_exps_b = &tbg;
            op.p.moe.alpha = 1.702f, op.p.moe.limit = 0.25f; /* a limit the gate and up values cross */
            if (v[vi].shared) {
                op.p.moe.n_ff_shexp = S;
                op.p.moe.gate_shexp = &tsg, op.p.moe.up_shexp = &tsu, op.p.moe.down_shexp = &tsd;
                if (v[vi].shared == 1) op.p.moe.shexp_gate = &tgate;
            }
            static const int32_t ms[] = {1, 5, 17};
            for (int mi = 0; mi < 3; mi++) {
                hl_batch batch = {toks, ms[mi], &seq, 1};
                char label[96];
                snprintf(label, sizeof label, "moe %s %s T=%d", hl_type_name(ty), v[vi].label, ms[mi]);
                op_case c = {.label = label, .batch = &batch, .in = x, .op = op};
                /* the bound comes from the reference's own output */
                hl_err err = {0};
                op_result ref;
                if (run_case(s.ref, &c, &ref, &err)) {
                    hl_test_fail(__FILE__, __LINE__, "%s on ref: %s", label, err.msg);
                    result_free(&ref);
                    continue;
                }
                bounds(ref.out, ms[mi], ty == HL_TYPE_F32 ? 2e-5 : 5e-4, bound);
                result_free(&ref);
                cross_check(&s, &c, bound, st, NULL);
                if (ms[mi] != 17) continue;
                /* batch invariance: each token alone gives the bits it gives in the batch */
                op_result all;
                CHECK_EQ(run_case(s.ut[0].be, &c, &all, &err), 0);
                for (int t = 0; t < 17 && all.out; t++) {
                    hl_batch one = {&toks[t], 1, &seq, 1};
                    op_case c1 = {.label = label, .batch = &one, .in = x + t * E, .op = op};
                    op_result o;
                    CHECK_EQ(run_case(s.ut[0].be, &c1, &o, &err), 0);
                    if (o.out && memcmp(o.out, all.out + t * E, E * sizeof(float)) != 0)
                        hl_test_fail(__FILE__, __LINE__, "%s: token %d alone differs from the batch", label, t);
                    result_free(&o);
                }
                result_free(&all);
            }
        }
        free(qg), free(qu), free(qd), free(qsg), free(qsu), free(qsd);
    }
    print_all("moe", st);
    free(bound);
    free(x), free(wr), free(wg), free(wu), free(wd), free(sg), free(su), free(sd), free(gate), free(bg), free(bd), free(br);
    suite_close(&s);
}

/* Ties: router rows 1, 4 and 6 equal and larger than the others for every
 * token (positive inputs and row), so with k = 2 the top two are a pick
 * among three equal logits, which must be experts 1 and 4 (the lower
 * index first) as in the reference; a backend that took 6 would sum
 * another expert's output, far outside the bound. Both gatings. */
TEST(moe_router_ties_go_to_the_lower_expert) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0x71E5ull};
    const int64_t T = 5;
    float *x = rnd_vec(&r, T * E, 0, 1), *wr = rnd_vec(&r, NE * E, -0.01f, 0.01f);
    float *wg = rnd_vec(&r, NE * F * E, -0.1f, 0.1f), *wu = rnd_vec(&r, NE * F * E, -0.1f, 0.1f);
    float *wd = rnd_vec(&r, NE * E * F, -0.1f, 0.1f);
    for (int64_t i = 0; i < E; i++) wr[1 * E + i] = wr[4 * E + i] = wr[6 * E + i] = 0.05f + 0.001f * (float)(i % 7);
    hl_tensor tr = mat(wr, HL_TYPE_F32, E, NE, 0, E * 4, "blk.0.ffn_gate_inp.weight");
    hl_tensor tg = mat(wg, HL_TYPE_F32, E, F, NE, E * 4, "blk.0.ffn_gate_exps.weight");
    hl_tensor tu = mat(wu, HL_TYPE_F32, E, F, NE, E * 4, "blk.0.ffn_up_exps.weight");
    hl_tensor td = mat(wd, HL_TYPE_F32, F, E, NE, F * 4, "blk.0.ffn_down_exps.weight");
    hl_batch_token toks[5];
    for (int i = 0; i < 5; i++) toks[i] = (hl_batch_token){i, i, 0, 1};
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, (int32_t)T, &seq, 1};
    stats st[N_BACKENDS] = {{0}};
    double *bound = malloc((size_t)(T * E) * sizeof *bound);
    for (int mode = 0; mode < 2; mode++) {
        hl_op op = {.kind = HL_OP_MOE, .layer = 0, .in = HL_BUF_FFN_IN, .out = HL_BUF_FFN_OUT, .n_in = E, .n_out = E};
        op.p.moe.n_expert = NE, op.p.moe.n_expert_used = TOPK, op.p.moe.n_ff_exp = F;
        op.p.moe.router = &tr, op.p.moe.gate_exps = &tg, op.p.moe.up_exps = &tu, op.p.moe.down_exps = &td;
        op.p.moe.gating = mode ? HL_MOE_TOPK_SOFTMAX : HL_MOE_SOFTMAX_TOPK, op.p.moe.act = HL_ACT_SILU;
        op_case c = {.label = mode ? "moe ties topk-softmax" : "moe ties softmax-topk", .batch = &batch, .in = x, .op = op};
        hl_err err = {0};
        op_result ref;
        if (run_case(s.ref, &c, &ref, &err)) {
            hl_test_fail(__FILE__, __LINE__, "%s on ref: %s", c.label, err.msg);
            result_free(&ref);
            continue;
        }
        bounds(ref.out, T, 2e-5, bound);
        result_free(&ref);
        cross_check(&s, &c, bound, st, NULL);
    }
    print_all("moe ties", st);
    free(bound), free(x), free(wr), free(wg), free(wu), free(wd);
    suite_close(&s);
}

/* The reference's routing against a double-precision definition written
 * here: experts whose gate, up and down slices are zero and whose down bias
 * is e + 1 on element 0, so out[t][0] = sum_j w_j * (sel_j + 1) exposes the
 * selection and the weights of each gating. (Top-k then softmax equals
 * softmax, top-k, renormalize.) */
TEST(moe_reference_gating_matches_definition) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0x6A7Eull};
    const int64_t T = 9, E2 = 32, F2 = 32, NE2 = 6;
    float *x = rnd_vec(&r, T * E2, -1, 1), *wr = rnd_vec(&r, NE2 * E2, -1, 1);
    float *zero = calloc((size_t)(NE2 * E2 * F2), sizeof(float)), *bd = calloc((size_t)(NE2 * E2), sizeof(float));
    for (int e = 0; e < NE2; e++) bd[e * E2] = (float)(e + 1);
    hl_tensor tr = mat(wr, HL_TYPE_F32, E2, NE2, 0, E2 * 4, "blk.0.ffn_gate_inp.weight");
    hl_tensor tg = mat(zero, HL_TYPE_F32, E2, F2, NE2, E2 * 4, "blk.0.ffn_gate_exps.weight");
    hl_tensor td = mat(zero, HL_TYPE_F32, F2, E2, NE2, F2 * 4, "blk.0.ffn_down_exps.weight");
    hl_tensor tbd = vec_tensor(bd, NE2 * E2, "blk.0.ffn_down_exps.bias");
    hl_batch_token toks[9];
    for (int i = 0; i < 9; i++) toks[i] = (hl_batch_token){i, i, 0, 1};
    hl_batch_seq seq = {NULL, 0};
    hl_batch batch = {toks, (int32_t)T, &seq, 1};
    for (int mode = 0; mode < 3; mode++) {
        hl_op op = {.kind = HL_OP_MOE, .layer = 0, .in = HL_BUF_FFN_IN, .out = HL_BUF_FFN_OUT, .n_in = E2, .n_out = E2};
        op.p.moe.n_expert = (int32_t)NE2, op.p.moe.n_expert_used = 3, op.p.moe.n_ff_exp = (int32_t)F2;
        op.p.moe.router = &tr, op.p.moe.gate_exps = &tg, op.p.moe.up_exps = &tg, op.p.moe.down_exps = &td;
        op.p.moe.down_exps_b = &tbd;
        op.p.moe.gating = mode == 2 ? HL_MOE_TOPK_SOFTMAX : HL_MOE_SOFTMAX_TOPK;
        op.p.moe.norm_topk = mode == 1;
        op_case c = {.label = "moe gating", .batch = &batch, .in = x, .op = op};
        op_result ref;
        hl_err err = {0};
        CHECK_EQ(run_case(s.ref, &c, &ref, &err), 0);
        for (int64_t t = 0; t < T && ref.out; t++) {
            double lg[6], p[6], z = 0;
            int used[6] = {0};
            for (int e = 0; e < NE2; e++) {
                lg[e] = 0;
                for (int64_t i = 0; i < E2; i++) lg[e] += (double)wr[e * E2 + i] * x[t * E2 + i];
                z += exp(lg[e]);
            }
            for (int e = 0; e < NE2; e++) p[e] = exp(lg[e]) / z;
            double want = 0, zk = 0, pk[3];
            int sel[3];
            for (int j = 0; j < 3; j++) {
                int b = -1;
                for (int e = 0; e < NE2; e++)
                    if (!used[e] && (b < 0 || lg[e] > lg[b])) b = e;
                used[b] = 1, sel[j] = b, pk[j] = p[b], zk += p[b];
            }
            for (int j = 0; j < 3; j++) want += (mode ? pk[j] / zk : pk[j]) * (sel[j] + 1);
            if (fabs(ref.out[t * E2] - want) > 1e-5 * fabs(want))
                hl_test_fail(__FILE__, __LINE__, "mode %d token %lld: %.9g vs %.9g", mode, (long long)t, ref.out[t * E2], want);
        }
        result_free(&ref);
    }
    free(x), free(wr), free(zero), free(bd);
    suite_close(&s);
}
