/* The vocabulary index the mask walks: each token's bytes as the detokenizer
 * writes them (tok_piece: SentencePiece ▁ → space, <0xNN> → the byte,
 * byte-level BPE symbols → their bytes), the tokens sorted by those bytes
 * with the length of the prefix each shares with the previous one (an
 * implicit trie: walking the sorted list and keeping one parse state per
 * byte depth tests each shared prefix once), and the end-of-generation
 * tokens. Control, unknown and unused tokens get no bytes: the mask never
 * allows them (end-of-generation ones only when the text is complete). */
#include "grammar/internal.h"

#include <stdlib.h>
#include <string.h>

int32_t hl_grammar_vocab_n(const hl_grammar_vocab *v) { return v->n_vocab; }

const char *hl_grammar_vocab_bytes(const hl_grammar_vocab *v, int32_t t, size_t *n) {
    if (t < 0 || t >= v->n_vocab || v->off[t + 1] == v->off[t]) {
        *n = 0;
        return NULL;
    }
    *n = v->off[t + 1] - v->off[t];
    return v->bytes + v->off[t];
}

int hl_grammar_vocab_is_eog(const hl_grammar_vocab *v, int32_t t) {
    return t >= 0 && t < v->n_vocab && v->eog[t];
}

static int cmp_tokens(const void *a, const void *b, void *ctx) {
    const hl_grammar_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t nx = v->off[x + 1] - v->off[x], ny = v->off[y + 1] - v->off[y];
    int c = memcmp(v->bytes + v->off[x], v->bytes + v->off[y], nx < ny ? nx : ny);
    if (c) return c;
    if (nx != ny) return nx < ny ? -1 : 1;
    return x < y ? -1 : x > y;
}

int hl_grammar_vocab_new(hl_grammar_vocab **out, const tok_vocab *tok, hl_err *err) {
    *out = NULL;
    int32_t n = tok_n_vocab(tok);
    hl_grammar_vocab *v = calloc(1, sizeof *v);
    if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory indexing the vocabulary");
    v->refs = 1;
    v->n_vocab = n;
    v->off = malloc(((size_t)n + 1) * sizeof *v->off);
    v->eog = calloc((size_t)n + 1, 1);
    v->sorted = malloc(((size_t)n + 1) * sizeof *v->sorted);
    v->lcp = malloc(((size_t)n + 1) * sizeof *v->lcp);
    v->eog_ids = malloc(((size_t)n + 1) * sizeof *v->eog_ids);
    size_t cap = (size_t)n * 8 + 64, len = 0;
    v->bytes = malloc(cap);
    if (!v->off || !v->eog || !v->sorted || !v->lcp || !v->eog_ids || !v->bytes) goto oom;
    char piece[512];
    for (int32_t t = 0; t < n; t++) {
        v->off[t] = (uint32_t)len;
        int type = tok_type(tok, t);
        if (tok_is_eog(tok, t)) {
            v->eog[t] = 1;
            v->eog_ids[v->n_eog++] = t;
            continue;
        }
        if (type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNKNOWN || type == TOK_TYPE_UNUSED) continue;
        int k = tok_piece(tok, t, piece, sizeof piece);
        if (k <= 0 || k > (int)sizeof piece) continue; /* empty, bad, or longer than any real token */
        if (len + (size_t)k > cap) {
            cap = cap * 2 + (size_t)k;
            char *b = realloc(v->bytes, cap);
            if (!b) goto oom;
            v->bytes = b;
        }
        memcpy(v->bytes + len, piece, (size_t)k);
        len += (size_t)k;
        if (k > v->max_len) v->max_len = k;
        v->sorted[v->n_sorted++] = t;
    }
    v->off[n] = (uint32_t)len;
    qsort_r(v->sorted, (size_t)v->n_sorted, sizeof *v->sorted, cmp_tokens, v);
    for (int32_t i = 0; i < v->n_sorted; i++) {
        if (!i) { v->lcp[i] = 0; continue; }
        size_t na, nb;
        const char *a = hl_grammar_vocab_bytes(v, v->sorted[i - 1], &na);
        const char *b = hl_grammar_vocab_bytes(v, v->sorted[i], &nb);
        size_t k = 0;
        while (k < na && k < nb && a[k] == b[k]) k++;
        v->lcp[i] = (int32_t)k;
    }
    *out = v;
    return 0;
oom:
    hl_grammar_vocab_unref(v);
    return hl_err_set(err, HL_ENOMEM, "out of memory indexing the vocabulary");
}

hl_grammar_vocab *hl_grammar_vocab_ref(hl_grammar_vocab *v) {
    __atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
    return v;
}

void hl_grammar_vocab_unref(hl_grammar_vocab *v) {
    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    free(v->bytes), free(v->off), free(v->sorted), free(v->lcp), free(v->eog), free(v->eog_ids);
    free(v);
}
