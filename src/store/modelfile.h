/* Modelfiles, Ollama's recipe format:
 *
 *   # comment
 *   FROM llama3.2            (a store model, or a GGUF path relative to the file)
 *   PARAMETER temperature 0.7
 *   PARAMETER stop "<|eot_id|>"
 *   TEMPLATE """{{ .Prompt }}"""
 *   SYSTEM You are terse.
 *   MESSAGE user Hello
 *   LICENSE """..."""
 *   ADAPTER ./lora.gguf      (parsed; create refuses it: not supported yet)
 *
 * Instructions are case-insensitive. A value runs to the end of the line, or
 * is quoted "..." (one line, \" and \\ escapes) or """...""" (any lines).
 * Parameters are checked against the keys Ollama accepts, with their types;
 * deprecated keys are accepted with a warning. Part of the store module. */
#ifndef HL_STORE_MODELFILE_H
#define HL_STORE_MODELFILE_H

#include "base/err.h"

#include <stddef.h>

typedef enum store_mf_kind {
    STORE_MF_FROM, STORE_MF_PARAMETER, STORE_MF_TEMPLATE, STORE_MF_SYSTEM,
    STORE_MF_MESSAGE, STORE_MF_LICENSE, STORE_MF_ADAPTER,
} store_mf_kind;

typedef struct store_mf_cmd {
    store_mf_kind kind;
    char *key;   /* PARAMETER name (lowercase) or MESSAGE role; NULL otherwise */
    char *value; /* unquoted */
    int line;    /* 1-based, 0 when built in memory */
} store_mf_cmd;

typedef struct store_modelfile {
    store_mf_cmd *cmds;
    size_t n, cap;
} store_modelfile;

#define STORE_MODELFILE_MAX (32 << 20)

/* Parses text; errors say "line N: ...". Needs exactly one FROM. */
int store_modelfile_parse(const char *text, size_t len, store_modelfile *out, hl_err *err);
/* Like parse, without the FROM requirement (for fuzzing and partial files). */
int store_modelfile_parse_loose(const char *text, size_t len, store_modelfile *out, hl_err *err);
/* The text form; parse(format(x)) gives x back. Caller frees. NULL on OOM. */
char *store_modelfile_format(const store_modelfile *mf);
int store_modelfile_add(store_modelfile *mf, store_mf_kind kind, const char *key, const char *value, hl_err *err);
void store_modelfile_free(store_modelfile *mf);
int store_modelfile_equal(const store_modelfile *a, const store_modelfile *b);

/* Parameters. deprecated is set when the key is accepted only for
 * compatibility (it has no effect here). */
int store_param_check(const char *key, const char *value, int *deprecated, hl_err *err);
/* All PARAMETER lines as a JSON object (typed values; repeated "stop" keys
 * become an array). warn (may be NULL) gets a message per deprecated key.
 * Caller frees *json (NULL when there are no parameters). */
int store_params_json(const store_modelfile *mf, char **json, void (*warn)(void *, const char *), void *warn_ctx,
                      hl_err *err);
/* Appends PARAMETER lines for a params JSON object (show --modelfile). */
int store_params_from_json(const char *json, store_modelfile *mf, hl_err *err);
/* Appends MESSAGE lines for a messages JSON array. */
int store_messages_from_json(const char *json, store_modelfile *mf, hl_err *err);

#endif
