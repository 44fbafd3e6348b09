/* The mask walk: which tokens of the vocabulary keep a parse state alive,
 * found by walking the vocabulary as a trie with the memo's transitions.
 *
 * Two orders of the same tokens serve it (vocab.c). The class order spells
 * each token by its bytes' classes (printable ASCII, UTF-8 continuation and
 * lead bytes; quote, backslash and control bytes stand for themselves), so
 * inside a JSON string, where every printable character and every
 * multi-byte character leads to the same next state, the ~150k tokens of a
 * byte-level BPE vocabulary collapse into a few thousand class spellings and
 * a state that is new at every step (a string with maxLength, whose every
 * position is its own state) costs one walk over those. Where a state treats
 * a class's bytes differently (a key's literal, a number, whitespace) the
 * tokens below that point are walked byte by byte: at the root in byte order
 * (the implicit byte trie, where a dead prefix skips every token that
 * starts with it), deeper down over the class order's few tokens there. The
 * two give the same mask as testing every token's bytes one by one
 * (hl_grammar_proc_allowed_reference, which the tests compare it with). */
#include "grammar/internal.h"

#include <string.h>

static void set_bit(uint8_t *bits, int32_t t) { bits[t >> 3] |= (uint8_t)(1u << (t & 7)); }

static void or_bits(uint8_t *restrict dst, const uint8_t *restrict src, size_t n) {
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        uint64_t a[4], b[4];
        memcpy(a, dst + k, sizeof a);
        memcpy(b, src + k, sizeof b);
        for (int j = 0; j < 4; j++) a[j] |= b[j];
        memcpy(dst + k, a, sizeof a);
    }
    for (; k < n; k++) dst[k] |= src[k];
}

/* Byte order sorted[lo .. hi), whose tokens share no byte with sorted[lo - 1]
 * (a first-byte boundary), from the state lvl[0]. */
static void walk_bytes(const hl_grammar *g, gram_pool *p, gram_memo *m, const hl_grammar_vocab *v, int32_t lo, int32_t hi,
                       int32_t *lvl, uint8_t *bits) {
    const int32_t *lcp = v->lcp, *nxt = v->nxt, *sorted = v->sorted;
    const uint32_t *so = v->sfx_off;
    for (int32_t i = lo; i < hi;) {
        /* the prefix this token shares with the previous one is alive (a
         * dead prefix skips every token under it): resume after it */
        int32_t d = lcp[i], st = lvl[d];
        const uint8_t *s = v->sfx + so[i], *e = v->sfx + so[i + 1];
        for (; s < e; s++) {
            st = gram_memo_step(m, g, p, st, *s);
            if (st < 0) break;
            lvl[++d] = st;
        }
        if (st >= 0) {
            set_bit(bits, sorted[i++]);
            continue;
        }
        /* every token that starts with these d + 1 bytes is dead too */
        for (i++; i < hi && lcp[i] > d;) i = nxt[i];
    }
}

/* Class order csorted[lo .. hi), which share their first d + 1 classes and
 * so the states lvl[0 .. d], byte by byte from depth d. */
static void walk_mixed(const hl_grammar *g, gram_pool *p, gram_memo *m, const hl_grammar_vocab *v, int32_t lo, int32_t hi,
                       int32_t d, int32_t *lvl, uint8_t *bits) {
    int32_t valid = d; /* lvl[d .. valid] hold the previous token's states */
    for (int32_t i = lo; i < hi; i++) {
        int32_t t = v->csorted[i];
        size_t len;
        const uint8_t *b = (const uint8_t *)hl_grammar_vocab_bytes(v, t, &len);
        int32_t r = i == lo ? d : v->cblcp[i] < valid ? v->cblcp[i] : valid;
        if (r < d) r = d;
        int32_t st = lvl[r];
        for (; r < (int32_t)len; r++) {
            st = gram_memo_step(m, g, p, st, b[r]);
            if (st < 0) break;
            lvl[r + 1] = st;
        }
        valid = r;
        if (st >= 0) set_bit(bits, t);
    }
}

void gram_walk(const hl_grammar *g, gram_pool *p, gram_memo *m, const hl_grammar_vocab *v, int32_t s0, int32_t *lvl,
               uint8_t *bits) {
    lvl[0] = s0;
    const int32_t n = v->n_sorted;
    const int32_t *csorted = v->csorted, *clcp = v->clcp, *clen = v->clen;
    const size_t nb = ((size_t)v->n_vocab + 7) / 8;
    int32_t grp = 0; /* the next group with a bitmap */
    for (int32_t i = 0; i < n;) {
        /* a token reached with the class spelling of the one before shares
         * its verdict, and the one before was allowed (else it and every
         * token spelled like it would have been skipped) */
        while (i < n && clcp[i] == clen[i]) set_bit(bits, csorted[i++]);
        if (i == n) break;
        int32_t t = csorted[i], d = clcp[i], st = lvl[d], len = clen[i];
        const uint8_t *b = (const uint8_t *)v->bytes + v->off[t];
        int k = -1, mixed = 0;
        for (; d < len; d++) {
            k = gram_byte_class(b[d]);
            int32_t nx = k < 0 ? gram_memo_step(m, g, p, st, b[d]) : gram_memo_class_step(m, g, p, st, k);
            if (nx == GRAM_MEMO_MIXED) { mixed = 1; break; }
            if (nx < 0) break;
            lvl[d + 1] = st = nx;
        }
        if (d == len) {
            while (grp < v->n_grp && v->grp_head[grp] < i) grp++;
            if (grp < v->n_grp && v->grp_head[grp] == i) {
                /* a large group spelled like this token: all of it at once */
                or_bits(bits, v->grp_bits + (size_t)grp * nb, nb);
                i = v->grp_end[grp++];
                continue;
            }
            set_bit(bits, t);
            i++;
            continue;
        }
        /* the tokens that share these d + 1 classes: csorted[i .. end) */
        int32_t end = i + 1;
        while (end < n && clcp[end] > d) end = v->cnxt[end];
        if (mixed && d == 0) {
            /* their first bytes are class k's: byte order, in runs of bytes */
            for (int b0 = 0; b0 < 256; b0++) {
                if (gram_byte_class((uint8_t)b0) != k) continue;
                int b1 = b0;
                while (b1 + 1 < 256 && gram_byte_class((uint8_t)(b1 + 1)) == k) b1++;
                walk_bytes(g, p, m, v, v->first[b0], v->first[b1 + 1], lvl, bits);
                b0 = b1;
            }
        } else if (mixed) {
            walk_mixed(g, p, m, v, i, end, d, lvl, bits);
        }
        i = end; /* (dead: all of them) */
    }
}
