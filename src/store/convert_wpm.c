/* A WordPiece tokenizer.json (BERT, MiniLM, bge: model "WordPiece",
 * BertNormalizer, BertPreTokenizer) -> GGUF's "bert" tokenizer model as
 * src/tokenizer/wpm.c runs it, the vocabulary spelled as llama.cpp's
 * converter spells it: word-initial pieces get a U+2581 prefix,
 * continuations lose the continuing_subword_prefix ("##"), control tokens
 * (tokenizer.json's special added tokens) stay as they are. Ids are the
 * vocab's, gaps up to the embedding rows padded as unused. CLS / SEP (from
 * tokenizer_config.json, else "[CLS]" / "[SEP]") are written as bos / eos
 * too, which is how the encoder adds them; add_bos / add_eos say whether
 * the post_processor's template wraps a text in them. Our tokenizer
 * lowercases and strips accents and splits like BertPreTokenizer: a
 * cased normalizer, or another normalizer / pre-tokenizer, is refused by
 * name rather than tokenized differently. */
#include "store/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

/* a flag that must be (absent or) the value our tokenizer implements;
 * null counts as absent (strip_accents: null follows lowercase) */
static int want_flag(json_object *o, const char *key, int want, hl_err *err) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v) return HL_OK;
    if (json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v) == want) return HL_OK;
    return hl_err_set(err, HL_ENOTSUP, "tokenizer.json: BertNormalizer %s %s is not supported (ours: %s)", key,
                      json_object_to_json_string(v), want ? "true" : "false");
}

static int check_pipeline(json_object *tj, hl_err *err) {
    json_object *norm = NULL, *pre = NULL;
    json_object_object_get_ex(tj, "normalizer", &norm);
    json_object_object_get_ex(tj, "pre_tokenizer", &pre);
    int rc;
    if (!store_tok_is_type(norm, "BertNormalizer")) {
        const char *js = norm ? json_object_to_json_string_ext(norm, JSON_C_TO_STRING_PLAIN) : "null";
        return hl_err_set(err, HL_ENOTSUP, "tokenizer.json: WordPiece with normalizer %.200s is not supported (BertNormalizer)", js);
    }
    json_object *lc;
    if (!json_object_object_get_ex(norm, "lowercase", &lc) || !json_object_get_boolean(lc))
        return hl_err_set(err, HL_ENOTSUP, "tokenizer.json: BertNormalizer lowercase false (a cased vocabulary) is not supported");
    if ((rc = want_flag(norm, "strip_accents", 1, err)) || (rc = want_flag(norm, "clean_text", 1, err)) ||
        (rc = want_flag(norm, "handle_chinese_chars", 1, err)))
        return rc;
    if (!store_tok_is_type(pre, "BertPreTokenizer")) {
        const char *js = pre ? json_object_to_json_string_ext(pre, JSON_C_TO_STRING_PLAIN) : "null";
        return hl_err_set(err, HL_ENOTSUP, "tokenizer.json: WordPiece with pre_tokenizer %.200s is not supported (BertPreTokenizer)", js);
    }
    return HL_OK;
}

/* a special token's id: its text from tokenizer_config.json (else dflt) looked up among the tokens */
static int64_t special_id(json_object *tok_cfg, const char *key, const char *dflt, json_object *vocab) {
    json_object *v, *id;
    const char *s = dflt;
    if (tok_cfg && json_object_object_get_ex(tok_cfg, key, &v) && v)
        s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : store_tok_jstr(v, "content");
    if (s && json_object_object_get_ex(vocab, s, &id) && json_object_is_type(id, json_type_int)) return json_object_get_int64(id);
    return -1;
}

int store_convert_wordpiece(gguf_writer *w, json_object *tj, json_object *tok_cfg, int64_t n_vocab, hl_err *err) {
    json_object *model, *vocab, *added = NULL;
    if (!json_object_object_get_ex(tj, "model", &model) || !json_object_object_get_ex(model, "vocab", &vocab) ||
        !json_object_is_type(vocab, json_type_object))
        return hl_err_set(err, HL_EINVAL, "tokenizer.json: WordPiece model.vocab is not an object");
    int rc = check_pipeline(tj, err);
    if (rc) return rc;
    const char *cont = store_tok_jstr(model, "continuing_subword_prefix");
    if (!cont) cont = "##";
    size_t cl = strlen(cont);
    json_object_object_get_ex(tj, "added_tokens", &added);
    if (added && !json_object_is_type(added, json_type_array)) added = NULL;
    int64_t n = n_vocab;
    json_object_object_foreach(vocab, k0, v0) {
        int64_t id = json_object_get_int64(v0);
        if (!json_object_is_type(v0, json_type_int) || id < 0 || id >= n)
            return hl_err_set(err, HL_EINVAL, "tokenizer.json: vocab id of '%.64s' is not below the %lld embedding rows", k0,
                              (long long)n);
    }
    char **toks = calloc((size_t)n, sizeof *toks);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!toks || !types) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; added && i < json_object_array_length(added); i++) {
        json_object *t = json_object_array_get_idx(added, i), *id;
        int64_t x = json_object_object_get_ex(t, "id", &id) && json_object_is_type(id, json_type_int) ? json_object_get_int64(id) : -1;
        const char *c = store_tok_jstr(t, "content");
        if (x < 0 || x >= n || !c) {
            rc = hl_err_set(err, HL_EINVAL, "tokenizer.json: added token %zu has no valid id/content (embeddings: %lld rows)", i,
                            (long long)n);
            goto out;
        }
        if (!(toks[x] = strdup(c))) {
            rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            goto out;
        }
        types[x] = json_object_object_get_ex(t, "special", &id) && json_object_get_boolean(id) ? TT_CONTROL : TT_USER;
    }
    json_object_object_foreach(vocab, k, v) {
        int64_t id = json_object_get_int64(v);
        if (toks[id]) continue; /* an added token: its own spelling */
        size_t kl = strlen(k);
        int sub = cl && kl >= cl && !strncmp(k, cont, cl);
        char *s = malloc(kl + 4);
        if (!s) {
            rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            goto out;
        }
        if (sub) memcpy(s, k + cl, kl - cl + 1);
        else memcpy(s, "\xe2\x96\x81", 3), memcpy(s + 3, k, kl + 1);
        toks[id] = s;
        types[id] = TT_NORMAL;
    }
    for (int64_t i = 0; i < n; i++)
        if (!toks[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
            if (!(toks[i] = strdup(pad))) {
                rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                goto out;
            }
            types[i] = TT_UNUSED;
        }
    int64_t cls = special_id(tok_cfg, "cls_token", "[CLS]", vocab), sep = special_id(tok_cfg, "sep_token", "[SEP]", vocab);
    int64_t unk = special_id(NULL, "", store_tok_jstr(model, "unk_token"), vocab), pad = special_id(tok_cfg, "pad_token", "[PAD]", vocab);
    int64_t mask = special_id(tok_cfg, "mask_token", "[MASK]", vocab);
    json_object *pp = NULL;
    int64_t first, last;
    json_object_object_get_ex(tj, "post_processor", &pp);
    store_tok_template_specials(pp, &first, &last);
    gguf_set_str(w, "tokenizer.ggml.model", "bert");
    gguf_set_str(w, "tokenizer.ggml.pre", "default");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n);
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    gguf_set_bool(w, "tokenizer.ggml.normalizer.lowercase", 1); /* the only kind accepted above */
    if (cls >= 0) {
        gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)cls);
        gguf_set_u32(w, "tokenizer.ggml.cls_token_id", (uint32_t)cls);
    }
    if (sep >= 0) {
        gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)sep);
        gguf_set_u32(w, "tokenizer.ggml.seperator_token_id", (uint32_t)sep); /* GGUF's spelling */
    }
    if (unk >= 0) gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    if (pad >= 0) gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    if (mask >= 0) gguf_set_u32(w, "tokenizer.ggml.mask_token_id", (uint32_t)mask);
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", cls >= 0 && first == cls);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", sep >= 0 && last == sep);
out:
    for (int64_t i = 0; toks && i < n; i++) free(toks[i]);
    free(toks);
    free(types);
    return rc;
}
