/* The grammar as a logits processor (sample.h's hl_logits_proc): one
 * sequence's parse state, the mask computed from it, and a small cache of
 * masks keyed by the state's content.
 *
 * The mask is a walk over the vocabulary (walk.c) with the parse state's
 * transitions memoized (memo.c). Nodes made during the walk are dropped
 * afterwards (gram_pool_undo), so the persistent state only grows with accepted tokens, and is compacted when
 * garbage dominates. A state's key is its stacks spelled out (positions from
 * top to bottom) plus the pending UTF-8 bytes, so equal states hit the cache
 * whatever their node ids: inside a JSON string, every character after the
 * first reuses one mask. */
#include "grammar/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 16

typedef struct gshared {
    int refs; /* atomic */
    hl_grammar *g;
} gshared;

typedef struct cache_slot {
    int32_t *key;
    int32_t n_key;
    uint64_t hash;
    uint8_t *bits;
} cache_slot;

typedef struct gproc {
    hl_logits_proc base;
    const hl_grammar *g;
    gshared *owned;        /* NULL when the grammar is borrowed */
    hl_grammar_vocab *v;
    gram_pool pool;
    int32_t *tops, *tmp;   /* HL_GRAMMAR_MAX_STACKS each */
    int32_t n_tops;
    gram_utf8 u;
    int dead;
    int32_t live_after_compact;
    /* the walk: the state id after each byte of the current token */
    int32_t *lvl_n;
    gram_memo memo;
    /* the cache */
    int32_t *key;
    size_t cap_key;
    int32_t n_key;
    cache_slot cache[CACHE_SLOTS];
    int32_t next_slot;
    size_t n_bits;
    uint8_t *bits;         /* the current mask when the cache cannot hold it */
    int bits_fresh;        /* bits holds the current state's mask (prepare computed it) */
} gproc;

static const hl_logits_proc_vt gproc_vt;

/* ---- state key ------------------------------------------------------------------ */

static int key_push(gproc *p, int32_t x) {
    if ((size_t)p->n_key == p->cap_key) {
        size_t nc = p->cap_key ? p->cap_key * 2 : 256;
        int32_t *k = realloc(p->key, nc * sizeof *k);
        if (!k) return -1;
        p->key = k, p->cap_key = nc;
    }
    p->key[p->n_key++] = x;
    return 0;
}

/* Each stack top to bottom, then -2 (-3 for the empty stack); then the
 * UTF-8 state. */
static int make_key(gproc *p, uint64_t *hash) {
    p->n_key = 0;
    for (int32_t i = 0; i < p->n_tops; i++) {
        int32_t t = p->tops[i];
        if (t == -1 && key_push(p, -3)) return -1;
        for (; t >= 0; t = p->pool.parent[t])
            if (key_push(p, p->pool.pos[t])) return -1;
        if (key_push(p, -2)) return -1;
    }
    if (key_push(p, p->dead) || key_push(p, p->u.need) || key_push(p, (int32_t)p->u.acc) || key_push(p, p->u.len) || key_push(p, p->u.any)) return -1;
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < p->n_key; i++) h = (h ^ (uint32_t)p->key[i]) * 1099511628211ull;
    *hash = h;
    return 0;
}

/* ---- the walk -------------------------------------------------------------------- */

static void set_bit(uint8_t *bits, int32_t t) { bits[t >> 3] |= (uint8_t)(1u << (t & 7)); }

static int complete(const gproc *p) {
    if (p->dead || p->u.need) return p->dead ? 1 : 0;
    for (int32_t i = 0; i < p->n_tops; i++)
        if (p->tops[i] == -1) return 1;
    return 0;
}

static void compute(gproc *p, uint8_t *bits) {
    const hl_grammar_vocab *v = p->v;
    memset(bits, 0, p->n_bits);
    if (complete(p))
        for (int32_t i = 0; i < v->n_eog; i++) set_bit(bits, v->eog_ids[i]);
    if (p->dead || !p->n_tops) return;
    int32_t base = p->pool.n;
    gram_memo_reset(&p->memo);
    memcpy(p->tmp, p->tops, (size_t)p->n_tops * sizeof *p->tmp);
    int32_t s0 = gram_memo_intern(&p->memo, p->tmp, p->n_tops, p->u);
    if (s0 < 0) return; /* out of memory: nothing but the end allowed */
    gram_walk(p->g, &p->pool, &p->memo, v, s0, p->lvl_n, bits);
    gram_pool_undo(&p->pool, base);
}

/* The mask for the current state, from the cache or computed (and cached). */
static const uint8_t *current_bits(gproc *p) {
    uint64_t h;
    if (p->bits_fresh) return p->bits;
    if (make_key(p, &h)) {
        compute(p, p->bits);
        p->bits_fresh = 1;
        return p->bits;
    }
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot *c = &p->cache[i];
        if (c->bits && c->hash == h && c->n_key == p->n_key && !memcmp(c->key, p->key, (size_t)p->n_key * sizeof *p->key))
            return c->bits;
    }
    cache_slot *c = &p->cache[p->next_slot];
    p->next_slot = (p->next_slot + 1) % CACHE_SLOTS;
    if (!c->bits) c->bits = malloc(p->n_bits);
    int32_t *k = realloc(c->key, (size_t)(p->n_key ? p->n_key : 1) * sizeof *k);
    if (!c->bits || !k) {
        if (k) c->key = k;
        c->n_key = -1;
        compute(p, p->bits);
        p->bits_fresh = 1;
        return p->bits;
    }
    c->key = k;
    compute(p, c->bits);
    memcpy(c->key, p->key, (size_t)p->n_key * sizeof *k);
    c->n_key = p->n_key;
    c->hash = h;
    return c->bits;
}

/* ---- the state ---------------------------------------------------------------------- */

/* Rebuilds the pool from the nodes the live stacks use. */
static void compact(gproc *p) {
    gram_pool np;
    if (gram_pool_init(&np, p->pool.n / 2 + 64)) return;
    int32_t *map = malloc((size_t)p->pool.n * sizeof *map);
    int32_t *chain = NULL;
    size_t cap = 0;
    int ok = map != NULL;
    if (ok) memset(map, 0xff, (size_t)p->pool.n * sizeof *map);
    for (int32_t i = 0; i < p->n_tops && ok; i++) {
        size_t n = 0;
        for (int32_t t = p->tops[i]; t >= 0 && map[t] < 0; t = p->pool.parent[t]) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                int32_t *c = realloc(chain, cap * sizeof *c);
                if (!c) { ok = 0; break; }
                chain = c;
            }
            chain[n++] = t;
        }
        while (ok && n) {
            int32_t t = chain[--n], par = p->pool.parent[t];
            int32_t nid = gram_pool_node(&np, p->pool.pos[t], par < 0 ? par : map[par]);
            if (nid < 0) ok = 0;
            else map[t] = nid;
        }
    }
    if (ok) {
        for (int32_t i = 0; i < p->n_tops; i++)
            if (p->tops[i] >= 0) p->tops[i] = map[p->tops[i]];
        gram_pool_free(&p->pool);
        p->pool = np;
        p->live_after_compact = np.n;
    } else {
        gram_pool_free(&np);
    }
    free(map), free(chain);
}

static void gproc_accept(hl_logits_proc *self, int32_t token) {
    gproc *p = (gproc *)self;
    p->bits_fresh = 0;
    if (p->dead) return;
    size_t n;
    const char *s = hl_grammar_vocab_bytes(p->v, token, &n);
    if (!s) { p->dead = 1; return; }
    for (size_t i = 0; i < n; i++) {
        int k = gram_advance_byte(p->g, &p->pool, p->tops, p->n_tops, p->u, (uint8_t)s[i], p->tmp, &p->u);
        if (k <= 0) { p->dead = 1; p->n_tops = 0; return; }
        gram_utf8_settle(p->g, &p->pool, p->tmp, k, &p->u);
        int32_t *t = p->tops; p->tops = p->tmp, p->tmp = t;
        p->n_tops = k;
    }
    if (p->pool.n > 4096 && p->pool.n > 4 * (p->live_after_compact + 256)) compact(p);
}

static void gproc_mask(hl_logits_proc *self, float *logits, int32_t n_vocab) {
    gproc *p = (gproc *)self;
    const uint8_t *bits = current_bits(p);
    int32_t nv = p->v->n_vocab < n_vocab ? p->v->n_vocab : n_vocab;
    int32_t t = 0;
    /* 64 tokens at a time: all allowed, none (a run of stores the compiler
     * vectorizes), or the banned ones one by one */
    for (; t + 64 <= nv; t += 64) {
        uint64_t w = 0; /* token t + k is bit k (one load on a little-endian machine) */
        for (int k = 0; k < 8; k++) w |= (uint64_t)bits[(t >> 3) + k] << (8 * k);
        if (w == ~0ull) continue;
        if (!w) {
            for (int k = 0; k < 64; k++) logits[t + k] = -INFINITY;
            continue;
        }
        for (uint64_t z = ~w; z; z &= z - 1) logits[t + __builtin_ctzll(z)] = -INFINITY;
    }
    for (; t < nv; t++)
        if (!(bits[t >> 3] >> (t & 7) & 1)) logits[t] = -INFINITY;
    for (int32_t t = nv; t < n_vocab; t++) logits[t] = -INFINITY;
}

static void gproc_free(hl_logits_proc *self) {
    gproc *p = (gproc *)self;
    if (!p) return;
    gram_pool_free(&p->pool);
    free(p->tops), free(p->tmp), free(p->lvl_n);
    gram_memo_free(&p->memo);
    free(p->key), free(p->bits);
    for (int i = 0; i < CACHE_SLOTS; i++) free(p->cache[i].key), free(p->cache[i].bits);
    if (p->v) hl_grammar_vocab_unref(p->v);
    if (p->owned && __atomic_sub_fetch(&p->owned->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        hl_grammar_free(p->owned->g);
        free(p->owned);
    }
    free(p);
}

/* Everything but the parse state. */
static gproc *alloc_proc(const hl_grammar *g, hl_grammar_vocab *v, int with_pool) {
    gproc *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.vt = &gproc_vt;
    p->g = g;
    p->v = hl_grammar_vocab_ref(v);
    size_t levels = (size_t)v->max_len + 2;
    p->tops = malloc(HL_GRAMMAR_MAX_STACKS * sizeof *p->tops);
    p->tmp = malloc(HL_GRAMMAR_MAX_STACKS * sizeof *p->tmp);
    p->lvl_n = malloc(levels * sizeof *p->lvl_n);
    p->n_bits = ((size_t)v->n_vocab + 7) / 8 + 1;
    p->bits = malloc(p->n_bits);
    if (!p->tops || !p->tmp || !p->lvl_n || !p->bits || gram_memo_init(&p->memo) ||
        (with_pool && gram_pool_init(&p->pool, 1024))) {
        gproc_free(&p->base);
        return NULL;
    }
    return p;
}

static hl_logits_proc *gproc_clone(const hl_logits_proc *self) {
    const gproc *s = (const gproc *)self;
    gproc *p = alloc_proc(s->g, s->v, 0);
    if (!p) return NULL;
    if (gram_pool_copy(&p->pool, &s->pool)) {
        gproc_free(&p->base);
        return NULL;
    }
    memcpy(p->tops, s->tops, (size_t)s->n_tops * sizeof *p->tops);
    p->n_tops = s->n_tops, p->u = s->u, p->dead = s->dead, p->live_after_compact = s->live_after_compact;
    if (s->owned) {
        __atomic_add_fetch(&s->owned->refs, 1, __ATOMIC_RELAXED);
        p->owned = s->owned;
    }
    return &p->base;
}

/* the mask of the current state, computed into the cache mask reads */
static void gproc_prepare(hl_logits_proc *self) { (void)current_bits((gproc *)self); }

static const hl_logits_proc_vt gproc_vt = {gproc_mask, gproc_accept, gproc_clone, gproc_free, gproc_prepare};

int hl_grammar_proc_new(hl_logits_proc **out, hl_grammar *g, int own_grammar, hl_grammar_vocab *v, hl_err *err) {
    *out = NULL;
    gproc *p = alloc_proc(g, v, 1);
    if (!p) return hl_err_set(err, HL_ENOMEM, "out of memory making the grammar's state");
    if (gram_start(g, &p->pool, p->tops, &p->n_tops)) {
        gproc_free(&p->base);
        return hl_err_set(err, HL_ERANGE, "the grammar is too ambiguous: its start has more than %d parses", HL_GRAMMAR_MAX_STACKS);
    }
    if (own_grammar) {
        p->owned = malloc(sizeof *p->owned);
        if (!p->owned) {
            gproc_free(&p->base);
            return hl_err_set(err, HL_ENOMEM, "out of memory making the grammar's state");
        }
        p->owned->refs = 1;
        p->owned->g = g;
    }
    *out = &p->base;
    return 0;
}

int hl_grammar_proc_allowed(hl_logits_proc *self, uint8_t *bits) {
    gproc *p = (gproc *)self;
    const uint8_t *b = current_bits(p);
    memcpy(bits, b, ((size_t)p->v->n_vocab + 7) / 8);
    return 0;
}

int hl_grammar_proc_state(const hl_logits_proc *self) {
    const gproc *p = (const gproc *)self;
    if (p->dead) return -1;
    return complete(p);
}
