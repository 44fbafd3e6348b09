/* Byte-level BPE (GPT-2 style): pre-tokenize with the model's regexes, map
 * each piece's bytes to GPT-2's byte alphabet (one symbol per byte, whose ids
 * are precomputed), then merge adjacent pairs best rank first with a binary
 * heap over a linked list of symbols, so long words cost O(n log n). */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_cand {
    int32_t rank;
    int32_t left;           /* symbol index; ties go to the leftmost pair */
    int32_t lid, rid, res;  /* ids at push time: stale entries are skipped */
} bpe_cand;

typedef struct bpe_work {
    const tok_vocab *v;
    tok_ids *out;
    int32_t *id, *prev, *next;
    bpe_cand *heap;
    size_t cap, hcap, hn;
    char *mapped;           /* the piece in the byte alphabet (ignore_merges lookup) */
    size_t mcap;
} bpe_work;

static int cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void heap_push(bpe_work *w, bpe_cand c) {
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static bpe_cand heap_pop(bpe_work *w) {
    bpe_cand top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->hn) break;
        if (c + 1 < w->hn && cand_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->hn) w->heap[i] = last;
    return top;
}

static void try_pair(bpe_work *w, int32_t l) {
    if (l < 0) return;
    int32_t r = w->next[l];
    if (r < 0) return;
    int32_t res;
    int32_t rank = tok_merge_rank(w->v, w->id[l], w->id[r], &res);
    if (rank < 0) return;
    heap_push(w, (bpe_cand){rank, l, w->id[l], w->id[r], res});
}

static int grow(bpe_work *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t cap = n < 64 ? 64 : n;
    int32_t *a = realloc(w->id, cap * sizeof *a);
    if (!a) return -1;
    w->id = a;
    if (!(a = realloc(w->prev, cap * sizeof *a))) return -1;
    w->prev = a;
    if (!(a = realloc(w->next, cap * sizeof *a))) return -1;
    w->next = a;
    /* each merge pushes at most two candidates besides the initial n-1 */
    bpe_cand *h = realloc(w->heap, 3 * cap * sizeof *h);
    if (!h) return -1;
    w->heap = h;
    w->hcap = 3 * cap;
    w->cap = cap;
    return 0;
}

static int bpe_piece(void *ctx, const char *s, size_t n) {
    bpe_work *w = ctx;
    const tok_vocab *v = w->v;
    if (v->ignore_merges) {
        if (w->mcap < 2 * n) {
            char *m = realloc(w->mapped, 2 * n);
            if (!m) return HL_ENOMEM;
            w->mapped = m;
            w->mcap = 2 * n;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = v->byte_cp[(unsigned char)s[i]];
            if (cp < 0x80) w->mapped[k++] = (char)cp;
            else {
                w->mapped[k++] = (char)(0xC0 | (cp >> 6));
                w->mapped[k++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        int32_t id = tok_lookup(v, w->mapped, k);
        if (id >= 0) {
            tok_ids_push(w->out, id);
            return 0;
        }
    }
    if (grow(w, n) != 0) return HL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        w->id[i] = v->byte_tok[(unsigned char)s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->hn = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(w, (int32_t)i);
    while (w->hn) {
        bpe_cand c = heap_pop(w);
        int32_t l = c.left, r = w->next[l];
        /* stale: the left symbol was absorbed (id -2), or either side changed */
        if (w->id[l] != c.lid || r < 0 || w->id[r] != c.rid) continue;
        w->id[l] = c.res;
        w->id[r] = -2;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        try_pair(w, w->prev[l]);
        try_pair(w, l);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        int32_t id = w->id[i];
        if (id >= 0) tok_ids_push(w->out, id);
        else if (v->unk >= 0) tok_ids_push(w->out, v->unk); /* a byte missing from the vocab */
    }
    return w->out->oom ? HL_ENOMEM : 0;
}

int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err) {
    bpe_work w = {.v = v, .out = out};
    int rc = tok_pretok_split(v, text, len, bpe_piece, &w, err);
    if (rc == HL_ENOMEM) hl_err_set(err, rc, "out of memory while encoding %zu bytes", len);
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    free(w.mapped);
    return rc;
}
