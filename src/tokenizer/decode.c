/* Ids to text: the bytes of one token (SentencePiece U+2581 to space and
 * <0xNN> to the byte, GPT-2's byte alphabet back to bytes, WordPiece word
 * marks to spaces), whole-sequence decoding, and the streaming decoder that
 * holds back an incomplete UTF-8 character until the token that completes
 * it arrives. Control tokens render as nothing unless asked. */
#include "tokenizer/tok_internal.h"

#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

/* Writes up to cap bytes, returns the full length. */
static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at < cap) memcpy(buf + at, s, n < cap - at ? n : cap - at);
    return at + n;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* U+2581 -> ' ' */
static size_t unescape_ws(const char *s, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            k = put(buf, cap, k, " ", 1);
            i += 3;
        } else {
            k = put(buf, cap, k, s + i, 1);
            i++;
        }
    }
    return k;
}

int tok_piece_ex(const tok_vocab *v, int32_t id, int render_special, char *buf, size_t cap) {
    if (id < 0 || id >= v->n) return HL_EINVAL;
    const char *s = v->blob + v->off[id];
    size_t n = v->len[id], k = 0;
    switch (v->type[id]) {
    case TOK_TYPE_CONTROL:
        return render_special ? (int)put(buf, cap, 0, s, n) : 0;
    case TOK_TYPE_UNKNOWN:
        if (render_special) return (int)put(buf, cap, 0, s, n);
        return (int)put(buf, cap, 0, " \xe2\x81\x87 ", 5); /* SentencePiece's " ⁇ " */
    case TOK_TYPE_BYTE:
        if (n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
            char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return (int)put(buf, cap, 0, &b, 1);
        }
        break;
    case TOK_TYPE_USER_DEFINED:
        if (v->kind == TOK_KIND_BPE) return (int)put(buf, cap, 0, s, n); /* stored as plain text */
        break;
    default:
        break;
    }
    if (v->kind != TOK_KIND_BPE) return (int)unescape_ws(s, n, buf, cap);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = hl_utf8_decode(s + i, n - i, &cp);
        if (l == 0) { k = put(buf, cap, k, s + i, 1); i++; continue; }
        if (cp < 512 && v->cp_byte[cp] >= 0) {
            char b = (char)v->cp_byte[cp];
            k = put(buf, cap, k, &b, 1);
        } else {
            k = put(buf, cap, k, s + i, (size_t)l); /* outside the byte alphabet: keep as is */
        }
        i += (size_t)l;
    }
    return (int)k;
}

int tok_piece(const tok_vocab *v, int32_t id, char *buf, size_t cap) { return tok_piece_ex(v, id, 0, buf, cap); }

/* SentencePiece (with its space prefix) and WordPiece start words with a
 * space that is not part of the text at the start of a sequence. */
static int strips_leading_space(const tok_vocab *v) {
    return ((v->kind == TOK_KIND_SPM || v->kind == TOK_KIND_UGM) && v->add_space_prefix) || v->kind == TOK_KIND_WPM;
}

size_t tok_stream_bound(const tok_vocab *v) { return v->max_len + 16; }

void tok_stream_init(tok_stream *s, const tok_vocab *v, int render_special) {
    memset(s, 0, sizeof *s);
    s->v = v;
    s->render_special = render_special;
    s->at_start = 1;
}

void tok_stream_prime(tok_stream *s, const int32_t *ids, size_t n) {
    char scratch[8];
    for (size_t i = 0; i < n && s->at_start; i++)
        if (ids[i] >= 0 && ids[i] < s->v->n && tok_piece_ex(s->v, ids[i], s->render_special, scratch, sizeof scratch) > 0)
            s->at_start = 0;
}

int tok_stream_push(tok_stream *s, int32_t id, char *out, size_t cap) {
    const tok_vocab *v = s->v;
    if (id < 0 || id >= v->n) return HL_EINVAL;
    size_t need = v->len[id] + 8 + s->n_pend;
    if (cap < need) return HL_ERANGE;
    memcpy(out, s->pend, s->n_pend);
    int n = tok_piece_ex(v, id, s->render_special, out + s->n_pend, cap - s->n_pend);
    if (n < 0) return n;
    char *p = out + s->n_pend;
    if (n > 0 && s->at_start) {
        s->at_start = 0;
        if (strips_leading_space(v) && p[0] == ' ') {
            memmove(p, p + 1, (size_t)n - 1);
            n--;
        }
    }
    size_t total = s->n_pend + (size_t)n;
    size_t done = hl_utf8_complete_len(out, total);
    s->n_pend = total - done;
    memcpy(s->pend, out + done, s->n_pend);
    return (int)done;
}

int tok_stream_flush(tok_stream *s, char *out, size_t cap) {
    size_t n = s->n_pend < cap ? s->n_pend : cap;
    memcpy(out, s->pend, n);
    s->n_pend = 0;
    return (int)n;
}

int tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, int render_special, char **out, size_t *out_len,
               hl_err *err) {
    *out = NULL;
    *out_len = 0;
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    if (!buf) return hl_err_set(err, HL_ENOMEM, "out of memory decoding %zu tokens", n);
    int at_start = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n) {
            free(buf);
            return hl_err_set(err, HL_EINVAL, "token id %d is outside the vocabulary (0..%d)", (int)ids[i], (int)v->n - 1);
        }
        size_t need = len + v->len[ids[i]] + 8;
        if (need + 1 > cap) {
            while (cap < need + 1) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); return hl_err_set(err, HL_ENOMEM, "out of memory decoding %zu tokens", n); }
            buf = nb;
        }
        int k = tok_piece_ex(v, ids[i], render_special, buf + len, cap - len);
        if (k > 0 && at_start) {
            at_start = 0;
            if (strips_leading_space(v) && buf[len] == ' ') {
                memmove(buf + len, buf + len + 1, (size_t)k - 1);
                k--;
            }
        }
        len += (size_t)k;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
}
