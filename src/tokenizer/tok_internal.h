/* Internals shared by the tokenizer's files: the tok_vocab layout, its hash
 * maps, and the per-algorithm encoders. Not part of the public interface. */
#ifndef HL_TOK_INTERNAL_H
#define HL_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#define TOK_MAX_REGEX 8
#define TOK_MAX_TEXT_BYTES ((size_t)1 << 30) /* refuse inputs over 1 GiB */

struct tok_vocab {
    tok_kind kind;
    char pre[64];                 /* effective pre-tokenizer name */
    int32_t n;                    /* number of tokens */
    char *blob;                   /* all token texts, each NUL-terminated */
    uint32_t *off, *len;          /* [n] text of token i = blob + off[i], len[i] bytes */
    float *score;                 /* [n] SPM scores (0 when absent) */
    uint8_t *type;                /* [n] TOK_TYPE_* */
    uint8_t *eog;                 /* [n] nonzero: ends generation */
    uint8_t *rstrip;              /* [n] nonzero: a special token that swallows the spaces after it (phi-3) */
    uint64_t *slots;              /* text hash: (hash << 32) | (token id + 1), 0 = empty */
    uint32_t mask;                /* slots size - 1 */
    size_t max_len;               /* longest token text in bytes */

    /* byte-level BPE merges: (left id, right id) -> rank and result id */
    uint64_t *mkeys;              /* key + 1 never 0: stored as ((l << 32) | r) + 1 */
    int32_t *mrank, *mres;
    uint32_t mmask;
    int ignore_merges;            /* a whole pre-token in the vocab is emitted as is */

    /* pre-tokenizer regexes (pcre2_code *), applied one after another */
    void *re[TOK_MAX_REGEX];
    int n_re;

    int32_t bos, eos, eot, unk, pad, sep, cls, mask_id;
    int32_t fim_pre, fim_suf, fim_mid; /* fill-in-the-middle; all -1 when the model has none */
    int add_bos, add_eos, add_space_prefix;

    int32_t byte_tok[256];        /* SPM: <0xNN>; BPE: the token of one mapped byte; -1 none */
    uint16_t byte_cp[256];        /* BPE: byte -> code point of the GPT-2 byte alphabet */
    int16_t cp_byte[512];         /* inverse for code points < 512; -1 = not in the alphabet */

    /* Unigram (ugm.c): the precompiled charsmap blob and its parts */
    uint8_t *charsmap;            /* NULL: no charsmap */
    uint32_t trie_units;
    const char *charsmap_strs;    /* into charsmap */
    size_t charsmap_strs_n;
    float min_score;              /* lowest normal piece score (<unk> scores it minus 10) */
    int remove_extra_ws;

    int32_t *specials;            /* control/user-defined/unknown ids by first byte, longest first */
    int32_t n_specials;
    int32_t spec_start[257];      /* specials[spec_start[b] .. spec_start[b+1]) start with byte b */
};

/* FNV-1a with a final avalanche: raw FNV's low bits cluster on the many
 * vocabulary strings that share prefixes, and linear probing suffers. The
 * raw state extends byte by byte (tok_fnv_step), so a caller that looks up
 * every prefix of a string hashes each byte once (the Unigram segmenter). */
#define TOK_FNV_INIT 2166136261u
static inline uint32_t tok_fnv_step(uint32_t h, unsigned char c) { return (h ^ c) * 16777619u; }
static inline uint32_t tok_hash_final(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}
static inline uint32_t tok_hash(const char *s, size_t n) {
    uint32_t h = TOK_FNV_INIT;
    for (size_t i = 0; i < n; i++) h = tok_fnv_step(h, (unsigned char)s[i]);
    return tok_hash_final(h);
}

int32_t tok_lookup(const tok_vocab *v, const char *s, size_t n);
/* The same with the hash already computed (load-time pipelines prefetch with it). */
int32_t tok_lookup_h(const tok_vocab *v, const char *s, size_t n, uint32_t h);
/* Rank and result of merging two token ids, or -1 when they do not merge. */
int32_t tok_merge_rank(const tok_vocab *v, int32_t l, int32_t r, int32_t *res);

/* A growable id list (encoders append to it). */
typedef struct tok_ids {
    int32_t *p;
    size_t n, cap;
    int oom;
} tok_ids;
void tok_ids_push(tok_ids *o, int32_t id);

/* Encoders for one run of raw text (no special tokens inside). */
int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err);
int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err);
int tok_wpm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err);
int tok_ugm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out, hl_err *err);
/* Unigram setup after the pieces are loaded: min_score, and a copy of the
 * charsmap blob (may be NULL) checked for a trie size that fits. */
int tok_ugm_init(tok_vocab *v, const uint8_t *charsmap, size_t n, hl_err *err);

/* Pre-tokenizer setup for byte-level BPE (pretok.c). */
int tok_pretok_init(tok_vocab *v, const char *pre_name, hl_err *err);
void tok_pretok_free(tok_vocab *v);
/* Splits text into pieces; calls fn for each (offsets into text). */
typedef int (*tok_piece_fn)(void *ctx, const char *s, size_t n);
int tok_pretok_split(const tok_vocab *v, const char *text, size_t len, tok_piece_fn fn, void *ctx,
                     hl_err *err);

#endif
