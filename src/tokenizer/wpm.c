/* WordPiece (tokenizer.ggml.model = "bert"): BERT's basic tokenizer as
 * llama.cpp implements it (each code point reduced to the first of its NFD
 * decomposition, marks and control characters dropped, lowercase, punctuation and CJK
 * ideographs split off as words) followed by greedy longest-match over
 * the vocabulary. The GGUF vocabulary marks word starts with U+2581 instead
 * of marking continuations with "##", so each word is looked up as
 * "\u2581word". A word that cannot be covered, or longer than 100
 * characters, becomes one [UNK]. */
#include "tokenizer/tok_internal.h"

#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int is_ws(uint32_t c) {
    return c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0x85 ||
           (utf8proc_category((utf8proc_int32_t)c) >= UTF8PROC_CATEGORY_ZS &&
            utf8proc_category((utf8proc_int32_t)c) <= UTF8PROC_CATEGORY_ZP);
}

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

typedef struct wbuf {
    char *p;
    size_t n, cap;
} wbuf;

static int wbuf_put(wbuf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 16;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* word = "\u2581" + letters; greedy longest match, all-or-nothing */
static void emit_word(const tok_vocab *v, const char *w, size_t n, tok_ids *out) {
    if (n <= 3) return; /* only the marker */
    size_t mark = out->n, chars = 0;
    for (size_t i = 3; i < n; i++) chars += ((unsigned char)w[i] & 0xC0) != 0x80;
    if (chars > 100) { /* BERT's max_input_chars_per_word: overlong words are [UNK] */
        if (v->unk >= 0) tok_ids_push(out, v->unk);
        return;
    }
    for (size_t i = 0; i < n;) {
        size_t j = n - i > v->max_len ? i + v->max_len : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = tok_lookup(v, w + i, j - i)) >= 0) break;
        if (id < 0) {
            out->n = mark;
            break;
        }
        tok_ids_push(out, id);
        i = j;
    }
    if (out->n == mark && v->unk >= 0) tok_ids_push(out, v->unk);
}

int tok_wpm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err) {
    wbuf word = {0};
    int rc = 0;
    static const char MARK[] = "\xe2\x96\x81";
    if (wbuf_put(&word, MARK, 3)) goto oom;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = hl_utf8_decode(text + i, len - i, &cp);
        if (k == 0) { /* invalid byte: U+FFFD, which BERT drops */
            i++;
            continue;
        }
        i += (size_t)k;
        /* llama.cpp's normalization, which we match: each code point becomes
         * the first code point of its canonical decomposition (so "é" -> "e",
         * a Hangul syllable -> its leading consonant, "क़" -> "क"), and every
         * mark (Mn, Mc, Me: combining accents, Devanagari's vowel signs and
         * virama) is dropped, where BERT's own drops Mn only */
        utf8proc_int32_t dec[32];
        utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)cp, dec, 32, UTF8PROC_DECOMPOSE, NULL);
        if (nd < 1 || nd > 32) dec[0] = (utf8proc_int32_t)cp;
        {
            uint32_t c = (uint32_t)dec[0];
            if (is_ws(c)) {
                emit_word(v, word.p, word.n, out);
                word.n = 3;
                continue;
            }
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
            if (c == 0 || c == 0xFFFD || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
                cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_MN ||
                cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME)
                continue; /* control characters and marks */
            char enc[4];
            int el = hl_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), enc);
            int punct = (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO) ||
                        (c < 0x7F && cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO) || is_cjk(c);
            if (punct) {
                emit_word(v, word.p, word.n, out);
                word.n = 3;
                if (wbuf_put(&word, enc, (size_t)el)) goto oom;
                emit_word(v, word.p, word.n, out);
                word.n = 3;
            } else if (wbuf_put(&word, enc, (size_t)el)) {
                goto oom;
            }
        }
    }
    emit_word(v, word.p, word.n, out);
    if (out->oom) goto oom;
    free(word.p);
    return rc;
oom:
    free(word.p);
    return hl_err_set(err, HL_ENOMEM, "out of memory while encoding %zu bytes", len);
}
