/* Loading a tokenizer from GGUF metadata (tokenizer.ggml.*): token texts,
 * scores and types into one blob with an open-addressing hash, ranked BPE
 * merges keyed by token-id pairs, special ids (0xFFFFFFFF = none), the
 * end-of-generation set, and the vocabulary accessors of tokenizer.h. */
#include "tokenizer/tok_internal.h"

#include "base/log.h"

#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX_VOCAB (16u << 20) /* ids are int32; anything larger is a broken file */

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t s = 16;
    while (s < n * 2) s <<= 1;
    return s;
}

int32_t tok_lookup(const tok_vocab *v, const char *s, size_t n) {
    if (n > v->max_len) return -1;
    return tok_lookup_h(v, s, n, tok_hash(s, n));
}

int32_t tok_lookup_h(const tok_vocab *v, const char *s, size_t n, uint32_t h) {
    uint32_t i = h & v->mask;
    for (;;) {
        uint64_t e = v->slots[i];
        if (!e) return -1;
        /* the stored hash spares a cache miss on the text for most probes */
        if ((uint32_t)(e >> 32) == h) {
            int32_t id = (int32_t)(uint32_t)e - 1;
            if (v->len[id] == n && memcmp(v->blob + v->off[id], s, n) == 0) return id;
        }
        i = (i + 1) & v->mask;
    }
}

static uint32_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

int32_t tok_merge_rank(const tok_vocab *v, int32_t l, int32_t r, int32_t *res) {
    if (!v->mkeys || l < 0 || r < 0) return -1;
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    uint32_t i = hash_u64(key) & v->mmask;
    for (;;) {
        uint64_t k = v->mkeys[i];
        if (!k) return -1;
        if (k == key) {
            *res = v->mres[i];
            return v->mrank[i];
        }
        i = (i + 1) & v->mmask;
    }
}

/* special id: absent or 0xFFFFFFFF (or out of range) is none */
static int32_t get_id(const gguf_file *f, const char *key, int32_t dflt, int32_t n) {
    int64_t x;
    if (gguf_get_int(f, key, &x) != 0) return dflt;
    if (x < 0 || x >= n) return -1;
    return (int32_t)x;
}

static int get_flag(const gguf_file *f, const char *key, int dflt) {
    int b;
    if (gguf_get_bool(f, key, &b) == 0) return b != 0;
    int64_t x;
    if (gguf_get_int(f, key, &x) == 0) return x != 0;
    return dflt;
}

static int str_eq(gguf_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

typedef struct merge_pend {
    const char *l, *r; /* NULL l: malformed entry */
    size_t ln, rn;
    uint32_t hl, hr;
} merge_pend;

/* Resolves one merge "l r" to ids and records its rank; nonzero when skipped
 * (a part or the result is not in the vocabulary). tmp holds max_len bytes. */
static int add_merge(tok_vocab *v, const merge_pend *p, int32_t rank, char *tmp) {
    if (!p->l) return 1;
    size_t ln = p->ln, rn = p->rn;
    if (ln + rn > v->max_len) return 1;
    int32_t l = tok_lookup_h(v, p->l, ln, p->hl), r = tok_lookup_h(v, p->r, rn, p->hr);
    if (l < 0 || r < 0) return 1;
    memcpy(tmp, p->l, ln);
    memcpy(tmp + ln, p->r, rn);
    int32_t res = tok_lookup(v, tmp, ln + rn);
    if (res < 0) return 1;
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    uint32_t i = hash_u64(key) & v->mmask;
    while (v->mkeys[i] && v->mkeys[i] != key) i = (i + 1) & v->mmask;
    if (v->mkeys[i]) return 0; /* duplicate merge: the first (best) rank wins */
    v->mkeys[i] = key;
    v->mrank[i] = rank;
    v->mres[i] = res;
    return 0;
}

static int load_merges(tok_vocab *v, const gguf_file *f, hl_err *err) {
    gguf_arr a;
    if (gguf_get_arr(f, "tokenizer.ggml.merges", &a) != 0)
        return hl_err_set(err, HL_EINVAL, "byte-level BPE vocabulary has no tokenizer.ggml.merges array");
    if (a.type != GGUF_STRING)
        return hl_err_set(err, HL_EINVAL, "tokenizer.ggml.merges must be an array of strings");
    if (a.n > TOK_MAX_VOCAB * 2ull)
        return hl_err_set(err, HL_ERANGE, "tokenizer.ggml.merges has %llu entries (limit %u)",
                          (unsigned long long)a.n, TOK_MAX_VOCAB * 2);
    uint32_t size = pow2_at_least(a.n ? a.n : 1);
    v->mmask = size - 1;
    v->mkeys = calloc(size, sizeof *v->mkeys);
    v->mrank = malloc(size * sizeof *v->mrank);
    v->mres = malloc(size * sizeof *v->mres);
    char *tmp = malloc(v->max_len + 1);
    if (!v->mkeys || !v->mrank || !v->mres || !tmp) {
        free(tmp);
        return hl_err_set(err, HL_ENOMEM, "out of memory for %llu merges", (unsigned long long)a.n);
    }
    uint64_t skipped = 0;
    /* Random probes into a table of a few MB dominate loading, so the parts
     * of merge m + AHEAD are hashed and their slots prefetched while merge m
     * is resolved. */
    enum { AHEAD = 16 };
    merge_pend q[AHEAD];
    for (uint64_t m = 0; m < a.n + AHEAD; m++) {
        if (m >= AHEAD) skipped += add_merge(v, &q[(m - AHEAD) % AHEAD], (int32_t)(m - AHEAD), tmp) != 0;
        if (m < a.n) {
            merge_pend *p = &q[m % AHEAD];
            gguf_str s = gguf_arr_str(&a, m);
            /* "left right": the separator is the first space after the first
             * byte, so a left part that is itself a space still parses */
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
            if (!sp) {
                p->l = NULL;
            } else {
                p->l = s.ptr;
                p->ln = (size_t)(sp - s.ptr);
                p->r = sp + 1;
                p->rn = s.len - p->ln - 1;
                p->hl = tok_hash(p->l, p->ln);
                p->hr = tok_hash(p->r, p->rn);
                __builtin_prefetch(&v->slots[p->hl & v->mask]);
                __builtin_prefetch(&v->slots[p->hr & v->mask]);
            }
        }
    }
    free(tmp);
    if (skipped) hl_debug("tokenizer: %llu merges refer to unknown tokens and were skipped", (unsigned long long)skipped);
    return 0;
}

/* GPT-2's byte alphabet: printable bytes map to themselves, the others to
 * 256 + k in byte order, so every byte has a visible code point. */
static void init_byte_alphabet(tok_vocab *v) {
    int k = 0;
    for (int i = 0; i < 512; i++) v->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        v->byte_cp[b] = (uint16_t)(keep ? b : 256 + k++);
        v->cp_byte[v->byte_cp[b]] = (int16_t)b;
    }
}

static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<\uFF5Cend\u2581of\u2581sentence\uFF5C>", "<|end_of_text|>",
    "<|return|>", "<|call|>", "</s>", "<eos>", "[EOT]", "[EOS]",
};

/* A token that ends generation, or marks fill-in-the-middle, but is stored as
 * user-defined is a control token, as llama.cpp overrides it: it is never
 * matched in text without parse_special, and renders as nothing. */
static void make_control(tok_vocab *v, int32_t id) {
    if (id >= 0 && v->type[id] == TOK_TYPE_USER_DEFINED) v->type[id] = TOK_TYPE_CONTROL;
}

/* Fill-in-the-middle tokens by family, for files without the
 * tokenizer.ggml.fim_*_token_id keys, in prefix-suffix-middle order:
 * Qwen2.5-Coder, StarCoder / Granite, CodeLlama, CodeGemma, DeepSeek-Coder. */
static const char *const FIM_TEXTS[][3] = {
    {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"},
    {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
    {"<fim-prefix>", "<fim-suffix>", "<fim-middle>"},
    {"<PRE>", "<SUF>", "<MID>"},
    {"\xe2\x96\x81<PRE>", "\xe2\x96\x81<SUF>", "\xe2\x96\x81<MID>"},
    {"<|fim_begin|>", "<|fim_hole|>", "<|fim_end|>"},
    {"<\uFF5Cfim\u2581begin\uFF5C>", "<\uFF5Cfim\u2581hole\uFF5C>", "<\uFF5Cfim\u2581end\uFF5C>"},
};
/* FIM padding and repository / file separators end generation, as in llama.cpp */
static const char *const FIM_END_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<|repo_name|>", "<fim-repo>",
                                            "<reponame>", "<|file_sep|>", "<fim-sep>", "<file_sep>"};

static void find_fim(tok_vocab *v, const gguf_file *f, int32_t n) {
    v->fim_pre = get_id(f, "tokenizer.ggml.fim_pre_token_id", -1, n);
    v->fim_suf = get_id(f, "tokenizer.ggml.fim_suf_token_id", -1, n);
    v->fim_mid = get_id(f, "tokenizer.ggml.fim_mid_token_id", -1, n);
    for (size_t k = 0; k < sizeof FIM_TEXTS / sizeof *FIM_TEXTS; k++) {
        if (v->fim_pre >= 0 && v->fim_suf >= 0 && v->fim_mid >= 0) break;
        int32_t ids[3];
        for (int j = 0; j < 3; j++) ids[j] = tok_lookup(v, FIM_TEXTS[k][j], strlen(FIM_TEXTS[k][j]));
        if (ids[0] >= 0 && ids[1] >= 0 && ids[2] >= 0) v->fim_pre = ids[0], v->fim_suf = ids[1], v->fim_mid = ids[2];
    }
    if (v->fim_pre < 0 || v->fim_suf < 0 || v->fim_mid < 0) v->fim_pre = v->fim_suf = v->fim_mid = -1;
    make_control(v, v->fim_pre);
    make_control(v, v->fim_suf);
    make_control(v, v->fim_mid);
    for (size_t k = 0; k < sizeof FIM_END_TEXTS / sizeof *FIM_END_TEXTS; k++) {
        int32_t id = tok_lookup(v, FIM_END_TEXTS[k], strlen(FIM_END_TEXTS[k]));
        if (id >= 0) v->eog[id] = 1;
        make_control(v, id);
    }
}

/* gpt-oss's vocabulary (o200k_harmony, known by its <|return|> and <|call|>):
 * a reply is several messages, <|end|> closing each but the last, so only
 * <|return|> and <|call|> end generation (<|end|> is Phi-3's end of turn,
 * hence the check), and the markers that frame a message are rendered as
 * text, so the output splitter (chat/outparse.h, harmony) sees the channels
 * and recipients. Rendered, they are user-defined tokens, as llama.cpp makes
 * them: matched in any text, as the model reads them. */
static void harmony_specials(tok_vocab *v) {
    static const char *const shown[] = {"<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", "<|end|>"};
    int32_t ret = tok_lookup(v, "<|return|>", 10), call = tok_lookup(v, "<|call|>", 8);
    int32_t end = tok_lookup(v, "<|end|>", 7);
    if (ret < 0 || call < 0 || end < 0) return;
    v->eog[end] = 0;
    v->eog[ret] = v->eog[call] = 1;
    if (v->eot == end) v->eot = ret;
    if (v->eos == end) v->eos = ret;
    for (size_t k = 0; k < sizeof shown / sizeof *shown; k++) {
        int32_t id = tok_lookup(v, shown[k], strlen(shown[k]));
        if (id >= 0) v->type[id] = TOK_TYPE_USER_DEFINED;
    }
}

/* Phi-3's special tokens swallow the spaces after them (its HF tokenizer's
 * rstrip), all but <unk>, <s> and <|endoftext|>: llama.cpp keys this on the
 * model's name, and so do we. */
static void mark_rstrip(tok_vocab *v, const gguf_file *f) {
    gguf_str name = {0};
    char low[128] = {0};
    if (gguf_get_str(f, "general.name", &name) != 0) return;
    for (size_t i = 0; i < name.len && i + 1 < sizeof low; i++) low[i] = (char)tolower((unsigned char)name.ptr[i]);
    if (!strstr(low, "phi-3") && !strstr(low, "phi3")) return;
    for (int32_t k = 0; k < v->n_specials; k++) v->rstrip[v->specials[k]] = 1;
    static const char *const KEEP[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t k = 0; k < sizeof KEEP / sizeof *KEEP; k++) {
        int32_t id = tok_lookup(v, KEEP[k], strlen(KEEP[k]));
        if (id >= 0) v->rstrip[id] = 0;
    }
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const tok_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    unsigned char fx = (unsigned char)v->blob[v->off[x]], fy = (unsigned char)v->blob[v->off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (v->len[x] != v->len[y]) return v->len[x] > v->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

int tok_load(tok_vocab **out, const gguf_file *f, hl_err *err) {
    *out = NULL;
    gguf_str model = {0};
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) != 0)
        return hl_err_set(err, HL_EINVAL, "model has no tokenizer (tokenizer.ggml.model missing)");
    tok_kind kind;
    if (str_eq(model, "llama")) kind = TOK_KIND_SPM;
    else if (str_eq(model, "gpt2")) kind = TOK_KIND_BPE;
    else if (str_eq(model, "bert")) kind = TOK_KIND_WPM;
    else if (str_eq(model, "t5")) kind = TOK_KIND_UGM;
    else
        return hl_err_set(err, HL_ENOTSUP, "tokenizer model '%.*s' is not supported (supported: llama, gpt2, bert, t5)",
                          (int)(model.len > 64 ? 64 : model.len), model.ptr);

    gguf_arr toks;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) != 0 || toks.type != GGUF_STRING)
        return hl_err_set(err, HL_EINVAL, "tokenizer.ggml.tokens missing or not an array of strings");
    if (toks.n == 0 || toks.n > TOK_MAX_VOCAB)
        return hl_err_set(err, HL_ERANGE, "tokenizer.ggml.tokens has %llu entries (expected 1..%u)",
                          (unsigned long long)toks.n, TOK_MAX_VOCAB);
    int32_t n = (int32_t)toks.n;
    gguf_arr scores = {0}, types = {0};
    int have_scores = gguf_get_arr(f, "tokenizer.ggml.scores", &scores) == 0;
    int have_types = gguf_get_arr(f, "tokenizer.ggml.token_type", &types) == 0;
    if (have_scores && (scores.n != toks.n || (scores.type != GGUF_F32 && scores.type != GGUF_F64)))
        return hl_err_set(err, HL_EINVAL, "tokenizer.ggml.scores has %llu entries of type %d for %d tokens",
                          (unsigned long long)scores.n, (int)scores.type, n);
    if (have_types && (types.n != toks.n || types.type == GGUF_STRING || types.type == GGUF_ARRAY ||
                       types.type == GGUF_F32 || types.type == GGUF_F64))
        return hl_err_set(err, HL_EINVAL, "tokenizer.ggml.token_type has %llu entries of type %d for %d tokens",
                          (unsigned long long)types.n, (int)types.type, n);

    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory loading the tokenizer");
    v->kind = kind;
    v->n = n;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += gguf_arr_str(&toks, (uint64_t)i).len + 1;
    v->blob = malloc(total);
    v->off = malloc((size_t)n * sizeof *v->off);
    v->len = malloc((size_t)n * sizeof *v->len);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->type = malloc((size_t)n);
    v->eog = calloc((size_t)n, 1);
    v->rstrip = calloc((size_t)n, 1);
    v->mask = pow2_at_least((uint64_t)n) - 1;
    v->slots = calloc((size_t)v->mask + 1, sizeof *v->slots);
    int rc = 0;
    if (!v->blob || !v->off || !v->len || !v->score || !v->type || !v->eog || !v->rstrip || !v->slots || total > UINT32_MAX) {
        rc = hl_err_set(err, HL_ENOMEM, "out of memory for a %d-token vocabulary", n);
        goto fail;
    }
    size_t pos = 0;
    enum { AHEAD = 16 };
    uint32_t hq[AHEAD];
    for (int32_t i = 0; i < n && i < AHEAD; i++) {
        gguf_str s = gguf_arr_str(&toks, (uint64_t)i);
        hq[i] = tok_hash(s.ptr, s.len);
    }
    for (int32_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str(&toks, (uint64_t)i);
        uint32_t hv = hq[i % AHEAD];
        if (i + AHEAD < n) { /* hash ahead and prefetch that slot: probes are cache misses */
            gguf_str t = gguf_arr_str(&toks, (uint64_t)(i + AHEAD));
            hq[i % AHEAD] = tok_hash(t.ptr, t.len);
            __builtin_prefetch(&v->slots[hq[i % AHEAD] & v->mask]);
        }
        memcpy(v->blob + pos, s.ptr, s.len);
        v->blob[pos + s.len] = 0;
        v->off[i] = (uint32_t)pos;
        v->len[i] = (uint32_t)s.len;
        if (s.len > v->max_len) v->max_len = s.len;
        pos += s.len + 1;
        v->score[i] = have_scores ? (float)gguf_arr_float(&scores, (uint64_t)i) : 0.0f;
        int64_t t = have_types ? gguf_arr_int(&types, (uint64_t)i) : TOK_TYPE_NORMAL;
        v->type[i] = (uint8_t)(t >= 1 && t <= 6 ? t : TOK_TYPE_NORMAL);
        /* duplicates: the first id keeps the text (later ones are reachable by id only) */
        uint32_t h = hv & v->mask;
        int dup = 0;
        while (v->slots[h]) {
            int32_t o = (int32_t)(uint32_t)v->slots[h] - 1;
            if ((uint32_t)(v->slots[h] >> 32) == hv && v->len[o] == s.len &&
                memcmp(v->blob + v->off[o], s.ptr, s.len) == 0) { dup = 1; break; }
            h = (h + 1) & v->mask;
        }
        if (!dup) v->slots[h] = ((uint64_t)hv << 32) | ((uint32_t)i + 1);
    }

    /* special ids and flags; SPM vocabularies default to <unk>=0 <s>=1 </s>=2 */
    int spm = kind == TOK_KIND_SPM, wpm = kind == TOK_KIND_WPM;
    v->bos = get_id(f, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n);
    v->eos = get_id(f, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n);
    v->unk = get_id(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n);
    v->eot = get_id(f, "tokenizer.ggml.eot_token_id", -1, n);
    v->pad = get_id(f, "tokenizer.ggml.padding_token_id", -1, n);
    v->sep = get_id(f, "tokenizer.ggml.seperator_token_id", -1, n);
    v->cls = get_id(f, "tokenizer.ggml.cls_token_id", -1, n);
    v->mask_id = get_id(f, "tokenizer.ggml.mask_token_id", -1, n);
    if (wpm) {
        if (v->cls < 0) v->cls = tok_lookup(v, "[CLS]", 5);
        if (v->sep < 0) v->sep = tok_lookup(v, "[SEP]", 5);
        if (v->unk < 0) v->unk = tok_lookup(v, "[UNK]", 5);
        if (v->bos < 0) v->bos = v->cls;
        if (v->eos < 0) v->eos = v->sep;
    }
    v->add_bos = get_flag(f, "tokenizer.ggml.add_bos_token", spm || wpm);
    v->add_eos = get_flag(f, "tokenizer.ggml.add_eos_token", wpm);
    v->add_space_prefix = get_flag(f, "tokenizer.ggml.add_space_prefix", spm || kind == TOK_KIND_UGM);
    v->remove_extra_ws = get_flag(f, "tokenizer.ggml.remove_extra_whitespaces", 0);

    if (v->eot < 0) {
        for (size_t k = 0; k < sizeof EOG_TEXTS / sizeof *EOG_TEXTS && v->eot < 0; k++) {
            int32_t id = tok_lookup(v, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
            if (id >= 0 && id != v->eos && k < 8) v->eot = id;
        }
    }
    for (size_t k = 0; k < sizeof EOG_TEXTS / sizeof *EOG_TEXTS; k++) {
        int32_t id = tok_lookup(v, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
        if (id >= 0) v->eog[id] = 1;
        make_control(v, id);
    }
    if (v->eos >= 0) v->eog[v->eos] = 1;
    if (v->eot >= 0) v->eog[v->eot] = 1;
    find_fim(v, f, n);
    gguf_arr eogs;
    if (gguf_get_arr(f, "tokenizer.ggml.eog_token_ids", &eogs) == 0 && eogs.type != GGUF_STRING &&
        eogs.type != GGUF_ARRAY) {
        for (uint64_t k = 0; k < eogs.n; k++) {
            int64_t id = gguf_arr_int(&eogs, k);
            if (id >= 0 && id < n) v->eog[id] = 1;
        }
    }

    harmony_specials(v);

    /* bytes: SPM byte-fallback tokens <0xNN>; BPE the one-byte symbols */
    init_byte_alphabet(v);
    for (int b = 0; b < 256; b++) {
        char buf[8];
        if (kind == TOK_KIND_BPE) {
            uint32_t cp = v->byte_cp[b];
            int k = cp < 0x80 ? (buf[0] = (char)cp, 1)
                              : (buf[0] = (char)(0xC0 | (cp >> 6)), buf[1] = (char)(0x80 | (cp & 0x3F)), 2);
            v->byte_tok[b] = tok_lookup(v, buf, (size_t)k);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(buf, "<0x", 3);
            buf[3] = hex[b >> 4];
            buf[4] = hex[b & 15];
            buf[5] = '>';
            v->byte_tok[b] = tok_lookup(v, buf, 6);
        }
    }

    /* special tokens matched inside text, longest first */
    v->specials = malloc((size_t)n * sizeof *v->specials);
    if (!v->specials) { rc = hl_err_set(err, HL_ENOMEM, "out of memory"); goto fail; }
    for (int32_t i = 0; i < n; i++) {
        int t = v->type[i];
        if ((t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_UNKNOWN) && v->len[i] > 0)
            v->specials[v->n_specials++] = i;
    }
    qsort_r(v->specials, (size_t)v->n_specials, sizeof *v->specials, cmp_special, v);
    mark_rstrip(v, f);
    for (int b = 0, k = 0; b <= 256; b++) {
        while (k < v->n_specials && (unsigned char)v->blob[v->off[v->specials[k]]] < b) k++;
        v->spec_start[b] = b == 256 ? v->n_specials : k;
    }

    if (kind == TOK_KIND_BPE) {
        if ((rc = load_merges(v, f, err)) != 0) goto fail;
        gguf_str pre = {0};
        char name[64] = "default";
        if (gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0) {
            size_t k = pre.len < sizeof name - 1 ? pre.len : sizeof name - 1;
            memcpy(name, pre.ptr, k);
            name[k] = 0;
        }
        if ((rc = tok_pretok_init(v, name, err)) != 0) goto fail;
    } else {
        snprintf(v->pre, sizeof v->pre, "default");
        gguf_arr m, cm = {0};
        if (kind == TOK_KIND_UGM) {
            int have = gguf_get_arr(f, "tokenizer.ggml.precompiled_charsmap", &cm) == 0;
            if (have && cm.type != GGUF_U8 && cm.type != GGUF_I8) {
                rc = hl_err_set(err, HL_EINVAL, "tokenizer.ggml.precompiled_charsmap must be an array of bytes");
                goto fail;
            }
            if ((rc = tok_ugm_init(v, have ? (const uint8_t *)cm.data : NULL, have ? (size_t)cm.n : 0, err)) != 0) goto fail;
        }
        if (kind == TOK_KIND_SPM && gguf_get_arr(f, "tokenizer.ggml.merges", &m) == 0 && (rc = load_merges(v, f, err)) != 0)
            goto fail;
    }
    *out = v;
    return 0;
fail:
    tok_free(v);
    return rc;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    tok_pretok_free(v);
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->eog);
    free(v->rstrip);
    free(v->slots);
    free(v->mkeys);
    free(v->mrank);
    free(v->mres);
    free(v->specials);
    free(v->charsmap);
    free(v);
}

int32_t tok_n_vocab(const tok_vocab *v) { return v->n; }
tok_kind tok_get_kind(const tok_vocab *v) { return v->kind; }
const char *tok_pre_name(const tok_vocab *v) { return v->pre; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
int32_t tok_eot(const tok_vocab *v) { return v->eot; }
int tok_fim(const tok_vocab *v, int32_t ids[3]) {
    ids[0] = v->fim_pre, ids[1] = v->fim_suf, ids[2] = v->fim_mid;
    return v->fim_pre >= 0;
}
int32_t tok_unk(const tok_vocab *v) { return v->unk; }
int32_t tok_pad(const tok_vocab *v) { return v->pad; }
int tok_add_bos(const tok_vocab *v) { return v->add_bos && v->bos >= 0; }
int tok_add_eos(const tok_vocab *v) { return v->add_eos && v->eos >= 0; }
int tok_is_eog(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n && v->eog[id]; }
int tok_is_control(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n && v->type[id] == TOK_TYPE_CONTROL; }
int tok_type(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n ? v->type[id] : 0; }
const char *tok_text(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n ? v->blob + v->off[id] : NULL; }
int32_t tok_find(const tok_vocab *v, const char *text, size_t len) { return tok_lookup(v, text, len); }
