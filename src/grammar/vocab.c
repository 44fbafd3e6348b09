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

/* A byte's place in the class order: its class, or itself after them
 * (fewer than 256 symbols: most bytes belong to a class). */
static uint8_t class_sym(uint8_t b) {
    static uint8_t sym[256];
    static int ready; /* (idempotent: racing writers write the same table) */
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        uint8_t next = GRAM_N_CLS;
        for (int c = 0; c < 256; c++) {
            int k = gram_byte_class((uint8_t)c);
            sym[c] = k >= 0 ? (uint8_t)k : next++;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return sym[b];
}

typedef struct cls_ctx {
    const hl_grammar_vocab *v;
    const uint8_t *syms; /* every token's bytes as class symbols, at v->off */
} cls_ctx;

static int cmp_classes(const void *a, const void *b, void *ctx) {
    const cls_ctx *c = ctx;
    const hl_grammar_vocab *v = c->v;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t nx = v->off[x + 1] - v->off[x], ny = v->off[y + 1] - v->off[y];
    int r = memcmp(c->syms + v->off[x], c->syms + v->off[y], nx < ny ? nx : ny);
    if (r) return r;
    if (nx != ny) return nx < ny ? -1 : 1;
    return cmp_tokens(a, b, (void *)v);
}

/* Groups of tokens spelled alike from this size on get a bitmap: OR-ing
 * n_vocab / 8 bytes beats setting this many bits one by one. */
#define GROUP_BITS_MIN 1024

/* The class order, its prefix lengths and its groups' bitmaps (internal.h). */
static int build_class_order(hl_grammar_vocab *v) {
    int32_t n = v->n_sorted;
    v->csorted = malloc(((size_t)n + 1) * sizeof *v->csorted);
    v->clcp = malloc(((size_t)n + 1) * sizeof *v->clcp);
    v->cblcp = malloc(((size_t)n + 1) * sizeof *v->cblcp);
    v->cnxt = malloc(((size_t)n + 1) * sizeof *v->cnxt);
    v->clen = malloc(((size_t)n + 1) * sizeof *v->clen);
    int32_t *pending = malloc(((size_t)n + 1) * sizeof *pending);
    size_t n_bytes = v->off[v->n_vocab];
    uint8_t *syms = malloc(n_bytes + 1);
    if (!v->csorted || !v->clcp || !v->cblcp || !v->cnxt || !v->clen || !pending || !syms) {
        free(pending), free(syms);
        return -1;
    }
    for (size_t i = 0; i < n_bytes; i++) syms[i] = class_sym((uint8_t)v->bytes[i]);
    memcpy(v->csorted, v->sorted, (size_t)n * sizeof *v->csorted);
    cls_ctx ctx = {v, syms};
    qsort_r(v->csorted, (size_t)n, sizeof *v->csorted, cmp_classes, &ctx);
    int32_t np = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t kc = 0, kb = 0;
        if (i) {
            size_t na, nb;
            const uint8_t *a = (const uint8_t *)hl_grammar_vocab_bytes(v, v->csorted[i - 1], &na);
            const uint8_t *b = (const uint8_t *)hl_grammar_vocab_bytes(v, v->csorted[i], &nb);
            const uint8_t *ca = syms + (a - (const uint8_t *)v->bytes), *cb = syms + (b - (const uint8_t *)v->bytes);
            while (kc < na && kc < nb && ca[kc] == cb[kc]) kc++;
            while (kb < na && kb < nb && a[kb] == b[kb]) kb++;
        }
        v->clcp[i] = (int32_t)kc, v->cblcp[i] = (int32_t)kb;
        v->clen[i] = (int32_t)(v->off[v->csorted[i] + 1] - v->off[v->csorted[i]]);
        while (np && v->clcp[i] <= v->clcp[pending[np - 1]]) v->cnxt[pending[--np]] = i;
        pending[np++] = i;
    }
    while (np) v->cnxt[pending[--np]] = n;
    free(pending), free(syms);

    /* bitmaps for the groups of GROUP_BITS_MIN tokens or more */
    size_t nb = ((size_t)v->n_vocab + 7) / 8;
    int32_t ng = 0;
    for (int pass = 0; pass < 2; pass++) {
        ng = 0;
        for (int32_t i = 0; i < n;) {
            int32_t j = i + 1;
            while (j < n && v->clcp[j] == v->clen[j]) j++;
            if (j - i >= GROUP_BITS_MIN) {
                if (pass) {
                    v->grp_head[ng] = i, v->grp_end[ng] = j;
                    uint8_t *b = v->grp_bits + (size_t)ng * nb;
                    for (int32_t k = i; k < j; k++) b[v->csorted[k] >> 3] |= (uint8_t)(1u << (v->csorted[k] & 7));
                }
                ng++;
            }
            i = j;
        }
        if (!pass) {
            v->grp_head = malloc(((size_t)ng + 1) * sizeof *v->grp_head);
            v->grp_end = malloc(((size_t)ng + 1) * sizeof *v->grp_end);
            v->grp_bits = calloc((size_t)ng * nb + 1, 1);
            if (!v->grp_head || !v->grp_end || !v->grp_bits) return -1;
        }
    }
    v->n_grp = ng;
    return 0;
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
    /* the walk's sequential copy: each sorted token's new bytes, in order */
    v->sfx_off = malloc(((size_t)v->n_sorted + 1) * sizeof *v->sfx_off);
    v->nxt = malloc(((size_t)v->n_sorted + 1) * sizeof *v->nxt);
    int32_t *pending = malloc(((size_t)v->n_sorted + 1) * sizeof *pending);
    size_t n_sfx = 0;
    for (int32_t i = 0; i < v->n_sorted; i++) n_sfx += (v->off[v->sorted[i] + 1] - v->off[v->sorted[i]]) - (size_t)v->lcp[i];
    v->sfx = malloc(n_sfx + 1);
    if (!v->sfx_off || !v->nxt || !pending || !v->sfx) {
        free(pending);
        goto oom;
    }
    n_sfx = 0;
    int32_t np = 0;
    for (int32_t i = 0; i < v->n_sorted; i++) {
        int32_t t = v->sorted[i];
        size_t k = v->off[t + 1] - v->off[t] - (size_t)v->lcp[i];
        v->sfx_off[i] = (uint32_t)n_sfx;
        memcpy(v->sfx + n_sfx, v->bytes + v->off[t] + v->lcp[i], k);
        n_sfx += k;
        /* pending holds the tokens still waiting for their nxt, lcp rising */
        while (np && v->lcp[i] <= v->lcp[pending[np - 1]]) v->nxt[pending[--np]] = i;
        pending[np++] = i;
    }
    while (np) v->nxt[pending[--np]] = v->n_sorted;
    v->sfx_off[v->n_sorted] = (uint32_t)n_sfx;
    free(pending);
    for (int32_t i = 0, b = 0; b <= 256; b++) {
        while (i < v->n_sorted && (uint8_t)v->bytes[v->off[v->sorted[i]]] < b) i++;
        v->first[b] = i;
    }
    if (build_class_order(v)) goto oom;
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
    free(v->sfx), free(v->sfx_off), free(v->nxt);
    free(v->csorted), free(v->clcp), free(v->cblcp), free(v->cnxt), free(v->clen);
    free(v->grp_head), free(v->grp_end), free(v->grp_bits);
    free(v);
}
