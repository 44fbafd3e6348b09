/* Prompt lookup: the per-sequence n-gram index and the drafter over it
 * (ngram.h). One table per n: slots hold the end e of an n-gram
 * tokens[e-n .. e) (its continuation starts at e) and the n-gram's hash;
 * linear probing, grown at half load. Two n-grams are the same key when
 * their tokens are equal (the hash only narrows the search), so a lookup
 * finds exactly the latest earlier occurrence. */
#include "runner/ngram.h"

#include <stdlib.h>
#include <string.h>

typedef struct ngram_slot {
    uint32_t hash;
    int32_t end; /* -1: empty */
} ngram_slot;

typedef struct ngram_table {
    ngram_slot *slots; /* [cap], cap a power of two */
    uint32_t cap, used;
} ngram_table;

struct ngram_index {
    int32_t n_min, n_max;
    ngram_table t[NGRAM_MAX_N + 1]; /* t[n] for n_min <= n <= n_max */
    int32_t done;                   /* tokens[0..done) indexed: every end e < done */
    int32_t last;                   /* tokens[done-1] when done > 0 (a change means another sequence) */
};

static uint32_t hash_gram(const int32_t *g, int32_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    for (int32_t i = 0; i < n; i++) {
        h ^= (uint32_t)g[i];
        h *= 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    return (uint32_t)h;
}

static void table_clear(ngram_table *t) {
    for (uint32_t i = 0; i < t->cap; i++) t->slots[i].end = -1;
    t->used = 0;
}

static int table_grow(ngram_table *t) {
    uint32_t cap = t->cap ? t->cap * 2 : 256;
    ngram_slot *s = malloc((size_t)cap * sizeof *s);
    if (!s) return HL_ENOMEM;
    for (uint32_t i = 0; i < cap; i++) s[i].end = -1;
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->slots[i].end < 0) continue;
        uint32_t j = t->slots[i].hash & (cap - 1);
        while (s[j].end >= 0) j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

/* The slot of the n-gram g (its tokens at g[0..n)): the one holding it, or
 * the empty slot where it goes. */
static ngram_slot *table_find(const ngram_table *t, const int32_t *tokens, const int32_t *g, int32_t n, uint32_t h) {
    uint32_t j = h & (t->cap - 1);
    for (;;) {
        ngram_slot *s = &t->slots[j];
        if (s->end < 0) return s;
        if (s->hash == h && !memcmp(tokens + s->end - n, g, (size_t)n * sizeof *g)) return s;
        j = (j + 1) & (t->cap - 1);
    }
}

int ngram_index_new(ngram_index **out, int32_t n_min, int32_t n_max, hl_err *err) {
    *out = NULL;
    if (n_min < 1 || n_max < n_min || n_max > NGRAM_MAX_N)
        return hl_err_set(err, HL_EINVAL, "n-gram lengths must satisfy 1 <= min (%d) <= max (%d) <= %d", n_min, n_max,
                          NGRAM_MAX_N);
    ngram_index *ix = calloc(1, sizeof *ix);
    if (!ix) return hl_err_set(err, HL_ENOMEM, "out of memory");
    ix->n_min = n_min;
    ix->n_max = n_max;
    *out = ix;
    return 0;
}

void ngram_index_free(ngram_index *ix) {
    if (!ix) return;
    for (int i = 0; i <= NGRAM_MAX_N; i++) free(ix->t[i].slots);
    free(ix);
}

static void index_reset(ngram_index *ix) {
    for (int32_t n = ix->n_min; n <= ix->n_max; n++)
        if (ix->t[n].cap) table_clear(&ix->t[n]);
    ix->done = 0;
}

int ngram_index_update(ngram_index *ix, const int32_t *tokens, int32_t n) {
    if (n < ix->done || (ix->done > 0 && tokens[ix->done - 1] != ix->last)) index_reset(ix);
    /* new ends e in [done, n): the n-gram ending just before e gets e, the
     * latest occurrence; e == n - 1 at most, so the sequence's own suffix
     * (which has no continuation yet) is never its own match */
    for (int32_t e = ix->done > 0 ? ix->done : 1; e < n; e++) {
        for (int32_t g = ix->n_min; g <= ix->n_max && g <= e; g++) {
            ngram_table *t = &ix->t[g];
            if ((t->used + 1) * 2 > t->cap && table_grow(t)) {
                index_reset(ix);
                return HL_ENOMEM;
            }
            const int32_t *gram = tokens + e - g;
            uint32_t h = hash_gram(gram, g);
            ngram_slot *s = table_find(t, tokens, gram, g, h);
            if (s->end < 0) t->used++;
            s->hash = h;
            s->end = e;
        }
    }
    if (n > ix->done) ix->done = n;
    if (n > 0) ix->last = tokens[n - 1];
    return 0;
}

int32_t ngram_index_propose(ngram_index *ix, const int32_t *tokens, int32_t n, int32_t *draft, int32_t max_draft) {
    if (max_draft <= 0 || ngram_index_update(ix, tokens, n)) return 0;
    for (int32_t g = ix->n_max < n ? ix->n_max : n - 1; g >= ix->n_min; g--) {
        const ngram_table *t = &ix->t[g];
        if (!t->cap) continue;
        const int32_t *suffix = tokens + n - g;
        const ngram_slot *s = table_find(t, tokens, suffix, g, hash_gram(suffix, g));
        if (s->end < 0) continue;
        int32_t k = n - s->end < max_draft ? n - s->end : max_draft;
        memcpy(draft, tokens + s->end, (size_t)k * sizeof *draft);
        return k;
    }
    return 0;
}

/* ---- the drafter: one index per choice ---------------------------------- */

typedef struct ngram_drafter {
    int32_t n_min, n_max;
    ngram_index **ix; /* [n_ix], by choice index */
    int32_t n_ix;
} ngram_drafter;

static int32_t drafter_propose(void *ctx, int32_t choice, const int32_t *tokens, int32_t n_tokens, int32_t *draft,
                               int32_t max_draft) {
    ngram_drafter *d = ctx;
    if (choice < 0) return 0;
    if (choice >= d->n_ix) {
        ngram_index **ix = realloc(d->ix, (size_t)(choice + 1) * sizeof *ix);
        if (!ix) return 0;
        for (int32_t i = d->n_ix; i <= choice; i++) ix[i] = NULL;
        d->ix = ix;
        d->n_ix = choice + 1;
    }
    if (!d->ix[choice] && ngram_index_new(&d->ix[choice], d->n_min, d->n_max, NULL)) return 0;
    return ngram_index_propose(d->ix[choice], tokens, n_tokens, draft, max_draft);
}

static void drafter_free(void *ctx) {
    ngram_drafter *d = ctx;
    if (!d) return;
    for (int32_t i = 0; i < d->n_ix; i++) ngram_index_free(d->ix[i]);
    free(d->ix);
    free(d);
}

int ngram_drafter_new(hl_drafter *out, int32_t n_min, int32_t n_max, int32_t max_draft, hl_err *err) {
    *out = (hl_drafter){0};
    if (n_min < 1 || n_max < n_min || n_max > NGRAM_MAX_N)
        return hl_err_set(err, HL_EINVAL, "n-gram lengths must satisfy 1 <= min (%d) <= max (%d) <= %d", n_min, n_max,
                          NGRAM_MAX_N);
    ngram_drafter *d = calloc(1, sizeof *d);
    if (!d) return hl_err_set(err, HL_ENOMEM, "out of memory");
    d->n_min = n_min;
    d->n_max = n_max;
    *out = (hl_drafter){.propose = drafter_propose, .free = drafter_free, .ctx = d, .max_draft = max_draft};
    return 0;
}
