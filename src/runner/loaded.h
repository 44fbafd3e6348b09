/* A loaded model: everything a runner needs from one GGUF file — the weights
 * (model/), the tokenizer, and the chat template — opened together, immutable
 * afterwards and shareable between threads. Rendering a conversation with the
 * template is runner/prompt.h's. */
#ifndef HL_RUNNER_LOADED_H
#define HL_RUNNER_LOADED_H

#include "base/err.h"
#include "chat/chat.h"
#include "chat/outparse.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct hl_loaded {
    hl_model *model;
    tok_vocab *tok;
    chat_template *tmpl;  /* NULL when the file has no (usable) chat template */
    char *tmpl_src;       /* tokenizer.chat_template as a C string, or NULL */
    char *tmpl_error;     /* why tmpl is NULL although tmpl_src is set, or NULL */
    chat_outparse_cfg outparse; /* the output family tmpl_src writes (chat_outparse_detect, once;
                                   all zero without a template): tools format, thinking markers, harmony */
    char *path;
    int64_t load_ns;
} hl_loaded;

int hl_loaded_open(hl_loaded **out, const char *path, hl_err *err);
void hl_loaded_free(hl_loaded *lm);
/* Sets the chat template from its source (replacing any): parsed into tmpl
 * (or the reason into tmpl_error) and its output family detected. Opening
 * calls it; afterwards lm is not changed (tests swap templates with it).
 * HL_ENOMEM is the only error: a template that does not parse is tmpl_error. */
int hl_loaded_set_template(hl_loaded *lm, const char *src, size_t len);

/* Tokenizes a prompt the way generation wants it: special-token texts parsed,
 * BOS added when the model asks for it unless the text already starts with
 * the BOS token's text (templates often write it themselves). */
int hl_loaded_tokenize_prompt(const hl_loaded *lm, const char *text, int32_t **ids, size_t *n_ids, hl_err *err);

#endif
