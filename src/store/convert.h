/* Hugging Face checkpoint directory -> GGUF (convert.c: config.json and the
 * SafeTensors weights; convert_tok.c: tokenizer.json and
 * tokenizer_config.json). Used by `create` for `FROM ./dir`. */
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

/* The tokenizer.ggml.pre name for a tokenizer.json "pre_tokenizer" object,
 * or NULL when it is not one we know. */
const char *store_detect_pretok(json_object *pre);

#endif
