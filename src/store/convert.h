/* Hugging Face checkpoint directory -> GGUF (convert.c: config.json and the
 * SafeTensors weights, convert_enc.c the encoders; convert_tok.c and
 * convert_wpm.c: tokenizer.json and tokenizer_config.json). Used by `create` for `FROM ./dir`. */
#ifndef HL_STORE_CONVERT_H
#define HL_STORE_CONVERT_H

#include "base/err.h"
#include "gguf/gguf.h"
#include "store/store.h"

#include <json-c/json.h>

/* Converts dir into a GGUF file at out_path (written atomically; nothing is
 * left at out_path on error). Progress goes through ops. */
int store_convert_hf(const char *dir, const char *out_path, const store_ops *ops, hl_err *err);

/* Sets tokenizer.ggml.* (and tokenizer.chat_template) from dir's
 * tokenizer.json / tokenizer_config.json. config (config.json, may be NULL)
 * supplies bos/eos ids when tokenizer_config.json has none. n_vocab is the
 * embedding rows; the token list is padded to it. */
int store_convert_tokenizer(gguf_writer *w, const char *dir, json_object *config, int64_t n_vocab, hl_err *err);

/* tokenizer.json's small accessors (convert_tok.c), shared by the tokenizer
 * converters: a string member or NULL; a boolean member or dflt (a member
 * of another type is dflt too); whether o's "type" is type. */
const char *store_tok_jstr(json_object *o, const char *key);
int store_tok_jbool(json_object *o, const char *key, int dflt);
int store_tok_is_type(json_object *o, const char *type);
/* tokenizer.json's post_processor: the ids of the special tokens its
 * single-sequence template starts and ends with (-1: none). */
void store_tok_template_specials(json_object *pp, int64_t *first, int64_t *last);

/* A WordPiece tokenizer.json (BERT's: BertNormalizer lowercasing,
 * BertPreTokenizer) as GGUF's "bert" model (convert_wpm.c); tok_cfg is
 * tokenizer_config.json (may be NULL). */
int store_convert_wordpiece(gguf_writer *w, json_object *tj, json_object *tok_cfg, int64_t n_vocab, hl_err *err);

/* The tokenizer.ggml.pre name for a tokenizer.json "pre_tokenizer" object,
 * or NULL when it is not one we know. */
const char *store_detect_pretok(json_object *pre);

/* ---- SentencePiece (convert_spm.c) ---- */

/* Whether tokenizer.json tj (model BPE with byte_fallback) splits and marks
 * spaces as SentencePiece does (Metaspace, or Prepend/Replace normalizers),
 * whether it prefixes a space, and whether its Metaspace cuts words before
 * each U+2581 (split); HL_ENOTSUP naming the part otherwise. */
int store_spm_detect(json_object *tj, int *add_space_prefix, int *split_words, hl_err *err);

/* A Unigram tokenizer.json's normalization as GGUF's "t5" model keys say
 * it: a Precompiled normalizer's charsmap (decoded from base64; malloc'ed,
 * the caller frees), Strip / Replace(" {2,}") as remove_extra_whitespaces,
 * and the Metaspace pre-tokenizer's prefix. Anything else: HL_ENOTSUP. */
typedef struct store_ugm_norm {
    uint8_t *charsmap;
    size_t charsmap_len;
    int add_space_prefix, remove_extra_ws;
    int split_words; /* the Metaspace cuts words before each U+2581 */
} store_ugm_norm;
int store_ugm_detect(json_object *tj, store_ugm_norm *out, hl_err *err);

/* A sentencepiece ModelProto (tokenizer.model). Types are sentencepiece's,
 * which GGUF's token types equal: 1 normal, 2 unknown, 3 control,
 * 4 user-defined, 5 unused, 6 byte. */
typedef struct store_spm {
    char **pieces;
    float *scores;
    int32_t *types;
    int64_t n, cap;
    int model_type;           /* 1 unigram, 2 bpe, 3 word, 4 char */
    int byte_fallback;
    int32_t unk, bos, eos, pad; /* -1: none */
    int add_dummy_prefix, remove_extra_ws;
    uint8_t *charsmap;        /* normalizer_spec.precompiled_charsmap, may be NULL */
    size_t charsmap_len;
} store_spm;

/* Parses n bytes; on error nothing is left to free. */
int store_spm_parse(const uint8_t *data, size_t n, store_spm *m, hl_err *err);
int store_spm_load(const char *path, store_spm *m, hl_err *err);
void store_spm_free(store_spm *m);

#endif
