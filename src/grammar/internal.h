/* The grammar module's internals: the compiled grammar's layout, the parse
 * state (a pool of hash-consed stack nodes and the set of live stack tops)
 * and the advance functions the matcher and the mask walk share. */
#ifndef HL_GRAMMAR_INTERNAL_H
#define HL_GRAMMAR_INTERNAL_H

#include "grammar/grammar.h"

#include <stdint.h>

/* A compiled grammar is one flat array of elements. Each alternative of each
 * rule is a run of GRAM_CHARS / GRAM_REF elements closed by GRAM_END. A
 * position is an index into elems. */
enum { GRAM_END = 0, GRAM_CHARS = 1, GRAM_REF = 2 };

typedef struct gram_elem {
    int32_t kind;
    int32_t arg; /* CHARS: index into sets; REF: rule id */
} gram_elem;

typedef struct gram_set {
    int32_t off, n; /* ranges[off .. off+n): sorted, disjoint [lo, hi] pairs of code points */
} gram_set;

struct hl_grammar {
    gram_elem *elems;
    int32_t n_elems;
    gram_set *sets;
    int32_t n_sets;
    uint32_t *ranges; /* pairs */
    int32_t n_ranges;
    int32_t *alts;       /* start positions of alternatives, grouped by rule */
    int32_t *rule_alt0;  /* rule r's alternatives: alts[rule_alt0[r] .. rule_alt0[r+1]) */
    int32_t n_rules;
    int32_t root;
};

/* ---- parse state ------------------------------------------------------------- */

/* A stack is a chain of nodes (pos, parent); the top's pos is always a CHARS
 * element, the others are where to continue once the rule above them is
 * done. Node -1 is the empty stack: the text so far is complete. Nodes are
 * hash-consed (equal (pos, parent) pairs share one id) so equal stacks have
 * equal ids and a set of stacks deduplicates by id. */
typedef struct gram_pool {
    int32_t *pos, *parent;
    uint32_t *slot;     /* where each node sits in table (for undo) */
    int32_t n, cap;
    int32_t *table;     /* open addressing, -1 empty */
    uint32_t tmask;     /* table size - 1 */
    int oom;
} gram_pool;

int gram_pool_init(gram_pool *p, int32_t cap);
void gram_pool_free(gram_pool *p);
int gram_pool_copy(gram_pool *dst, const gram_pool *src);
/* The node (pos, parent), made if new; < 0 when out of memory. */
int32_t gram_pool_node(gram_pool *p, int32_t pos, int32_t parent);
/* Drops the nodes created after the pool had n nodes (newest first). */
void gram_pool_undo(gram_pool *p, int32_t n);

/* UTF-8 decoding state carried between bytes: need continuation bytes still
 * expected, acc the bits so far, len the sequence's full length. */
typedef struct gram_utf8 {
    uint32_t acc;
    int8_t need, len;
} gram_utf8;

/* The closure of starting at pos with parent below: appends the resulting
 * stack tops to tops (deduplicated; at most HL_GRAMMAR_MAX_STACKS). Returns 0,
 * or -1 when the limit, the pool or the depth overflowed. */
int gram_expand(const hl_grammar *g, gram_pool *p, int32_t pos, int32_t parent, int32_t *tops, int32_t *n_tops, int depth);

/* Advances the stacks in[0..n_in) by one byte under u (updated in *u_out);
 * writes the new tops to out (room for HL_GRAMMAR_MAX_STACKS). Returns how
 * many (0: the byte cannot continue any parse), or -1 on overflow. */
int gram_advance_byte(const hl_grammar *g, gram_pool *p, const int32_t *in, int32_t n_in, gram_utf8 u,
                      uint8_t byte, int32_t *out, gram_utf8 *u_out);

/* The initial stacks of g's root rule. */
int gram_start(const hl_grammar *g, gram_pool *p, int32_t *tops, int32_t *n_tops);

int gram_set_has(const hl_grammar *g, int32_t set, uint32_t cp);

/* ---- the walk's memo (memo.c) ---------------------------------------------------- */

typedef struct gram_memo_state {
    uint32_t off;  /* tops at arena[off .. off+n), sorted */
    int32_t n;
    gram_utf8 u;
    uint32_t hash;
} gram_memo_state;

typedef struct gram_memo {
    int32_t *arena;
    size_t n_arena, cap_arena;
    gram_memo_state *st;
    int32_t n_st;
    size_t cap_st;
    int32_t *row_of;   /* per state: its transition row, or -1 */
    int32_t *rows;     /* 256 next-state ids per row (-1 dead, -3 not yet known) */
    int32_t n_rows;
    size_t cap_rows;
    int32_t *table;    /* interning: open addressing over state ids */
    uint32_t tmask;
    int32_t *tmp;
} gram_memo;

int gram_memo_init(gram_memo *m);
void gram_memo_free(gram_memo *m);
void gram_memo_reset(gram_memo *m);
/* The id of the state (tops sorted in place), or -2 when out of memory. */
int32_t gram_memo_intern(gram_memo *m, int32_t *tops, int32_t n, gram_utf8 u);
/* The state after byte b from state s: an id, -1 dead, -2 overflow. */
int32_t gram_memo_step(gram_memo *m, const hl_grammar *g, gram_pool *p, int32_t s, uint8_t b);

/* ---- regex (regex.c) ------------------------------------------------------------ */

/* A JSON Schema pattern to a GBNF expression over a JSON string's content;
 * char_rule names the rule for one (escaped) string character. */
int gram_regex_to_gbnf(const char *re, size_t n, const char *char_rule, hl_buf *out, hl_err *err);

/* ---- vocabulary ----------------------------------------------------------------- */

struct hl_grammar_vocab {
    int refs;              /* atomic */
    int32_t n_vocab;
    char *bytes;           /* every token's bytes, concatenated */
    uint32_t *off;         /* token id → offset into bytes (n_vocab + 1 entries) */
    int32_t *sorted;       /* the tokens with bytes (not control), in byte order */
    int32_t *lcp;          /* common prefix length with the previous sorted token */
    int32_t n_sorted;
    int32_t max_len;
    uint8_t *eog;          /* per token: ends generation */
    int32_t *eog_ids;
    int32_t n_eog;
};

#endif
