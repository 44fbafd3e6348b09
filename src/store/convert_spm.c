/* SentencePiece tokenizers for `FROM ./dir` imports (GGUF's "llama" and
 * "t5" tokenizer models): (1) recognizing a Hugging Face tokenizer.json that
 * is SentencePiece-BPE (model BPE with byte_fallback; spaces become U+2581
 * through a Metaspace pre-tokenizer or a Prepend/Replace normalizer) and
 * whether it prefixes a space; (2) a Unigram tokenizer.json's normalization
 * (Precompiled charsmap decoded from base64, extra-whitespace rules, the
 * Metaspace prefix); (3) reading a sentencepiece `tokenizer.model` (the
 * ModelProto protobuf: pieces with scores and types, the trainer's model
 * type and special ids, the normalizer's charsmap, add_dummy_prefix and
 * remove_extra_whitespaces) with our own small protobuf reader.
 * convert_tok.c turns these into tokenizer.ggml.* keys. */
#include "store/convert.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581 */

/* Replace(" " -> "▁") */
static int is_space_replace(json_object *o) {
    json_object *pat;
    if (!store_tok_is_type(o, "Replace") || !json_object_object_get_ex(o, "pattern", &pat)) return 0;
    const char *from = store_tok_jstr(pat, "String"), *to = store_tok_jstr(o, "content");
    return from && to && !strcmp(from, " ") && !strcmp(to, SPACE_MARK);
}

static int is_mark_prepend(json_object *o) {
    const char *p = store_tok_jstr(o, "prepend");
    return store_tok_is_type(o, "Prepend") && p && !strcmp(p, SPACE_MARK);
}

int store_spm_detect(json_object *tj, int *add_space_prefix, int *split_words, hl_err *err) {
    json_object *norm = NULL, *pre = NULL, *seq;
    json_object_object_get_ex(tj, "normalizer", &norm);
    json_object_object_get_ex(tj, "pre_tokenizer", &pre);
    int replace = 0, prepend = 0, other = 0;
    *split_words = 0;
    if (norm && store_tok_is_type(norm, "Sequence") && json_object_object_get_ex(norm, "normalizers", &seq) &&
        json_object_is_type(seq, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(seq); i++) {
            json_object *e = json_object_array_get_idx(seq, i);
            if (is_space_replace(e)) replace = 1;
            else if (is_mark_prepend(e)) prepend = 1;
            else other = 1;
        }
    } else if (norm) {
        if (is_space_replace(norm)) replace = 1;
        else if (is_mark_prepend(norm)) prepend = 1;
        else other = 1;
    }
    const char *what = NULL;
    if (other) {
        what = "normalizer";
    } else if (!pre) {
        if (!replace) what = "normalizer (spaces are not replaced by U+2581)";
        *add_space_prefix = prepend;
    } else if (store_tok_is_type(pre, "Metaspace") && !replace && !prepend) {
        const char *rep = store_tok_jstr(pre, "replacement"), *scheme = store_tok_jstr(pre, "prepend_scheme");
        json_object *aps, *sp;
        /* split (the default) cuts words before each U+2581 */
        *split_words = !json_object_object_get_ex(pre, "split", &sp) || json_object_get_boolean(sp);
        if (!rep || strcmp(rep, SPACE_MARK)) what = "pre-tokenizer (Metaspace replacement is not U+2581)";
        else if (scheme) *add_space_prefix = strcmp(scheme, "never") != 0;
        else *add_space_prefix = !json_object_object_get_ex(pre, "add_prefix_space", &aps) || json_object_get_boolean(aps);
    } else if (store_tok_is_type(pre, "Split") && replace) {
        /* Gemma: a split at " " after the normalizer replaced every space: a no-op */
        json_object *pat;
        const char *s = json_object_object_get_ex(pre, "pattern", &pat) ? store_tok_jstr(pat, "String") : NULL;
        if (!s || strcmp(s, " ")) what = "pre-tokenizer";
        *add_space_prefix = prepend;
    } else {
        what = "pre-tokenizer";
    }
    if (what) {
        json_object *o = !strncmp(what, "normalizer", 10) ? norm : pre;
        const char *js = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
        return hl_err_set(err, HL_ENOTSUP,
                          "tokenizer.json: byte-fallback BPE with an unknown %s %.300s (known: Metaspace with U+2581, "
                          "or Prepend/Replace of spaces by U+2581)", what, js);
    }
    return HL_OK;
}

/* ---- Unigram tokenizer.json ---- */

static int ugm_normalizer(json_object *o, store_ugm_norm *out, hl_err *err) {
    json_object *pat;
    if (store_tok_is_type(o, "Precompiled")) {
        const char *b64 = store_tok_jstr(o, "precompiled_charsmap");
        size_t n = b64 ? strlen(b64) : 0;
        if (!n) return HL_OK; /* an empty charsmap normalizes nothing */
        if (n % 4 || n > (64u << 20))
            return hl_err_set(err, HL_EINVAL, "tokenizer.json: precompiled_charsmap is not base64");
        uint8_t *buf = malloc(n / 4 * 3 + 1);
        if (!buf) return hl_err_set(err, HL_ENOMEM, "out of memory");
        int k = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
        if (k < 0) {
            free(buf);
            return hl_err_set(err, HL_EINVAL, "tokenizer.json: precompiled_charsmap is not base64");
        }
        k -= (b64[n - 1] == '=') + (b64[n - 2] == '='); /* DecodeBlock counts the padding */
        free(out->charsmap);
        out->charsmap = buf;
        out->charsmap_len = (size_t)k;
        return HL_OK;
    }
    if (store_tok_is_type(o, "Strip")) {
        out->remove_extra_ws = 1;
        return HL_OK;
    }
    if (store_tok_is_type(o, "Replace") && json_object_object_get_ex(o, "pattern", &pat)) {
        const char *re = store_tok_jstr(pat, "Regex"), *to = store_tok_jstr(o, "content");
        if (re && to && !strcmp(re, " {2,}") && (!strcmp(to, " ") || !strcmp(to, SPACE_MARK))) {
            out->remove_extra_ws = 1;
            return HL_OK;
        }
    }
    const char *js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return hl_err_set(err, HL_ENOTSUP, "tokenizer.json: Unigram with an unknown normalizer %.200s (known: Precompiled, "
                      "Strip, Replace(\" {2,}\"))", js);
}

int store_ugm_detect(json_object *tj, store_ugm_norm *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    json_object *norm = NULL, *pre = NULL, *seq;
    json_object_object_get_ex(tj, "normalizer", &norm);
    json_object_object_get_ex(tj, "pre_tokenizer", &pre);
    int rc = HL_OK;
    if (norm && store_tok_is_type(norm, "Sequence") && json_object_object_get_ex(norm, "normalizers", &seq) &&
        json_object_is_type(seq, json_type_array)) {
        for (size_t i = 0; rc == HL_OK && i < json_object_array_length(seq); i++)
            rc = ugm_normalizer(json_object_array_get_idx(seq, i), out, err);
    } else if (norm) {
        rc = ugm_normalizer(norm, out, err);
    }
    const char *rep = store_tok_jstr(pre, "replacement"), *scheme = store_tok_jstr(pre, "prepend_scheme");
    if (rc == HL_OK && (!store_tok_is_type(pre, "Metaspace") || !rep || strcmp(rep, SPACE_MARK))) {
        const char *js = pre ? json_object_to_json_string_ext(pre, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
        rc = hl_err_set(err, HL_ENOTSUP, "tokenizer.json: Unigram with an unknown pre-tokenizer %.200s (known: Metaspace with U+2581)", js);
    }
    if (rc == HL_OK) {
        json_object *aps, *sp;
        out->split_words = !json_object_object_get_ex(pre, "split", &sp) || json_object_get_boolean(sp);
        out->add_space_prefix = scheme ? strcmp(scheme, "never") != 0
                                       : !json_object_object_get_ex(pre, "add_prefix_space", &aps) || json_object_get_boolean(aps);
    }
    if (rc) {
        free(out->charsmap);
        out->charsmap = NULL;
    }
    return rc;
}

/* ---- sentencepiece ModelProto ---- */

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (b->p >= b->end) return -1;
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

/* Next field: number, wire type, and for length-delimited fields the
 * payload (for varints *v, for fixed32 the 4 bytes in *v). -1: malformed. */
static int pb_next(pb *b, uint32_t *field, int *wt, uint64_t *v, pb *sub) {
    uint64_t key;
    if (pb_varint(b, &key)) return -1;
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    switch (*wt) {
    case 0: return pb_varint(b, v);
    case 1:
        if (b->end - b->p < 8) return -1;
        memcpy(v, b->p, 8);
        b->p += 8;
        return 0;
    case 2:
        if (pb_varint(b, v) || *v > (uint64_t)(b->end - b->p)) return -1;
        sub->p = b->p;
        sub->end = b->p + *v;
        b->p += *v;
        return 0;
    case 5: {
        if (b->end - b->p < 4) return -1;
        uint32_t x;
        memcpy(&x, b->p, 4);
        *v = x;
        b->p += 4;
        return 0;
    }
    default: return -1;
    }
}

void store_spm_free(store_spm *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n; i++) free(m->pieces[i]);
    free(m->pieces);
    free(m->scores);
    free(m->types);
    free(m->charsmap);
    memset(m, 0, sizeof *m);
}

static int parse_piece(store_spm *m, pb sub, hl_err *err) {
    char *text = NULL;
    float score = 0;
    int32_t type = 1;
    while (sub.p < sub.end) {
        uint32_t f;
        int wt;
        uint64_t v;
        pb s2;
        if (pb_next(&sub, &f, &wt, &v, &s2)) {
            free(text);
            return hl_err_set(err, HL_EINVAL, "tokenizer.model: piece %lld is malformed", (long long)m->n);
        }
        if (f == 1 && wt == 2) {
            free(text);
            if (memchr(s2.p, 0, v)) return hl_err_set(err, HL_EINVAL, "tokenizer.model: piece %lld has a NUL byte", (long long)m->n);
            if (!(text = malloc(v + 1))) return hl_err_set(err, HL_ENOMEM, "out of memory");
            memcpy(text, s2.p, v);
            text[v] = 0;
        } else if (f == 2 && wt == 5) {
            uint32_t x = (uint32_t)v;
            memcpy(&score, &x, 4);
        } else if (f == 3 && wt == 0) {
            type = v >= 1 && v <= 6 ? (int32_t)v : 1;
        }
    }
    if (!text) return hl_err_set(err, HL_EINVAL, "tokenizer.model: piece %lld has no text", (long long)m->n);
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 1024;
        char **p = realloc(m->pieces, (size_t)cap * sizeof *p);
        if (p) m->pieces = p;
        float *s = p ? realloc(m->scores, (size_t)cap * sizeof *s) : NULL;
        if (s) m->scores = s;
        int32_t *t = s ? realloc(m->types, (size_t)cap * sizeof *t) : NULL;
        if (!t) {
            free(text);
            return hl_err_set(err, HL_ENOMEM, "out of memory");
        }
        m->types = t;
        m->cap = cap;
    }
    m->pieces[m->n] = text;
    m->scores[m->n] = score;
    m->types[m->n] = type;
    m->n++;
    return HL_OK;
}

int store_spm_parse(const uint8_t *data, size_t n, store_spm *m, hl_err *err) {
    memset(m, 0, sizeof *m);
    m->model_type = 1; /* UNIGRAM is the ModelProto default */
    m->unk = 0, m->bos = 1, m->eos = 2, m->pad = -1;
    m->add_dummy_prefix = m->remove_extra_ws = 1; /* NormalizerSpec's defaults */
    pb b = {data, data + n};
    int rc = HL_OK;
    while (rc == HL_OK && b.p < b.end) {
        uint32_t f;
        int wt;
        uint64_t v;
        pb sub;
        if (pb_next(&b, &f, &wt, &v, &sub)) {
            rc = hl_err_set(err, HL_EINVAL, "tokenizer.model: not a sentencepiece model (malformed protobuf at byte %zu)",
                            (size_t)(b.p - data));
            break;
        }
        if (wt != 2) continue;
        if (f == 1) {
            if (m->n >= (1 << 24)) rc = hl_err_set(err, HL_ERANGE, "tokenizer.model: too many pieces");
            else rc = parse_piece(m, sub, err);
        } else if (f == 2 || f == 3) { /* TrainerSpec, NormalizerSpec */
            while (rc == HL_OK && sub.p < sub.end) {
                uint32_t g;
                int wt2;
                uint64_t x;
                pb s2;
                if (pb_next(&sub, &g, &wt2, &x, &s2)) {
                    rc = hl_err_set(err, HL_EINVAL, "tokenizer.model: malformed %s", f == 2 ? "trainer_spec" : "normalizer_spec");
                    break;
                }
                if (f == 2 && wt2 == 0) {
                    int32_t id = (int32_t)x; /* int32 fields: -1 arrives as a 10-byte varint */
                    if (g == 3) m->model_type = (int)x;
                    else if (g == 35) m->byte_fallback = x != 0;
                    else if (g == 40) m->unk = id;
                    else if (g == 41) m->bos = id;
                    else if (g == 42) m->eos = id;
                    else if (g == 43) m->pad = id;
                } else if (f == 3 && wt2 == 0 && g == 3) {
                    m->add_dummy_prefix = x != 0;
                } else if (f == 3 && wt2 == 0 && g == 4) {
                    m->remove_extra_ws = x != 0;
                } else if (f == 3 && wt2 == 2 && g == 2 && x > 0) {
                    free(m->charsmap);
                    if (!(m->charsmap = malloc(x))) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                    else memcpy(m->charsmap, s2.p, x), m->charsmap_len = x;
                }
            }
        }
    }
    if (rc == HL_OK && m->n == 0) rc = hl_err_set(err, HL_EINVAL, "tokenizer.model: no pieces");
    if (rc) store_spm_free(m);
    return rc;
}

int store_spm_load(const char *path, store_spm *m, hl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return hl_err_set(err, HL_EIO, "%s: cannot open", path);
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *p = cap <= (256u << 20) ? realloc(buf, cap) : NULL;
            if (!p) {
                free(buf);
                fclose(f);
                return hl_err_set(err, HL_ERANGE, "%s: too large or out of memory", path);
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    fclose(f);
    int rc = store_spm_parse(buf, n, m, err);
    free(buf);
    return rc;
}
