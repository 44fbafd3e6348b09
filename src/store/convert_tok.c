/* tokenizer.json (+ tokenizer_config.json) -> tokenizer.ggml.* keys for a
 * byte-level BPE ("gpt2" in GGUF) or, when its BPE model has byte_fallback,
 * a SentencePiece-BPE ("llama": byte and unknown types, scores from the
 * merge ranks, space prefix as convert_spm.c recognizes it); a directory
 * with only a sentencepiece tokenizer.model is read through convert_spm.c.
 * A WordPiece model (BERT) is convert_wpm.c's, a Unigram one (XLM-R, T5)
 * becomes "t5" (convert_unigram below).
 * For both BPEs: the token list in id order (vocab plus
 * added tokens, gaps padded as unused), token types (added special tokens
 * are control, other added tokens user-defined), merges as "a b" strings,
 * bos/eos/pad ids, add_bos/add_eos (tokenizer_config.json's flags, else
 * what tokenizer.json's TemplateProcessing post-processor adds), and the
 * chat template. The pre-tokenizer
 * is identified from the pre_tokenizer section's structure and regex
 * patterns and named as tokenizer.ggml.pre values our tokenizer implements
 * (src/tokenizer/pretok.c); anything else is refused by name rather than
 * converted to a tokenizer that would split text differently. */
#include "store/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *store_tok_jstr(json_object *o, const char *key) {
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

int store_tok_jbool(json_object *o, const char *key, int dflt) {
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean)) return dflt;
    return json_object_get_boolean(v);
}

int store_tok_is_type(json_object *o, const char *type) {
    const char *s = store_tok_jstr(o, "type");
    return s && !strcmp(s, type);
}

/* Hugging Face's spellings of the split regexes (as in the families'
 * tokenizer.json files). */
static const char RE_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* o200k (gpt-4o, gpt-oss): cased words with their contractions attached,
 * digits in threes, '/' after punctuation runs (tiktoken's pattern, as the
 * gpt-oss tokenizer.json carries it) */
static const char RE_O200K[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char *split_regex(json_object *o) {
    json_object *pat;
    if (!store_tok_is_type(o, "Split") || !json_object_object_get_ex(o, "pattern", &pat)) return NULL;
    const char *b = store_tok_jstr(o, "behavior");
    if (!b || strcmp(b, "Isolated") || store_tok_jbool(o, "invert", 0)) return NULL;
    return store_tok_jstr(pat, "Regex");
}

/* pre: the pre_tokenizer object; ignore_merges: the model's flag (llama3's
 * and smaug's regex differ only in it). */
static const char *detect(json_object *pre, int ignore_merges) {
    if (!pre) return NULL;
    if (store_tok_is_type(pre, "ByteLevel")) return store_tok_jbool(pre, "use_regex", 1) ? "gpt2" : NULL;
    json_object *seq;
    if (!store_tok_is_type(pre, "Sequence") || !json_object_object_get_ex(pre, "pretokenizers", &seq) ||
        !json_object_is_type(seq, json_type_array) || json_object_array_length(seq) != 2)
        return NULL;
    json_object *a = json_object_array_get_idx(seq, 0), *b = json_object_array_get_idx(seq, 1);
    if (!store_tok_is_type(b, "ByteLevel")) return NULL;
    const char *re = split_regex(a);
    if (re && !store_tok_jbool(b, "use_regex", 1)) {
        if (!strcmp(re, RE_LLAMA3)) return ignore_merges ? "llama-bpe" : "smaug-bpe";
        if (!strcmp(re, RE_QWEN2)) return "qwen2";
        if (!strcmp(re, RE_O200K)) return "gpt-4o";
        return NULL;
    }
    if (store_tok_is_type(a, "Digits") && store_tok_jbool(a, "individual_digits", 0) && store_tok_jbool(b, "use_regex", 1)) return "smollm";
    return NULL;
}

const char *store_detect_pretok(json_object *pre) { return detect(pre, 1); }

/* id of a special-token value (string or {"content": ...}); -1 when absent */
static int64_t token_id(json_object *cfg, const char *key, json_object *vocab, json_object *added) {
    json_object *v;
    if (!cfg || !json_object_object_get_ex(cfg, key, &v) || !v) return -1;
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : store_tok_jstr(v, "content");
    if (!s) return -1;
    size_t n = added ? json_object_array_length(added) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(added, i), *id;
        const char *c = store_tok_jstr(t, "content");
        if (c && !strcmp(c, s) && json_object_object_get_ex(t, "id", &id)) return json_object_get_int64(id);
    }
    json_object *id;
    if (json_object_object_get_ex(vocab, s, &id) && json_object_is_type(id, json_type_int)) return json_object_get_int64(id);
    return -1;
}

static int64_t config_id(json_object *config, const char *key) {
    json_object *v;
    if (!config || !json_object_object_get_ex(config, key, &v) || !v) return -1;
    if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0) v = json_object_array_get_idx(v, 0);
    return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

/* tokenizer.json's post_processor (TemplateProcessing, alone or in a
 * Sequence; BertProcessing / RobertaProcessing: [cls] $A [sep]): whether
 * its "single" template starts / ends with a special token, and which: how
 * Llama 3 style files say "add BOS" when tokenizer_config.json does not. */
void store_tok_template_specials(json_object *pp, int64_t *first, int64_t *last) {
    *first = *last = -1;
    json_object *seq, *single;
    if (store_tok_is_type(pp, "Sequence") && json_object_object_get_ex(pp, "processors", &seq) &&
        json_object_is_type(seq, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(seq); i++) {
            json_object *e = json_object_array_get_idx(seq, i);
            if (store_tok_is_type(e, "TemplateProcessing") || store_tok_is_type(e, "BertProcessing") || store_tok_is_type(e, "RobertaProcessing")) pp = e;
        }
    }
    if (store_tok_is_type(pp, "BertProcessing") || store_tok_is_type(pp, "RobertaProcessing")) { /* "cls": [text, id], "sep": [text, id] */
        json_object *c, *s;
        if (json_object_object_get_ex(pp, "cls", &c) && json_object_is_type(c, json_type_array) && json_object_array_length(c) == 2 &&
            json_object_object_get_ex(pp, "sep", &s) && json_object_is_type(s, json_type_array) && json_object_array_length(s) == 2) {
            *first = json_object_get_int64(json_object_array_get_idx(c, 1));
            *last = json_object_get_int64(json_object_array_get_idx(s, 1));
        }
        return;
    }
    if (!store_tok_is_type(pp, "TemplateProcessing") || !json_object_object_get_ex(pp, "single", &single) ||
        !json_object_is_type(single, json_type_array) || json_object_array_length(single) < 2)
        return;
    json_object *sp, *specials, *e;
    json_object_object_get_ex(pp, "special_tokens", &specials);
    for (int end = 0; end < 2; end++) {
        json_object *item = json_object_array_get_idx(single, end ? json_object_array_length(single) - 1 : 0);
        const char *name = json_object_object_get_ex(item, "SpecialToken", &sp) ? store_tok_jstr(sp, "id") : NULL;
        json_object *ids;
        if (!name || !specials || !json_object_object_get_ex(specials, name, &e) ||
            !json_object_object_get_ex(e, "ids", &ids) || !json_object_is_type(ids, json_type_array) ||
            json_object_array_length(ids) != 1)
            continue;
        *(end ? last : first) = json_object_get_int64(json_object_array_get_idx(ids, 0));
    }
}

static const char *chat_template(json_object *cfg) {
    json_object *v;
    if (!cfg || !json_object_object_get_ex(cfg, "chat_template", &v) || !v) return NULL;
    if (json_object_is_type(v, json_type_string)) return json_object_get_string(v);
    if (!json_object_is_type(v, json_type_array)) return NULL;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *n = store_tok_jstr(e, "name");
        if (n && !strcmp(n, "default")) return store_tok_jstr(e, "template");
    }
    return NULL;
}

/* SentencePiece-BPE from tokenizer.json: <0xNN> vocabulary entries are byte
 * tokens and the model's unk_token is unknown; scores are what GGUF's
 * "llama" model ranks merges by (the merged token with the highest score
 * merges first), so the token a merge of rank r produces scores -(r + 1)
 * (its best rank when several merges make it) and tokens no merge makes
 * score 0. The merges themselves are kept too: our encoder merges only
 * listed pairs when a "llama" vocabulary has them (src/tokenizer/spm.c). */
static int spm_types_scores(gguf_writer *w, json_object *model, json_object *vocab, char **toks, int32_t *types, int64_t n,
                            char *const *merges, size_t n_merges, hl_err *err) {
    float *scores = calloc((size_t)n, sizeof *scores);
    char *tmp = NULL;
    size_t tcap = 0;
    if (!scores) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        const char *t = toks[i];
        if (types[i] == TT_NORMAL && strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>' &&
            strchr("0123456789ABCDEF", t[3]) && strchr("0123456789ABCDEF", t[4]))
            types[i] = TT_BYTE;
    }
    json_object *id;
    const char *unk = store_tok_jstr(model, "unk_token");
    if (unk && json_object_object_get_ex(vocab, unk, &id) && json_object_get_int64(id) < n)
        types[json_object_get_int64(id)] = TT_UNKNOWN;
    for (size_t r = 0; r < n_merges; r++) {
        /* "a b": SentencePiece tokens hold U+2581, never a space */
        const char *m = merges[r], *sp = strchr(m, ' ');
        size_t len = strlen(m);
        if (!sp) continue;
        if (len > tcap) {
            char *p = realloc(tmp, len + 1);
            if (!p) {
                free(tmp);
                free(scores);
                return hl_err_set(err, HL_ENOMEM, "out of memory");
            }
            tmp = p, tcap = len;
        }
        size_t la = (size_t)(sp - m);
        memcpy(tmp, m, la);
        memcpy(tmp + la, sp + 1, len - la); /* with the NUL */
        if (!json_object_object_get_ex(vocab, tmp, &id)) continue;
        int64_t x = json_object_get_int64(id);
        if (x >= 0 && x < n && scores[x] == 0) scores[x] = -(float)(r + 1);
    }
    gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n);
    free(tmp);
    free(scores);
    return HL_OK;
}

/* id of a special token named in tokenizer_config.json among the pieces */
static int64_t piece_id(json_object *cfg, const char *key, const store_spm *m) {
    json_object *v;
    if (!cfg || !json_object_object_get_ex(cfg, key, &v) || !v) return -1;
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : store_tok_jstr(v, "content");
    for (int64_t i = 0; s && i < m->n; i++)
        if (!strcmp(m->pieces[i], s)) return i;
    return -1;
}

/* A directory with a sentencepiece tokenizer.model and no tokenizer.json
 * (BPE: GGUF's "llama"; Unigram: "t5" with the normalizer's charsmap and
 * remove_extra_whitespaces): pieces, scores and types as the model has them (GGUF's types are
 * sentencepiece's), special ids from the trainer spec unless
 * tokenizer_config.json names others, add_space_prefix from the
 * normalizer's add_dummy_prefix. */
static int convert_spm_model(gguf_writer *w, const char *dir, const char *path, json_object *config, int64_t n_vocab,
                             hl_err *err) {
    store_spm m;
    int rc = store_spm_load(path, &m, err);
    if (rc) return rc;
    if (m.model_type != 1 && m.model_type != 2) {
        int t = m.model_type;
        store_spm_free(&m);
        return hl_err_set(err, HL_ENOTSUP,
                          "%s: sentencepiece model type %d is not supported by the converter (supported: 1 Unigram, 2 BPE)", path, t);
    }
    if (m.n > n_vocab) {
        int64_t k = m.n;
        store_spm_free(&m);
        return hl_err_set(err, HL_EINVAL, "tokenizer has %lld tokens but the embeddings have %lld rows", (long long)k,
                          (long long)n_vocab);
    }
    /* the token list covers the embedding rows, as for tokenizer.json */
    char **pp = realloc(m.pieces, (size_t)n_vocab * sizeof *pp);
    if (pp) m.pieces = pp;
    float *ps = pp ? realloc(m.scores, (size_t)n_vocab * sizeof *ps) : NULL;
    if (ps) m.scores = ps;
    int32_t *pt = ps ? realloc(m.types, (size_t)n_vocab * sizeof *pt) : NULL;
    if (pt) m.types = pt;
    for (; pt && m.n < n_vocab; m.n++) {
        char name[32];
        snprintf(name, sizeof name, "[PAD%lld]", (long long)m.n);
        if (!(m.pieces[m.n] = strdup(name))) break;
        m.scores[m.n] = 0;
        m.types[m.n] = TT_UNUSED;
    }
    if (m.n < n_vocab) {
        store_spm_free(&m);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    char p2[4096];
    snprintf(p2, sizeof p2, "%s/tokenizer_config.json", dir);
    json_object *cfg = json_object_from_file(p2);
    int64_t bos = piece_id(cfg, "bos_token", &m), eos = piece_id(cfg, "eos_token", &m);
    int64_t unk = piece_id(cfg, "unk_token", &m), pad = piece_id(cfg, "pad_token", &m);
    if (bos < 0) bos = m.bos >= 0 ? m.bos : config_id(config, "bos_token_id");
    if (eos < 0) eos = m.eos >= 0 ? m.eos : config_id(config, "eos_token_id");
    if (unk < 0) unk = m.unk;
    if (pad < 0) pad = m.pad;
    gguf_set_str(w, "tokenizer.ggml.model", m.model_type == 1 ? "t5" : "llama");
    gguf_set_str(w, "tokenizer.ggml.pre", "default");
    if (m.model_type == 1) {
        if (m.charsmap) gguf_set_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_U8, m.charsmap, m.charsmap_len);
        gguf_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", m.remove_extra_ws);
    }
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)m.pieces, (uint64_t)m.n);
    gguf_set_arr_f32(w, "tokenizer.ggml.scores", m.scores, (uint64_t)m.n);
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", m.types, (uint64_t)m.n);
    if (bos >= 0 && bos < m.n) gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0 && eos < m.n) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (unk >= 0 && unk < m.n) gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    if (pad >= 0 && pad < m.n) gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    /* LlamaTokenizer's defaults: BOS yes, EOS no */
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", store_tok_jbool(cfg, "add_bos_token", 1) && bos >= 0);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", store_tok_jbool(cfg, "add_eos_token", 0) && eos >= 0);
    gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", m.add_dummy_prefix);
    const char *tmpl = chat_template(cfg);
    if (tmpl) gguf_set_str(w, "tokenizer.chat_template", tmpl);
    json_object_put(cfg);
    store_spm_free(&m);
    return HL_OK;
}

/* A Unigram tokenizer.json (T5, XLM-RoBERTa): GGUF's "t5" model. Pieces
 * and scores in id order (added tokens beyond them, gaps padded as unused),
 * unk_id unknown, added special tokens control and the others
 * user-defined; the normalizer and pre-tokenizer as convert_spm.c reads
 * them (charsmap, space prefix, extra whitespace). */
static int convert_unigram(gguf_writer *w, json_object *tj, json_object *model, json_object *cfg, json_object *config,
                           int64_t n_vocab, hl_err *err) {
    json_object *vocab, *added = NULL, *u;
    if (!json_object_object_get_ex(model, "vocab", &vocab) || !json_object_is_type(vocab, json_type_array))
        return hl_err_set(err, HL_EINVAL, "tokenizer.json: Unigram model.vocab is not an array");
    if (store_tok_jbool(model, "byte_fallback", 0))
        return hl_err_set(err, HL_ENOTSUP, "tokenizer.json: Unigram with byte_fallback is not supported by the converter");
    store_ugm_norm nm;
    int rc = store_ugm_detect(tj, &nm, err);
    if (rc) return rc;
    json_object_object_get_ex(tj, "added_tokens", &added);
    if (added && !json_object_is_type(added, json_type_array)) added = NULL;
    int64_t nv = (int64_t)json_object_array_length(vocab), n = n_vocab;
    if (nv > n) {
        free(nm.charsmap);
        return hl_err_set(err, HL_EINVAL, "tokenizer has %lld tokens but the embeddings have %lld rows", (long long)nv,
                          (long long)n_vocab);
    }
    const char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    char (*pad)[24] = calloc((size_t)n, sizeof *pad);
    if (!toks || !scores || !types || !pad) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < nv; i++) {
        json_object *e = json_object_array_get_idx(vocab, (size_t)i);
        json_object *t = json_object_is_type(e, json_type_array) && json_object_array_length(e) == 2
                             ? json_object_array_get_idx(e, 0) : NULL;
        json_object *sc = t ? json_object_array_get_idx(e, 1) : NULL;
        if (!t || !json_object_is_type(t, json_type_string) ||
            !(json_object_is_type(sc, json_type_double) || json_object_is_type(sc, json_type_int))) {
            rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: Unigram vocab entry %lld is not [piece, score]", (long long)i);
            goto out;
        }
        toks[i] = json_object_get_string(t);
        /* the "t5" model segments a text as one word: the same as a split
         * Metaspace unless a piece holds U+2581 after its start */
        if (nm.split_words && toks[i][0] && strstr(toks[i] + 1, "\xe2\x96\x81")) {
            rc = hl_err_set(err, HL_ENOTSUP, "tokenizer.json: Metaspace splits words but piece %lld (\"%.64s\") spans a "
                            "word start; GGUF's t5 tokenizer cannot express that", (long long)i, toks[i]);
            goto out;
        }
        scores[i] = (float)json_object_get_double(sc);
        types[i] = TT_NORMAL;
    }
    for (size_t i = 0; added && i < json_object_array_length(added); i++) {
        json_object *t = json_object_array_get_idx(added, i), *id;
        int64_t x = json_object_object_get_ex(t, "id", &id) ? json_object_get_int64(id) : -1;
        if (x < 0 || x >= n || !store_tok_jstr(t, "content")) {
            rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: added token %zu has no valid id/content (embeddings: %lld rows)", i,
                            (long long)n);
            goto out;
        }
        toks[x] = store_tok_jstr(t, "content");
        types[x] = store_tok_jbool(t, "special", 0) ? TT_CONTROL : TT_USER;
    }
    int64_t unk = json_object_object_get_ex(model, "unk_id", &u) && json_object_is_type(u, json_type_int)
                      ? json_object_get_int64(u) : -1;
    if (unk >= 0 && unk < n) types[unk] = TT_UNKNOWN;
    for (int64_t i = 0; i < n; i++)
        if (!toks[i]) {
            snprintf(pad[i], sizeof pad[i], "[PAD%lld]", (long long)i);
            toks[i] = pad[i];
            types[i] = TT_UNUSED;
        }
    /* special ids by their texts in tokenizer_config.json, else config.json */
    int64_t ids[4];
    static const char *const KEYS[4] = {"bos_token", "eos_token", "pad_token", "cls_token"};
    for (int k = 0; k < 4; k++) {
        ids[k] = -1;
        json_object *v;
        const char *want = cfg && json_object_object_get_ex(cfg, KEYS[k], &v) && v
                               ? (json_object_is_type(v, json_type_string) ? json_object_get_string(v) : store_tok_jstr(v, "content")) : NULL;
        for (int64_t i = 0; want && i < n && ids[k] < 0; i++)
            if (!strcmp(toks[i], want)) ids[k] = i;
    }
    if (ids[0] < 0) ids[0] = config_id(config, "bos_token_id");
    if (ids[1] < 0) ids[1] = config_id(config, "eos_token_id");
    if (ids[2] < 0) ids[2] = config_id(config, "pad_token_id");
    gguf_set_str(w, "tokenizer.ggml.model", "t5");
    gguf_set_str(w, "tokenizer.ggml.pre", "default");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
    gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n);
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    if (nm.charsmap) gguf_set_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_U8, nm.charsmap, nm.charsmap_len);
    gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", nm.add_space_prefix);
    gguf_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", nm.remove_extra_ws);
    if (ids[0] >= 0 && ids[0] < n) gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)ids[0]);
    if (ids[1] >= 0 && ids[1] < n) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)ids[1]);
    if (ids[2] >= 0 && ids[2] < n) gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)ids[2]);
    if (ids[3] >= 0 && ids[3] < n) gguf_set_u32(w, "tokenizer.ggml.cls_token_id", (uint32_t)ids[3]);
    if (unk >= 0 && unk < n) gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    json_object *pp = NULL;
    int64_t first, last;
    json_object_object_get_ex(tj, "post_processor", &pp);
    store_tok_template_specials(pp, &first, &last);
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", store_tok_jbool(cfg, "add_bos_token", first >= 0 && first == ids[0]) && ids[0] >= 0);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", store_tok_jbool(cfg, "add_eos_token", last >= 0 && last == ids[1]) && ids[1] >= 0);
    const char *tmpl = chat_template(cfg);
    if (tmpl) gguf_set_str(w, "tokenizer.chat_template", tmpl);
out:
    free(toks);
    free(scores);
    free(types);
    free(pad);
    free(nm.charsmap);
    return rc;
}

int store_convert_tokenizer(gguf_writer *w, const char *dir, json_object *config, int64_t n_vocab, hl_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *probe = fopen(path, "rb");
    if (probe) fclose(probe);
    else if (snprintf(path, sizeof path, "%s/tokenizer.model", dir), (probe = fopen(path, "rb"))) {
        fclose(probe);
        return convert_spm_model(w, dir, path, config, n_vocab, err);
    } else snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_object *tj = json_object_from_file(path);
    if (!tj) return hl_err_set(err, HL_EINVAL, "%s: missing or not JSON", path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_object *cfg = json_object_from_file(path); /* optional */
    int rc = HL_OK;
    char **toks = NULL, **merges = NULL;
    int32_t *types = NULL;
    size_t n_merges = 0;
    int64_t n = n_vocab;
    json_object *model, *vocab, *mj, *added = NULL, *pre = NULL;
    json_object_object_get_ex(tj, "added_tokens", &added);
    if (added && !json_object_is_type(added, json_type_array)) added = NULL;
    json_object_object_get_ex(tj, "pre_tokenizer", &pre);
    if (!json_object_object_get_ex(tj, "model", &model) || !json_object_is_type(model, json_type_object)) {
        rc = hl_err_set(err, HL_EINVAL, "tokenizer.json has no model object");
        goto done;
    }
    const char *mtype = store_tok_jstr(model, "type");
    if (mtype && !strcmp(mtype, "Unigram")) {
        rc = convert_unigram(w, tj, model, cfg, config, n_vocab, err);
        goto done;
    }
    if (mtype && !strcmp(mtype, "WordPiece")) {
        rc = store_convert_wordpiece(w, tj, cfg, n_vocab, err);
        goto done;
    }
    if (!mtype || strcmp(mtype, "BPE")) {
        rc = hl_err_set(err, HL_ENOTSUP, "tokenizer.json model type '%s' is not supported by the converter (supported: BPE, Unigram, WordPiece)",
                        mtype ? mtype : "(none)");
        goto done;
    }
    /* byte fallback: SentencePiece-BPE, GGUF's "llama" model */
    int spm = store_tok_jbool(model, "byte_fallback", 0), space_prefix = 0, split_words = 0;
    if (spm && (rc = store_spm_detect(tj, &space_prefix, &split_words, err))) goto done;
    const char *pname = spm ? "default" : detect(pre, store_tok_jbool(model, "ignore_merges", 0));
    if (!pname) {
        const char *js = pre ? json_object_to_json_string_ext(pre, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
        rc = hl_err_set(err, HL_ENOTSUP, "tokenizer.json: unknown pre-tokenizer %.300s (known: gpt2, llama-bpe, smaug-bpe, qwen2, gpt-4o, smollm)", js);
        goto done;
    }
    if (!json_object_object_get_ex(model, "vocab", &vocab) || !json_object_is_type(vocab, json_type_object)) {
        rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: model.vocab is not an object");
        goto done;
    }
    /* the token list covers every id used, at least the embedding rows */
    json_object_object_foreach(vocab, k0, v0) {
        (void)k0;
        int64_t id = json_object_get_int64(v0);
        if (!json_object_is_type(v0, json_type_int) || id < 0 || id >= (1 << 24)) {
            rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: vocab id of '%.64s' is not a valid id", k0);
            goto done;
        }
        if (id + 1 > n) n = id + 1;
    }
    for (size_t i = 0; added && i < json_object_array_length(added); i++) {
        json_object *id;
        json_object *t = json_object_array_get_idx(added, i);
        if (!json_object_object_get_ex(t, "id", &id) || !store_tok_jstr(t, "content") || json_object_get_int64(id) < 0 ||
            json_object_get_int64(id) >= (1 << 24)) {
            rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: added token %zu has no valid id/content", i);
            goto done;
        }
        if (json_object_get_int64(id) + 1 > n) n = json_object_get_int64(id) + 1;
    }
    if (n > n_vocab) {
        rc = hl_err_set(err, HL_EINVAL, "tokenizer has %lld tokens but the embeddings have %lld rows", (long long)n,
                        (long long)n_vocab);
        goto done;
    }
    toks = calloc((size_t)n, sizeof *toks);
    types = calloc((size_t)n, sizeof *types);
    if (!toks || !types) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto done;
    }
    json_object_object_foreach(vocab, k, v) {
        int64_t id = json_object_get_int64(v);
        toks[id] = (char *)k;
        types[id] = TT_NORMAL;
    }
    for (size_t i = 0; added && i < json_object_array_length(added); i++) {
        json_object *t = json_object_array_get_idx(added, i), *id;
        json_object_object_get_ex(t, "id", &id);
        int64_t x = json_object_get_int64(id);
        toks[x] = (char *)store_tok_jstr(t, "content");
        types[x] = store_tok_jbool(t, "special", 0) ? TT_CONTROL : TT_USER;
    }
    char (*pad)[24] = calloc((size_t)n, sizeof *pad);
    if (!pad) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (!toks[i]) {
            snprintf(pad[i], sizeof pad[i], "[PAD%lld]", (long long)i);
            toks[i] = pad[i];
            types[i] = TT_UNUSED;
        }
    /* merges: "a b" strings (older files) or ["a", "b"] pairs */
    if (json_object_object_get_ex(model, "merges", &mj) && json_object_is_type(mj, json_type_array)) {
        n_merges = json_object_array_length(mj);
        merges = calloc(n_merges ? n_merges : 1, sizeof *merges);
        for (size_t i = 0; merges && i < n_merges; i++) {
            json_object *m = json_object_array_get_idx(mj, i);
            if (json_object_is_type(m, json_type_string)) merges[i] = strdup(json_object_get_string(m));
            else if (json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2) {
                const char *a = json_object_get_string(json_object_array_get_idx(m, 0));
                const char *b = json_object_get_string(json_object_array_get_idx(m, 1));
                size_t la = strlen(a), lb = strlen(b);
                if ((merges[i] = malloc(la + lb + 2))) {
                    memcpy(merges[i], a, la);
                    merges[i][la] = ' ';
                    memcpy(merges[i] + la + 1, b, lb + 1);
                }
            } else {
                rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: merge %zu is neither \"a b\" nor [a, b]", i);
                break;
            }
            if (!merges[i] && rc == HL_OK) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        }
        if (!merges && rc == HL_OK) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    /* GGUF's "llama" model encodes the text as one word: the same as a
     * Metaspace that splits at each U+2581 unless a merge joins across that
     * cut (its right part starting with U+2581) */
    for (size_t i = 0; rc == HL_OK && spm && split_words && i < n_merges; i++) {
        const char *sp = merges[i] && merges[i][0] ? strchr(merges[i] + 1, ' ') : NULL;
        if (sp && !strncmp(sp + 1, "\xe2\x96\x81", 3))
            rc = hl_err_set(err, HL_ENOTSUP,
                            "tokenizer.json: Metaspace splits words but merge %zu (\"%.64s\") joins across a word start; "
                            "GGUF's llama tokenizer cannot express that", i, merges[i]);
    }
    if (rc == HL_OK && spm) rc = spm_types_scores(w, model, vocab, toks, types, n, merges, n_merges, err);
    if (rc == HL_OK) {
        gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
        gguf_set_str(w, "tokenizer.ggml.pre", pname);
        if (spm) gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix);
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n);
        gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
        gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, n_merges);
        int64_t bos = token_id(cfg, "bos_token", vocab, added), eos = token_id(cfg, "eos_token", vocab, added);
        int64_t padid = token_id(cfg, "pad_token", vocab, added), unk = token_id(cfg, "unk_token", vocab, added);
        if (bos < 0) bos = config_id(config, "bos_token_id");
        if (eos < 0) eos = config_id(config, "eos_token_id");
        if (bos >= 0 && bos < n) gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
        if (eos >= 0 && eos < n) gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
        if (padid >= 0 && padid < n) gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)padid);
        if (unk >= 0 && unk < n) gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
        json_object *pp = NULL;
        int64_t first, last;
        json_object_object_get_ex(tj, "post_processor", &pp);
        store_tok_template_specials(pp, &first, &last);
        int add_bos = store_tok_jbool(cfg, "add_bos_token", first >= 0 && first == bos);
        int add_eos = store_tok_jbool(cfg, "add_eos_token", last >= 0 && last == eos);
        gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos && bos >= 0);
        gguf_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos && eos >= 0);
        const char *tmpl = chat_template(cfg);
        if (tmpl) gguf_set_str(w, "tokenizer.chat_template", tmpl);
    }
    /* the writer copied the strings */
    free(pad);
done:
    for (size_t i = 0; merges && i < n_merges; i++) free(merges[i]);
    free(merges);
    free(toks);
    free(types);
    json_object_put(cfg);
    json_object_put(tj);
    return rc;
}
