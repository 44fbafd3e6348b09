/* Modelfile parsing and printing (see modelfile.h for the syntax). The parser
 * walks the text once with line numbers for errors; the printer quotes a value
 * only when the plain form would not read back the same, so that
 * parse(format(x)) == x holds for every value the parser can produce. */
#include "store/modelfile.h"

#include "base/buf.h"
#include "base/utf8.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *kind_names[] = {"FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "MESSAGE", "LICENSE", "ADAPTER"};

int store_modelfile_add(store_modelfile *mf, store_mf_kind kind, const char *key, const char *value, hl_err *err) {
    if (mf->n == mf->cap) {
        size_t cap = mf->cap ? mf->cap * 2 : 8;
        if (cap > 100000) return hl_err_set(err, HL_ERANGE, "Modelfile has too many instructions");
        store_mf_cmd *nv = realloc(mf->cmds, cap * sizeof *nv);
        if (!nv) return hl_err_set(err, HL_ENOMEM, "out of memory");
        mf->cmds = nv;
        mf->cap = cap;
    }
    store_mf_cmd *c = &mf->cmds[mf->n];
    c->kind = kind;
    c->line = 0;
    c->key = key ? strdup(key) : NULL;
    c->value = strdup(value ? value : "");
    if ((key && !c->key) || !c->value) {
        free(c->key);
        free(c->value);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    mf->n++;
    return HL_OK;
}

void store_modelfile_free(store_modelfile *mf) {
    for (size_t i = 0; i < mf->n; i++) {
        free(mf->cmds[i].key);
        free(mf->cmds[i].value);
    }
    free(mf->cmds);
    memset(mf, 0, sizeof *mf);
}

int store_modelfile_equal(const store_modelfile *a, const store_modelfile *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        const store_mf_cmd *x = &a->cmds[i], *y = &b->cmds[i];
        if (x->kind != y->kind || strcmp(x->value, y->value) != 0) return 0;
        if ((x->key == NULL) != (y->key == NULL) || (x->key && strcmp(x->key, y->key) != 0)) return 0;
    }
    return 1;
}

typedef struct cursor {
    const char *p, *end;
    int line;
} cursor;

static void skip_blank(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int read_word(cursor *c, char *out, size_t cap) {
    size_t n = 0;
    while (c->p < c->end && !isspace((unsigned char)*c->p)) {
        if (n + 1 >= cap) return -1;
        out[n++] = *c->p++;
    }
    out[n] = 0;
    return (int)n;
}

/* Reads a value: """...""" (multi-line), "..." (escapes), or the rest of the
 * line with surrounding blanks trimmed. */
static int read_value(cursor *c, hl_buf *v, hl_err *err) {
    skip_blank(c);
    int start_line = c->line;
    if (c->end - c->p >= 3 && !memcmp(c->p, "\"\"\"", 3)) {
        c->p += 3;
        for (;;) {
            if (c->p >= c->end)
                return hl_err_set(err, HL_EINVAL, "line %d: unterminated \"\"\" (no closing \"\"\")", start_line);
            if (c->end - c->p >= 3 && !memcmp(c->p, "\"\"\"", 3)) {
                c->p += 3;
                break;
            }
            if (*c->p == '\n') c->line++;
            hl_buf_putc(v, *c->p++);
        }
    } else if (c->p < c->end && *c->p == '"') {
        c->p++;
        for (;;) {
            if (c->p >= c->end || *c->p == '\n')
                return hl_err_set(err, HL_EINVAL, "line %d: unterminated quoted value (missing closing \")", start_line);
            if (*c->p == '"') {
                c->p++;
                break;
            }
            if (*c->p == '\\' && c->p + 1 < c->end && (c->p[1] == '"' || c->p[1] == '\\')) c->p++;
            hl_buf_putc(v, *c->p++);
        }
    } else {
        const char *s = c->p;
        while (c->p < c->end && *c->p != '\n') c->p++;
        const char *e = c->p;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        hl_buf_append(v, s, (size_t)(e - s));
        return HL_OK;
    }
    /* after a quoted value only blanks (or a comment) may follow */
    skip_blank(c);
    if (c->p < c->end && *c->p != '\n' && *c->p != '\r' && *c->p != '#')
        return hl_err_set(err, HL_EINVAL, "line %d: unexpected text after the closing quote", c->line);
    while (c->p < c->end && *c->p != '\n') c->p++;
    return HL_OK;
}

static int parse(const char *text, size_t len, store_modelfile *out, int need_from, hl_err *err) {
    memset(out, 0, sizeof *out);
    if (len > STORE_MODELFILE_MAX) return hl_err_set(err, HL_ERANGE, "Modelfile is too large (%zu bytes)", len);
    if (!hl_utf8_valid(text, len)) return hl_err_set(err, HL_EINVAL, "Modelfile is not valid UTF-8");
    if (memchr(text, 0, len)) return hl_err_set(err, HL_EINVAL, "Modelfile contains a NUL byte");
    cursor c = {text, text + len, 1};
    hl_buf v = {0};
    int rc = HL_OK, n_from = 0;
    while (c.p < c.end && rc == HL_OK) {
        skip_blank(&c);
        if (c.p >= c.end) break;
        if (*c.p == '\n' || *c.p == '\r') {
            if (*c.p == '\n') c.line++;
            c.p++;
            continue;
        }
        if (*c.p == '#') {
            while (c.p < c.end && *c.p != '\n') c.p++;
            continue;
        }
        int line = c.line;
        char word[32];
        if (read_word(&c, word, sizeof word) < 0) {
            rc = hl_err_set(err, HL_EINVAL, "line %d: unknown instruction (want FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE, LICENSE or ADAPTER)", line);
            break;
        }
        int kind = -1;
        for (int k = 0; k < 7; k++)
            if (!strcasecmp(word, kind_names[k])) kind = k;
        if (kind < 0) {
            rc = hl_err_set(err, HL_EINVAL, "line %d: unknown instruction \"%s\" (want FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE, LICENSE or ADAPTER)", line, word);
            break;
        }
        char key[64] = {0};
        if (kind == STORE_MF_PARAMETER || kind == STORE_MF_MESSAGE) {
            skip_blank(&c);
            if (read_word(&c, key, sizeof key) <= 0) {
                rc = hl_err_set(err, HL_EINVAL, "line %d: %s needs a %s and a value", line, kind_names[kind],
                                kind == STORE_MF_PARAMETER ? "name" : "role");
                break;
            }
            for (char *k = key; *k; k++) *k = (char)tolower((unsigned char)*k);
            if (kind == STORE_MF_MESSAGE && strcmp(key, "system") && strcmp(key, "user") && strcmp(key, "assistant")) {
                rc = hl_err_set(err, HL_EINVAL, "line %d: MESSAGE role must be system, user or assistant, not \"%s\"", line, key);
                break;
            }
        }
        hl_buf_reset(&v);
        hl_buf_putc(&v, 0); /* data non-NULL even when empty */
        hl_buf_reset(&v);
        if ((rc = read_value(&c, &v, err))) break;
        if (v.oom) {
            rc = hl_err_set(err, HL_ENOMEM, "out of memory");
            break;
        }
        if (kind == STORE_MF_FROM && ++n_from > 1) {
            rc = hl_err_set(err, HL_EINVAL, "line %d: more than one FROM", line);
            break;
        }
        if ((kind == STORE_MF_FROM || kind == STORE_MF_ADAPTER || kind == STORE_MF_PARAMETER) && v.len == 0) {
            rc = hl_err_set(err, HL_EINVAL, "line %d: %s needs a value", line, kind_names[kind]);
            break;
        }
        if (kind == STORE_MF_PARAMETER && (rc = store_param_check(key, v.data, NULL, err))) {
            hl_err_prefix(err, "line %d: ", line);
            break;
        }
        if ((rc = store_modelfile_add(out, (store_mf_kind)kind, key[0] ? key : NULL, v.data, err))) break;
        out->cmds[out->n - 1].line = line;
    }
    hl_buf_free(&v);
    if (rc == HL_OK && need_from && n_from == 0) rc = hl_err_set(err, HL_EINVAL, "Modelfile has no FROM line");
    if (rc) store_modelfile_free(out);
    return rc;
}

int store_modelfile_parse(const char *text, size_t len, store_modelfile *out, hl_err *err) {
    return parse(text, len, out, 1, err);
}

int store_modelfile_parse_loose(const char *text, size_t len, store_modelfile *out, hl_err *err) {
    return parse(text, len, out, 0, err);
}

/* Writes a value so that read_value returns it unchanged. */
static void put_value(hl_buf *b, const char *v) {
    size_t n = strlen(v);
    int plain = n > 0 && !strchr(v, '\n') && !strchr(v, '\r') && !isspace((unsigned char)v[0]) &&
                !isspace((unsigned char)v[n - 1]) && v[0] != '"';
    if (plain) {
        hl_buf_puts(b, v);
    } else if (!strchr(v, '\n')) {
        /* one line, even with a CR in it: "..." holds anything but a newline
         * (a CR-only value may contain """, which the multi-line form cannot) */
        hl_buf_putc(b, '"');
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') hl_buf_putc(b, '\\');
            hl_buf_putc(b, *p);
        }
        hl_buf_putc(b, '"');
    } else {
        /* multi-line: """ ... """ cannot hold a """ nor end in '"' */
        hl_buf_puts(b, "\"\"\"");
        hl_buf_puts(b, v);
        hl_buf_puts(b, "\"\"\"");
    }
}

char *store_modelfile_format(const store_modelfile *mf) {
    hl_buf b = {0};
    for (size_t i = 0; i < mf->n; i++) {
        const store_mf_cmd *c = &mf->cmds[i];
        hl_buf_puts(&b, kind_names[c->kind]);
        hl_buf_putc(&b, ' ');
        if (c->key) {
            hl_buf_puts(&b, c->key);
            hl_buf_putc(&b, ' ');
        }
        if (c->kind == STORE_MF_TEMPLATE || c->kind == STORE_MF_SYSTEM || c->kind == STORE_MF_LICENSE) {
            if (strstr(c->value, "\"\"\"") || (c->value[0] && c->value[strlen(c->value) - 1] == '"'))
                put_value(&b, c->value);
            else {
                hl_buf_puts(&b, "\"\"\"");
                hl_buf_puts(&b, c->value);
                hl_buf_puts(&b, "\"\"\"");
            }
        } else {
            put_value(&b, c->value);
        }
        hl_buf_putc(&b, '\n');
    }
    hl_buf_putc(&b, 0);
    b.len--;
    if (b.oom) {
        hl_buf_free(&b);
        return NULL;
    }
    return hl_buf_take(&b);
}
