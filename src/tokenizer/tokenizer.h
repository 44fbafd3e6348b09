/* Tokenizers built from GGUF metadata: SentencePiece-style ("llama": scores,
 * byte fallback, add_space_prefix), byte-level BPE ("gpt2": ranked merges and
 * the regex pre-tokenizer named by tokenizer.ggml.pre), WordPiece ("bert")
 * and Unigram ("t5": Viterbi over piece scores after the precompiled
 * charsmap normalization).
 * A tok_vocab is immutable after tok_load and may be shared by threads; it
 * copies everything it needs, so the gguf_file may be closed afterwards.
 *
 * Token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control,
 * 4 user-defined, 5 unused, 6 byte. Special ids stored as 0xFFFFFFFF (or
 * absent) mean "none" and are reported as -1. */
#ifndef HL_TOKENIZER_H
#define HL_TOKENIZER_H

#include "base/err.h"
#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tok_vocab tok_vocab;

enum {
    TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6,
};

typedef enum tok_kind { TOK_KIND_SPM = 1, TOK_KIND_BPE = 2, TOK_KIND_WPM = 3, TOK_KIND_UGM = 4 } tok_kind;

/* ---- loading ---- */
/* Reads tokenizer.ggml.* from f. Unknown pre-tokenizer names fall back to
 * gpt2 with a logged warning; an unsupported model kind is HL_ENOTSUP. */
int tok_load(tok_vocab **out, const gguf_file *f, hl_err *err);
void tok_free(tok_vocab *v);

/* ---- vocabulary facts ---- */
int32_t tok_n_vocab(const tok_vocab *v);
tok_kind tok_get_kind(const tok_vocab *v);
const char *tok_pre_name(const tok_vocab *v); /* effective pre-tokenizer ("default" for SPM/WPM) */
int32_t tok_bos(const tok_vocab *v);          /* -1 = none */
int32_t tok_eos(const tok_vocab *v);
int32_t tok_eot(const tok_vocab *v);
/* Fill-in-the-middle: the prefix, suffix and middle tokens (GGUF keys, else
 * found by their texts for the known code-model families); returns 0 and
 * sets -1s when the model has none. */
int tok_fim(const tok_vocab *v, int32_t ids[3]);
int32_t tok_unk(const tok_vocab *v);
int32_t tok_pad(const tok_vocab *v);
int tok_add_bos(const tok_vocab *v); /* the model asks for BOS at the start */
int tok_add_eos(const tok_vocab *v);
/* End of generation: eos, eot, and tokens the vocab marks or that are
 * conventionally end-of-turn (<|im_end|>, <|endoftext|>, <end_of_turn>,
 * <|eot_id|>, <|end|>, ...). */
int tok_is_eog(const tok_vocab *v, int32_t id);
int tok_is_control(const tok_vocab *v, int32_t id);
int tok_type(const tok_vocab *v, int32_t id); /* TOK_TYPE_*, 0 if id out of range */
const char *tok_text(const tok_vocab *v, int32_t id); /* raw vocab string; NULL if out of range */
int32_t tok_find(const tok_vocab *v, const char *text, size_t len); /* -1 if none */

/* ---- encoding ---- */
/* Text (any bytes; invalid UTF-8 is byte-fallback'd or replaced, never a
 * crash) to ids in a malloc'ed array the caller frees. add_special: BOS/EOS
 * per the model's flags (and [CLS]/[SEP] for bert). parse_special:
 * control and user-defined token texts in the input become their single ids
 * (user-defined tokens are always matched, as the model asks). */
int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_special, int parse_special,
               int32_t **ids, size_t *n_ids, hl_err *err);

/* ---- decoding ---- */
/* Bytes of one token written to buf (at most cap, no NUL added); returns the
 * full length (so a return > cap means truncated) or a negative HL_E* code
 * for a bad id. SPM '▁' becomes ' ', <0xNN> the byte, byte-level BPE symbols
 * their bytes. Control tokens render as empty unless render_special. */
int tok_piece(const tok_vocab *v, int32_t id, char *buf, size_t cap);
int tok_piece_ex(const tok_vocab *v, int32_t id, int render_special, char *buf, size_t cap);

/* Whole-sequence detokenization into a malloc'ed NUL-terminated string.
 * Removes the leading space that add_space_prefix inserted (SPM) when the
 * sequence starts at the beginning of the text (after an optional BOS). */
int tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, int render_special, char **out,
               size_t *out_len, hl_err *err);

/* Streaming decoder: push ids one at a time and get back only bytes that
 * complete UTF-8 characters, so a character spanning tokens (byte tokens,
 * split byte-level symbols) is emitted once whole. Invalid sequences are
 * passed through when it is clear they can never complete. */
typedef struct tok_stream {
    const tok_vocab *v; /* borrowed */
    int render_special;
    int at_start;       /* nothing but BOS/control seen yet: SPM leading space rule */
    char pend[8];       /* incomplete UTF-8 tail carried to the next push */
    size_t n_pend;
} tok_stream;

void tok_stream_init(tok_stream *s, const tok_vocab *v, int render_special);
/* Continues a text that ids[0..n) began (a prompt, whose text the caller
 * already has): after any token with text, the leading-space rule is spent,
 * so the first pushed token keeps its space, and prompt text + pushed text
 * equals tok_decode of the whole. Call right after tok_stream_init. */
void tok_stream_prime(tok_stream *s, const int32_t *ids, size_t n);
/* Writes complete bytes for id into out (cap >= tok_stream_bound(v) is always
 * enough); returns the byte count or a negative HL_E* code for a bad id. */
int tok_stream_push(tok_stream *s, int32_t id, char *out, size_t cap);
/* Returns what is still pending (an incomplete character at the end). */
int tok_stream_flush(tok_stream *s, char *out, size_t cap);
size_t tok_stream_bound(const tok_vocab *v);

#endif
