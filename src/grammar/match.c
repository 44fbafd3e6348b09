/* The recognizer: a set of pushdown stacks over a compiled grammar, advanced
 * one byte at a time (code points assembled from UTF-8 as they arrive).
 *
 * Stack nodes live in a pool and are hash-consed, so equal stacks are one
 * id and deduplicating a set of stacks is comparing ints; nodes added
 * during a tentative walk (the mask) are dropped again newest-first
 * (gram_pool_undo), which restores the hash table exactly because it uses
 * linear probing. While a multi-byte character is incomplete the stacks are
 * only filtered (kept if their class contains some code point that starts
 * with the bytes so far) and advanced when the last byte arrives. */
#include "grammar/internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the node pool ---------------------------------------------------------- */

static uint32_t node_hash(int32_t pos, int32_t parent) {
    uint64_t x = ((uint64_t)(uint32_t)pos << 32) | (uint32_t)parent;
    x *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32);
}

int gram_pool_init(gram_pool *p, int32_t cap) {
    memset(p, 0, sizeof *p);
    if (cap < 64) cap = 64;
    p->pos = malloc((size_t)cap * sizeof *p->pos);
    p->parent = malloc((size_t)cap * sizeof *p->parent);
    p->slot = malloc((size_t)cap * sizeof *p->slot);
    uint32_t ts = 128;
    while (ts < (uint32_t)cap * 2) ts *= 2;
    p->table = malloc(ts * sizeof *p->table);
    if (!p->pos || !p->parent || !p->slot || !p->table) {
        gram_pool_free(p);
        return HL_ENOMEM;
    }
    memset(p->table, 0xff, ts * sizeof *p->table);
    p->tmask = ts - 1;
    p->cap = cap;
    return 0;
}

void gram_pool_free(gram_pool *p) {
    free(p->pos), free(p->parent), free(p->slot), free(p->table);
    memset(p, 0, sizeof *p);
}

int gram_pool_copy(gram_pool *dst, const gram_pool *src) {
    memset(dst, 0, sizeof *dst);
    dst->pos = malloc((size_t)src->cap * sizeof *dst->pos);
    dst->parent = malloc((size_t)src->cap * sizeof *dst->parent);
    dst->slot = malloc((size_t)src->cap * sizeof *dst->slot);
    dst->table = malloc(((size_t)src->tmask + 1) * sizeof *dst->table);
    if (!dst->pos || !dst->parent || !dst->slot || !dst->table) {
        gram_pool_free(dst);
        return HL_ENOMEM;
    }
    memcpy(dst->pos, src->pos, (size_t)src->n * sizeof *dst->pos);
    memcpy(dst->parent, src->parent, (size_t)src->n * sizeof *dst->parent);
    memcpy(dst->slot, src->slot, (size_t)src->n * sizeof *dst->slot);
    memcpy(dst->table, src->table, ((size_t)src->tmask + 1) * sizeof *dst->table);
    dst->n = src->n, dst->cap = src->cap, dst->tmask = src->tmask;
    return 0;
}

static int pool_rehash(gram_pool *p, uint32_t ts) {
    int32_t *t = malloc(ts * sizeof *t);
    if (!t) return -1;
    memset(t, 0xff, ts * sizeof *t);
    for (int32_t i = 0; i < p->n; i++) {
        uint32_t h = node_hash(p->pos[i], p->parent[i]) & (ts - 1);
        while (t[h] >= 0) h = (h + 1) & (ts - 1);
        t[h] = i;
        p->slot[i] = h;
    }
    free(p->table);
    p->table = t;
    p->tmask = ts - 1;
    return 0;
}

int32_t gram_pool_node(gram_pool *p, int32_t pos, int32_t parent) {
    uint32_t h = node_hash(pos, parent) & p->tmask;
    for (int32_t id; (id = p->table[h]) >= 0; h = (h + 1) & p->tmask)
        if (p->pos[id] == pos && p->parent[id] == parent) return id;
    if (p->n == p->cap) {
        int32_t nc = p->cap * 2;
        int32_t *a = realloc(p->pos, (size_t)nc * sizeof *a);
        if (a) p->pos = a;
        int32_t *b = a ? realloc(p->parent, (size_t)nc * sizeof *b) : NULL;
        if (b) p->parent = b;
        uint32_t *s = b ? realloc(p->slot, (size_t)nc * sizeof *s) : NULL;
        if (s) p->slot = s;
        if (!s) { p->oom = 1; return -2; }
        p->cap = nc;
    }
    if ((uint32_t)p->n * 2 >= p->tmask) {
        if (pool_rehash(p, (p->tmask + 1) * 2)) { p->oom = 1; return -2; }
        h = node_hash(pos, parent) & p->tmask;
        while (p->table[h] >= 0) h = (h + 1) & p->tmask;
    }
    int32_t id = p->n++;
    p->pos[id] = pos, p->parent[id] = parent, p->slot[id] = h;
    p->table[h] = id;
    return id;
}

void gram_pool_undo(gram_pool *p, int32_t n) {
    while (p->n > n) {
        p->n--;
        p->table[p->slot[p->n]] = -1;
    }
}

/* ---- sets ------------------------------------------------------------------------ */

int gram_set_has(const hl_grammar *g, int32_t set, uint32_t cp) {
    const gram_set *s = &g->sets[set];
    const uint32_t *r = g->ranges + 2 * (size_t)s->off;
    int32_t lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int32_t mid = (lo + hi) / 2;
        if (cp < r[2 * mid]) hi = mid - 1;
        else if (cp > r[2 * mid + 1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int set_meets(const hl_grammar *g, int32_t set, uint32_t lo, uint32_t hi) {
    const gram_set *s = &g->sets[set];
    const uint32_t *r = g->ranges + 2 * (size_t)s->off;
    for (int32_t i = 0; i < s->n; i++)
        if (r[2 * i] <= hi && r[2 * i + 1] >= lo) return 1;
    return 0;
}

/* ---- expansion and advancing ------------------------------------------------------- */

static int add_top(int32_t *tops, int32_t *n, int32_t id) {
    for (int32_t i = 0; i < *n; i++)
        if (tops[i] == id) return 0;
    if (*n >= HL_GRAMMAR_MAX_STACKS) return -1;
    tops[(*n)++] = id;
    return 0;
}

int gram_expand(const hl_grammar *g, gram_pool *p, int32_t pos, int32_t parent, int32_t *tops, int32_t *n_tops, int depth) {
    if (depth > 4 * HL_GRAMMAR_MAX_NESTING + g->n_rules) return -1;
    for (;;) {
        const gram_elem *e = &g->elems[pos];
        if (e->kind == GRAM_END) {
            /* this rule is done: continue where the parent says */
            if (parent < 0) return add_top(tops, n_tops, -1);
            pos = p->pos[parent];
            parent = p->parent[parent];
            continue;
        }
        if (e->kind == GRAM_CHARS) {
            int32_t id = gram_pool_node(p, pos, parent);
            if (id < 0) return -1;
            return add_top(tops, n_tops, id);
        }
        /* a reference: the continuation goes below (unless it is the end of
         * this alternative: then the parent is the continuation already) */
        int32_t cont = parent;
        if (g->elems[pos + 1].kind != GRAM_END) {
            cont = gram_pool_node(p, pos + 1, parent);
            if (cont < 0) return -1;
        }
        int32_t r = e->arg;
        for (int32_t a = g->rule_alt0[r]; a < g->rule_alt0[r + 1]; a++)
            if (gram_expand(g, p, g->alts[a], cont, tops, n_tops, depth + 1)) return -1;
        return 0;
    }
}

int gram_start(const hl_grammar *g, gram_pool *p, int32_t *tops, int32_t *n_tops) {
    *n_tops = 0;
    int32_t r = g->root;
    for (int32_t a = g->rule_alt0[r]; a < g->rule_alt0[r + 1]; a++)
        if (gram_expand(g, p, g->alts[a], -1, tops, n_tops, 0)) return -1;
    return 0;
}

static int advance_cp(const hl_grammar *g, gram_pool *p, const int32_t *in, int32_t n_in, uint32_t cp, int32_t *out) {
    int32_t n = 0;
    for (int32_t i = 0; i < n_in; i++) {
        int32_t t = in[i];
        if (t < 0) continue;
        int32_t pos = p->pos[t];
        if (!gram_set_has(g, g->elems[pos].arg, cp)) continue;
        if (gram_expand(g, p, pos + 1, p->parent[t], out, &n, 0)) return -1;
    }
    return n;
}

int gram_advance_byte(const hl_grammar *g, gram_pool *p, const int32_t *in, int32_t n_in, gram_utf8 u,
                      uint8_t b, int32_t *out, gram_utf8 *u_out) {
    if (u.need == 0) {
        if (b < 0x80) {
            *u_out = u;
            return advance_cp(g, p, in, n_in, b, out);
        }
        if (b >= 0xC2 && b <= 0xDF) u.len = 2, u.acc = b & 0x1F;
        else if (b >= 0xE0 && b <= 0xEF) u.len = 3, u.acc = b & 0x0F;
        else if (b >= 0xF0 && b <= 0xF4) u.len = 4, u.acc = b & 0x07;
        else return 0;
        u.need = (int8_t)(u.len - 1);
    } else if (u.any) {
        /* every stack takes whatever character these bytes finish */
        if ((b & 0xC0) != 0x80) return 0;
        u.need--;
        *u_out = u;
        if (u.need) {
            memcpy(out, in, (size_t)n_in * sizeof *out);
            return n_in;
        }
        u_out->any = 0;
        int32_t n = 0;
        for (int32_t i = 0; i < n_in; i++)
            if (in[i] >= 0 && gram_expand(g, p, p->pos[in[i]] + 1, p->parent[in[i]], out, &n, 0)) return -1;
        return n;
    } else {
        if ((b & 0xC0) != 0x80) return 0;
        if (u.need == u.len - 1) {
            /* the second byte rules out overlongs, surrogates and > U+10FFFF */
            if (u.len == 3 && ((u.acc == 0 && b < 0xA0) || (u.acc == 0xD && b >= 0xA0))) return 0;
            if (u.len == 4 && ((u.acc == 0 && b < 0x90) || (u.acc == 4 && b >= 0x90))) return 0;
        }
        u.acc = (u.acc << 6) | (b & 0x3F);
        u.need--;
        if (u.need == 0) {
            uint32_t cp = u.acc;
            static const uint32_t min_of_len[5] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp < min_of_len[(int)u.len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
            u_out->acc = 0, u_out->need = 0, u_out->len = 0;
            return advance_cp(g, p, in, n_in, cp, out);
        }
    }
    /* incomplete: keep the stacks whose class meets the code points that start so */
    static const uint32_t min_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t lo = u.acc << (6 * u.need), hi = lo | ((1u << (6 * u.need)) - 1);
    if (lo < min_len[(int)u.len]) lo = min_len[(int)u.len];
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    int32_t n = 0;
    for (int32_t i = 0; i < n_in; i++) {
        int32_t t = in[i];
        if (t >= 0 && set_meets(g, g->elems[p->pos[t]].arg, lo, hi)) out[n++] = t;
    }
    *u_out = u;
    return n;
}

static int set_covers(const hl_grammar *g, int32_t set, uint32_t lo, uint32_t hi) {
    const gram_set *s = &g->sets[set];
    const uint32_t *r = g->ranges + 2 * (size_t)s->off;
    for (int32_t i = 0; i < s->n; i++)
        if (r[2 * i] <= lo) {
            if (r[2 * i + 1] >= hi) return 1;
        } else {
            break;
        }
    return 0;
}

void gram_utf8_settle(const hl_grammar *g, const gram_pool *p, const int32_t *tops, int32_t n, gram_utf8 *u) {
    if (!u->need || u->any) return;
    if (u->need == u->len - 1) {
        /* after these lead bytes the second byte still has limits of its own
         * (overlongs, surrogates, above U+10FFFF): acc still matters */
        if (u->len == 3 && (u->acc == 0 || u->acc == 0xD)) return;
        if (u->len == 4 && (u->acc == 0 || u->acc >= 4)) return;
    }
    uint32_t lo = u->acc << (6 * u->need), hi = lo | ((1u << (6 * u->need)) - 1);
    for (int32_t i = 0; i < n; i++)
        if (tops[i] < 0 || !set_covers(g, g->elems[p->pos[tops[i]]].arg, lo, hi)) return;
    u->any = 1, u->acc = 0, u->len = 0;
}

/* The code points of each class's bytes (for lead bytes: the code points
 * they start), as ranges (gram_byte_class). */
#define CLASS_RANGES 6
static const uint32_t class_cps[GRAM_N_CLS][CLASS_RANGES][2] = {
    [GRAM_CLS_WORD] = {{0x30, 0x39}, {0x41, 0x5A}, {0x61, 0x7A}},
    [GRAM_CLS_PUNCT] = {{0x20, 0x21}, {0x23, 0x2F}, {0x3A, 0x40}, {0x5B, 0x5B}, {0x5D, 0x60}, {0x7B, 0x7E}},
    [GRAM_CLS_LEAD2] = {{0x80, 0x7FF}},
    [GRAM_CLS_LEAD3] = {{0x1000, 0xCFFF}, {0xE000, 0xFFFF}},
    [GRAM_CLS_LEAD4] = {{0x40000, 0xFFFFF}},
};

int gram_class_uniform(const hl_grammar *g, const gram_pool *p, const int32_t *tops, int32_t n, gram_utf8 u, int k) {
    /* a continuation byte ends nothing at a character's start, and adds to
     * any character whose code point no longer matters */
    if (k == GRAM_CLS_CONT) return u.need == 0 || u.any;
    if (u.need) return 1; /* mid-character, every other class is dead */
    /* each stack takes all of the class's code points or none of them: then
     * every byte advances (or, for a lead byte, keeps and settles) the same
     * stacks */
    for (int32_t i = 0; i < n; i++) {
        if (tops[i] < 0) continue;
        int32_t set = g->elems[p->pos[tops[i]]].arg;
        int all = 1, none = 1;
        for (int r = 0; r < CLASS_RANGES && class_cps[k][r][1]; r++) {
            uint32_t lo = class_cps[k][r][0], hi = class_cps[k][r][1];
            if (!set_covers(g, set, lo, hi)) all = 0;
            if (set_meets(g, set, lo, hi)) none = 0;
        }
        if (!all && !none) return 0;
    }
    return 1;
}

/* ---- whole texts ------------------------------------------------------------------ */

int hl_grammar_accepts(const hl_grammar *g, const char *text, size_t n, int *prefix_ok) {
    if (prefix_ok) *prefix_ok = 0;
    gram_pool p;
    if (gram_pool_init(&p, 1024)) return 0;
    int32_t *buf = malloc(2 * HL_GRAMMAR_MAX_STACKS * sizeof *buf);
    int32_t *a = buf, *b = buf ? buf + HL_GRAMMAR_MAX_STACKS : NULL;
    int32_t na = 0;
    int ok = 0;
    gram_utf8 u = {0};
    if (a && !gram_start(g, &p, a, &na)) {
        size_t i = 0;
        for (; i < n && na > 0; i++) {
            int nb = gram_advance_byte(g, &p, a, na, u, (uint8_t)text[i], b, &u);
            if (nb <= 0) { na = 0; break; }
            int32_t *t = a; a = b, b = t;
            na = nb;
        }
        if (na > 0) {
            if (prefix_ok) *prefix_ok = 1;
            if (u.need == 0)
                for (int32_t k = 0; k < na; k++) ok |= a[k] == -1;
        }
    }
    free(buf);
    gram_pool_free(&p);
    return ok;
}

int hl_grammar_allowed_after(const hl_grammar *g, const hl_grammar_vocab *v, const char *text, size_t n, uint8_t *bits) {
    int32_t nv = hl_grammar_vocab_n(v);
    memset(bits, 0, ((size_t)nv + 7) / 8);
    gram_pool p;
    if (gram_pool_init(&p, 1024)) return -1;
    int32_t *buf = malloc(3 * HL_GRAMMAR_MAX_STACKS * sizeof *buf);
    int32_t *a = buf, *b = buf ? buf + HL_GRAMMAR_MAX_STACKS : NULL, *c = buf ? b + HL_GRAMMAR_MAX_STACKS : NULL;
    int32_t na = 0;
    gram_utf8 u = {0};
    int rc = -1;
    if (!a || gram_start(g, &p, a, &na)) goto out;
    for (size_t i = 0; i < n && na > 0; i++) {
        int nb = gram_advance_byte(g, &p, a, na, u, (uint8_t)text[i], b, &u);
        if (nb <= 0) goto out;
        int32_t *t = a; a = b, b = t;
        na = nb;
    }
    rc = 0;
    if (u.need == 0)
        for (int32_t k = 0; k < na; k++) rc |= a[k] == -1;
    int32_t base = p.n;
    for (int32_t t = 0; t < nv; t++) {
        if (hl_grammar_vocab_is_eog(v, t)) {
            if (rc) bits[t >> 3] |= (uint8_t)(1u << (t & 7));
            continue;
        }
        size_t k;
        const char *s = hl_grammar_vocab_bytes(v, t, &k);
        if (!s) continue;
        const int32_t *in = a;
        int32_t n_in = na, *out = b;
        gram_utf8 w = u;
        size_t j = 0;
        for (; j < k; j++) {
            int m = gram_advance_byte(g, &p, in, n_in, w, (uint8_t)s[j], out, &w);
            if (m <= 0) break;
            n_in = m;
            in = out, out = out == b ? c : b;
        }
        if (j == k) bits[t >> 3] |= (uint8_t)(1u << (t & 7));
        gram_pool_undo(&p, base);
    }
out:
    free(buf);
    gram_pool_free(&p);
    return rc;
}
