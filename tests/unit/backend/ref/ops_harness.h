/* The cross-backend op harness shared by test_ops.c (norm, matmul, rope,
 * the elementwise ops, embed, what backends refuse, the reference's run())
 * and test_ops_kv.c (KV store, attention, KV block operations): the table of
 * backends under test, each compared with the reference backend; random
 * inputs with fixed seeds; running one op (with a pool filled first, for
 * attention) through a backend's run_op; and the element-by-element
 * comparison within a bound, with per-backend statistics (largest |diff|,
 * largest diff / bound) printed so tolerances can be judged from the log.
 *
 * A backend under test may answer HL_ENOTSUP for a variant (its supports()
 * then refuses plans that need it): that is printed and counted, not failed.
 * A device backend keeping its pool off the host will need a read-back for
 * the KV byte comparisons (run_case reads the pool through kv.h). */
#ifndef HL_TEST_OPS_HARNESS_H
#define HL_TEST_OPS_HARNESS_H

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

static inline int open_cpu(under_test *u, hl_err *err) {
    u->pool = hl_pool_new(2);
    if (!u->pool) return hl_err_set(err, HL_ENOMEM, "no thread pool");
    return hl_backend_cpu_new(&u->be, &(hl_cpu_backend_params){.pool = u->pool, .threads = HL_THREADS_PARALLEL}, err);
}

#ifdef HL_OPS_UNDER_TEST_VULKAN
/* tests/unit/backend/vulkan/: the same cases on the Vulkan backend, on the
 * device HYPERLAMA_VULKAN_DEVICE names (default: auto, CPU devices allowed,
 * so lavapipe serves in CI). No device: skipped with the reason, unless
 * HYPERLAMA_TEST_REQUIRE_VULKAN is set (scripts/test.sh sets it), then failed. */
#include "backend/vulkan/vulkan.h"
static inline int open_vulkan(under_test *u, hl_err *err) {
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE");
    hl_vulkan_backend_params p = {.device = dev && *dev ? atoi(dev) : -1, .allow_cpu = 1};
    int rc = hl_backend_vulkan_new(&u->be, &p, err);
    if (!rc) {
        static int said;
        if (!said++) printf("    vulkan device: %s\n", hl_backend_vulkan_device(u->be));
    }
    return rc;
}
static inline int vulkan_required(void) {
    const char *r = getenv("HYPERLAMA_TEST_REQUIRE_VULKAN");
    return r && *r && strcmp(r, "0") != 0;
}
#endif

static const struct {
    const char *name;
    int (*open)(under_test *u, hl_err *err);
} backends[] = {
#ifdef HL_OPS_UNDER_TEST_VULKAN
    {"vulkan", open_vulkan},
#else
    {"cpu", open_cpu},
#endif
};
#define N_BACKENDS ((int)(sizeof backends / sizeof backends[0]))

typedef struct suite {
    hl_backend *ref;
    under_test ut[N_BACKENDS];
    int ok;
} suite;

static inline suite suite_open(void) {
    suite s = {0};
    hl_err err = {0};
    s.ok = hl_backend_ref_new(&s.ref, &err) == 0;
    if (!s.ok) hl_test_fail(__FILE__, __LINE__, "reference backend: %s", err.msg);
    for (int i = 0; s.ok && i < N_BACKENDS; i++) {
        int rc = backends[i].open(&s.ut[i], &err);
#ifdef HL_OPS_UNDER_TEST_VULKAN
        if (rc == HL_ENOTSUP && !vulkan_required()) {
            hl_test_skip(err.msg);
            s.ok = 0;
            continue;
        }
#endif
        if (rc) {
            hl_test_fail(__FILE__, __LINE__, "backend %s: %s", backends[i].name, err.msg);
            s.ok = 0;
        }
    }
    return s;
}

static inline void suite_close(suite *s) {
    hl_backend_free(s->ref);
    for (int i = 0; i < N_BACKENDS; i++) {
        hl_backend_free(s->ut[i].be);
        hl_pool_free(s->ut[i].pool);
    }
}

/* ---- random inputs ---- */

typedef struct rng { uint64_t s; } rng;
static inline uint32_t rnd(rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}
static inline float rndu(rng *r, float lo, float hi) { return lo + (hi - lo) * (float)(rnd(r) & 0xFFFFFF) / 16777216.0f; }
static inline float *rnd_vec(rng *r, int64_t n, float lo, float hi) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = rndu(r, lo, hi);
    return v;
}
static inline void shuffle(rng *r, hl_batch_token *t, int32_t n) {
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)(rnd(r) % (uint32_t)(i + 1));
        hl_batch_token x = t[i];
        t[i] = t[j];
        t[j] = x;
    }
}

static inline hl_tensor vec_tensor(const float *v, int64_t n, const char *name) {
    hl_tensor t = {.data = v, .type = HL_TYPE_F32, .ne0 = n, .ne1 = 1, .row_bytes = (size_t)n * 4};
    snprintf(t.name, sizeof t.name, "%s", name);
    return t;
}

/* ---- running one op on a backend ---- */

static inline int is_out_buf(hl_buf_id b) { return b == HL_BUF_OUT_IN || b == HL_BUF_OUT_NORM || b == HL_BUF_LOGITS; }
static inline int32_t n_wanted(const hl_batch *b) {
    int32_t n = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) n += b->tokens[t].logits != 0;
    return n;
}
static inline int64_t buf_rows(const hl_batch *b, hl_buf_id id) { return is_out_buf(id) ? n_wanted(b) : b->n_tokens; }
static inline int uses_in2(hl_op_kind k) { return k == HL_OP_KV_STORE || k == HL_OP_GLU; }
static inline int64_t in2_width(const hl_op *op) {
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

static inline float *copy_floats(const float *src, int64_t n) {
    float *d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    if (src && n > 0) memcpy(d, src, (size_t)n * sizeof *d);
    return d;
}

/* The pool's bytes, read through the host accessors of kv.h. */
static inline uint8_t *kv_snapshot(hl_kv_cache *kv, size_t *bytes) {
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

static inline int run_case(hl_backend *be, const op_case *c, op_result *r, hl_err *err) {
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

static inline void result_free(op_result *r) {
    free(r->out);
    free(r->kv);
}

/* ---- comparing ---- */

typedef struct stats {
    double max_diff, max_ratio; /* over every element of every case */
    int cases, failed, unsupported;
} stats;

/* |got - want| <= bound[i] for every element (bound NULL: exact). */
static inline void compare(stats *st, const char *label, const char *who, const float *got, const float *want,
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

static inline void stats_print(const char *what, const char *who, const stats *st) {
    printf("    %-30s %-4s %3d cases: max |diff| %.3g, max diff/bound %.3f", what, who, st->cases, st->max_diff,
           st->max_ratio);
    if (st->unsupported) printf(" (%d not supported)", st->unsupported);
    printf("\n");
}

/* Runs c on the reference (its result kept in *ref when given) and on every
 * backend under test, comparing the outputs within bound (and KV bytes
 * exactly). */
static inline void cross_check(suite *s, const op_case *c, const double *bound, stats *st, op_result *ref_out) {
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

static inline void print_all(const char *what, const stats *st) {
    for (int i = 0; i < N_BACKENDS; i++) stats_print(what, backends[i].name, &st[i]);
}

#endif
