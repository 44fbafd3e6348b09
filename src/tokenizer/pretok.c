/* Byte-level BPE pre-tokenizers: the regex sequences named by
 * tokenizer.ggml.pre, compiled once with PCRE2 (JIT when available). Each
 * regex splits every piece produced by the previous one; both matches and the
 * gaps between them become pieces (Hugging Face's "Isolated" split), and a
 * regex only sees its own piece, so $ and look-arounds stop at its edges.
 * `\s` is written as [\t\n\v\f\r\x{85}\p{Z}] to match Python's `regex`
 * (and Oniguruma) exactly. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/tok_internal.h"

#include "base/log.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define WS "\\t\\n\\v\\f\\r\\x{85}\\p{Z}"
#define S_ "[" WS "]"
#define NS "[^" WS "]"

/* ' ?\p{L}+' family shared by GPT-2 and its descendants */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NS ")"
#define CONTRACTIONS_CI "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                     \
    CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ \
    "*[\\r\\n]+|" S_ "+(?!" NS ")|" S_ "+"
#define RE_QWEN2                                                                                   \
    CONTRACTIONS_CI "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ \
    "*[\\r\\n]+|" S_ "+(?!" NS ")|" S_ "+"
#define CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
/* DeepSeek LLM's letters: the cased letters (Lu/Ll/Lt) block by block */
#define DS_LETTERS                                                                                   \
    "[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"      \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}" \
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"        \
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"     \
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"     \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"               \
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"               \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"     \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"       \
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"               \
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"               \
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"     \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"     \
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}" \
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"

typedef struct pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    int ignore_merges;
    const char *re[TOK_MAX_REGEX];
} pre_def;

static const pre_def PRES[] = {
    {"gpt2|gpt-2|mpt|olmo|jais|trillion|phi-2|roberta-bpe|jina-es|jina-de|jina-v1-en|jina-v2-es|jina-v2-de|"
     "jina-v2-code|gigachat",
     0, {RE_GPT2}},
    /* no tokenizer.ggml.pre (or "default"): llama.cpp's default sequence, which
     * isolates punctuation runs and splits digits in threes */
    {"default", 0, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", 1, {RE_LLAMA3}},
    {"dbrx|smaug-bpe|chatglm-bpe", 0, {RE_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|stablelm2|hunyuan|megrez", 0, {RE_QWEN2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", 0, {"\\p{N}", RE_GPT2}},
    {"falcon", 0, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"deepseek-llm", 0,
     {"[\\r\\n]", S_ "?" DS_LETTERS,
      S_ "?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", S_ "+$", CJK,
      "\\p{N}+"}},
    {"deepseek-coder", 0, {"[\\r\\n]", S_ "?\\p{L}+", S_ "?\\p{P}+", CJK, "\\p{N}"}},
    {"deepseek-v3", 0,
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS ")|" S_ "+"}},
    {"poro-chat|bloom|gpt3-finnish", 0, {" ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"}},
    {"viking", 0, {" ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+", "\\p{N}"}},
    {"gpt-4o|llama4", 0,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'"
      "ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'"
      "re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS ")|" S_ "+"}},
};

static int name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && memcmp(p, name, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int tok_pretok_init(tok_vocab *v, const char *pre_name, hl_err *err) {
    const pre_def *d = NULL;
    for (size_t i = 0; i < sizeof PRES / sizeof *PRES && !d; i++)
        if (name_in(PRES[i].names, pre_name)) d = &PRES[i];
    if (!d) {
        hl_warn("tokenizer: unknown pre-tokenizer '%s'; using gpt2's (tokenization may differ from the model's)",
                pre_name);
        d = &PRES[0];
        snprintf(v->pre, sizeof v->pre, "gpt2");
    } else {
        snprintf(v->pre, sizeof v->pre, "%s", pre_name);
    }
    v->ignore_merges = d->ignore_merges;
    for (int i = 0; i < TOK_MAX_REGEX && d->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK, &ec, &eo,
                                       NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return hl_err_set(err, HL_EINVAL, "pre-tokenizer '%s' regex %d: %s at offset %zu (internal error)",
                              pre_name, i, (const char *)msg, (size_t)eo);
        }
        /* JIT is an optimization: when unavailable the interpreter still works */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        v->re[v->n_re++] = re;
    }
    return 0;
}

void tok_pretok_free(tok_vocab *v) {
    for (int i = 0; i < v->n_re; i++) pcre2_code_free(v->re[i]);
    v->n_re = 0;
}

typedef struct span {
    size_t off, len;
} span;

typedef struct spans {
    span *p;
    size_t n, cap;
} spans;

static int spans_push(spans *s, size_t off, size_t len) {
    if (len == 0) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        span *p = realloc(s->p, cap * sizeof *p);
        if (!p) return -1;
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n++] = (span){off, len};
    return 0;
}

/* text must be valid UTF-8 (the caller checked it once): every match call
 * passes PCRE2_NO_UTF_CHECK, or splitting would go quadratic. */
int tok_pretok_split(const tok_vocab *v, const char *text, size_t len, tok_piece_fn fn, void *ctx,
                     hl_err *err) {
    spans cur = {0}, next = {0};
    int rc = 0;
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    pcre2_jit_stack *js = NULL;
    if (spans_push(&cur, 0, len) != 0) { rc = hl_err_set(err, HL_ENOMEM, "out of memory"); goto out; }
    if (v->n_re > 0) {
        md = pcre2_match_data_create(4, NULL);
        mc = pcre2_match_context_create(NULL);
        js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
        if (!md || !mc || !js) { rc = hl_err_set(err, HL_ENOMEM, "out of memory"); goto out; }
        pcre2_jit_stack_assign(mc, NULL, js);
    }
    for (int r = 0; r < v->n_re; r++) {
        const pcre2_code *re = v->re[r];
        next.n = 0;
        for (size_t k = 0; k < cur.n; k++) {
            const char *s = text + cur.p[k].off;
            size_t n = cur.p[k].len, at = 0, gap = 0;
            while (at < n) {
                int m = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, mc);
                if (m == PCRE2_ERROR_NOMATCH) break;
                if (m < 0) {
                    /* resource limits on a pathological piece: keep the rest whole */
                    hl_warn("tokenizer: pre-tokenizer regex failed (%d); keeping a piece unsplit", m);
                    break;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) { /* empty match: step one character */
                    at = ms + 1;
                    while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
                    continue;
                }
                if (spans_push(&next, cur.p[k].off + gap, ms - gap) || spans_push(&next, cur.p[k].off + ms, me - ms)) {
                    rc = hl_err_set(err, HL_ENOMEM, "out of memory");
                    goto out;
                }
                gap = at = me;
            }
            if (spans_push(&next, cur.p[k].off + gap, n - gap)) { rc = hl_err_set(err, HL_ENOMEM, "out of memory"); goto out; }
        }
        spans t = cur;
        cur = next;
        next = t;
    }
    for (size_t k = 0; k < cur.n && rc == 0; k++) rc = fn(ctx, text + cur.p[k].off, cur.p[k].len);
out:
    free(cur.p);
    free(next.p);
    if (md) pcre2_match_data_free(md);
    if (mc) pcre2_match_context_free(mc);
    if (js) pcre2_jit_stack_free(js);
    return rc;
}
