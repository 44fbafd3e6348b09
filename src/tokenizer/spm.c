/* SentencePiece-style BPE over vocabulary scores (tokenizer.ggml.model =
 * "llama"): spaces become U+2581, the text starts as one symbol per UTF-8
 * character, and the adjacent pair whose concatenation is the
 * highest-scoring token merges first (leftmost on ties). Characters left
 * outside the vocabulary fall back to <0xNN> byte tokens, or <unk>.
 *
 * A vocabulary that also carries tokenizer.ggml.merges (what our converter
 * writes for a Hugging Face byte-fallback BPE tokenizer.json) merges only the
 * listed pairs, lowest rank first, as Hugging Face's BPE does: a trained
 * merge list need not contain every pair whose concatenation is a token. */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct spm_cand {
    float score;
    int32_t left;
    uint32_t len; /* length of the merged text at push time: detects stale entries */
} spm_cand;

static int spm_less(const spm_cand *a, const spm_cand *b) { /* "a pops first" */
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

typedef struct spm_work {
    const tok_vocab *v;
    const char *text;
    uint32_t *start, *len;
    int32_t *prev, *next;
    spm_cand *heap;
    size_t hn;
} spm_work;

static void spm_push(spm_work *w, spm_cand c) {
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static spm_cand spm_pop(spm_work *w) {
    spm_cand top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->hn) break;
        if (c + 1 < w->hn && spm_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!spm_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->hn) w->heap[i] = last;
    return top;
}

static void spm_try(spm_work *w, int32_t l) {
    if (l < 0) return;
    int32_t r = w->next[l];
    if (r < 0) return;
    uint32_t n = w->len[l] + w->len[r];
    if (w->v->mkeys) { /* ranked merges: only listed pairs, rank order */
        int32_t a = tok_lookup(w->v, w->text + w->start[l], w->len[l]);
        int32_t b = tok_lookup(w->v, w->text + w->start[r], w->len[r]), res;
        int32_t rank = tok_merge_rank(w->v, a, b, &res);
        if (rank >= 0) spm_push(w, (spm_cand){-(float)rank, l, n});
        return;
    }
    int32_t id = tok_lookup(w->v, w->text + w->start[l], n);
    if (id < 0) return;
    spm_push(w, (spm_cand){w->v->score[id], l, n});
}

int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err) {
    /* escape: ' ' -> U+2581 (3 bytes) */
    size_t nsp = 0;
    for (size_t i = 0; i < len; i++) nsp += text[i] == ' ';
    size_t n = len + 2 * nsp;
    char *t = malloc(n ? n : 1);
    spm_work w = {.v = v, .text = t};
    w.start = malloc((n ? n : 1) * sizeof *w.start);
    w.len = malloc((n ? n : 1) * sizeof *w.len);
    w.prev = malloc((n ? n : 1) * sizeof *w.prev);
    w.next = malloc((n ? n : 1) * sizeof *w.next);
    w.heap = malloc((3 * n + 1) * sizeof *w.heap);
    int rc = 0;
    if (!t || !w.start || !w.len || !w.prev || !w.next || !w.heap) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", len);
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(t + k, "\xe2\x96\x81", 3); k += 3; }
        else t[k++] = text[i];
    }
    /* one symbol per character; a malformed lead byte claims at most what is left */
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)t[i];
        size_t cl = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if (cl > n - i) cl = n - i;
        w.start[ns] = (uint32_t)i;
        w.len[ns] = (uint32_t)cl;
        w.prev[ns] = ns - 1;
        w.next[ns] = -1;
        if (ns > 0) w.next[ns - 1] = ns;
        ns++;
        i += cl;
    }
    for (int32_t i = 0; i + 1 < ns; i++) spm_try(&w, i);
    while (w.hn) {
        spm_cand c = spm_pop(&w);
        int32_t l = c.left, r = w.next[l];
        if (w.len[l] == 0 || r < 0 || w.len[l] + w.len[r] != c.len) continue;
        w.len[l] += w.len[r];
        w.len[r] = 0;
        w.next[l] = w.next[r];
        if (w.next[r] >= 0) w.prev[w.next[r]] = l;
        spm_try(&w, w.prev[l]);
        spm_try(&w, l);
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = w.next[i]) {
        int32_t id = tok_lookup(v, t + w.start[i], w.len[i]);
        if (id >= 0) { tok_ids_push(out, id); continue; }
        for (uint32_t b = 0; b < w.len[i]; b++) {
            int32_t bt = v->byte_tok[(unsigned char)t[w.start[i] + b]];
            if (bt >= 0) tok_ids_push(out, bt);
            else if (v->unk >= 0) tok_ids_push(out, v->unk);
        }
    }
    if (out->oom) rc = hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", len);
out:
    free(t);
    free(w.start);
    free(w.len);
    free(w.prev);
    free(w.next);
    free(w.heap);
    return rc;
}
