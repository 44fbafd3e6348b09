/* Text to ids: splits the input at special-token texts (leftmost, longest
 * first; control and unknown tokens only when parse_special, user-defined
 * tokens always), runs the model's encoder over each stretch of raw text,
 * and adds BOS/EOS as the model asks. SentencePiece models get their space
 * prefix at the start and after each special token. */
#include "tokenizer/tok_internal.h"

#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

void tok_ids_push(tok_ids *o, int32_t id) {
    if (o->oom) return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *p = realloc(o->p, cap * sizeof *p);
        if (!p) {
            o->oom = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    o->p[o->n++] = id;
}

/* The special token starting at text[i], or -1. */
static int32_t match_special(const tok_vocab *v, const char *text, size_t len, size_t i, int parse_special) {
    unsigned char b = (unsigned char)text[i];
    for (int32_t k = v->spec_start[b]; k < v->spec_start[b + 1]; k++) {
        int32_t id = v->specials[k];
        int t = v->type[id];
        if (!parse_special && t != TOK_TYPE_USER_DEFINED) continue;
        size_t n = v->len[id];
        if (n <= len - i && memcmp(text + i, v->blob + v->off[id], n) == 0) return id;
    }
    return -1;
}

/* Invalid UTF-8 becomes U+FFFD so the regexes can skip UTF checks. */
static char *sanitize(const char *s, size_t n, size_t *out_n) {
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int l = hl_utf8_valid_prefix(s + i, n - i);
        if (l == 0) {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        } else {
            memcpy(o + k, s + i, (size_t)l);
            k += (size_t)l;
            i += (size_t)l;
        }
    }
    *out_n = k;
    return o;
}

static int encode_raw(const tok_vocab *v, const char *s, size_t n, int prev_special, tok_ids *out, hl_err *err) {
    switch (v->kind) {
    case TOK_KIND_SPM: {
        if (!(v->add_space_prefix && prev_special)) return tok_spm_encode(v, s, n, out, err);
        char *t = malloc(n + 1);
        if (!t) return hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", n);
        t[0] = ' ';
        memcpy(t + 1, s, n);
        int rc = tok_spm_encode(v, t, n + 1, out, err);
        free(t);
        return rc;
    }
    case TOK_KIND_BPE:
        if (hl_utf8_valid(s, n)) return tok_bpe_encode(v, s, n, out, err);
        {
            size_t m;
            char *t = sanitize(s, n, &m);
            if (!t) return hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", n);
            int rc = tok_bpe_encode(v, t, m, out, err);
            free(t);
            return rc;
        }
    case TOK_KIND_WPM:
        return tok_wpm_encode(v, s, n, out, err);
    case TOK_KIND_UGM: /* its normalizer puts the space prefix first, of each stretch after a special too */
        return tok_ugm_encode(v, s, n, out, err);
    }
    /* cannot happen: tok_load only creates the kinds above */
    return hl_err_set(err, HL_EINVAL, "unknown tokenizer kind");
}

int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_special, int parse_special,
               int32_t **ids, size_t *n_ids, hl_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > TOK_MAX_TEXT_BYTES)
        return hl_err_set(err, HL_ERANGE, "text of %zu bytes is too long to tokenize (limit %zu)", len,
                          TOK_MAX_TEXT_BYTES);
    tok_ids out = {0};
    int rc = 0;
    if (add_special && v->add_bos && v->bos >= 0) tok_ids_push(&out, v->bos);
    int prev_special = 1;
    size_t raw = 0; /* start of the pending raw text */
    for (size_t i = 0; i <= len && rc == 0;) {
        int32_t sp = i < len ? match_special(v, text, len, i, parse_special) : -1;
        if (sp < 0 && i < len) {
            i++;
            continue;
        }
        if (i > raw) {
            rc = encode_raw(v, text + raw, i - raw, prev_special, &out, err);
            prev_special = 0;
        }
        if (sp < 0) break; /* end of text */
        tok_ids_push(&out, sp);
        prev_special = 1;
        i += v->len[sp];
        if (v->rstrip[sp])
            while (i < len && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r'))) i++;
        raw = i;
    }
    if (rc == 0 && add_special && v->add_eos && v->eos >= 0) tok_ids_push(&out, v->eos);
    if (rc == 0 && out.oom) rc = hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", len);
    if (rc != 0) {
        free(out.p);
        return rc;
    }
    *ids = out.p;
    *n_ids = out.n;
    return 0;
}
