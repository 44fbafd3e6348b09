/* The Unigram model (tokenizer.ggml.model = "t5": T5, XLM-RoBERTa, bge-m3):
 * the text is normalized, then segmented by Viterbi into the pieces whose
 * scores (log probabilities) sum highest.
 *
 * Normalization, as sentencepiece's normalizer does it: at each position
 * the longest match in the precompiled charsmap (tokenizer.ggml.
 * precompiled_charsmap) is replaced by its string, else the character is
 * kept; with remove_extra_whitespaces, leading and trailing spaces go and
 * runs of spaces become one; with add_space_prefix a space is put first;
 * every space becomes U+2581.
 *
 * The charsmap blob (sentencepiece's normalizer spec) is a little-endian
 * uint32 byte size of a double-array trie, the trie's 32-bit units, then the
 * replacement strings, each NUL-terminated; a trie leaf's value is the byte
 * offset of its string. A unit holds: bits 0-7 the label, bit 8 "has a
 * leaf", bit 9 an offset scale flag (offset << 8), bits 10-31 the offset;
 * a leaf unit's value is its low 31 bits. Walking from unit 0, a byte c moves
 * from node p to p ^ offset(unit[p]) ^ c, valid when that unit's label is c.
 *
 * Viterbi: best[i] = max over pieces s ending at byte i of best[start] +
 * score(s); control and unused pieces never match, user-defined ones score
 * 0; where no one-character piece starts at a position, the character may be
 * <unk> at the lowest score minus 10; for one end, a path from a later start
 * replaces one from an earlier start only when strictly better. Adjacent unknowns become one
 * <unk>. This is the segmentation Hugging Face's Unigram and sentencepiece
 * compute. Each start probes the vocabulary's hash table for its prefixes up to
 * the longest piece, extending one hash by a byte per probe, so the pass costs
 * the text's length times the longest piece, not its square. */
#include "tokenizer/tok_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define UNK_PENALTY 10.0f

static uint32_t unit_at(const tok_vocab *v, uint32_t i) {
    uint32_t u;
    memcpy(&u, v->charsmap + 4 + 4 * (size_t)i, 4);
    return u;
}

static uint32_t u_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Longest charsmap match at s[0..n): its length, and its replacement in
 * *rep / *rep_n; 0 when none. */
static size_t charsmap_match(const tok_vocab *v, const char *s, size_t n, const char **rep, size_t *rep_n) {
    if (!v->charsmap) return 0;
    uint32_t nu = v->trie_units, p = 0, u = unit_at(v, 0);
    size_t best = 0;
    p ^= u_offset(u);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) break;
        p ^= c;
        if (p >= nu) break;
        u = unit_at(v, p);
        if ((u & ((1u << 31) | 0xFF)) != c) break;
        p ^= u_offset(u);
        if (p >= nu) break;
        if (u & (1u << 8)) {
            uint32_t val = unit_at(v, p) & 0x7FFFFFFFu;
            if (val < v->charsmap_strs_n) {
                const char *r = v->charsmap_strs + val;
                best = i + 1;
                *rep = r;
                *rep_n = strnlen(r, v->charsmap_strs_n - val);
            }
        }
    }
    return best;
}

static size_t char_len(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    size_t cl = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return cl > n ? n : cl;
}

/* Normalized text with spaces as U+2581, malloc'ed. */
static char *normalize(const tok_vocab *v, const char *s, size_t n, size_t *out_n) {
    size_t cap = 3 * n + 16, k = 0;
    char *o = malloc(cap);
    if (!o) return NULL;
    int prefix = v->add_space_prefix, spaces = 0, any = 0;
    for (size_t i = 0; i < n;) {
        const char *r;
        size_t rn, m = charsmap_match(v, s + i, n - i, &r, &rn);
        if (m == 0) {
            m = char_len(s + i, n - i);
            r = s + i;
            rn = m;
        }
        i += m;
        for (size_t j = 0; j < rn; j++) {
            if (r[j] == ' ') {
                spaces++;
                continue;
            }
            /* the spaces before this byte, then the byte */
            size_t ns = v->remove_extra_ws ? (any && spaces ? 1 : 0) : (size_t)spaces;
            ns += prefix && !any;
            if (k + 3 * ns + 8 > cap) {
                size_t c2 = 2 * cap + 3 * ns;
                char *p = realloc(o, c2);
                if (!p) { free(o); return NULL; }
                o = p;
                cap = c2;
            }
            for (size_t q = 0; q < ns; q++, k += 3) memcpy(o + k, "\xe2\x96\x81", 3);
            spaces = 0;
            any = 1;
            o[k++] = r[j];
        }
    }
    if (!v->remove_extra_ws && spaces) { /* trailing spaces stay, after the prefix */
        size_t ns = (size_t)spaces + (prefix && !any);
        if (k + 3 * ns > cap) {
            char *p = realloc(o, k + 3 * ns);
            if (!p) { free(o); return NULL; }
            o = p;
        }
        for (size_t q = 0; q < ns; q++, k += 3) memcpy(o + k, "\xe2\x96\x81", 3);
    }
    *out_n = k;
    return o;
}

int tok_ugm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err) {
    size_t n;
    char *t = normalize(v, text, len, &n);
    float *best = t ? malloc((n + 1) * sizeof *best) : NULL;
    int32_t *from = best ? malloc((n + 1) * sizeof *from) : NULL, *tokid = from ? malloc((n + 1) * sizeof *tokid) : NULL;
    int32_t *path = tokid ? malloc((n + 1) * sizeof *path) : NULL;
    int rc = 0;
    if (!path) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", len);
        goto out;
    }
    for (size_t i = 0; i <= n; i++) best[i] = -FLT_MAX, from[i] = -1;
    best[0] = 0;
    float unk_score = v->min_score - UNK_PENALTY;
    for (size_t s = 0; s < n;) {
        size_t cl = char_len(t + s, n - s);
        if (from[s] >= 0 || s == 0) {
            int single = 0;
            /* pieces starting at s, each prefix hashed incrementally: one
             * hash step and one probe per byte, not a rehash per length */
            size_t maxn = n - s < v->max_len ? n - s : v->max_len;
            uint32_t h = TOK_FNV_INIT;
            for (size_t e = 1; e <= maxn; e++) {
                h = tok_fnv_step(h, (unsigned char)t[s + e - 1]);
                if (e < n - s && (((unsigned char)t[s + e]) & 0xC0) == 0x80) continue; /* ends mid-character */
                int32_t id = tok_lookup_h(v, t + s, e, tok_hash_final(h));
                if (id < 0 || v->type[id] == TOK_TYPE_CONTROL || v->type[id] == TOK_TYPE_UNUSED) continue;
                if (e == cl) single = 1;
                float sc = best[s] + (v->type[id] == TOK_TYPE_USER_DEFINED ? 0.0f : v->score[id]);
                if (from[s + e] < 0 || sc > best[s + e]) {
                    best[s + e] = sc;
                    from[s + e] = (int32_t)s;
                    tokid[s + e] = id;
                }
            }
            if (!single) {
                float sc = best[s] + unk_score;
                if (from[s + cl] < 0 || sc > best[s + cl]) {
                    best[s + cl] = sc;
                    from[s + cl] = (int32_t)s;
                    tokid[s + cl] = -1;
                }
            }
        }
        s += cl;
    }
    /* backtrack, then emit left to right fusing adjacent unknowns */
    size_t np = 0;
    for (int64_t e = (int64_t)n; e > 0; e = from[e]) path[np++] = tokid[e];
    int prev_unk = 0;
    for (size_t i = np; i-- > 0;) {
        int32_t id = path[i] >= 0 ? path[i] : v->unk;
        int is_unk = path[i] < 0 || path[i] == v->unk;
        if (is_unk && prev_unk) continue;
        prev_unk = is_unk;
        if (id >= 0) tok_ids_push(out, id);
    }
    if (out->oom) rc = hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", len);
out:
    free(t);
    free(best);
    free(from);
    free(tokid);
    free(path);
    return rc;
}

int tok_ugm_init(tok_vocab *v, const uint8_t *charsmap, size_t n, hl_err *err) {
    v->min_score = FLT_MAX;
    for (int32_t i = 0; i < v->n; i++)
        if (v->type[i] == TOK_TYPE_NORMAL && v->score[i] < v->min_score) v->min_score = v->score[i];
    if (v->min_score == FLT_MAX) v->min_score = 0;
    if (!charsmap || n == 0) return 0;
    uint32_t tsize;
    if (n < 4 || (memcpy(&tsize, charsmap, 4), tsize % 4) || tsize < 4 || tsize > n - 4)
        return hl_err_set(err, HL_EINVAL, "tokenizer.ggml.precompiled_charsmap: trie size does not fit its %zu bytes", n);
    if (!(v->charsmap = malloc(n))) return hl_err_set(err, HL_ENOMEM, "out of memory");
    memcpy(v->charsmap, charsmap, n);
    v->trie_units = tsize / 4;
    v->charsmap_strs = (const char *)v->charsmap + 4 + tsize;
    v->charsmap_strs_n = n - 4 - tsize;
    return 0;
}
