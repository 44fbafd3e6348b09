/* The mask walk's memo: parse states (sets of stack tops plus the pending
 * UTF-8 bytes) interned into small ids, and their transitions on each byte
 * cached in rows of 256, so walking the vocabulary is mostly table lookups.
 * Inside a JSON string every character leads back to the same state (the
 * stack nodes are hash-consed), so the ~10^5-node vocabulary walk touches a
 * handful of states. Valid for one walk: the walk's stack nodes are dropped
 * afterwards, and with them the ids the states hold. */
#include "grammar/internal.h"

#include <stdlib.h>
#include <string.h>

#define MEMO_MAX_ROWS 2048 /* states with a transition row (256 ints each); others recompute */
#define UNKNOWN GRAM_MEMO_UNKNOWN

static uint32_t state_hash(const int32_t *t, int32_t n, gram_utf8 u) {
    uint32_t h = 2166136261u ^ (uint32_t)u.acc ^ ((uint32_t)u.need << 24) ^ ((uint32_t)u.len << 28) ^ ((uint32_t)u.any << 31);
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)t[i]) * 16777619u;
    return h ? h : 1;
}

int gram_memo_init(gram_memo *m) {
    memset(m, 0, sizeof *m);
    m->tmask = 1023;
    m->table = malloc((m->tmask + 1) * sizeof *m->table);
    m->tmp = malloc(HL_GRAMMAR_MAX_STACKS * sizeof *m->tmp);
    if (!m->table || !m->tmp) {
        gram_memo_free(m);
        return HL_ENOMEM;
    }
    gram_memo_reset(m);
    return 0;
}

void gram_memo_free(gram_memo *m) {
    free(m->arena), free(m->st), free(m->row_of), free(m->cls), free(m->rows), free(m->table), free(m->tmp);
    memset(m, 0, sizeof *m);
}

void gram_memo_reset(gram_memo *m) {
    m->n_arena = 0, m->n_st = 0, m->n_rows = 0;
    memset(m->table, 0xff, (m->tmask + 1) * sizeof *m->table);
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * size);
    if (!q) return -1;
    *p = q, *cap = nc;
    return 0;
}

static int rehash(gram_memo *m) {
    uint32_t ts = (m->tmask + 1) * 2;
    int32_t *t = malloc(ts * sizeof *t);
    if (!t) return -1;
    memset(t, 0xff, ts * sizeof *t);
    for (int32_t i = 0; i < m->n_st; i++) {
        uint32_t h = m->st[i].hash & (ts - 1);
        while (t[h] >= 0) h = (h + 1) & (ts - 1);
        t[h] = i;
    }
    free(m->table);
    m->table = t;
    m->tmask = ts - 1;
    return 0;
}

int32_t gram_memo_intern(gram_memo *m, int32_t *tops, int32_t n, gram_utf8 u) {
    /* canonical order: insertion sort (sets are small) */
    for (int32_t i = 1; i < n; i++) {
        int32_t x = tops[i], j = i;
        while (j > 0 && tops[j - 1] > x) tops[j] = tops[j - 1], j--;
        tops[j] = x;
    }
    uint32_t h = state_hash(tops, n, u);
    uint32_t k = h & m->tmask;
    for (int32_t id; (id = m->table[k]) >= 0; k = (k + 1) & m->tmask) {
        const gram_memo_state *s = &m->st[id];
        if (s->hash == h && s->n == n && gram_utf8_eq(s->u, u) &&
            !memcmp(m->arena + s->off, tops, (size_t)n * sizeof *tops))
            return id;
    }
    size_t cap_st = m->cap_st;
    if (grow((void **)&m->st, &m->cap_st, (size_t)m->n_st + 1, sizeof *m->st)) return -2;
    if (m->cap_st != cap_st) {
        int32_t *r = realloc(m->row_of, m->cap_st * sizeof *r);
        if (r) m->row_of = r;
        int32_t *c = r ? realloc(m->cls, m->cap_st * GRAM_N_CLS * sizeof *c) : NULL;
        if (c) m->cls = c;
        if (!c) {
            m->cap_st = cap_st; /* keep the arrays' sizes in step */
            return -2;
        }
    }
    if (grow((void **)&m->arena, &m->cap_arena, m->n_arena + (size_t)n, sizeof *m->arena)) return -2;
    if ((uint32_t)(m->n_st + 1) * 2 > m->tmask) {
        if (rehash(m)) return -2;
        k = h & m->tmask;
        while (m->table[k] >= 0) k = (k + 1) & m->tmask;
    }
    int32_t id = m->n_st++;
    gram_memo_state *s = &m->st[id];
    s->off = (uint32_t)m->n_arena, s->n = n, s->u = u, s->hash = h;
    memcpy(m->arena + m->n_arena, tops, (size_t)n * sizeof *tops);
    m->n_arena += (size_t)n;
    m->row_of[id] = -1;
    for (int c = 0; c < GRAM_N_CLS; c++) m->cls[(size_t)id * GRAM_N_CLS + c] = UNKNOWN;
    m->table[k] = id;
    return id;
}

int32_t gram_memo_step_slow(gram_memo *m, const hl_grammar *g, gram_pool *p, int32_t s, uint8_t b) {
    int32_t row = m->row_of[s];
    gram_utf8 u2;
    const gram_memo_state *st = &m->st[s];
    int n = gram_advance_byte(g, p, m->arena + st->off, st->n, st->u, b, m->tmp, &u2);
    if (n > 0) gram_utf8_settle(g, p, m->tmp, n, &u2);
    int32_t next = n < 0 ? -2 : n == 0 ? -1 : gram_memo_intern(m, m->tmp, n, u2);
    if (next == -2) return -2; /* overflow: not cached */
    if (row < 0 && m->n_rows < MEMO_MAX_ROWS) {
        size_t cap = m->cap_rows;
        if (!grow((void **)&m->rows, &cap, (size_t)(m->n_rows + 1) * 256, sizeof *m->rows)) {
            m->cap_rows = cap;
            row = m->row_of[s] = m->n_rows++;
            for (int i = 0; i < 256; i++) m->rows[(size_t)row * 256 + i] = UNKNOWN;
        }
    }
    if (row >= 0) m->rows[(size_t)row * 256 + b] = next;
    return next;
}

int32_t gram_memo_class_step(gram_memo *m, const hl_grammar *g, gram_pool *p, int32_t s, int k) {
    int32_t c = m->cls[(size_t)s * GRAM_N_CLS + k];
    if (c != UNKNOWN) return c;
    const gram_memo_state *st = &m->st[s];
    if (!gram_class_uniform(g, p, m->arena + st->off, st->n, st->u, k)) c = GRAM_MEMO_MIXED;
    else c = gram_memo_step(m, g, p, s, gram_class_byte(k));
    if (c != -2) m->cls[(size_t)s * GRAM_N_CLS + k] = c; /* (the step may have moved m->cls) */
    return c;
}
