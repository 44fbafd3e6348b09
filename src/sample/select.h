/* Internal to sample/: the candidate record and the selection routines the
 * sampler chain is built from. None of them sorts the whole vocabulary: top-k
 * uses a bounded heap or quickselect, top-p and typical-p a mass-weighted
 * quickselect, so one token costs O(vocab) expected time. The ordering is
 * total (larger key first, then lower token id), so results never depend on
 * the order candidates happen to sit in memory. */
#ifndef HL_SAMPLE_SELECT_H
#define HL_SAMPLE_SELECT_H

#include <stdint.h>

typedef struct hl_cand {
    float logit; /* after penalties and bias; never changed by later steps */
    float key;   /* what the current step orders by (larger first) */
    float p;     /* probability within the current kept set, when a step needs it */
    int32_t id;
} hl_cand;

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
