/* Grammar-constrained decoding: what text a sequence may generate, and the
 * per-step vocabulary mask that enforces it.
 *
 * Three pieces, used in this order:
 *
 *   1. A grammar (hl_grammar), compiled from GBNF text (llama.cpp's notation:
 *      `name ::= alternatives`, "literals", [classes], ( ), * + ? {m,n}, #
 *      comments; the start rule is `root`) or from a JSON Schema
 *      (hl_grammar_from_json_schema, which renders the schema to GBNF first:
 *      hl_json_schema_to_gbnf shows that text). Immutable after compilation;
 *      shared read-only by every sequence that uses it.
 *   2. A vocabulary index (hl_grammar_vocab): every token's bytes (byte-level
 *      BPE symbols and SentencePiece pieces with their ▁ spaces and <0xNN>
 *      byte tokens decoded) sorted so that tokens sharing a prefix are tested
 *      once, sorted again by byte classes so that tokens spelled alike
 *      (inside a string: most of them) are tested once, plus which tokens
 *      end generation. Built once per tokenizer (on Qwen2.5-Coder's 151k
 *      vocabulary ~70 ms and ~8 MB, bitmaps of its 28 largest same-spelling
 *      groups included), refcounted, read-only afterwards.
 *   3. A logits processor (hl_grammar_proc_new, an hl_logits_proc of
 *      sample/sample.h): one sequence's parse state (a set of pushdown
 *      stacks over code points, UTF-8 aware, so a token may end inside a
 *      character), advanced by each accepted token; before each sample it
 *      bans every token whose bytes cannot continue a valid text. End of
 *      generation is allowed exactly when the text so far is complete;
 *      control tokens never are. Masks are cached per parse state.
 *
 * The recognizer keeps every parse alive at once (no backtracking), so it
 * refuses left-recursive rules at compilation ("rule x is left-recursive")
 * and bounds the number of simultaneous parses (HL_GRAMMAR_MAX_STACKS): a
 * grammar so ambiguous that it exceeds that bans everything rather than
 * let unconstrained text through. */
#ifndef HL_GRAMMAR_H
#define HL_GRAMMAR_H

#include "base/buf.h"
#include "base/err.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#define HL_GRAMMAR_MAX_TEXT (1 << 20)    /* bytes of GBNF text */
#define HL_GRAMMAR_MAX_ELEMS (1 << 21)   /* elements after repetitions are expanded */
#define HL_GRAMMAR_MAX_REPEAT 10000      /* m and n of {m,n} */
#define HL_GRAMMAR_MAX_NESTING 200       /* parentheses, and schema nesting */
#define HL_GRAMMAR_MAX_STACKS 1024       /* simultaneous parses of one sequence */

typedef struct hl_grammar hl_grammar;

/* ---- compiling ------------------------------------------------------------- */

/* GBNF text (not NUL-terminated necessarily) to a grammar whose start rule is
 * `root`. Errors name the line and column ("grammar:3:14: expected ::=").
 * The caller frees with hl_grammar_free. */
int hl_grammar_parse(hl_grammar **out, const char *text, size_t n, hl_err *err);
void hl_grammar_free(hl_grammar *g);

/* A JSON Schema (JSON text) to GBNF appended to out. Rules are named
 * prefix + "root", prefix + ...; with an empty prefix a `root` rule is the
 * start. Supported: type (and unions), enum, const, properties / required /
 * additionalProperties, items / prefixItems / minItems / maxItems, string
 * minLength / maxLength / pattern (a regex subset) / format (date, time,
 * date-time, uuid, email), integer minimum / maximum (and exclusive ones),
 * number minimum / maximum when they are integers, anyOf / oneOf, allOf of
 * objects, $ref into the document ($defs, definitions; recursion allowed),
 * nullable. Annotations (title, description, default, examples, ...) are
 * ignored. Any other keyword is HL_ENOTSUP naming it and where it is
 * ("unsupported JSON Schema keyword \"uniqueItems\" at /properties/tags"):
 * never a grammar that constrains less than the schema asks.
 *
 * The grammar generates a subset of the instances the schema accepts, in a
 * canonical shape: object properties in the schema's order, no properties
 * beyond those declared when any are declared, whitespace optional and
 * bounded between tokens. */
int hl_json_schema_to_gbnf(const char *schema, size_t n, const char *prefix, hl_buf *out, hl_err *err);

/* The same over an already parsed json-c document (borrowed). */
struct json_object;
int hl_json_schema_to_gbnf_obj(struct json_object *doc, const char *prefix, hl_buf *out, hl_err *err);

/* The same with options: a sub-schema of the document (its $refs resolve in
 * the whole document), and characters strings must escape. A caller that
 * wraps the JSON in markers of its own (tool calls) uses escape so no string
 * can spell a marker: a code point listed there is never raw inside a
 * string, only as a \u escape (JSON's own; the value is the same). */
typedef struct hl_schema_opts {
    const char *prefix;      /* rule names' prefix (NULL: none) */
    struct json_object *at;  /* the schema to compile, inside doc (NULL: doc itself) */
    const char *path;        /* at's JSON pointer, for errors ("/properties/x"; NULL: "") */
    const char *escape;      /* UTF-8 code points strings hold only escaped (NULL: none) */
} hl_schema_opts;
int hl_json_schema_to_gbnf_opts(struct json_object *doc, const hl_schema_opts *o, hl_buf *out, hl_err *err);

/* GBNF for any JSON value (object_only: any JSON object), as `root`. */
void hl_grammar_json_any_gbnf(int object_only, hl_buf *out);

int hl_grammar_from_json_schema(hl_grammar **out, const char *schema, size_t n, hl_err *err);
/* Ollama's "format" (a parsed JSON value, borrowed): "json" is any JSON
 * value, an object is a JSON Schema; "" and null constrain nothing (*out
 * NULL, 0). The one reading of the field, for the server's routes and
 * `hyperlama run --format` alike. */
int hl_grammar_from_format(struct json_object *format, hl_grammar **out, hl_err *err);
int hl_grammar_json_any(hl_grammar **out, int object_only, hl_err *err);

/* ---- matching text (tests, tools) --------------------------------------------- */

/* 1 when the grammar accepts exactly these bytes as a whole text, 0 when not;
 * *prefix_ok (optional) says whether they can still be continued into one. */
int hl_grammar_accepts(const hl_grammar *g, const char *text, size_t n, int *prefix_ok);

/* The reference mask, for tests: the tokens of v that may follow text, found
 * by advancing the plain recognizer over each token's bytes in turn (no
 * trie, memo, byte classes or cache; slow). Sets bits[n_vocab/8 rounded up]
 * as hl_grammar_proc_allowed does; returns 1 when text is complete (end of
 * generation allowed), 0 when not, -1 when text is no prefix of any
 * accepted text (bits empty) or memory ran out. */
struct hl_grammar_vocab;
int hl_grammar_allowed_after(const hl_grammar *g, const struct hl_grammar_vocab *v, const char *text, size_t n,
                             uint8_t *bits);

/* ---- vocabulary index ------------------------------------------------------------ */

typedef struct hl_grammar_vocab hl_grammar_vocab;

/* Indexes tok's vocabulary (borrowed only during the call). */
int hl_grammar_vocab_new(hl_grammar_vocab **out, const tok_vocab *tok, hl_err *err);
hl_grammar_vocab *hl_grammar_vocab_ref(hl_grammar_vocab *v);   /* +1, returns v */
void hl_grammar_vocab_unref(hl_grammar_vocab *v);               /* -1, frees at 0 */
int32_t hl_grammar_vocab_n(const hl_grammar_vocab *v);
/* The bytes a token contributes to the text (NULL, 0 for control tokens). */
const char *hl_grammar_vocab_bytes(const hl_grammar_vocab *v, int32_t token, size_t *n);
int hl_grammar_vocab_is_eog(const hl_grammar_vocab *v, int32_t token);

/* ---- the logits processor -------------------------------------------------------- */

/* A processor over g and v (g is borrowed read-only and must outlive every
 * processor and clone made from it unless own_grammar, in which case the
 * processor takes g and the last of it and its clones frees it; v gains a
 * reference). Free it with proc->vt->free (the engine does). */
int hl_grammar_proc_new(hl_logits_proc **out, hl_grammar *g, int own_grammar, hl_grammar_vocab *v, hl_err *err);

/* Introspection for tests and benchmarks: the allowed tokens as bits
 * (bits[n_vocab/8 rounded up]), without touching logits; 1 when the text is
 * complete (end of generation allowed), 0 when not, -1 when the state is dead
 * (an accepted token did not fit: only end of generation remains). */
int hl_grammar_proc_allowed(hl_logits_proc *p, uint8_t *bits);
int hl_grammar_proc_state(const hl_logits_proc *p);

#endif
