/* The grammar module: GBNF parse errors (with line:col), what grammars
 * accept, the JSON Schema compiler's shapes and refusals, and the logits
 * processor on a real SentencePiece vocabulary (stories260K: ▁ spaces and
 * <0xNN> byte tokens), where the mask must equal a brute-force check of
 * every token against the recognizer, clones must be independent, and end
 * of generation is allowed exactly when the text is complete. */
#include "harness.h"

#include "gguf/gguf.h"
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static hl_grammar *parse(const char *text) {
    hl_grammar *g = NULL;
    hl_err err = {0};
    if (hl_grammar_parse(&g, text, strlen(text), &err)) hl_test_fail(__FILE__, __LINE__, "parse: %s", err.msg);
    return g;
}

static int accepts(const hl_grammar *g, const char *s) { return hl_grammar_accepts(g, s, strlen(s), NULL); }

static void expect_error(const char *text, const char *needle) {
    hl_grammar *g = NULL;
    hl_err err = {0};
    int rc = hl_grammar_parse(&g, text, strlen(text), &err);
    CHECK(rc != 0);
    CHECK(g == NULL);
    if (rc && !strstr(err.msg, needle)) hl_test_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err.msg, needle);
    hl_grammar_free(g);
}

TEST(gbnf_errors_name_line_and_column) {
    expect_error("root ::= \"a\"\nx ::= (\"b\"", "grammar:2:7: unclosed (");
    expect_error("root ::= \"abc", "grammar:1:10: unterminated literal");
    expect_error("root ::= [z-a]", "reversed");
    expect_error("root ::= a", "grammar:1:10: rule a is not defined");
    expect_error("a ::= \"x\"", "no root rule");
    expect_error("root ::= \"a\"\nroot ::= \"b\"", "grammar:2:1: rule root is defined twice");
    expect_error("root ::= root \"a\" | \"b\"", "left-recursive");
    expect_error("root ::= x \"a\"\nx ::= \"\" | root", "left-recursive");
    expect_error("root ::= * \"a\"", "nothing to repeat");
    expect_error("root ::= \"a\"{3,1}", "max below min");
    expect_error("root ::= \"a\"{99999}", "repetition count above");
    expect_error("root ::= \"\\q\"", "unknown escape");
    expect_error("root ::= []", "empty character class");
    expect_error("root = \"a\"", "expected ::=");
}

TEST(gbnf_accepts_what_it_says) {
    hl_grammar *g = parse("# a comment\nroot ::= greet (\", \" greet)* \"!\"?\n"
                          "greet ::= (\"hi\" | \"hello\") [ \\t]+ name\n"
                          "name ::= [A-Z] [a-z]{1,4}\n");
    CHECK(accepts(g, "hi Bob"));
    CHECK(accepts(g, "hello\tAnn, hi  Zo!"));
    CHECK(!accepts(g, "hi bob"));
    CHECK(!accepts(g, "hi Bobbie"));   /* {1,4} */
    CHECK(!accepts(g, "hi B"));
    CHECK(!accepts(g, "hi Bob!!"));
    int prefix = 0;
    CHECK(!hl_grammar_accepts(g, "hello", 5, &prefix));
    CHECK(prefix);
    hl_grammar_free(g);

    g = parse("root ::= [^\"\\\\\\x00-\\x1f]+ | \"\\u00e9\" \"x\" | [\\U0001F600-\\U0001F64F] | .");
    CHECK(accepts(g, "abc"));
    CHECK(!accepts(g, "a\"c"));
    CHECK(accepts(g, "\xc3\xa9x"));          /* é then x */
    CHECK(accepts(g, "\xf0\x9f\x98\x80"));    /* 😀 */
    CHECK(!accepts(g, "\xf0\x9f\x98"));       /* incomplete */
    CHECK(!accepts(g, "\xc0\xaf"));           /* overlong */
    CHECK(!accepts(g, "\xed\xa0\x80"));       /* surrogate */
    hl_grammar_free(g);

    /* nested repetition, multi-line alternatives, empty alternative */
    g = parse("root ::= (\"a\" | \"b\" (\n  \"c\"\n  | ))* \"z\"\n");
    CHECK(accepts(g, "z"));
    CHECK(accepts(g, "abbcaz"));
    CHECK(!accepts(g, "cz"));
    hl_grammar_free(g);
}

static hl_grammar *from_schema(const char *schema) {
    hl_grammar *g = NULL;
    hl_err err = {0};
    if (hl_grammar_from_json_schema(&g, schema, strlen(schema), &err)) hl_test_fail(__FILE__, __LINE__, "schema: %s", err.msg);
    return g;
}

TEST(schema_shapes) {
    hl_grammar *g = from_schema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":-12,\"maximum\":345},"
                                "\"b\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"boolean\"},{\"const\":\"k\"}],\"items\":false},"
                                "\"c\":{\"type\":\"string\",\"pattern\":\"^x\\\\d+(y|z)?$\"}},\"required\":[\"a\"]}");
    CHECK(accepts(g, "{\"a\":-12}"));
    CHECK(accepts(g, "{\"a\":345,\"b\":[true,\"k\"],\"c\":\"x12z\"}"));
    CHECK(accepts(g, "{ \"a\" : 0 , \"b\" : [ false ] }"));
    CHECK(accepts(g, "{\"a\":99,\"b\":[]}"));
    CHECK(!accepts(g, "{\"a\":346}"));
    CHECK(!accepts(g, "{\"a\":-13}"));
    CHECK(!accepts(g, "{\"a\":007}"));
    CHECK(!accepts(g, "{\"b\":[]}"));                 /* a is required */
    CHECK(!accepts(g, "{\"a\":1,\"b\":[true,\"k\",1]}")); /* items: false */
    CHECK(!accepts(g, "{\"a\":1,\"c\":\"x1w\"}"));
    CHECK(!accepts(g, "{\"a\":1,\"zz\":1}"));          /* no undeclared properties */
    hl_grammar_free(g);

    /* every integer in a range, none outside */
    g = from_schema("{\"type\":\"integer\",\"minimum\":-57,\"maximum\":1203}");
    char buf[32];
    int bad = 0;
    for (int i = -200; i <= 1500; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        bad += accepts(g, buf) != (i >= -57 && i <= 1203);
    }
    CHECK_EQ(bad, 0);
    hl_grammar_free(g);

    /* numbers with integer bounds: fractions inside, nothing past them */
    g = from_schema("{\"type\":\"number\",\"minimum\":-2,\"maximum\":3}");
    CHECK(accepts(g, "-2"));
    CHECK(accepts(g, "-1.75"));
    CHECK(accepts(g, "2.999"));
    CHECK(accepts(g, "3.000"));
    CHECK(!accepts(g, "3.001"));
    CHECK(!accepts(g, "-2.5"));
    CHECK(!accepts(g, "4"));
    hl_grammar_free(g);

    /* recursion through $ref, nullable, enum, string lengths */
    g = from_schema("{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"enum\":[1,\"two\",null]},"
                    "\"k\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}},\"s\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3,\"nullable\":true}},"
                    "\"additionalProperties\":false}},\"$ref\":\"#/$defs/n\"}");
    CHECK(accepts(g, "{\"v\":\"two\",\"k\":[{\"k\":[{\"v\":null}]},{}]}"));
    CHECK(accepts(g, "{\"s\":\"ab\"}"));
    CHECK(accepts(g, "{\"s\":null}"));
    CHECK(accepts(g, "{\"s\":\"a\\\"c\"}"));
    CHECK(!accepts(g, "{\"s\":\"a\"}"));
    CHECK(!accepts(g, "{\"s\":\"abcd\"}"));
    CHECK(!accepts(g, "{\"v\":2}"));
    hl_grammar_free(g);

    hl_buf b = {0};
    hl_err err = {0};
    const char *s = "{\"type\":\"string\",\"format\":\"uuid\"}";
    CHECK_EQ(hl_json_schema_to_gbnf(s, strlen(s), "t-", &b, &err), 0);
    CHECK(strstr(b.data, "t-root ::= ") != NULL);
    CHECK(strstr(b.data, "\nroot ::=") == NULL);
    hl_buf_free(&b);
}

static void expect_schema_error(const char *schema, const char *needle) {
    hl_grammar *g = NULL;
    hl_err err = {0};
    CHECK(hl_grammar_from_json_schema(&g, schema, strlen(schema), &err) != 0);
    if (!strstr(err.msg, needle)) hl_test_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err.msg, needle);
    hl_grammar_free(g);
}

TEST(schema_fails_closed) {
    expect_schema_error("{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"array\",\"uniqueItems\":true}}}",
                        "unsupported JSON Schema keyword \"uniqueItems\" at /properties/t");
    expect_schema_error("{\"type\":\"number\",\"minimum\":0.5}", "non-integer");
    expect_schema_error("{\"type\":\"string\",\"pattern\":\"a(?=b)\"}", "not supported");
    expect_schema_error("{\"type\":\"string\",\"pattern\":\"\\\\bword\"}", "not supported");
    expect_schema_error("{\"$ref\":\"#/definitions/x\"}", "does not resolve");
    expect_schema_error("{\"type\":\"string\",\"format\":\"ipv4\"}", "format \"ipv4\"");
    expect_schema_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "no integer");
    expect_schema_error("{\"type\":", "not valid JSON");
    expect_schema_error("false", "accepts nothing");
}

/* ---- the processor on a real vocabulary -------------------------------------------- */

static tok_vocab *load_stories(void) {
    const char *path = hl_test_shared("models/stories260K.gguf");
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    hl_err err = {0};
    if (gguf_open(&f, path, &err) || tok_load(&v, f, &err)) hl_test_fail(__FILE__, __LINE__, "%s: %s", path, err.msg);
    gguf_close(f);
    return v;
}

/* The mask must equal testing each token's bytes after text with the recognizer. */
static int mask_matches_brute_force(hl_logits_proc *p, const hl_grammar *g, const hl_grammar_vocab *v, const char *text, size_t n) {
    int32_t nv = hl_grammar_vocab_n(v);
    float *logits = calloc((size_t)nv, sizeof *logits);
    char *buf = malloc(n + 512);
    p->vt->mask(p, logits, nv);
    int bad = 0, complete = hl_grammar_accepts(g, text, n, NULL);
    for (int32_t t = 0; t < nv; t++) {
        int allowed = logits[t] == 0;
        size_t k;
        const char *s = hl_grammar_vocab_bytes(v, t, &k);
        int want;
        if (hl_grammar_vocab_is_eog(v, t)) want = complete;
        else if (!s) want = 0;
        else {
            memcpy(buf, text, n);
            memcpy(buf + n, s, k);
            int prefix = 0;
            hl_grammar_accepts(g, buf, n + k, &prefix);
            want = prefix;
        }
        if (allowed != want && bad < 5) {
            fprintf(stderr, "    token %d (%.*s) mask %d recognizer %d after \"%.*s\"\n", t, (int)k, s ? s : "", allowed, want, (int)n, text);
        }
        bad += allowed != want;
    }
    free(logits), free(buf);
    return bad;
}

TEST(proc_mask_equals_brute_force_on_spm_vocab) {
    tok_vocab *tok = load_stories();
    if (!tok) return;
    hl_grammar_vocab *v = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_grammar_vocab_new(&v, tok, &err), 0);
    hl_grammar *g = parse("root ::= \"Once\" \" upon\"? \" a \" (\"time\" | \"tim\\u00e9\") [.!]\n");
    hl_logits_proc *p = NULL;
    CHECK_EQ(hl_grammar_proc_new(&p, g, 0, v, &err), 0);
    const char *text = "Once upon a tim\xc3\xa9!";
    /* walk the text with the longest token that matches next, checking each mask */
    size_t at = 0, len = strlen(text);
    int32_t nv = hl_grammar_vocab_n(v);
    while (at < len) {
        CHECK_EQ(mask_matches_brute_force(p, g, v, text, at), 0);
        int32_t best = -1;
        size_t best_k = 0;
        for (int32_t t = 0; t < nv; t++) {
            size_t k;
            const char *s = hl_grammar_vocab_bytes(v, t, &k);
            if (s && k > best_k && k <= len - at && !memcmp(s, text + at, k)) best = t, best_k = k;
        }
        CHECK(best >= 0);
        if (best < 0) break;
        p->vt->accept(p, best);
        CHECK(hl_grammar_proc_state(p) >= 0);
        at += best_k;
    }
    CHECK_EQ(hl_grammar_proc_state(p), 1);
    CHECK_EQ(mask_matches_brute_force(p, g, v, text, at), 0);

    /* clones are independent */
    hl_logits_proc *c = p->vt->clone(p);
    CHECK(c != NULL);
    p->vt->accept(p, tok_find(tok, "x", 1) >= 0 ? tok_find(tok, "x", 1) : 0);
    CHECK_EQ(hl_grammar_proc_state(p), -1);
    CHECK(hl_grammar_proc_state(c) != -1);
    c->vt->free(c);
    p->vt->free(p);
    hl_grammar_free(g);

    /* byte tokens make a character across tokens: é as <0xC3><0xA9> */
    g = parse("root ::= \"\\u00e9\"+\n");
    CHECK_EQ(hl_grammar_proc_new(&p, g, 1, v, &err), 0); /* the processor owns g */
    int32_t b1 = tok_find(tok, "<0xC3>", 6), b2 = tok_find(tok, "<0xA9>", 6);
    CHECK(b1 >= 0 && b2 >= 0);
    if (b1 >= 0 && b2 >= 0) {
        uint8_t *bits = calloc((size_t)hl_grammar_vocab_n(v) / 8 + 1, 1);
        hl_grammar_proc_allowed(p, bits);
        CHECK(bits[b1 >> 3] >> (b1 & 7) & 1);
        CHECK(!(bits[b2 >> 3] >> (b2 & 7) & 1));
        p->vt->accept(p, b1);
        CHECK_EQ(hl_grammar_proc_state(p), 0);
        hl_grammar_proc_allowed(p, bits);
        CHECK(bits[b2 >> 3] >> (b2 & 7) & 1);
        CHECK(!(bits[b1 >> 3] >> (b1 & 7) & 1));
        p->vt->accept(p, b2);
        CHECK_EQ(hl_grammar_proc_state(p), 1);
        int32_t eos = tok_eos(tok);
        hl_grammar_proc_allowed(p, bits);
        if (eos >= 0) CHECK(bits[eos >> 3] >> (eos & 7) & 1);
        free(bits);
    }
    hl_logits_proc *c2 = p->vt->clone(p);
    p->vt->free(p);   /* the clone keeps the grammar alive */
    c2->vt->free(c2);
    hl_grammar_vocab_unref(v);
    tok_free(tok);
}

TEST(proc_json_any_mask_is_stable) {
    tok_vocab *tok = load_stories();
    if (!tok) return;
    hl_grammar_vocab *v = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_grammar_vocab_new(&v, tok, &err), 0);
    hl_grammar *g = NULL;
    CHECK_EQ(hl_grammar_json_any(&g, 1, &err), 0);
    hl_logits_proc *p = NULL;
    CHECK_EQ(hl_grammar_proc_new(&p, g, 0, v, &err), 0);
    const char *text = "{\"a\": [1, 2.5, \"x\"], \"b\": {}}";
    int32_t nv = hl_grammar_vocab_n(v);
    size_t at = 0;
    /* feed byte by byte through byte tokens where the vocabulary has them */
    for (size_t i = 0; text[i]; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned char)text[i]);
        int32_t t = tok_find(tok, name, strlen(name));
        if (t < 0) t = tok_find(tok, text + i, 1);
        if (t < 0) continue;
        CHECK_EQ(mask_matches_brute_force(p, g, v, text, at), 0);
        /* a cached mask is the same as a computed one */
        float *l1 = calloc((size_t)nv, sizeof *l1);
        p->vt->mask(p, l1, nv);
        hl_logits_proc *fresh = p->vt->clone(p);
        float *l2 = calloc((size_t)nv, sizeof *l2);
        fresh->vt->mask(fresh, l2, nv);
        CHECK(memcmp(l1, l2, (size_t)nv * sizeof *l1) == 0);
        fresh->vt->free(fresh);
        free(l1), free(l2);
        p->vt->accept(p, t);
        at++;
        if (i > 12) break; /* brute force is slow: the first part is enough */
    }
    p->vt->free(p);
    hl_grammar_free(g);
    hl_grammar_vocab_unref(v);
    tok_free(tok);
}

/* Deep nesting grows the parse state; closing it again leaves garbage that
 * accept compacts away. The mask must be right before and after. */
TEST(proc_compacts_deep_state) {
    tok_vocab *tok = load_stories();
    if (!tok) return;
    hl_grammar_vocab *v = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_grammar_vocab_new(&v, tok, &err), 0);
    hl_grammar *g = parse("root ::= \"(\" root \")\" | \"x\"\n");
    hl_logits_proc *p = NULL;
    CHECK_EQ(hl_grammar_proc_new(&p, g, 0, v, &err), 0);
    int32_t open = tok_find(tok, "<0x28>", 6), close = tok_find(tok, "<0x29>", 6), x = tok_find(tok, "<0x78>", 6);
    CHECK(open >= 0 && close >= 0 && x >= 0);
    if (open >= 0 && close >= 0 && x >= 0) {
        enum { DEPTH = 6000 };
        char *text = malloc(2 * DEPTH + 2);
        size_t n = 0;
        for (int i = 0; i < DEPTH; i++) p->vt->accept(p, open), text[n++] = '(';
        p->vt->accept(p, x), text[n++] = 'x';
        for (int i = 0; i < DEPTH - 3; i++) p->vt->accept(p, close), text[n++] = ')';
        CHECK_EQ(hl_grammar_proc_state(p), 0);
        CHECK_EQ(mask_matches_brute_force(p, g, v, text, n), 0);
        hl_logits_proc *c = p->vt->clone(p);
        for (int i = 0; i < 3; i++) p->vt->accept(p, close), text[n++] = ')';
        CHECK_EQ(hl_grammar_proc_state(p), 1);
        CHECK_EQ(mask_matches_brute_force(p, g, v, text, n), 0);
        c->vt->accept(c, close);
        CHECK_EQ(hl_grammar_proc_state(c), 0);
        c->vt->free(c);
        free(text);
    }
    p->vt->free(p);
    hl_grammar_free(g);
    hl_grammar_vocab_unref(v);
    tok_free(tok);
}

/* Characters split across byte tokens, where the mask's shortcuts live: after
 * each lead byte (those whose second byte has limits of its own: E0, ED, F0,
 * F4, and ordinary ones) and after each second byte, the mask must equal the
 * reference (every token's bytes through the plain recognizer), for classes
 * that take every character and for one that takes only some. */
TEST(proc_mask_mid_character_equals_reference) {
    tok_vocab *tok = load_stories();
    if (!tok) return;
    hl_grammar_vocab *v = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_grammar_vocab_new(&v, tok, &err), 0);
    int32_t nv = hl_grammar_vocab_n(v);
    size_t nb = (size_t)nv / 8 + 1;
    uint8_t *bits = calloc(nb, 1), *ref = calloc(nb, 1);
    const char *grammars[] = {"root ::= [\\x00-\\U0010ffff]*\n", "root ::= [^\"]*\n", "root ::= [\\u0800-\\u0fff\\ud000-\\ud7ff\\U00010000-\\U0003ffff\\U00100000-\\U0010ffff]*\n"};
    static const uint8_t seqs[][2] = {{0xE0, 0xA0}, {0xE0, 0xBF}, {0xED, 0x80}, {0xED, 0x9F}, {0xF0, 0x90}, {0xF4, 0x80},
                                      {0xF4, 0x8F}, {0xE1, 0x80}, {0xC3, 0xA9}, {0xF1, 0x80}, {0xEF, 0xBF}};
    for (size_t gi = 0; gi < sizeof grammars / sizeof *grammars; gi++) {
        hl_grammar *g = parse(grammars[gi]);
        for (size_t si = 0; si < sizeof seqs / sizeof *seqs; si++) {
            hl_logits_proc *p = NULL;
            CHECK_EQ(hl_grammar_proc_new(&p, g, 0, v, &err), 0);
            char text[2];
            for (int k = 0; k < 2; k++) {
                char name[8];
                snprintf(name, sizeof name, "<0x%02X>", seqs[si][k]);
                int32_t t = tok_find(tok, name, strlen(name));
                CHECK(t >= 0);
                if (t < 0) break;
                text[k] = (char)seqs[si][k];
                p->vt->accept(p, t);
                int state = hl_grammar_proc_state(p);
                int want = hl_grammar_allowed_after(g, v, text, (size_t)k + 1, ref);
                CHECK_EQ(state, want);
                if (want < 0) break; /* the character cannot be in this grammar's class */
                hl_grammar_proc_allowed(p, bits);
                int bad = 0;
                for (int32_t i = 0; i < nv; i++) bad += (bits[i >> 3] >> (i & 7) & 1) != (ref[i >> 3] >> (i & 7) & 1);
                if (bad) hl_test_fail(__FILE__, __LINE__, "grammar %zu after %02x %02x (%d bytes): %d tokens differ", gi, seqs[si][0], seqs[si][1], k + 1, bad);
            }
            p->vt->free(p);
        }
        hl_grammar_free(g);
    }
    free(bits), free(ref);
    hl_grammar_vocab_unref(v);
    tok_free(tok);
}
