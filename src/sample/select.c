/* Selection without full sorts for the sampler chain (see select.h): quickselect
 * for top-k, a mass-weighted quickselect for nucleus / typical truncation, and a
 * bounded min-heap that finds the top k of a raw logit row in one pass. */
#include "sample/select.h"

#include <math.h>

static inline void cand_swap(hl_cand *a, hl_cand *b) {
    hl_cand t = *a;
    *a = *b;
    *b = t;
}

static void heap_down(hl_cand *h, int32_t n, int32_t i);

/* Heapsort rather than qsort: in place and allocation-free (glibc's qsort
 * may malloc a merge buffer), O(n log n) worst case, and the orders are total
 * so stability does not matter. */
void hl_sample_sort(hl_cand *c, int32_t n) {
    for (int32_t i = n / 2 - 1; i >= 0; i--) heap_down(c, n, i);
    for (int32_t end = n - 1; end > 0; end--) {
        cand_swap(&c[0], &c[end]); /* the root comes last among c[0..end] */
        heap_down(c, end, 0);
    }
}

/* Partitions c[lo..hi) around a median-of-three pivot; returns the pivot's
 * final index p: c[lo..p) come before it, c(p..hi) after. Keys are distinct
 * under the total order (ids are unique), so there are no equal elements to
 * degrade the split. */
static int32_t partition(hl_cand *c, int32_t lo, int32_t hi) {
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    /* order lo, mid, last so the median lands in mid */
    if (hl_cand_before(&c[mid], &c[lo])) cand_swap(&c[mid], &c[lo]);
    if (hl_cand_before(&c[last], &c[lo])) cand_swap(&c[last], &c[lo]);
    if (hl_cand_before(&c[last], &c[mid])) cand_swap(&c[last], &c[mid]);
    cand_swap(&c[mid], &c[last]);
    const hl_cand pv = c[last];
    int32_t store = lo;
    for (int32_t i = lo; i < last; i++) {
        if (hl_cand_before(&c[i], &pv)) {
            if (i != store) cand_swap(&c[i], &c[store]);
            store++;
        }
    }
    cand_swap(&c[store], &c[last]);
    return store;
}

/* Quickselect degrades to O(n^2) on adversarial inputs; past this many rounds
 * we finish with a sort, which bounds the worst case at O(n log n). */
#define SELECT_MAX_ROUNDS 64

void hl_sample_select_top(hl_cand *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n;
    for (int rounds = 0; k > lo && k < hi && hi - lo > 1; rounds++) {
        if (rounds == SELECT_MAX_ROUNDS) {
            hl_sample_sort(c + lo, hi - lo);
            return;
        }
        int32_t p = partition(c, lo, hi);
        if (p == k) return;
        if (p < k) lo = p + 1;
        else hi = p;
    }
}

/* The mass quickselect on c[lo..hi), given acc = mass of c[0..lo), all of
 * which come first. Returns the kept count, or hi when the range runs out
 * before the target (all of it is kept). */
static int32_t mass_qselect(hl_cand *c, int32_t lo, int32_t hi, double acc, double target, int strict) {
    const int32_t end = hi;
    for (int rounds = 0; hi - lo > 1; rounds++) {
        if (rounds == SELECT_MAX_ROUNDS) {
            hl_sample_sort(c + lo, hi - lo);
            for (int32_t i = lo; i < hi; i++) {
                acc += c[i].p;
                if (strict ? acc > target : acc >= target) return i + 1;
            }
            return end;
        }
        int32_t p = partition(c, lo, hi);
        double m = 0.0;
        for (int32_t i = lo; i < p; i++) m += c[i].p;
        if (strict ? acc + m > target : acc + m >= target) {
            hi = p;
        } else if (strict ? acc + m + c[p].p > target : acc + m + c[p].p >= target) {
            return p + 1;
        } else {
            acc += m + c[p].p;
            lo = p + 1;
        }
    }
    if (hi <= lo) return lo > 0 ? lo : (end > 0 ? 1 : 0); /* only when target <= acc at the start */
    /* one candidate left: it is the crossing if its mass gets there */
    acc += c[lo].p;
    if (strict ? acc > target : acc >= target) return lo + 1;
    return end;
}

/* Above this size a histogram of the mass over key bins first narrows the
 * search to the one bin where the running mass crosses the target: two cheap
 * streaming passes instead of quickselect rounds over the whole vocabulary. */
#define MASS_HIST_MIN 2048
#define MASS_BINS 256

static inline int32_t mass_bin(float mx, float key, float scale) {
    float b = (mx - key) * scale; /* monotone in key, so bins follow the order */
    return b < (float)(MASS_BINS - 1) ? (int32_t)b : MASS_BINS - 1;
}

int32_t hl_sample_select_mass(hl_cand *c, int32_t n, double target, int strict) {
    if (n < MASS_HIST_MIN) return mass_qselect(c, 0, n, 0.0, target, strict);
    float mx = -INFINITY, mn = INFINITY;
    for (int32_t i = 0; i < n; i++) {
        mx = c[i].key > mx ? c[i].key : mx;
        mn = c[i].key < mn ? c[i].key : mn;
    }
    if (!(mx > mn) || !isfinite(mx - mn)) return mass_qselect(c, 0, n, 0.0, target, strict);
    const float scale = (float)MASS_BINS / (mx - mn);
    double mass[MASS_BINS] = {0};
    for (int32_t i = 0; i < n; i++) mass[mass_bin(mx, c[i].key, scale)] += c[i].p;
    double acc = 0.0;
    int32_t b = 0;
    for (; b < MASS_BINS; b++) {
        if (strict ? acc + mass[b] > target : acc + mass[b] >= target) break;
        acc += mass[b];
    }
    if (b == MASS_BINS) return n;
    /* bins before b to the front, then bin b; acc is exactly their mass */
    int32_t lo = 0;
    for (int32_t i = 0; i < n; i++)
        if (mass_bin(mx, c[i].key, scale) < b) {
            if (i != lo) cand_swap(&c[i], &c[lo]);
            lo++;
        }
    int32_t hi = lo;
    for (int32_t i = lo; i < n; i++)
        if (mass_bin(mx, c[i].key, scale) == b) {
            if (i != hi) cand_swap(&c[i], &c[hi]);
            hi++;
        }
    acc = 0.0;
    for (int32_t i = 0; i < lo; i++) acc += c[i].p;
    return mass_qselect(c, lo, hi, acc, target, strict);
}

/* Min-heap on hl_cand_before: the root is the candidate that comes last. */
static void heap_down(hl_cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && hl_cand_before(&h[m], &h[l])) m = l;
        if (r < n && hl_cand_before(&h[m], &h[r])) m = r;
        if (m == i) return;
        cand_swap(&h[i], &h[m]);
        i = m;
    }
}

static void heap_up(hl_cand *h, int32_t i) {
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!hl_cand_before(&h[parent], &h[i])) return;
        cand_swap(&h[parent], &h[i]);
        i = parent;
    }
}

int32_t hl_sample_heap_top(const float *logits, int32_t n, int32_t k, hl_cand *out) {
    int32_t cnt = 0, i = 0;
    if (k <= 0) return 0;
    for (; i < n && cnt < k; i++) {
        float v = logits[i];
        if (!(v > -INFINITY)) continue; /* -inf and NaN */
        out[cnt] = (hl_cand){.logit = v, .key = v, .p = 0.0f, .id = i};
        heap_up(out, cnt++);
    }
    /* Heap full: most entries fall below the root, so test blocks of 16
     * against it first (a vectorizable reduction) and look inside only the
     * rare block with a contender. NaN and -inf never pass `v > root`. */
    while (i < n) {
        const int32_t end = n - i > 16 ? i + 16 : n;
        const float root = out[0].key;
        int any = 0;
        if (end - i == 16) {
            hl_v4f v[4];
            memcpy(v, logits + i, sizeof v);
            const hl_v4f r = {root, root, root, root};
            hl_v4i m = (v[0] > r) | (v[1] > r) | (v[2] > r) | (v[3] > r);
            any = (m[0] | m[1] | m[2] | m[3]) != 0;
        } else {
            for (int32_t j = i; j < end; j++) any |= logits[j] > root;
        }
        if (any) {
            for (int32_t j = i; j < end; j++) {
                float v = logits[j];
                if (v > out[0].key) {
                    /* ids rise as we scan, so an equal key never displaces the root */
                    out[0] = (hl_cand){.logit = v, .key = v, .p = 0.0f, .id = j};
                    heap_down(out, cnt, 0);
                }
            }
        }
        i = end;
    }
    hl_sample_sort(out, cnt);
    return cnt;
}
