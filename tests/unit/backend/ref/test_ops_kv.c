/* Ops against the reference backend, part 2 (see test_ops.c and
 * ops_harness.h): KV_STORE into f16 and q8_0 pools (the bytes compared, and
 * the reference's layout checked from the definitions), ATTN causal, with a
 * window, softcapped, bidirectional and with attention sinks, MHA/GQA/MQA, f16 and q8_0 KV, three
 * sequences with interleaved block tables in one batch and positions over
 * several blocks (the reference checked against an independent double
 * computation), and KV block copy / truncation and memory()'s KV count on
 * every backend.
 *
 * Tolerances (u = 2^-24; "measured" as in test_ops.c):
 *   KV_STORE  exact bytes: f16 rounding is defined (nearest even) and Q8_0
 *             rows come from the same activation quantizer.
 *   ATTN      max|v| * (2 * max_p ds_p + (n + 8) u) + 1e-7, where ds_p = hd *
 *             u * scale * sum_i |q_i k_pi| bounds a float dot's error: the
 *             output is a convex combination of value rows, a score error ds
 *             moves a weight by at most w * 2 ds, and the float weighted sum
 *             over n positions adds n u max|v|. A worst case: measured 0.009
 *             (4.8e-7 absolute on values up to 2; 0.013 at HL_SIMD=scalar). */
#include "ops_harness.h"

/* ---- KV_STORE and ATTN: sequences over several blocks of a shared pool ---- */

#define KV_BS 4
#define KV_BLOCKS 12
/* three sequences of 7, 11 and 5 positions; block tables interleave in the pool */
static const int32_t seq_len[3] = {7, 11, 5};
static const int32_t tab0[] = {5, 2}, tab1[] = {0, 9, 3}, tab2[] = {11, 6};
static const hl_batch_seq kv_seqs[3] = {{tab0, 2}, {tab1, 3}, {tab2, 2}};

/* Every position of the three sequences, shuffled. */
static int32_t all_positions(rng *r, hl_batch_token *t) {
    int32_t n = 0;
    for (int32_t s = 0; s < 3; s++)
        for (int32_t p = 0; p < seq_len[s]; p++) t[n++] = (hl_batch_token){0, p, s, 0};
    shuffle(r, t, n);
    return n;
}

static hl_op kv_store_op(int32_t layer, int32_t nkv, int32_t hdk, int32_t hdv) {
    hl_op op = {.kind = HL_OP_KV_STORE, .layer = layer, .in = HL_BUF_K, .in2 = HL_BUF_V, .n_in = nkv * hdk};
    op.p.kv.n_head_kv = nkv;
    op.p.kv.head_dim_k = hdk;
    op.p.kv.head_dim_v = hdv;
    return op;
}

TEST(kv_store_f16_q8_0_bytes) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0x5EEDull};
    const int32_t NKV = 2, HDK = 64, HDV = 32;
    hl_batch_token toks[32];
    int32_t T = all_positions(&r, toks);
    hl_batch batch = {toks, T, kv_seqs, 3};
    float *k = rnd_vec(&r, (int64_t)T * NKV * HDK, -3.0f, 3.0f), *v = rnd_vec(&r, (int64_t)T * NKV * HDV, -3.0f, 3.0f);
    stats st[N_BACKENDS] = {{0}};
    for (int q8 = 0; q8 < 2; q8++) {
        hl_kv_params kp = {.n_layer = 3, .n_head_kv = NKV, .head_dim_k = HDK, .head_dim_v = HDV,
                           .n_blocks = KV_BLOCKS, .block_size = KV_BS, .type = q8 ? HL_TYPE_Q8_0 : HL_TYPE_F16};
        op_case c = {.label = q8 ? "kv_store q8_0" : "kv_store f16", .batch = &batch, .in = k, .in2 = v, .kvp = &kp,
                     .op = kv_store_op(1, NKV, HDK, HDV)};
        cross_check(&s, &c, NULL, st, NULL);
        /* the reference's own layout, checked from the definitions: the
         * slot of (seq, pos), head rows hl_kv_head_bytes apart, f16 = nearest
         * even, q8_0 = within half a step of the block's scale */
        hl_err err = {0};
        hl_kv_cache *kv = NULL;
        if (s.ref->ops->kv_new(s.ref, &kp, &kv, &err)) {
            hl_test_fail(__FILE__, __LINE__, "%s", err.msg);
            continue;
        }
        hl_op_io io = {.batch = &batch, .kv = kv};
        io.buf[HL_BUF_K] = k, io.buf[HL_BUF_V] = v;
        CHECK_EQ(s.ref->ops->run_op(s.ref, &c.op, &io, &err), 0);
        int bad = 0;
        for (int32_t t = 0; t < T; t++) {
            const hl_batch_seq *sq = &kv_seqs[toks[t].seq];
            int32_t blk = sq->blocks[toks[t].pos / KV_BS], slot = toks[t].pos % KV_BS;
            for (int kind = 0; kind < 2; kind++)
                for (int32_t h = 0; h < NKV; h++) {
                    int32_t hd = kind ? HDV : HDK;
                    const float *src = (kind ? v : k) + ((int64_t)t * NKV + h) * hd;
                    const uint8_t *row = (const uint8_t *)(kind ? hl_kv_v_slot(kv, 1, blk, slot)
                                                                : hl_kv_k_slot(kv, 1, blk, slot)) +
                                         (size_t)h * (kind ? hl_kv_head_bytes_v(kv) : hl_kv_head_bytes_k(kv));
                    float got[64];
                    hl_dequantize(kp.type, row, got, hd);
                    for (int32_t i = 0; i < hd; i++) {
                        if (!q8) {
                            bad += got[i] != hl_f16_to_f32(hl_f32_to_f16(src[i]));
                            continue;
                        }
                        float amax = 0;
                        for (int32_t j = i / 32 * 32; j < i / 32 * 32 + 32; j++) amax = fmaxf(amax, fabsf(src[j]));
                        double d = amax / 127.0; /* |x - q d16| <= d/2 + 127 |d - d16|, |d - d16| <= d 2^-11 */
                        bad += fabs(got[i] - src[i]) > d * (0.5 + 127.0 / 2048) + 1e-7;
                    }
                }
        }
        CHECK_EQ(bad, 0);
        /* the other layers were not written */
        size_t lb = (size_t)KV_BLOCKS * KV_BS * NKV * hl_kv_head_bytes_k(kv), nz = 0;
        for (size_t i = 0; i < lb; i++) nz += hl_kv_layer_k(kv, 0)[i] != 0 || hl_kv_layer_k(kv, 2)[i] != 0;
        CHECK_EQ(nz, 0);
        s.ref->ops->kv_free(s.ref, kv);
    }
    print_all("kv_store (exact bytes)", st);
    free(k), free(v);
    suite_close(&s);
}

typedef struct attn_variant {
    const char *label;
    int32_t nh, nkv, hdk, hdv;
    int causal;
    int32_t window;
    float softcap, qscale; /* q range, to make scores large where softcap matters */
    int queries;           /* 0: a decode-like mix of positions; 1: whole sequences 0 and 2 (an encoder's batch) */
    int ref_only;          /* checked against the double definition only (see the test) */
    int sinks;             /* 1: a sink logit per query head (gpt-oss), spread over [-2, 3] */
} attn_variant;

/* The definition in double from the K/V rows as the pool stores them (f16
 * rounding applied here, independently of any backend): for each query
 * token and head, softmax over the allowed positions of its sequence. */
static void attn_double(const attn_variant *av, const hl_batch *qb, const float *q, const hl_batch *fb,
                        const float *k, const float *v, float scale, const float *sinks, float *out) {
    const int32_t gqa = av->nh / av->nkv;
    for (int32_t t = 0; t < qb->n_tokens; t++) {
        const hl_batch_token *bt = &qb->tokens[t];
        for (int32_t h = 0; h < av->nh; h++) {
            double s[32], mx = -INFINITY, sum = 0, acc[64] = {0};
            int32_t idx[32], n = 0;
            for (int32_t u = 0; u < fb->n_tokens; u++) { /* fill tokens = every stored position */
                const hl_batch_token *ft = &fb->tokens[u];
                if (ft->seq != bt->seq) continue;
                int allowed;
                if (av->causal)
                    allowed = ft->pos <= bt->pos && (av->window <= 0 || ft->pos > bt->pos - av->window);
                else { /* positions 0 .. the sequence's last one in the batch */
                    int32_t end = bt->pos;
                    for (int32_t w = 0; w < qb->n_tokens; w++)
                        if (qb->tokens[w].seq == bt->seq && qb->tokens[w].pos > end) end = qb->tokens[w].pos;
                    allowed = ft->pos <= end;
                }
                if (!allowed) continue;
                const float *kr = k + ((int64_t)u * av->nkv + h / gqa) * av->hdk;
                double d = 0;
                for (int32_t i = 0; i < av->hdk; i++)
                    d += (double)q[((int64_t)t * av->nh + h) * av->hdk + i] * hl_f16_to_f32(hl_f32_to_f16(kr[i]));
                d *= scale;
                if (av->softcap > 0) d = av->softcap * tanh(d / av->softcap);
                s[n] = d, idx[n] = u, n++;
                mx = d > mx ? d : mx;
            }
            if (sinks) sum += exp((double)sinks[h] - mx); /* a logit without a value */
            for (int32_t p = 0; p < n; p++) {
                double e = exp(s[p] - mx);
                sum += e;
                const float *vr = v + ((int64_t)idx[p] * av->nkv + h / gqa) * av->hdv;
                for (int32_t i = 0; i < av->hdv; i++) acc[i] += e * hl_f16_to_f32(hl_f32_to_f16(vr[i]));
            }
            for (int32_t i = 0; i < av->hdv; i++) out[((int64_t)t * av->nh + h) * av->hdv + i] = (float)(acc[i] / sum);
        }
    }
}

/* The float-kernel bound of the header, per query token and head. */
static void attn_bound(const attn_variant *av, const hl_batch *qb, const float *q, const hl_batch *fb,
                       const float *k, const float *v, float scale, double *bound) {
    const int32_t gqa = av->nh / av->nkv;
    const double u = 0x1p-24;
    for (int32_t t = 0; t < qb->n_tokens; t++)
        for (int32_t h = 0; h < av->nh; h++) {
            double ds = 0, vmax = 0;
            int32_t n = 0;
            for (int32_t f = 0; f < fb->n_tokens; f++) {
                if (fb->tokens[f].seq != qb->tokens[t].seq) continue;
                n++;
                double mag = 0;
                for (int32_t i = 0; i < av->hdk; i++)
                    mag += fabs(q[((int64_t)t * av->nh + h) * av->hdk + i] * k[((int64_t)f * av->nkv + h / gqa) * av->hdk + i]);
                ds = fmax(ds, av->hdk * u * scale * mag);
                for (int32_t i = 0; i < av->hdv; i++) vmax = fmax(vmax, fabs(v[((int64_t)f * av->nkv + h / gqa) * av->hdv + i]));
            }
            for (int32_t i = 0; i < av->hdv; i++)
                bound[((int64_t)t * av->nh + h) * av->hdv + i] = vmax * (2 * ds + (n + 8) * u) + 1e-7;
        }
}

TEST(attention_masks_gqa_kv_types) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    static const attn_variant vars[] = {
        {"causal gqa", 4, 2, 32, 32, 1, 0, 0, 2},
        {"window 3 gqa", 4, 2, 32, 32, 1, 3, 0, 2},
        {"softcap gqa", 4, 2, 32, 32, 1, 0, 4.0f, 8},
        {"bidirectional gqa", 4, 2, 32, 32, 0, 0, 0, 2, 1, 0},
        {"causal whole seqs", 4, 2, 32, 32, 1, 0, 0, 2, 1, 0},
        /* a bidirectional batch holding only some positions of a sequence
         * (an encoder's input in chunks): positions 0 .. the sequence's last
         * one in the batch, earlier cached ones included (backend.h) */
        {"bidirectional subset", 4, 2, 32, 32, 0, 0, 0, 2, 0, 0},
        {"causal mha dk64 dv32", 2, 2, 64, 32, 1, 0, 0, 2},
        {"window 5 mqa", 4, 1, 64, 64, 1, 5, 0, 2},
        /* gpt-oss: sinks in causal and sliding-window layers, also with
         * large scores (a sink far below and far above the row's max) */
        {"sinks gqa", 4, 2, 32, 32, 1, 0, 0, 2, 0, 0, 1},
        {"sinks window 3 gqa", 4, 2, 32, 32, 1, 3, 0, 2, 0, 0, 1},
        {"sinks whole seqs mha", 4, 4, 64, 64, 1, 0, 0, 8, 1, 0, 1},
    };
    stats st[N_BACKENDS] = {{0}}, oracle = {0};
    for (size_t vi = 0; vi < sizeof vars / sizeof vars[0]; vi++)
        for (int q8 = 0; q8 < 2; q8++) {
            const attn_variant *av = &vars[vi];
            rng r = {0xA77Eull + vi};
            hl_batch_token ft[32], qt[16];
            int32_t nf = all_positions(&r, ft);
            hl_batch fb = {ft, nf, kv_seqs, 3};
            float *k = rnd_vec(&r, (int64_t)nf * av->nkv * av->hdk, -1.5f, 1.5f);
            float *v = rnd_vec(&r, (int64_t)nf * av->nkv * av->hdv, -2.0f, 2.0f);
            /* queries: a decode-like mix (later positions of seqs 0 and 1) and a
             * whole prompt (seq 2), shuffled */
            int32_t nq = 0;
            static const int32_t q0[] = {5, 6}, q1[] = {3, 9, 10};
            if (av->queries == 1) {
                for (int i = 0; i < seq_len[0]; i++) qt[nq++] = (hl_batch_token){0, i, 0, 1};
                for (int i = 0; i < seq_len[2]; i++) qt[nq++] = (hl_batch_token){0, i, 2, 0};
            } else {
                for (int i = 0; i < 2; i++) qt[nq++] = (hl_batch_token){0, q0[i], 0, 1};
                for (int i = 0; i < 3; i++) qt[nq++] = (hl_batch_token){0, q1[i], 1, 1};
                for (int i = 0; i < 5; i++) qt[nq++] = (hl_batch_token){0, i, 2, 0};
            }
            shuffle(&r, qt, nq);
            hl_batch qb = {qt, nq, kv_seqs, 3};
            float *q = rnd_vec(&r, (int64_t)nq * av->nh * av->hdk, -av->qscale, av->qscale);
            float scale = 1.0f / sqrtf((float)av->hdk);
            float *sinks = av->sinks ? rnd_vec(&r, av->nh, -2.0f, 3.0f) : NULL;
            hl_tensor sink_t = sinks ? vec_tensor(sinks, av->nh, "blk.1.attn_sinks.weight") : (hl_tensor){0};
            hl_kv_params kp = {.n_layer = 2, .n_head_kv = av->nkv, .head_dim_k = av->hdk, .head_dim_v = av->hdv,
                               .n_blocks = KV_BLOCKS, .block_size = KV_BS, .type = q8 ? HL_TYPE_Q8_0 : HL_TYPE_F16};
            hl_op fill = kv_store_op(1, av->nkv, av->hdk, av->hdv);
            char label[64];
            snprintf(label, sizeof label, "attn %s %s", av->label, q8 ? "q8_0" : "f16");
            op_case c = {.label = label, .batch = &qb, .in = q, .kvp = &kp, .fill = &fill, .fill_batch = &fb,
                         .fill_k = k, .fill_v = v};
            c.op = (hl_op){.kind = HL_OP_ATTN, .layer = 1, .in = HL_BUF_Q, .out = HL_BUF_ATTN,
                           .n_in = av->nh * av->hdk, .n_out = av->nh * av->hdv};
            c.op.p.attn.n_head = av->nh;
            c.op.p.attn.n_head_kv = av->nkv;
            c.op.p.attn.head_dim_k = av->hdk;
            c.op.p.attn.head_dim_v = av->hdv;
            c.op.p.attn.scale = scale;
            c.op.p.attn.softcap = av->softcap;
            c.op.p.attn.window = av->window;
            c.op.p.attn.causal = av->causal;
            c.op.p.attn.sinks = sinks ? &sink_t : NULL;
            int64_t n = (int64_t)nq * av->nh * av->hdv;
            double *bound = malloc((size_t)n * sizeof *bound), *ob = malloc((size_t)n * sizeof *ob);
            float *dbl = malloc((size_t)n * sizeof *dbl);
            attn_bound(av, &qb, q, &fb, k, v, scale, bound);
            op_result ref = {0};
            hl_err err = {0};
            if (av->ref_only) {
                if (run_case(s.ref, &c, &ref, &err)) hl_test_fail(__FILE__, __LINE__, "%s on ref: %s", label, err.msg);
            } else
                cross_check(&s, &c, bound, st, &ref);
            if (!q8 && ref.out) { /* the oracle: one rounding of a double computation */
                attn_double(av, &qb, q, &fb, k, v, scale, sinks, dbl);
                for (int64_t i = 0; i < n; i++) ob[i] = 1.2e-7 * fabs(dbl[i]) + 1e-9;
                compare(&oracle, label, "double", ref.out, dbl, ob, n);
            }
            result_free(&ref);
            free(k), free(v), free(q), free(bound), free(ob), free(dbl), free(sinks);
        }
    print_all("attn", st);
    stats_print("attn f16 ref vs double", "ref", &oracle);
    suite_close(&s);
}

/* ---- KV block operations and memory, on every backend ---- */

TEST(kv_copy_block_truncate) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    rng r = {0xB10Cull};
    const int32_t NKV = 2, HD = 32;
    hl_batch_token toks[32];
    int32_t T = all_positions(&r, toks);
    hl_batch batch = {toks, T, kv_seqs, 3};
    float *k = rnd_vec(&r, (int64_t)T * NKV * HD, -1, 1), *v = rnd_vec(&r, (int64_t)T * NKV * HD, -1, 1);
    hl_op st = kv_store_op(0, NKV, HD, HD);
    hl_kv_params kp = {.n_layer = 2, .n_head_kv = NKV, .head_dim_k = HD, .head_dim_v = HD, .n_blocks = KV_BLOCKS,
                       .block_size = KV_BS, .type = HL_TYPE_Q8_0};
    hl_backend *all[1 + N_BACKENDS] = {s.ref};
    for (int i = 0; i < N_BACKENDS; i++) all[1 + i] = s.ut[i].be;
    for (int i = 0; i < 1 + N_BACKENDS; i++) {
        hl_backend *be = all[i];
        hl_err err = {0};
        hl_kv_cache *kv = NULL;
        hl_backend_mem mem0, mem1;
        be->ops->memory(be, NULL, &mem0);
        if (be->ops->kv_new(be, &kp, &kv, &err)) {
            hl_test_fail(__FILE__, __LINE__, "%s: %s", hl_backend_name(be), err.msg);
            continue;
        }
        be->ops->memory(be, NULL, &mem1);
        /* backend.h: kv = the pools it allocated: the pool's bytes, plus at
         * most 256 bytes of alignment per layer's K and V region where a
         * device lays the pool out in one buffer (hl_kv_new_in) */
        size_t exact = hl_kv_block_bytes(&kp) * KV_BLOCKS, got = mem1.kv - mem0.kv;
        CHECK(got >= exact && got <= exact + 2 * 256 * (size_t)kp.n_layer);
        hl_op_io io = {.batch = &batch, .kv = kv};
        io.buf[HL_BUF_K] = k, io.buf[HL_BUF_V] = v;
        CHECK_EQ(be->ops->run_op(be, &st, &io, &err), 0);
        /* block 9 (sequence 1's positions 4..7) copied into free block 4 */
        size_t sb = (size_t)NKV * hl_kv_head_bytes_k(kv);
        be->ops->kv_copy_block(be, kv, 4, 9);
        for (int32_t sl = 0; sl < KV_BS; sl++) {
            CHECK(memcmp(hl_kv_k_slot(kv, 0, 4, sl), hl_kv_k_slot(kv, 0, 9, sl), sb) == 0);
            CHECK(memcmp(hl_kv_v_slot(kv, 0, 4, sl), hl_kv_v_slot(kv, 0, 9, sl), sb) == 0);
        }
        /* sequence 1 keeps 6 of its 11 positions: slots 2, 3 of block 9 and all of block 3 are cleared */
        be->ops->kv_truncate(be, kv, tab1, 3, 6);
        static const uint8_t zero[256];
        CHECK(memcmp(hl_kv_k_slot(kv, 0, 9, 1), zero, sb) != 0);
        CHECK(memcmp(hl_kv_k_slot(kv, 0, 9, 2), zero, sb) == 0);
        CHECK(memcmp(hl_kv_v_slot(kv, 0, 9, 3), zero, sb) == 0);
        CHECK(memcmp(hl_kv_k_slot(kv, 0, 3, 0), zero, sb) == 0);
        CHECK(memcmp(hl_kv_k_slot(kv, 0, 0, 0), zero, sb) != 0); /* position 0 stays */
        CHECK(memcmp(hl_kv_k_slot(kv, 0, 4, 2), zero, sb) != 0); /* the copy is another block */
        be->ops->kv_free(be, kv);
        be->ops->memory(be, NULL, &mem1);
        CHECK_EQ(mem1.kv, mem0.kv);
    }
    free(k), free(v);
    suite_close(&s);
}
