/* Ops against the reference backend, part 3 (see ops_harness.h): ATTN at
 * real head shapes and lengths, and its batch invariance. Head dims 64, 128
 * and 256, GQA ratios 1, 4, 8 and 12 (12: two head slices of a Vulkan tile),
 * f16 and q8_0 KV, causal, a 100-position window, softcap, sinks and
 * bidirectional, over two sequences of 280 and 21 positions (odd lengths;
 * 280 crosses the Vulkan kernels' 256-position split and every key-block
 * size, 16/32/64) in 16-position pool blocks behind scattered tables.
 *
 * 1. Against the reference (whole prompts in one batch) within
 *    test_ops_kv.c's bound, max|v| * (2 ds + (n + 8) u) + 1e-7 per row: ds
 *    = hd u scale sum_i |q_i k_i| over the row's visible keys bounds a float
 *    score's error, which moves a softmax weight by at most w 2 ds; the
 *    float weighted sum of n values adds n u max|v|. The online softmax adds
 *    a few roundings per key block and split (its rescalings), inside the 8 u.
 * 2. Batch invariance, bit for bit, on every backend under test: each
 *    token's output from the whole batch equals the same token's from the
 *    prompts in chunks of 37 tokens, alone (decode, past the split too),
 *    and in a batch of two decode tokens or of one sequence's prompt beside
 *    the other's decode token (the causal cases; bidirectional ranges
 *    depend on the batch by definition). */
#include "ops_harness.h"

#define AL_BS 16
#define AL_BLOCKS 24
enum { AL_LA = 280, AL_LB = 21, AL_N = AL_LA + AL_LB, AL_CHUNK = 37 };

typedef struct long_case {
    const char *label;
    int32_t hd, G, window;
    float softcap;
    int sinks, causal;
} long_case;

typedef struct long_rig {
    const long_case *lc;
    int32_t nh, nkv;
    int32_t tab[2][AL_BLOCKS];
    hl_batch_seq seqs[2];
    hl_batch_token fill_t[AL_N];
    hl_batch fill;
    float *k, *v, *q, *sinks; /* k, v: [fill token][nkv][hd]; q: [seq * AL_LA + pos][nh][hd] */
    hl_tensor sink_t;
    hl_kv_params kp;
    hl_op fill_op, op;
} long_rig;

static void rig_init(long_rig *g, const long_case *lc, int q8, rng *r) {
    memset(g, 0, sizeof *g);
    g->lc = lc;
    g->nkv = lc->G == 1 ? 2 : 1, g->nh = lc->G * g->nkv;
    /* A's 18 blocks at (7 i + 3) mod 24, B's 2 in what is left */
    int used[AL_BLOCKS] = {0}, nb = 0;
    for (int i = 0; i < 18; i++) used[g->tab[0][i] = (7 * i + 3) % AL_BLOCKS] = 1;
    for (int i = AL_BLOCKS - 1; i >= 0 && nb < 2; i--)
        if (!used[i]) g->tab[1][nb++] = i;
    g->seqs[0] = (hl_batch_seq){g->tab[0], 18}, g->seqs[1] = (hl_batch_seq){g->tab[1], 2};
    int32_t n = 0;
    for (int32_t s = 0; s < 2; s++)
        for (int32_t p = 0; p < (s ? AL_LB : AL_LA); p++) g->fill_t[n++] = (hl_batch_token){0, p, s, 0};
    g->fill = (hl_batch){g->fill_t, n, g->seqs, 2};
    const int32_t hd = lc->hd;
    g->k = rnd_vec(r, (int64_t)n * g->nkv * hd, -1.5f, 1.5f);
    g->v = rnd_vec(r, (int64_t)n * g->nkv * hd, -2.0f, 2.0f);
    g->q = rnd_vec(r, (int64_t)2 * AL_LA * g->nh * hd, -2.0f, 2.0f);
    g->sinks = lc->sinks ? rnd_vec(r, g->nh, -2.0f, 3.0f) : NULL;
    if (g->sinks) g->sink_t = vec_tensor(g->sinks, g->nh, "blk.0.attn_sinks.weight");
    g->kp = (hl_kv_params){.n_layer = 1, .n_head_kv = g->nkv, .head_dim_k = hd, .head_dim_v = hd, .n_blocks = AL_BLOCKS,
                           .block_size = AL_BS, .type = q8 ? HL_TYPE_Q8_0 : HL_TYPE_F16};
    g->fill_op = (hl_op){.kind = HL_OP_KV_STORE, .layer = 0, .in = HL_BUF_K, .in2 = HL_BUF_V, .n_in = g->nkv * hd};
    g->fill_op.p.kv.n_head_kv = g->nkv, g->fill_op.p.kv.head_dim_k = hd, g->fill_op.p.kv.head_dim_v = hd;
    g->op = (hl_op){.kind = HL_OP_ATTN, .layer = 0, .in = HL_BUF_Q, .out = HL_BUF_ATTN, .n_in = g->nh * hd, .n_out = g->nh * hd};
    g->op.p.attn.n_head = g->nh, g->op.p.attn.n_head_kv = g->nkv;
    g->op.p.attn.head_dim_k = hd, g->op.p.attn.head_dim_v = hd;
    g->op.p.attn.scale = 1.0f / sqrtf((float)hd);
    g->op.p.attn.softcap = lc->softcap, g->op.p.attn.window = lc->window, g->op.p.attn.causal = lc->causal;
    g->op.p.attn.sinks = g->sinks ? &g->sink_t : NULL;
}

static void rig_free(long_rig *g) { free(g->k), free(g->v), free(g->q), free(g->sinks); }

static const float *q_row(const long_rig *g, const hl_batch_token *t) {
    return g->q + ((int64_t)t->seq * AL_LA + t->pos) * g->nh * g->lc->hd;
}

/* One pool on be, filled once; then each of the n query batches run into
 * out[i] ([token][nh * hd]). */
static int run_batches(hl_backend *be, const long_rig *g, const hl_batch *qb, float **out, int n, hl_err *err) {
    hl_kv_cache *kv = NULL;
    int rc = be->ops->kv_new(be, &g->kp, &kv, err);
    if (rc) return rc;
    hl_op_io fio = {.batch = &g->fill, .kv = kv};
    fio.buf[HL_BUF_K] = g->k, fio.buf[HL_BUF_V] = g->v;
    rc = be->ops->run_op(be, &g->fill_op, &fio, err);
    const int64_t w = (int64_t)g->nh * g->lc->hd;
    for (int i = 0; i < n && !rc; i++) {
        float *q = malloc((size_t)(qb[i].n_tokens * w) * sizeof *q);
        for (int32_t t = 0; t < qb[i].n_tokens; t++) memcpy(q + t * w, q_row(g, &qb[i].tokens[t]), (size_t)w * sizeof *q);
        out[i] = calloc((size_t)(qb[i].n_tokens * w), sizeof *out[i]);
        hl_op_io io = {.batch = &qb[i], .kv = kv};
        io.buf[HL_BUF_Q] = q, io.buf[HL_BUF_ATTN] = out[i];
        rc = be->ops->run_op(be, &g->op, &io, err);
        free(q);
    }
    be->ops->kv_free(be, kv);
    return rc;
}

/* The bound of the header for every element of the whole batch (the fill order). */
static double *whole_bound(const long_rig *g) {
    const int32_t hd = g->lc->hd, G = g->lc->G;
    const double u = 0x1p-24;
    double *b = malloc((size_t)AL_N * g->nh * hd * sizeof *b);
    for (int32_t t = 0; t < AL_N; t++) {
        const hl_batch_token *bt = &g->fill_t[t];
        const int32_t end = g->lc->causal ? bt->pos : (bt->seq ? AL_LB : AL_LA) - 1;
        const int32_t start = g->lc->causal && g->lc->window > 0 && bt->pos >= g->lc->window ? bt->pos - g->lc->window + 1 : 0;
        const int32_t base = bt->seq ? AL_LA : 0; /* the sequence's first fill token */
        for (int32_t h = 0; h < g->nh; h++) {
            const float *q = q_row(g, bt) + (int64_t)h * hd;
            double ds = 0, vmax = 0;
            for (int32_t p = start; p <= end; p++) {
                const float *k = g->k + ((int64_t)(base + p) * g->nkv + h / G) * hd;
                const float *v = g->v + ((int64_t)(base + p) * g->nkv + h / G) * hd;
                double mag = 0;
                for (int32_t i = 0; i < hd; i++) mag += fabs((double)q[i] * k[i]), vmax = fmax(vmax, fabs(v[i]));
                ds = fmax(ds, hd * u * g->op.p.attn.scale * mag);
            }
            for (int32_t i = 0; i < hd; i++)
                b[((int64_t)t * g->nh + h) * hd + i] = vmax * (2 * ds + (end - start + 1 + 8) * u) + 1e-7;
        }
    }
    return b;
}

/* Rows of out (batch qb) that differ in any bit from the whole batch's. */
static int differing_rows(const long_rig *g, const hl_batch *qb, const float *out, const float *whole) {
    const int64_t w = (int64_t)g->nh * g->lc->hd;
    int bad = 0;
    for (int32_t t = 0; t < qb->n_tokens; t++) {
        const hl_batch_token *bt = &qb->tokens[t];
        const int64_t at = (bt->seq ? AL_LA : 0) + bt->pos; /* the token's row in the whole batch */
        bad += memcmp(out + t * w, whole + at * w, (size_t)w * sizeof *out) != 0;
    }
    return bad;
}

TEST(attention_head_dims_gqa_long_invariant) {
    suite s = suite_open();
    if (!s.ok) return suite_close(&s);
    static const long_case cases[] = {
        {"hd64 mha", 64, 1, 0, 0, 0, 1},          {"hd64 gqa4 sinks", 64, 4, 0, 0, 1, 1},
        {"hd64 gqa8 window", 64, 8, 100, 0, 0, 1}, {"hd128 mha bidir", 128, 1, 0, 0, 0, 0},
        {"hd128 gqa4", 128, 4, 0, 0, 0, 1},        {"hd128 gqa8 softcap", 128, 8, 0, 5.0f, 0, 1},
        {"hd256 mha softcap", 256, 1, 0, 5.0f, 0, 1}, {"hd256 gqa4 window sinks", 256, 4, 100, 0, 1, 1},
        {"hd256 gqa8", 256, 8, 0, 0, 0, 1},
        /* 12 heads per KV head: more than a tile's 8 rows at hd 256, so two head slices (8 + 4) */
        {"hd256 gqa12 sinks", 256, 12, 0, 0, 1, 1},
    };
    /* the query batches: whole prompts; chunks; decode tokens alone; two decodes; a prompt beside a decode */
    enum { MAXB = 32 };
    static hl_batch_token whole_t[AL_N], alone_t[16], pair_t[2], mixed_t[AL_LB + 1];
    static const int32_t alone_pos[] = {0, 15, 16, 63, 64, 100, 255, 256, 257, 279};
    stats st[N_BACKENDS] = {{0}};
    int variance[N_BACKENDS] = {0};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int q8 = 0; q8 < 2; q8++) {
            rng r = {0xA11Eull + 17 * ci + (uint64_t)q8};
            long_rig g;
            rig_init(&g, &cases[ci], q8, &r);
            hl_batch qb[MAXB];
            int nb = 0;
            memcpy(whole_t, g.fill_t, sizeof whole_t);
            qb[nb++] = (hl_batch){whole_t, AL_N, g.seqs, 2};
            if (g.lc->causal) {
                for (int32_t t0 = 0; t0 < AL_N; t0 += AL_CHUNK)
                    qb[nb++] = (hl_batch){whole_t + t0, AL_N - t0 < AL_CHUNK ? AL_N - t0 : AL_CHUNK, g.seqs, 2};
                int na = 0;
                for (size_t i = 0; i < sizeof alone_pos / sizeof alone_pos[0]; i++) alone_t[na++] = (hl_batch_token){0, alone_pos[i], 0, 1};
                alone_t[na++] = (hl_batch_token){0, AL_LB - 1, 1, 1};
                for (int i = 0; i < na; i++) qb[nb++] = (hl_batch){&alone_t[i], 1, g.seqs, 2};
                pair_t[0] = (hl_batch_token){0, 270, 0, 1}, pair_t[1] = (hl_batch_token){0, 20, 1, 1};
                qb[nb++] = (hl_batch){pair_t, 2, g.seqs, 2};
                for (int32_t p = 0; p < AL_LB; p++) mixed_t[p] = (hl_batch_token){0, p, 1, 1};
                mixed_t[AL_LB] = (hl_batch_token){0, AL_LA - 1, 0, 1};
                qb[nb++] = (hl_batch){mixed_t, AL_LB + 1, g.seqs, 2};
            }
            char label[80];
            snprintf(label, sizeof label, "attn %s %s", g.lc->label, q8 ? "q8_0" : "f16");
            hl_err err = {0};
            float *ref = NULL;
            if (run_batches(s.ref, &g, qb, &ref, 1, &err)) hl_test_fail(__FILE__, __LINE__, "%s on ref: %s", label, err.msg);
            double *bound = whole_bound(&g);
            for (int bi = 0; bi < N_BACKENDS && ref; bi++) {
                float *out[MAXB] = {NULL};
                int rc = run_batches(s.ut[bi].be, &g, qb, out, nb, &err);
                if (rc) {
                    hl_test_fail(__FILE__, __LINE__, "%s on %s: %s", label, backends[bi].name, err.msg);
                    st[bi].failed = 1;
                } else {
                    compare(&st[bi], label, backends[bi].name, out[0], ref, bound, (int64_t)AL_N * g.nh * g.lc->hd);
                    for (int i = 1; i < nb; i++) {
                        int bad = differing_rows(&g, &qb[i], out[i], out[0]);
                        if (bad)
                            hl_test_fail(__FILE__, __LINE__, "%s on %s: %d of batch %d's %d tokens differ from the whole batch's bits",
                                         label, backends[bi].name, bad, i, qb[i].n_tokens);
                        variance[bi] += bad;
                    }
                }
                for (int i = 0; i < nb; i++) free(out[i]);
            }
            free(ref), free(bound);
            rig_free(&g);
        }
    print_all("attn long (vs ref)", st);
    for (int bi = 0; bi < N_BACKENDS; bi++) printf("    batch invariance on %s: %d rows differ\n", backends[bi].name, variance[bi]);
    suite_close(&s);
}
