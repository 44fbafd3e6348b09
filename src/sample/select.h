/* Internal to sample/: the candidate record and the selection routines the
 * sampler chain is built from. None of them sorts the whole vocabulary: top-k
 * uses a bounded heap or quickselect, top-p and typical-p a mass-weighted
 * quickselect, so one token costs O(vocab) expected time. The ordering is
 * total (larger key first, then lower token id), so results never depend on
 * the order candidates happen to sit in memory. */
#ifndef HL_SAMPLE_SELECT_H
#define HL_SAMPLE_SELECT_H

#include <stdint.h>
#include <string.h>

typedef struct hl_cand {
    float logit; /* after penalties and bias; never changed by later steps */
    float key;   /* what the current step orders by (larger first) */
    float p;     /* probability within the current kept set, when a step needs it */
    int32_t id;
} hl_cand;

/* e^x for x <= ~88 to ~2e-7 relative error: Cody-Waite reduction
 * x = r ln2 + f, |f| <= ln2/2, then a degree-7 Taylor polynomial for e^f and r
 * added to the exponent bits. Inputs below -87 (including -inf and NaN) give
 * ~1e-38 rather than 0: negligible next to the maximum's 1. Written with GCC
 * vector extensions, 4 lanes (one SSE / NEON register, no ABI questions),
 * branch-free, so it compiles to SIMD at -O2 on any target. */
typedef float hl_v4f __attribute__((vector_size(16)));
typedef int32_t hl_v4i __attribute__((vector_size(16)));
typedef uint32_t hl_v4u __attribute__((vector_size(16)));

static inline hl_v4f hl_sample_expf4(hl_v4f x) {
    const hl_v4f lo = {-87.0f, -87.0f, -87.0f, -87.0f}, hi = {88.0f, 88.0f, 88.0f, 88.0f};
    hl_v4i keep = x > lo; /* false for NaN too */
    x = (hl_v4f)((keep & (hl_v4i)x) | (~keep & (hl_v4i)lo));
    keep = x < hi;
    x = (hl_v4f)((keep & (hl_v4i)x) | (~keep & (hl_v4i)hi));
    const hl_v4f r = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    const hl_v4f f = (x - r * 0.693145751953125f) - r * 1.428606765330187e-06f;
    hl_v4f p = f * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    /* unsigned: the exponent add wraps by design, and r may be negative */
    return (hl_v4f)((hl_v4u)p + ((hl_v4u)__builtin_convertvector(r, hl_v4i) << 23));
}

static inline float hl_sample_expf(float x) {
    hl_v4f v = {x};
    return hl_sample_expf4(v)[0];
}

/* sum of e^((w[i] - mx) * inv_t) over w[0..n): the portable version (in
 * sampler.c) and the AVX2+FMA one (exp_avx2.c; call only when the CPU has
 * both, see hl_sample_have_avx2). */
typedef double (*hl_sample_sum_exp_fn)(const float *w, int32_t n, float mx, float inv_t);
double hl_sample_sum_exp(const float *w, int32_t n, float mx, float inv_t);
double hl_sample_sum_exp_avx2(const float *w, int32_t n, float mx, float inv_t);
int hl_sample_have_avx2(void);

/* Nonzero when a comes before b: larger key, then lower id. */
static inline int hl_cand_before(const hl_cand *a, const hl_cand *b) {
    return a->key > b->key || (a->key == b->key && a->id < b->id);
}

/* Rearranges c[0..n) so c[0..k) hold the k first candidates (unsorted). */
void hl_sample_select_top(hl_cand *c, int32_t n, int32_t k);

/* Sorts c[0..n) by hl_cand_before. */
void hl_sample_sort(hl_cand *c, int32_t n);

/* With c[i].p summing to ~1 over c[0..n): rearranges c so that c[0..r) is the
 * shortest prefix, in hl_cand_before order, whose mass reaches target
 * (cum >= target, or cum > target when strict), and returns r (n when the
 * whole set never reaches it). c[0..r) is left unsorted. */
int32_t hl_sample_select_mass(hl_cand *c, int32_t n, double target, int strict);

/* Fills out[0..k) with the k first entries of logits[0..n) (keys = logits;
 * -inf and NaN skipped), sorted; returns how many were found (<= k). */
int32_t hl_sample_heap_top(const float *logits, int32_t n, int32_t k, hl_cand *out);

#endif
