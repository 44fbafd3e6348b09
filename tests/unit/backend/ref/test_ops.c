/* The cross-backend op harness: every op kind of the layer plan, in its
 * variants, run through run_op on the reference backend and on every backend
 * under test (the table below), outputs compared element by element within a
 * bound stated per op; and the reference itself checked against independent
 * double-precision computations written here (norm, rope, attention, matmul
 * with float weights), so the oracle is checked too.
 *
 * Also: supports() refusing a MOE op (every backend) and tensor/KV types it
 * cannot handle (the reference); KV block copy and truncation and memory()'s
 * KV count on every backend; the reference's run() of a small plan equal,
 * bit for bit, to its ops run one by one.
 *
 * Inputs are random with fixed seeds; no expected output is hard-coded. Each
 * test prints, per backend, the largest |difference| and the largest
 * difference / bound it saw, so tolerances can be judged from the log.
 *
 * Tolerances (u = 2^-24, the float unit roundoff; "measured" = the CPU
 * backend's largest difference / bound on AVX2, as the test prints it):
 *   EMBED, ADD, GATHER  exact: both dequantize with quant/ and do the same
 *                       single float operation per element.
 *   KV_STORE            exact bytes: f16 rounding is defined (nearest even)
 *                       and Q8_0 rows come from the same activation quantizer.
 *   MATMUL              2e-6 * (sum_k |w_jk x_ik| + |b_j|): the integer sums
 *                       are identical, only the float summation order of the
 *                       block partial sums (and FMA) differ. Worst case for
 *                       k = 512 would be k u = 3e-5; what orders actually
 *                       give is ~1e-7 (measured 1.3e-7 on AVX2), so 2e-6
 *                       keeps ~15x headroom and still catches a lost block.
 *   NORM                1e-6 * (|x^ w| + |w| + |b|): the reference takes the
 *                       statistics in double and rounds once, a float kernel
 *                       rounds the scale and two products (a few u), plus
 *                       cancellation in x - mean when the mean is O(std).
 *                       Measured 0.08.
 *   ROPE                1e-6 * (|x0| + |x1|) on rotated pairs, exact on the
 *                       dims past n_rot: cos/sin are rounded to float from
 *                       double angles, then two products and a sum (or FMA).
 *                       Measured: bit-identical.
 *   ATTN                max|v| * (2 * max_p ds_p + (n + 8) u) + 1e-7, where
 *                       ds_p = hd * u * scale * sum_i |q_i k_pi| bounds a float
 *                       dot's error: the output is a convex combination of
 *                       value rows, a score error ds moves a weight by at
 *                       most w * 2 ds, and the float weighted sum over n
 *                       positions adds n u max|v|. A worst case: measured
 *                       0.009 (4.8e-7 absolute on values up to 2).
 *   GLU, ACT            2e-6 * |y| + 1e-7 * |x| * |up|: exp/tanh (or a
 *                       vector exp polynomial) to a few u relative; y = x *
 *                       sigmoid(.) keeps that relative error. Measured 0.15.
 * A backend under test may answer HL_ENOTSUP for a variant (its supports()
 * then refuses plans that need it): that is printed and counted, not failed.
 * A device backend keeping its pool off the host will need a read-back for
 * the KV_STORE byte comparison (run_case reads the pool through kv.h). */
#include "harness.h"

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "backend/ref/ref.h"
#include "base/err.h"
#include "quant/quant.h"

#include <stdlib.h>

/* ---- backends under test (each compared with the reference) ---- */

typedef struct under_test {
    hl_backend *be;
    hl_pool *pool; /* owned when the backend needs one */
} under_test;

static int open_cpu(under_test *u, hl_err *err) {
    u->pool = hl_pool_new(2);
    if (!u->pool) return hl_err_set(err, HL_ENOMEM, "no thread pool");
    return hl_backend_cpu_new(&u->be, &(hl_cpu_backend_params){.pool = u->pool, .threads = HL_THREADS_PARALLEL}, err);
}

static const struct {
    const char *name;
    int (*open)(under_test *u, hl_err *err);
} backends[] = {
    {"cpu", open_cpu},
    /* {"vulkan", open_vulkan}, */
};
#define N_BACKENDS ((int)(sizeof backends / sizeof backends[0]))

typedef struct suite {
    hl_backend *ref;
    under_test ut[N_BACKENDS];
    int ok;
} suite;

static suite suite_open(void) {
    suite s = {0};
    hl_err err = {0};
    s.ok = hl_backend_ref_new(&s.ref, &err) == 0;
    if (!s.ok) hl_test_fail(__FILE__, __LINE__, "reference backend: %s", err.msg);
    for (int i = 0; s.ok && i < N_BACKENDS; i++) {
        if (backends[i].open(&s.ut[i], &err)) {
            hl_test_fail(__FILE__, __LINE__, "backend %s: %s", backends[i].name, err.msg);
            s.ok = 0;
        }
    }
    return s;
}

static void suite_close(suite *s) {
    hl_backend_free(s->ref);
    for (int i = 0; i < N_BACKENDS; i++) {
        hl_backend_free(s->ut[i].be);
        hl_pool_free(s->ut[i].pool);
    }
}

/* ---- random inputs ---- */

typedef struct rng { uint64_t s; } rng;
static uint32_t rnd(rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}
static float rndu(rng *r, float lo, float hi) { return lo + (hi - lo) * (float)(rnd(r) & 0xFFFFFF) / 16777216.0f; }
static float *rnd_vec(rng *r, int64_t n, float lo, float hi) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = rndu(r, lo, hi);
    return v;
}
static void shuffle(rng *r, hl_batch_token *t, int32_t n) {
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)(rnd(r) % (uint32_t)(i + 1));
        hl_batch_token x = t[i];
        t[i] = t[j];
        t[j] = x;
    }
}

static hl_tensor vec_tensor(const float *v, int64_t n, const char *name) {
    hl_tensor t = {.data = v, .type = HL_TYPE_F32, .ne0 = n, .ne1 = 1, .row_bytes = (size_t)n * 4};
    snprintf(t.name, sizeof t.name, "%s", name);
    return t;
}

/* ---- running one op on a backend ---- */

static int is_out_buf(hl_buf_id b) { return b == HL_BUF_OUT_IN || b == HL_BUF_OUT_NORM || b == HL_BUF_LOGITS; }
static int32_t n_wanted(const hl_batch *b) {
    int32_t n = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) n += b->tokens[t].logits != 0;
    return n;
}
static int64_t buf_rows(const hl_batch *b, hl_buf_id id) { return is_out_buf(id) ? n_wanted(b) : b->n_tokens; }
static int uses_in2(hl_op_kind k) { return k == HL_OP_KV_STORE || k == HL_OP_GLU; }
static int64_t in2_width(const hl_op *op) {
    return op->kind == HL_OP_KV_STORE ? (int64_t)op->p.kv.n_head_kv * op->p.kv.head_dim_v : op->n_in;
}

typedef struct op_case {
    const char *label;
    hl_op op;
    const hl_batch *batch;
    const float *in, *in2, *out0; /* inputs [rows][width]; out0: out's initial contents (NULL: zeros) */
    const hl_kv_params *kvp;      /* the pool the op uses (NULL: none) */
    const hl_op *fill;            /* a KV_STORE run first, on the same pool (NULL: none) */
    const hl_batch *fill_batch;
    const float *fill_k, *fill_v;
} op_case;

typedef struct op_result {
    float *out;        /* the op's output buffer (in place ops: in) */
    int64_t n;         /* floats in out */
    uint8_t *kv;       /* every layer's K then V bytes (KV_STORE cases) */
    size_t kv_bytes;
} op_result;

static float *copy_floats(const float *src, int64_t n) {
    float *d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    if (src && n > 0) memcpy(d, src, (size_t)n * sizeof *d);
    return d;
}

/* The pool's bytes, read through the host accessors of kv.h. */
static uint8_t *kv_snapshot(hl_kv_cache *kv, size_t *bytes) {
    const hl_kv_params *p = hl_kv_get_params(kv);
    size_t slots = (size_t)p->n_blocks * (size_t)p->block_size * (size_t)p->n_head_kv;
    size_t kb = slots * hl_kv_head_bytes_k(kv), vb = slots * hl_kv_head_bytes_v(kv);
    *bytes = (size_t)p->n_layer * (kb + vb);
    uint8_t *s = malloc(*bytes), *o = s;
    for (int32_t l = 0; l < p->n_layer; l++) {
        memcpy(o, hl_kv_layer_k(kv, l), kb);
        o += kb;
        memcpy(o, hl_kv_layer_v(kv, l), vb);
        o += vb;
    }
    return s;
}

static int run_case(hl_backend *be, const op_case *c, op_result *r, hl_err *err) {
    *r = (op_result){0};
    hl_kv_cache *kv = NULL;
    int rc = 0;
    if (c->kvp && (rc = be->ops->kv_new(be, c->kvp, &kv, err))) return rc;
    if (c->fill) {
        hl_op_io fio = {.batch = c->fill_batch, .kv = kv};
        int64_t rows = c->fill_batch->n_tokens;
        float *k = copy_floats(c->fill_k, rows * c->fill->n_in), *v = copy_floats(c->fill_v, rows * in2_width(c->fill));
        fio.buf[c->fill->in] = k;
        fio.buf[c->fill->in2] = v;
        rc = be->ops->run_op(be, c->fill, &fio, err);
        free(k);
        free(v);
        if (rc) hl_err_prefix(err, "filling the pool: ");
    }
    const hl_op *op = &c->op;
    hl_op_io io = {.batch = c->batch, .kv = kv};
    float *bin = NULL, *bin2 = NULL, *bout = NULL;
    if (op->kind != HL_OP_EMBED) io.buf[op->in] = bin = copy_floats(c->in, buf_rows(c->batch, op->in) * op->n_in);
    if (uses_in2(op->kind))
        io.buf[op->in2] = bin2 = copy_floats(c->in2, buf_rows(c->batch, op->in) * in2_width(op));
    int has_out = op->kind != HL_OP_KV_STORE && op->kind != HL_OP_ROPE;
    if (has_out && op->out != op->in)
        io.buf[op->out] = bout = copy_floats(c->out0, buf_rows(c->batch, op->out) * op->n_out);
    if (!rc) rc = be->ops->run_op(be, op, &io, err);
    if (op->kind == HL_OP_ROPE || (has_out && op->out == op->in)) {
        r->out = bin, bin = NULL;
        r->n = buf_rows(c->batch, op->in) * op->n_in;
    } else if (has_out) {
        r->out = bout, bout = NULL;
        r->n = buf_rows(c->batch, op->out) * op->n_out;
    }
    if (kv && op->kind == HL_OP_KV_STORE) r->kv = kv_snapshot(kv, &r->kv_bytes);
    free(bin);
    free(bin2);
    free(bout);
    if (kv) be->ops->kv_free(be, kv);
    return rc;
}

static void result_free(op_result *r) {
    free(r->out);
    free(r->kv);
}

/* ---- comparing ---- */

typedef struct stats {
    double max_diff, max_ratio; /* over every element of every case */
    int cases, failed, unsupported;
} stats;

/* |got - want| <= bound[i] for every element (bound NULL: exact). */
static void compare(stats *st, const char *label, const char *who, const float *got, const float *want,
                    const double *bound, int64_t n) {
    int shown = 0;
    st->cases++;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]), b = bound ? bound[i] : 0.0;
        if (!(d <= b) || got[i] != got[i]) {
            if (shown++ < 3)
                hl_test_fail(__FILE__, __LINE__, "%s on %s: element %lld: %.9g vs reference %.9g (|diff| %.3g > %.3g)",
                             label, who, (long long)i, got[i], want[i], d, b);
            st->failed = 1;
        }
        if (d > st->max_diff) st->max_diff = d;
        if (b > 0 && d / b > st->max_ratio) st->max_ratio = d / b;
    }
}

static void stats_print(const char *what, const char *who, const stats *st) {
    printf("    %-30s %-4s %3d cases: max |diff| %.3g, max diff/bound %.3f", what, who, st->cases, st->max_diff,
           st->max_ratio);
    if (st->unsupported) printf(" (%d not supported)", st->unsupported);
    printf("\n");
}

/* Runs c on the reference (its result kept in *ref when given) and on every
 * backend under test, comparing the outputs within bound (and KV bytes
 * exactly). */
static void cross_check(suite *s, const op_case *c, const double *bound, stats *st, op_result *ref_out) {
    hl_err err = {0};
    op_result ref;
    if (run_case(s->ref, c, &ref, &err)) {
        hl_test_fail(__FILE__, __LINE__, "%s on ref: %s", c->label, err.msg);
        result_free(&ref);
        return;
    }
    for (int i = 0; i < N_BACKENDS; i++) {
        op_result got;
        int rc = run_case(s->ut[i].be, c, &got, &err);
        if (rc == HL_ENOTSUP) { /* a declared limitation: its supports() refuses such plans */
            printf("    %s on %s: not supported (%s)\n", c->label, backends[i].name, err.msg);
            st[i].unsupported++;
        } else if (rc) {
            hl_test_fail(__FILE__, __LINE__, "%s on %s: %s", c->label, backends[i].name, err.msg);
            st[i].failed = 1;
        } else {
            if (ref.out) compare(&st[i], c->label, backends[i].name, got.out, ref.out, bound, ref.n);
            if (ref.kv) {
                CHECK(got.kv && got.kv_bytes == ref.kv_bytes);
                if (got.kv && got.kv_bytes == ref.kv_bytes && memcmp(got.kv, ref.kv, ref.kv_bytes) != 0)
                    hl_test_fail(__FILE__, __LINE__, "%s on %s: pool bytes differ from the reference's", c->label,
                                 backends[i].name);
                if (!ref.out) st[i].cases++;
            }
        }
        result_free(&got);
    }
    if (ref_out) *ref_out = ref;
    else result_free(&ref);
}

static void print_all(const char *what, const stats *st) {
    for (int i = 0; i < N_BACKENDS; i++) stats_print(what, backends[i].name, &st[i]);
}

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
                                   HL_TYPE_Q4_K, HL_TYPE_Q5_K, HL_TYPE_Q6_K};

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
    print_all("matmul (13 types)", st);
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
            snprintf(label, sizeof label, "rope %s n_rot=%d", style ? "neox" : "norm", nr);
            op_case c = {.label = label, .batch = &batch, .in = x};
            c.op = (hl_op){.kind = HL_OP_ROPE, .layer = 0, .in = HL_BUF_Q, .out = HL_BUF_Q, .n_in = W, .n_out = W};
            c.op.p.rope.style = style ? HL_ROPE_NEOX : HL_ROPE_NORM;
            c.op.p.rope.n_rot = nr;
            c.op.p.rope.head_dim = HD;
            c.op.p.rope.n_head = NH;
            c.op.p.rope.inv_freq = inv_freq;
            for (int64_t i = 0; i < T * W; i++) dbl[i] = x[i], bound[i] = ob[i] = 0.0; /* dims past n_rot: untouched */
            for (int32_t t = 0; t < T; t++)
                for (int32_t h = 0; h < NH; h++)
                    for (int32_t i = 0; i < half; i++) {
                        int64_t o = (int64_t)t * W + (int64_t)h * HD;
                        int64_t i0 = o + (style ? i : 2 * i), i1 = o + (style ? i + half : 2 * i + 1);
                        double th = toks[t].pos * inv_freq[i], x0 = x[i0], x1 = x[i1];
                        dbl[i0] = (float)(x0 * cos(th) - x1 * sin(th));
                        dbl[i1] = (float)(x0 * sin(th) + x1 * cos(th));
                        bound[i0] = bound[i1] = 1e-6 * (fabs(x0) + fabs(x1));
                        /* reference: c, s rounded (u each), two products and a sum in float, then dbl's rounding */
                        ob[i0] = ob[i1] = 6 * 0x1p-24 * (fabs(x0) + fabs(x1));
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
} attn_variant;

/* The definition in double from the K/V rows as the pool stores them (f16
 * rounding applied here, independently of any backend): for each query
 * token and head, softmax over the allowed positions of its sequence. */
static void attn_double(const attn_variant *av, const hl_batch *qb, const float *q, const hl_batch *fb,
                        const float *k, const float *v, float scale, float *out) {
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
                else {
                    allowed = 0;
                    for (int32_t w = 0; w < qb->n_tokens; w++)
                        allowed |= qb->tokens[w].seq == bt->seq && qb->tokens[w].pos == ft->pos;
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
        /* a bidirectional batch holding only some positions of a sequence:
         * backend.h says "every position of the sequence present in the
         * batch"; the CPU backend reads positions 0..the last one in the
         * batch instead (earlier cached ones included). Both agree on an
         * encoder's batch (above); this case pins the reference to the
         * header until the contract is settled. */
        {"bidirectional subset", 4, 2, 32, 32, 0, 0, 0, 2, 0, 1},
        {"causal mha dk64 dv32", 2, 2, 64, 32, 1, 0, 0, 2},
        {"window 5 mqa", 4, 1, 64, 64, 1, 5, 0, 2},
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
                attn_double(av, &qb, q, &fb, k, v, scale, dbl);
                for (int64_t i = 0; i < n; i++) ob[i] = 1.2e-7 * fabs(dbl[i]) + 1e-9;
                compare(&oracle, label, "double", ref.out, dbl, ob, n);
            }
            result_free(&ref);
            free(k), free(v), free(q), free(bound), free(ob), free(dbl);
        }
    print_all("attn", st);
    stats_print("attn f16 ref vs double", "ref", &oracle);
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
        for (int act = 0; act < 2; act++) {
            char label[64];
            snprintf(label, sizeof label, "%s %s", kind ? "act" : "glu", act ? "gelu" : "silu");
            op_case c = {.label = label, .batch = &batch, .in = g, .in2 = kind ? NULL : up};
            c.op = (hl_op){.kind = kind ? HL_OP_ACT : HL_OP_GLU, .layer = 0, .in = HL_BUF_GATE,
                           .in2 = kind ? HL_BUF_NONE : HL_BUF_UP, .out = HL_BUF_FFN_ACT, .n_in = F, .n_out = F};
            c.op.p.act.act = act ? HL_ACT_GELU : HL_ACT_SILU;
            for (int64_t i = 0; i < T * F; i++) {
                double x = g[i], m = kind ? 1.0 : up[i];
                double y = act ? 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) : x / (1 + exp(-x));
                bound[i] = 2e-6 * fabs(y * m) + 1e-7 * fabs(x * m);
            }
            cross_check(&s, &c, bound, st, NULL);
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
                                    HL_TYPE_Q4_K, HL_TYPE_Q6_K};
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
        CHECK_EQ(all[i]->ops->supports(all[i], &plan, &err), HL_ENOTSUP);
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
        /* backend.h: kv = the pools it allocated. Checked on the reference;
         * for the others a mismatch is reported, not failed (yet). */
        if (be == s.ref) CHECK_EQ(mem1.kv - mem0.kv, hl_kv_block_bytes(&kp) * KV_BLOCKS);
        else if (mem1.kv - mem0.kv != hl_kv_block_bytes(&kp) * KV_BLOCKS)
            printf("    note: %s's memory() reports %zu KV bytes for a pool of %zu\n", hl_backend_name(be),
                   mem1.kv - mem0.kv, hl_kv_block_bytes(&kp) * KV_BLOCKS);
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
        if (be == s.ref) CHECK_EQ(mem1.kv, mem0.kv);
    }
    free(k), free(v);
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
    CHECK_EQ(ref->ops->run(ref, prog, NULL, &batch, logits, &err), 0);
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
    CHECK_EQ(ref->ops->run(ref, prog, NULL, &big, logits, &err), HL_ERANGE);
    for (int i = 0; i < HL_BUF_COUNT; i++) free(bufs[i]);
    ref->ops->release(ref, prog);
    hl_backend_free(ref);
    free(tab), free(nw), free(wo), free(w1);
}
