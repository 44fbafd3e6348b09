/* A tool for the Python grammar tests (tests/grammar/), not a unit test:
 * built by `make tests` as build/<mode>/tools/dump_grammar.
 *
 *   dump_grammar gbnf FILE        grammar from GBNF text
 *   dump_grammar schema FILE      grammar from a JSON Schema
 *   dump_grammar json | object    any JSON value / object
 * then one of
 *   ... print                     writes the GBNF (schema / json only)
 *   ... match                     reads texts from stdin, one per line as hex
 *                                 bytes; prints per line "1" (accepted), "p"
 *                                 (a prefix of an accepted text) or "0"
 *   ... walk MODEL.gguf N SEED    N random walks over the model's vocabulary,
 *                                 each step drawing only among the tokens the
 *                                 mask allows (ending when it picks an end
 *                                 token, or after 400 steps); prints per walk
 *                                 "done HEX" or "open HEX" (the text so far),
 *                                 and checks that the mask and the recognizer
 *                                 agree on every step ("bad ..." when not)
 *   ... check MODEL.gguf N SEED [STEPS]
 *                                 the same walks (at most STEPS steps each),
 *                                 also comparing every step's
 *                                 mask (memo, byte classes, cache) with the
 *                                 reference (hl_grammar_allowed_after: each
 *                                 token's bytes through the plain
 *                                 recognizer); prints "checked S states" or
 *                                 "bad mask ..." per differing token
 *
 * Errors go to stderr with exit status 1 (2 for usage). */
#include "base/buf.h"
#include "base/file.h"
#include "gguf/gguf.h"
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int is_structural(unsigned char c) {
    return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80 || c <= ' ');
}

static int walk(hl_grammar *g, const char *model, int n_walks, uint64_t seed, int check, int max_steps) {
    hl_err err = {0};
    gguf_file *f = NULL;
    tok_vocab *tok = NULL;
    hl_grammar_vocab *v = NULL;
    if (gguf_open(&f, model, &err) || tok_load(&tok, f, &err) || hl_grammar_vocab_new(&v, tok, &err)) {
        fprintf(stderr, "dump_grammar: %s\n", err.msg);
        gguf_close(f);
        tok_free(tok);
        return 1;
    }
    gguf_close(f);
    int32_t nv = hl_grammar_vocab_n(v);
    uint8_t *bits = malloc((size_t)nv / 8 + 1), *ref = malloc((size_t)nv / 8 + 1);
    long checked = 0;
    int32_t *cand = malloc((size_t)nv * sizeof *cand), *pref = malloc((size_t)nv * sizeof *pref);
    float *logits = malloc((size_t)nv * sizeof *logits);
    hl_buf text = {0};
    int rc = 0;
    for (int w = 0; w < n_walks && !rc; w++) {
        hl_logits_proc *p = NULL;
        if (hl_grammar_proc_new(&p, g, 0, v, &err)) {
            fprintf(stderr, "dump_grammar: %s\n", err.msg);
            rc = 1;
            break;
        }
        hl_buf_reset(&text);
        int done = 0;
        for (int step = 0; step < max_steps && !done; step++) {
            hl_grammar_proc_allowed(p, bits);
            if (check) {
                int st = hl_grammar_allowed_after(g, v, text.data ? text.data : "", text.len, ref);
                if (st != hl_grammar_proc_state(p)) { printf("bad state %d, reference %d\n", hl_grammar_proc_state(p), st); rc = 1; }
                int shown = 0;
                for (int32_t t = 0; t < nv; t++) {
                    int on = bits[t >> 3] >> (t & 7) & 1, want = ref[t >> 3] >> (t & 7) & 1;
                    if (on == want) continue;
                    rc = 1;
                    if (shown++ < 5) {
                        size_t n;
                        const char *s = hl_grammar_vocab_bytes(v, t, &n);
                        printf("bad mask %d reference %d for token %d (", on, want, t);
                        put_hex(s ? s : "", s ? n : 0);
                        printf(") after ");
                        put_hex(text.data ? text.data : "", text.len);
                        printf("\n");
                    }
                }
                checked++;
            }
            /* the logits mask must agree with the bits */
            for (int32_t t = 0; t < nv; t++) logits[t] = 0;
            p->vt->mask(p, logits, nv);
            int32_t nc = 0, np = 0, neog = 0;
            for (int32_t t = 0; t < nv; t++) {
                int on = bits[t >> 3] >> (t & 7) & 1;
                if (on != (logits[t] == 0)) { printf("bad mask/bits disagree at token %d\n", t); rc = 1; }
                if (!on) continue;
                if (hl_grammar_vocab_is_eog(v, t)) { neog++; continue; }
                cand[nc++] = t;
                size_t n;
                const char *s = hl_grammar_vocab_bytes(v, t, &n);
                if (n == 1 && is_structural((unsigned char)s[0])) pref[np++] = t;
            }
            int complete = hl_grammar_proc_state(p) == 1;
            if (neog && !complete) { printf("bad eog allowed on an incomplete text\n"); rc = 1; }
            if (complete && !neog && hl_grammar_vocab_n(v) > 0) {
                /* a vocabulary without end tokens: stop anyway */
            }
            uint64_t r = rng_next(&seed);
            if (complete && (nc == 0 || r % 4 == 0)) { done = 1; break; }
            if (nc == 0) break;
            int32_t t = np && (r >> 8) % 10 < 7 ? pref[(r >> 16) % (uint64_t)np] : cand[(r >> 16) % (uint64_t)nc];
            size_t n;
            const char *s = hl_grammar_vocab_bytes(v, t, &n);
            hl_buf_append(&text, s, n);
            p->vt->accept(p, t);
            if (hl_grammar_proc_state(p) < 0) { printf("bad allowed token %d was refused on accept\n", t); rc = 1; break; }
            int prefix_ok = 0;
            hl_grammar_accepts(g, text.data, text.len, &prefix_ok);
            if (!prefix_ok) { printf("bad the recognizer refuses the walk's text\n"); rc = 1; break; }
        }
        if (done && !hl_grammar_accepts(g, text.data, text.len, NULL)) { printf("bad complete state but the recognizer refuses\n"); rc = 1; }
        printf("%s ", done ? "done" : "open");
        put_hex(text.data ? text.data : "", text.len);
        printf("\n");
        p->vt->free(p);
    }
    if (check) printf("checked %ld states\n", checked);
    hl_buf_free(&text);
    free(bits), free(ref), free(cand), free(pref), free(logits);
    hl_grammar_vocab_unref(v);
    tok_free(tok);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: dump_grammar gbnf|schema FILE print|match|walk ... (or json|object print|match|walk)\n");
        return 2;
    }
    hl_err err = {0};
    hl_grammar *g = NULL;
    const char *kind = argv[1];
    int ai = 2;
    char *data = NULL;
    size_t n = 0;
    hl_buf gb = {0};
    int rc;
    if (!strcmp(kind, "json") || !strcmp(kind, "object")) {
        hl_grammar_json_any_gbnf(kind[0] == 'o', &gb);
        rc = hl_grammar_parse(&g, gb.data, gb.len, &err);
    } else {
        if (argc < 4) return 2;
        if (hl_read_file(argv[2], (size_t)1 << 24, &data, &n, &err)) {
            fprintf(stderr, "dump_grammar: %s\n", err.msg);
            return 1;
        }
        ai = 3;
        if (!strcmp(kind, "gbnf")) rc = hl_grammar_parse(&g, data, n, &err);
        else if (!strcmp(kind, "schema")) {
            rc = hl_json_schema_to_gbnf(data, n, "", &gb, &err);
            if (!rc) rc = hl_grammar_parse(&g, gb.data, gb.len, &err);
        } else return 2;
    }
    if (rc) {
        fprintf(stderr, "error: %s\n", err.msg);
        if (gb.data && getenv("HL_GRAMMAR_DUMP")) fprintf(stderr, "%s", gb.data);
        free(data), hl_buf_free(&gb);
        return 1;
    }
    const char *mode = argv[ai];
    rc = 0;
    if (!strcmp(mode, "print")) {
        fputs(gb.data ? gb.data : data, stdout);
    } else if (!strcmp(mode, "match")) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        char *buf = NULL;
        while ((len = getline(&line, &cap, stdin)) >= 0) {
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
            buf = realloc(buf, (size_t)len / 2 + 1);
            size_t k = 0;
            for (ssize_t i = 0; i + 1 < len; i += 2) buf[k++] = (char)(hexval(line[i]) * 16 + hexval(line[i + 1]));
            int prefix_ok = 0;
            int ok = hl_grammar_accepts(g, buf, k, &prefix_ok);
            puts(ok ? "1" : prefix_ok ? "p" : "0");
        }
        free(line), free(buf);
    } else if ((!strcmp(mode, "walk") || !strcmp(mode, "check")) && argc >= ai + 4) {
        int steps = mode[0] == 'c' && argc > ai + 4 ? atoi(argv[ai + 4]) : 400;
        rc = walk(g, argv[ai + 1], atoi(argv[ai + 2]), strtoull(argv[ai + 3], NULL, 10), mode[0] == 'c', steps);
    } else {
        rc = 2;
    }
    hl_grammar_free(g);
    free(data), hl_buf_free(&gb);
    return rc;
}
