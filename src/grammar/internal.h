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
 * expected, acc the bits so far, len the sequence's full length. any: every
 * live stack's class holds every code point the remaining bytes can make, so
 * acc no longer matters (acc and len are 0): any continuation bytes finish
 * the character and advance every stack (gram_utf8_settle sets it). */
typedef struct gram_utf8 {
    uint32_t acc;
    int8_t need, len, any;
} gram_utf8;

static inline int gram_utf8_eq(gram_utf8 a, gram_utf8 b) {
    return a.acc == b.acc && a.need == b.need && a.len == b.len && a.any == b.any;
}

/* The closure of starting at pos with parent below: appends the resulting
 * stack tops to tops (deduplicated; at most HL_GRAMMAR_MAX_STACKS). Returns 0,
 * or -1 when the limit, the pool or the depth overflowed. */
int gram_expand(const hl_grammar *g, gram_pool *p, int32_t pos, int32_t parent, int32_t *tops, int32_t *n_tops, int depth);

/* Advances the stacks in[0..n_in) by one byte under u (updated in *u_out);
 * writes the new tops to out (room for HL_GRAMMAR_MAX_STACKS). Returns how
 * many (0: the byte cannot continue any parse), or -1 on overflow. */
int gram_advance_byte(const hl_grammar *g, gram_pool *p, const int32_t *in, int32_t n_in, gram_utf8 u,
                      uint8_t byte, int32_t *out, gram_utf8 *u_out);

/* Canonicalizes a mid-character state: when every stack in tops[0..n) holds
 * every code point that the bytes so far can still become, marks *u `any`
 * (two such states differ only in acc, and acc cannot change their future),
 * so a walk over tokens that end inside CJK or emoji characters meets a few
 * states instead of one per byte prefix. The plain recognizer
 * (hl_grammar_accepts) never calls it: it stays the reference. */
void gram_utf8_settle(const hl_grammar *g, const gram_pool *p, const int32_t *tops, int32_t n, gram_utf8 *u);

/* The initial stacks of g's root rule. */
int gram_start(const hl_grammar *g, gram_pool *p, int32_t *tops, int32_t *n_tops);

int gram_set_has(const hl_grammar *g, int32_t set, uint32_t cp);

/* ---- byte classes -------------------------------------------------------------- */

/* Bytes that most grammar states treat alike: ASCII letters and digits
 * (GRAM_CLS_WORD), the rest of printable ASCII but for the quote and the
 * backslash (GRAM_CLS_PUNCT), UTF-8 continuation bytes, and the lead bytes of
 * 2-, 3- and 4-byte characters whose second byte has no limits of its own.
 * Any other byte is a class by itself (-1). A state is uniform over a class
 * when every byte of it leads to one next state (gram_class_uniform): then
 * tokens with the same class spelling share one walk (walk.c). */
enum { GRAM_CLS_WORD = 0, GRAM_CLS_PUNCT, GRAM_CLS_CONT, GRAM_CLS_LEAD2, GRAM_CLS_LEAD3, GRAM_CLS_LEAD4, GRAM_N_CLS };

static inline int gram_byte_class(uint8_t b) {
    if ((b >= '0' && b <= '9') || ((b | 0x20) >= 'a' && (b | 0x20) <= 'z')) return GRAM_CLS_WORD;
    if (b >= 0x20 && b <= 0x7E) return b == '"' || b == '\\' ? -1 : GRAM_CLS_PUNCT;
    if (b >= 0x80 && b <= 0xBF) return GRAM_CLS_CONT;
    if (b >= 0xC2 && b <= 0xDF) return GRAM_CLS_LEAD2;
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return GRAM_CLS_LEAD3;
    if (b >= 0xF1 && b <= 0xF3) return GRAM_CLS_LEAD4;
    return -1;
}

/* One byte of class k (the walk steps with it for the whole class). */
static inline uint8_t gram_class_byte(int k) {
    static const uint8_t rep[GRAM_N_CLS] = {'a', ' ', 0x80, 0xC2, 0xE1, 0xF1};
    return rep[k];
}

/* 1 when every byte of class k takes the state (tops, u) to the same next
 * state (dead included); 0 when they may differ. Conservative: 0 is always
 * safe. */
int gram_class_uniform(const hl_grammar *g, const gram_pool *p, const int32_t *tops, int32_t n, gram_utf8 u, int k);

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
    int32_t *cls;      /* per state, GRAM_N_CLS each: the next state on every byte of the class,
                          -1 dead, -3 not yet known, -4 not uniform */
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
/* The state after byte b from state s: an id, -1 dead, -2 overflow.
 * gram_memo_step looks in the row first (inline: the walk's hot path). */
int32_t gram_memo_step_slow(gram_memo *m, const hl_grammar *g, gram_pool *p, int32_t s, uint8_t b);

#define GRAM_MEMO_UNKNOWN (-3)
#define GRAM_MEMO_MIXED (-4)

/* The state after any byte of class k from s: an id, -1 dead, -2 overflow,
 * GRAM_MEMO_MIXED when the class's bytes may lead to different states. */
int32_t gram_memo_class_step(gram_memo *m, const hl_grammar *g, gram_pool *p, int32_t s, int k);

static inline int32_t gram_memo_step(gram_memo *m, const hl_grammar *g, gram_pool *p, int32_t s, uint8_t b) {
    int32_t row = m->row_of[s];
    if (row >= 0) {
        int32_t nx = m->rows[(size_t)row * 256 + b];
        if (nx != GRAM_MEMO_UNKNOWN) return nx;
    }
    return gram_memo_step_slow(m, g, p, s, b);
}

/* ---- the mask walk (walk.c) ------------------------------------------------------- */

/* Sets in bits every token of v whose bytes keep the memo's state s0 alive.
 * lvl has room for v->max_len + 2 ids. Nodes it adds to p stay (the caller
 * undoes them). */
void gram_walk(const hl_grammar *g, gram_pool *p, gram_memo *m, const hl_grammar_vocab *v, int32_t s0, int32_t *lvl,
               uint8_t *bits);

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
    /* the walk reads these in order: sorted token i's bytes beyond lcp[i] are
     * sfx[sfx_off[i] .. sfx_off[i + 1]) (the implicit trie's new nodes), and
     * nxt[i] is the first j > i with lcp[j] <= lcp[i] (the end of the
     * subtree below sorted token i's first new byte) */
    uint8_t *sfx;
    uint32_t *sfx_off;     /* n_sorted + 1 entries */
    int32_t *nxt;
    int32_t n_sorted;
    /* byte order by first byte: sorted[first[b] .. first[b + 1]) start with b */
    int32_t first[257];
    /* the class order: the same tokens sorted by their bytes' classes
     * (gram_byte_class, a lone byte standing for itself), then by bytes;
     * clcp[i] is the class prefix csorted[i] shares with csorted[i - 1]
     * (clcp[i] == clen[i]: the same class spelling, so the same verdict),
     * cblcp[i] the byte prefix, cnxt[i] the first j > i with
     * clcp[j] <= clcp[i] */
    int32_t *csorted, *clcp, *cblcp, *cnxt, *clen; /* clen: csorted[i]'s length */
    /* the largest groups of tokens spelled alike (inside a JSON string most
     * of the vocabulary is in a few dozen), as bitmaps: group k is
     * csorted[grp_head[k] .. grp_end[k]), its tokens' bits at
     * grp_bits + k * ((n_vocab + 7) / 8); heads ascending */
    int32_t n_grp, *grp_head, *grp_end;
    uint8_t *grp_bits;
    int32_t max_len;
    uint8_t *eog;          /* per token: ends generation */
    int32_t *eog_ids;
    int32_t n_eog;
};

#endif
