/* The streaming output splitter (outparse.h): a small state machine over the
 * text not yet decided. In text mode it looks for the family's markers (the
 * thinking opener while no answer has been given, and the tool-call openers),
 * releases everything before the leftmost one and holds back only a tail
 * that is a proper prefix of some marker, as the stop matcher does. Inside
 * thinking it looks for the closer alone. Inside a call it holds everything
 * until the call's closer (or the end of the output, for formats whose calls
 * run to the end) and then parses the body as a whole; a body that does not
 * parse is released as content with its markers. Parsing a body is atomic:
 * either every call in it is emitted or none. Harmony (gpt-oss) has no
 * free text between messages: its own loop (step_harmony) alternates a
 * header mode, held until <|message|>, whose channel and recipient choose
 * the body's mode, with the body modes, which end at the next message's
 * markers. */
#include "chat/outparse.h"
#include "chat/markers.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MARKERS 4
#define JSON_DEPTH 64

typedef enum { M_TEXT, M_THINK, M_CALL, M_HEADER } pmode;

#define HARMONY_HEADER_MAX 512 /* a longer "header" is no header, but text */

typedef struct marker {
    const char *open;  /* owned by the parser (copied) or static */
    const char *close; /* NULL: the call runs to the end of the output */
    int think;
} marker;

struct chat_outparse {
    chat_tool_format fmt;
    char *prefix, *suffix, *think_open, *think_close;
    struct json_object *defs; /* our copy of the tools, or NULL */
    marker mk[MAX_MARKERS];
    int n_mk;
    int bare_json;        /* a call may also be the whole answer as bare JSON */
    pmode mode;
    hl_buf pend;          /* undecided text */
    const marker *call;   /* the marker that opened the call in progress (NULL: bare JSON) */
    int answered;         /* non-whitespace content was emitted */
    int skip_ws;
    size_t n_calls;
    int harmony;          /* gpt-oss's channels (outparse.h) */
    hl_buf hdr;           /* harmony: the header of the message in progress, markers included */
    char *to;             /* harmony: the function the message in progress calls, or NULL */
};

static const char DS_CALLS_BEGIN[] = CHAT_DS_CALLS_BEGIN;
static const char DS_CALLS_END[] = CHAT_DS_CALLS_END;
static const char DS_CALL_BEGIN[] = CHAT_DS_CALL_BEGIN;
static const char DS_CALL_END[] = CHAT_DS_CALL_END;
static const char DS_SEP[] = CHAT_DS_SEP;

const char *chat_tool_format_name(chat_tool_format f) {
    switch (f) {
    case CHAT_TOOLS_NONE: return "none";
    case CHAT_TOOLS_HERMES: return "hermes";
    case CHAT_TOOLS_QWEN3_XML: return "qwen3-xml";
    case CHAT_TOOLS_LLAMA3: return "llama3";
    case CHAT_TOOLS_MISTRAL: return "mistral";
    case CHAT_TOOLS_DEEPSEEK: return "deepseek";
    case CHAT_TOOLS_PREFIX: return "prefix";
    case CHAT_TOOLS_HARMONY: return "harmony";
    }
    return "?";
}

/* ---- results -------------------------------------------------------------- */

void chat_out_reset(chat_out *o) {
    hl_buf_reset(&o->content);
    hl_buf_reset(&o->thinking);
    for (size_t i = 0; i < o->n_calls; i++) {
        free(o->calls[i].name);
        free(o->calls[i].arguments);
    }
    o->n_calls = 0;
}

void chat_out_free(chat_out *o) {
    chat_out_reset(o);
    hl_buf_free(&o->content);
    hl_buf_free(&o->thinking);
    free(o->calls);
    memset(o, 0, sizeof *o);
}

/* A list of calls parsed from one body, committed to the output only when
 * the whole body parsed. */
typedef struct calls {
    chat_tool_call *v;
    size_t n, cap;
    int oom;
} calls;

static void calls_free(calls *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].name);
        free(c->v[i].arguments);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* Takes name[0..nn) and args (a JSON object, borrowed) */
static int calls_add(calls *c, const char *name, size_t nn, struct json_object *args) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        chat_tool_call *v = realloc(c->v, nc * sizeof *v);
        if (!v) return c->oom = 1, -1;
        c->v = v, c->cap = nc;
    }
    const char *a = args ? json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : "{}";
    char *n = strndup(name, nn), *s = strdup(a ? a : "{}");
    if (!n || !s) {
        free(n);
        free(s);
        return c->oom = 1, -1;
    }
    c->v[c->n++] = (chat_tool_call){n, s};
    return 0;
}

static int commit(chat_outparse *p, calls *c, chat_out *out) {
    for (size_t i = 0; i < c->n; i++) {
        if (out->n_calls == out->cap_calls) {
            size_t nc = out->cap_calls ? out->cap_calls * 2 : 4;
            chat_tool_call *v = realloc(out->calls, nc * sizeof *v);
            if (!v) {
                calls_free(c);
                return HL_ENOMEM;
            }
            out->calls = v, out->cap_calls = nc;
        }
        out->calls[out->n_calls++] = c->v[i];
        p->n_calls++;
    }
    free(c->v);
    memset(c, 0, sizeof *c);
    return 0;
}

/* ---- small text helpers ---------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static const char *find(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    if (!m || m > n) return NULL;
    return memmem(s, n, pat, m);
}

static void trim(const char **s, size_t *n) {
    while (*n && is_ws(**s)) (*s)++, (*n)--;
    while (*n && is_ws((*s)[*n - 1])) (*n)--;
}

/* The longest suffix of s[0..n) that is a proper prefix of pat. */
static size_t partial(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
        if (!memcmp(s + n - k, pat, k)) return k;
    return 0;
}

/* ---- JSON ----------------------------------------------------------------- */

/* The length of the object or array that starts s[0..n) (brackets balanced
 * outside strings), or 0 when it does not end within n. */
static size_t json_span(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > JSON_DEPTH) return 0;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
            if (depth < 0) return 0;
        }
    }
    return 0;
}

static int json_whole(const char *s, size_t n, struct json_object **out);

/* Parses one JSON object or array at the start of s[0..n) (leading
 * whitespace allowed); *used is how many bytes it took. NULL when there is
 * none. */
static struct json_object *json_at(const char *s, size_t n, size_t *used) {
    size_t ws = 0;
    while (ws < n && is_ws(s[ws])) ws++;
    if (ws == n || (s[ws] != '{' && s[ws] != '[')) return NULL;
    size_t len = json_span(s + ws, n - ws);
    struct json_object *o = NULL;
    if (!len || !json_whole(s + ws, len, &o)) return NULL;
    *used = ws + len;
    return o;
}

/* s[0..n) as one whole JSON value of any type: 1 and *out (NULL for null),
 * or 0 when it is not exactly one value. */
static int json_whole(const char *s, size_t n, struct json_object **out) {
    *out = NULL;
    char *z = strndup(s, n);
    if (!z) return 0;
    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    int ok = 0;
    if (tok) {
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        struct json_object *o = json_tokener_parse_ex(tok, z, (int)n + 1); /* the NUL ends a number */
        if (json_tokener_get_error(tok) == json_tokener_success && (size_t)json_tokener_get_parse_end(tok) >= n) {
            *out = o;
            ok = 1;
        } else json_object_put(o);
        json_tokener_free(tok);
    }
    free(z);
    return ok;
}

static struct json_object *get(struct json_object *o, const char *k) {
    struct json_object *v = NULL;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* Arguments as a call carries them: an object, a JSON string holding one, or
 * nothing ({}). Returns a new reference in *out, or -1 when not an object. */
static int args_object(struct json_object *a, struct json_object **out) {
    *out = NULL;
    if (!a) return *out = json_object_new_object(), 0;
    if (json_object_is_type(a, json_type_object)) return *out = json_object_get(a), 0;
    if (json_object_is_type(a, json_type_string)) {
        struct json_object *v;
        const char *s = json_object_get_string(a);
        if (json_whole(s, strlen(s), &v) && v && json_object_is_type(v, json_type_object)) return *out = v, 0;
        json_object_put(v);
    }
    return -1;
}

/* One call object {"name": "...", "arguments"|"parameters": {...}}. */
static int call_object(struct json_object *o, calls *c) {
    struct json_object *name = get(o, "name"), *a = get(o, "arguments"), *args;
    if (!a) a = get(o, "parameters");
    if (!name || !json_object_is_type(name, json_type_string) || !json_object_get_string_len(name)) return -1;
    if (args_object(a, &args)) return -1;
    int rc = calls_add(c, json_object_get_string(name), (size_t)json_object_get_string_len(name), args);
    json_object_put(args);
    return rc;
}

/* A sequence of call objects or arrays of them, separated by whitespace, ';'
 * or ','; nothing else may be in s[0..n). */
static int json_calls(const char *s, size_t n, calls *c) {
    size_t at = 0;
    int any = 0;
    for (;;) {
        while (at < n && (is_ws(s[at]) || (any && (s[at] == ';' || s[at] == ',')))) at++;
        if (at == n) return any ? 0 : -1;
        size_t used = 0;
        struct json_object *v = json_at(s + at, n - at, &used);
        if (!v) return -1;
        int rc = 0;
        if (json_object_is_type(v, json_type_array)) {
            size_t k = json_object_array_length(v);
            if (!k) rc = -1;
            for (size_t i = 0; i < k && !rc; i++) rc = call_object(json_object_array_get_idx(v, i), c);
        } else rc = call_object(v, c);
        json_object_put(v);
        if (rc) return -1;
        any = 1;
        at += used;
    }
}

/* Splits s[0..n) at every occurrence of sep and runs fn on each non-empty
 * (after trimming) piece. */
static int each_piece(chat_outparse *p, const char *s, size_t n, const char *sep,
                      int (*fn)(chat_outparse *, const char *, size_t, calls *), calls *c) {
    size_t m = strlen(sep);
    while (n) {
        const char *q = find(s, n, sep);
        size_t len = q ? (size_t)(q - s) : n;
        const char *t = s;
        size_t tn = len;
        trim(&t, &tn);
        if (tn && fn(p, t, tn, c)) return -1;
        if (!q) break;
        s += len + m, n -= len + m;
    }
    return 0;
}

static int piece_json(chat_outparse *p, const char *s, size_t n, calls *c) {
    (void)p;
    return json_calls(s, n, c);
}

/* ---- per-family bodies ------------------------------------------------------- */

/* Mistral: "[{...}, ...]" after [TOOL_CALLS], or NAME[ARGS]{...} (with an
 * optional [CALL_ID]id before [ARGS]). */
static int piece_mistral(chat_outparse *p, const char *s, size_t n, calls *c) {
    (void)p;
    if (s[0] == '[' || s[0] == '{') return json_calls(s, n, c);
    const char *a = find(s, n, "[ARGS]");
    if (!a) return -1;
    const char *name = s;
    size_t nn = (size_t)(a - s);
    const char *id = find(s, nn, "[CALL_ID]");
    if (id) nn = (size_t)(id - s);
    trim(&name, &nn);
    const char *j = a + 6;
    size_t jn = n - (size_t)(j - s);
    trim(&j, &jn);
    struct json_object *v = NULL;
    if (!nn || !json_whole(j, jn, &v) || !v || !json_object_is_type(v, json_type_object)) {
        json_object_put(v);
        return -1;
    }
    int rc = calls_add(c, name, nn, v);
    json_object_put(v);
    return rc;
}

/* DeepSeek: one <｜tool▁call▁begin｜>...<｜tool▁call▁end｜> inner part:
 * "function<｜tool▁sep｜>NAME\n```json\n{..}\n```" or "NAME<｜tool▁sep｜>{..}". */
static int piece_deepseek(chat_outparse *p, const char *s, size_t n, calls *c) {
    (void)p;
    const char *b = find(s, n, DS_CALL_BEGIN);
    if (b) n -= (size_t)(b - s) + strlen(DS_CALL_BEGIN), s = b + strlen(DS_CALL_BEGIN);
    const char *sep = find(s, n, DS_SEP);
    if (!sep) return -1;
    const char *left = s, *right = sep + strlen(DS_SEP);
    size_t ln = (size_t)(sep - s), rn = n - ln - strlen(DS_SEP);
    trim(&left, &ln);
    const char *name;
    size_t nn;
    if (ln == 8 && !memcmp(left, "function", 8)) {
        const char *nl = memchr(right, '\n', rn), *f = find(right, rn, "```");
        const char *end = nl && (!f || nl < f) ? nl : f;
        if (!end) return -1;
        name = right, nn = (size_t)(end - right);
        rn -= (size_t)(end - right), right = end;
        trim(&right, &rn);
        if (rn >= 3 && !memcmp(right, "```", 3)) {
            right += 3, rn -= 3;
            if (rn >= 4 && !memcmp(right, "json", 4)) right += 4, rn -= 4;
            const char *close = NULL;
            for (size_t i = rn; i >= 3; i--)
                if (!memcmp(right + i - 3, "```", 3)) { close = right + i - 3; break; }
            if (close) rn = (size_t)(close - right);
        }
    } else {
        name = left, nn = ln;
    }
    trim(&name, &nn);
    trim(&right, &rn);
    struct json_object *v = NULL;
    if (!nn || !json_whole(right, rn, &v) || !v || !json_object_is_type(v, json_type_object)) {
        json_object_put(v);
        return -1;
    }
    int rc = calls_add(c, name, nn, v);
    json_object_put(v);
    return rc;
}

/* The request's definition of function fn[0..fnn) (its "function" object,
 * or the tool itself when it has none), or NULL. */
static struct json_object *def_of(const chat_outparse *p, const char *fn, size_t fnn) {
    if (!p->defs || !json_object_is_type(p->defs, json_type_array)) return NULL;
    for (size_t i = 0; i < json_object_array_length(p->defs); i++) {
        struct json_object *t = json_object_array_get_idx(p->defs, i), *f = get(t, "function");
        struct json_object *name = get(f ? f : t, "name");
        const char *ns = name ? json_object_get_string(name) : NULL;
        if (ns && strlen(ns) == fnn && !memcmp(ns, fn, fnn)) return f ? f : t;
    }
    return NULL;
}

/* With the request's tools known, every call must name one of them: a call
 * to an unknown function is no call (the body comes back as content). */
static int known_calls(const chat_outparse *p, const calls *c) {
    if (!p->defs) return 1;
    for (size_t i = 0; i < c->n; i++)
        if (!def_of(p, c->v[i].name, strlen(c->v[i].name))) return 0;
    return 1;
}

/* The declared JSON type of a parameter of a tool (its "type", or the first
 * non-null one of a list), or NULL. */
static const char *param_type(chat_outparse *p, const char *fn, size_t fnn, const char *param, size_t pn) {
    struct json_object *props = get(get(def_of(p, fn, fnn), "parameters"), "properties");
    if (!props || !json_object_is_type(props, json_type_object)) return NULL;
    json_object_object_foreach(props, k, v) {
        if (strlen(k) == pn && !memcmp(k, param, pn)) return chat_param_type(v);
    }
    return NULL;
}

const char *chat_param_type(struct json_object *schema) {
    struct json_object *ty = get(schema, "type");
    if (ty && json_object_is_type(ty, json_type_string)) return json_object_get_string(ty);
    if (ty && json_object_is_type(ty, json_type_array))
        for (size_t j = 0; j < json_object_array_length(ty); j++) {
            const char *s = json_object_get_string(json_object_array_get_idx(ty, j));
            if (s && strcmp(s, "null")) return s;
        }
    return NULL;
}

/* Qwen3-Coder: <function=NAME> <parameter=P>VALUE</parameter>... </function>,
 * possibly several functions. A value is a string when its parameter is
 * declared one, else JSON when it parses as JSON, else a string. */
static int piece_xml(chat_outparse *p, const char *s, size_t n, calls *c) {
    int any = 0;
    for (;;) {
        trim(&s, &n);
        if (!n) return any ? 0 : -1;
        if (n < 10 || memcmp(s, "<function=", 10)) return -1;
        const char *gt = memchr(s, '>', n);
        if (!gt) return -1;
        const char *name = s + 10;
        size_t nn = (size_t)(gt - name);
        trim(&name, &nn);
        const char *end = find(gt, n - (size_t)(gt - s), "</function>");
        if (!nn || !end) return -1;
        const char *q = gt + 1;
        size_t qn = (size_t)(end - q);
        struct json_object *args = json_object_new_object();
        if (!args) return -1;
        int bad = 0;
        for (;;) {
            trim(&q, &qn);
            if (!qn) break;
            if (qn < 11 || memcmp(q, "<parameter=", 11)) { bad = 1; break; }
            const char *pg = memchr(q, '>', qn);
            const char *pe = pg ? find(pg, qn - (size_t)(pg - q), "</parameter>") : NULL;
            if (!pe) { bad = 1; break; }
            const char *pname = q + 11, *val = pg + 1;
            size_t pnn = (size_t)(pg - pname), vn = (size_t)(pe - val);
            trim(&pname, &pnn);
            if (vn && val[0] == '\n') val++, vn--;
            if (vn && val[vn - 1] == '\n') vn--;
            const char *ty = param_type(p, name, nn, pname, pnn);
            struct json_object *v = NULL;
            const char *tv = val;
            size_t tvn = vn;
            trim(&tv, &tvn);
            if (!(ty && !strcmp(ty, "string")) && tvn && json_whole(tv, tvn, &v)) {
                /* v is the parsed value (NULL for null) */
            } else {
                v = json_object_new_string_len(val, (int)vn);
            }
            char *key = strndup(pname, pnn);
            if (!key) { json_object_put(v); bad = 1; break; }
            json_object_object_add(args, key, v);
            free(key);
            qn -= (size_t)(pe + 12 - q);
            q = pe + 12;
        }
        int rc = bad ? -1 : calls_add(c, name, nn, args);
        json_object_put(args);
        if (rc) return -1;
        any = 1;
        n -= (size_t)(end + 11 - s);
        s = end + 11;
    }
}

/* The body of a call (text after its opener, before its closer). */
static void unfence(const char **s, size_t *n);

static int parse_body(chat_outparse *p, const char *s, size_t n, calls *c) {
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    if (!tn) return -1;
    if (!p->call) { /* a bare JSON answer */
        unfence(&t, &tn);
        return json_calls(t, tn, c);
    }
    switch (p->fmt) {
    case CHAT_TOOLS_HERMES:
    case CHAT_TOOLS_LLAMA3: return json_calls(t, tn, c);
    case CHAT_TOOLS_QWEN3_XML: return piece_xml(p, t, tn, c);
    case CHAT_TOOLS_MISTRAL: return each_piece(p, t, tn, CHAT_MISTRAL_CALLS, piece_mistral, c);
    case CHAT_TOOLS_DEEPSEEK: return each_piece(p, t, tn, DS_CALL_END, piece_deepseek, c);
    case CHAT_TOOLS_PREFIX:
        if (p->prefix && *p->prefix) return each_piece(p, t, tn, p->prefix, piece_json, c);
        return json_calls(t, tn, c);
    case CHAT_TOOLS_HARMONY:
    case CHAT_TOOLS_NONE: break;
    }
    return -1;
}

/* ---- the state machine ------------------------------------------------------ */

static void emit(chat_outparse *p, hl_buf *to, const char *s, size_t n) {
    if (!n) return;
    hl_buf_append(to, s, n);
    if (to != NULL && p->mode == M_TEXT)
        for (size_t i = 0; i < n && !p->answered; i++) p->answered = !is_ws(s[i]);
}

static void consume(chat_outparse *p, size_t n) {
    if (!p->pend.data) return;
    memmove(p->pend.data, p->pend.data + n, p->pend.len - n);
    p->pend.len -= n;
    p->pend.data[p->pend.len] = 0;
}

/* Ends the call in progress with body pend[0..n) (closer not included). */
static int end_call(chat_outparse *p, size_t n, int closed, chat_out *out) {
    calls c = {0};
    int rc = 0;
    if (parse_body(p, p->pend.data, n, &c) == 0 && !c.oom && known_calls(p, &c)) {
        rc = commit(p, &c, out);
        p->skip_ws = 1;
    } else {
        if (c.oom) rc = HL_ENOMEM;
        calls_free(&c);
        p->mode = M_TEXT;
        if (p->call) emit(p, &out->content, p->call->open, strlen(p->call->open));
        emit(p, &out->content, p->pend.data, n);
        if (closed && p->call && p->call->close) emit(p, &out->content, p->call->close, strlen(p->call->close));
    }
    p->mode = M_TEXT;
    p->call = NULL;
    return rc;
}

/* Whether the answer so far starts a bare JSON call: 1 yes, 0 no, -1 not
 * known yet. A call may sit in a ```json fence (small Qwen2.5 models answer
 * that way instead of writing <tool_call>). */
static int bare_start(const chat_outparse *p, const char *s, size_t n) {
    size_t k = 0;
    while (k < n && is_ws(s[k])) k++;
    if (k == n) return -1;
    for (int i = 0; i < p->n_mk; i++) { /* a marker ("[TOOL_CALLS]") is no bare JSON */
        size_t m = strlen(p->mk[i].open), c = n - k < m ? n - k : m;
        if (!memcmp(s + k, p->mk[i].open, c)) return c < m ? -1 : 0;
    }
    if (s[k] == '{' || (s[k] == '[' && p->fmt == CHAT_TOOLS_PREFIX)) return 1;
    size_t f = n - k < 3 ? n - k : 3;
    if (memcmp(s + k, "```", f)) return 0;
    if (f < 3) return -1;
    /* the fence's info string must be empty or "json"; decided from the text
     * alone, never from how much of it has arrived */
    const char *nl = memchr(s + k, '\n', n - k);
    const char *info = s + k + 3;
    size_t in = (size_t)((nl ? nl : s + n) - info);
    trim(&info, &in);
    if (!nl) return in <= 4 && !memcmp(info, "json", in) ? -1 : 0;
    if (in && !(in == 4 && !memcmp(info, "json", 4))) return 0;
    size_t j = (size_t)(nl - s);
    while (j < n && is_ws(s[j])) j++;
    if (j == n) return -1;
    return s[j] == '{' || (s[j] == '[' && p->fmt == CHAT_TOOLS_PREFIX);
}

/* A bare call's text without its ``` fence, if it has one. */
static void unfence(const char **s, size_t *n) {
    trim(s, n);
    if (*n < 3 || memcmp(*s, "```", 3)) return;
    const char *nl = memchr(*s, '\n', *n);
    if (!nl) return;
    *n -= (size_t)(nl + 1 - *s);
    *s = nl + 1;
    trim(s, n);
    if (*n >= 3 && !memcmp(*s + *n - 3, "```", 3)) *n -= 3;
}

static int step_harmony(chat_outparse *p, chat_out *out);

static int step(chat_outparse *p, chat_out *out) {
    if (p->harmony) return step_harmony(p, out);
    for (;;) {
        if (p->skip_ws) {
            size_t k = 0;
            while (k < p->pend.len && is_ws(p->pend.data[k])) k++;
            consume(p, k);
            if (!p->pend.len) return 0;
            p->skip_ws = 0;
        }
        const char *s = p->pend.data;
        size_t n = p->pend.len;
        if (!n) return 0;
        if (p->mode == M_THINK) {
            const char *q = find(s, n, p->think_close);
            if (q) {
                size_t i = (size_t)(q - s);
                emit(p, &out->thinking, s, i);
                consume(p, i + strlen(p->think_close));
                p->mode = M_TEXT;
                p->skip_ws = 1;
                continue;
            }
            size_t hold = partial(s, n, p->think_close);
            emit(p, &out->thinking, s, n - hold);
            consume(p, n - hold);
            return 0;
        }
        if (p->mode == M_CALL) {
            if (!p->call || !p->call->close) return 0; /* runs to the end */
            const char *q = find(s, n, p->call->close);
            if (!q) return 0;
            size_t i = (size_t)(q - s), cl = strlen(p->call->close);
            int rc = end_call(p, i, 1, out);
            consume(p, i + cl);
            if (rc) return rc;
            continue;
        }
        /* text */
        if (p->bare_json && !p->answered) {
            int b = bare_start(p, s, n);
            if (b < 0) return 0; /* too early to tell */
            if (b > 0) {
                p->mode = M_CALL;
                p->call = NULL;
                return 0;
            }
        }
        const char *best = NULL;
        const marker *bm = NULL;
        size_t hold = 0;
        for (int i = 0; i < p->n_mk; i++) {
            const marker *m = &p->mk[i];
            if (m->think && p->answered) continue;
            const char *q = find(s, n, m->open);
            if (q && m->think)
                for (const char *w = s; w < q && q; w++)
                    if (!is_ws(*w)) q = NULL; /* thinking opens the output, or not at all */
            if (q && (!best || q < best || (q == best && strlen(m->open) > strlen(bm->open)))) best = q, bm = m;
            size_t h = partial(s, n, m->open);
            if (h > hold) hold = h;
        }
        if (best) {
            size_t i = (size_t)(best - s);
            emit(p, &out->content, s, i);
            consume(p, i + strlen(bm->open));
            if (bm->think) {
                p->mode = M_THINK;
                p->skip_ws = 1;
            } else {
                p->mode = M_CALL;
                p->call = bm;
            }
            continue;
        }
        emit(p, &out->content, s, n - hold);
        consume(p, n - hold);
        return 0;
    }
}

/* ---- harmony (gpt-oss) ------------------------------------------------------ */

/* What a message body ends at: the first three are consumed, the last two
 * begin the next message's header (when the vocabulary leaves <|end|>
 * unrendered, <|start|> is the only sign). */
static const char *const H_TERM[] = {CHAT_H_END, CHAT_H_RETURN, CHAT_H_CALL, CHAT_H_START, CHAT_H_CHANNEL};
enum { H_N_TERM = 5, H_N_CONSUMED = 3 };

/* Whether s[0..n) can be (the start of) a header: it opens with <|start|>,
 * <|channel|> or a recipient (" to=", as the template writes it after
 * <|start|>assistant). */
static int harmony_header_start(const char *s, size_t n) {
    static const char *const open[] = {CHAT_H_START, CHAT_H_CHANNEL, " to=", "to="};
    for (int i = 0; i < 4; i++) {
        size_t m = strlen(open[i]), c = n < m ? n : m;
        if (!memcmp(s, open[i], c)) return 1;
    }
    return 0;
}

/* The word of header h[0..n) after key: up to a space, a '<' or the end. */
static int harmony_word(const char *h, size_t n, const char *key, const char **w, size_t *wn) {
    const char *k = find(h, n, key);
    if (!k) return 0;
    *w = k + strlen(key);
    size_t i = 0, left = n - (size_t)(*w - h);
    while (i < left && (*w)[i] != ' ' && (*w)[i] != '<') i++;
    *wn = i;
    return 1;
}

/* Decides the body's mode from header h[0..n) (without <|message|>). */
static int harmony_begin(chat_outparse *p, const char *h, size_t n, chat_out *out) {
    const char *ch = NULL, *to = NULL;
    size_t chn = 0, ton = 0;
    harmony_word(h, n, CHAT_H_CHANNEL, &ch, &chn);
    harmony_word(h, n, "to=", &to, &ton);
    free(p->to);
    p->to = NULL;
    if (to && ton && p->fmt == CHAT_TOOLS_HARMONY) {
        if (ton > 10 && !memcmp(to, "functions.", 10)) to += 10, ton -= 10;
        if (!(p->to = strndup(to, ton))) return HL_ENOMEM;
        p->mode = M_CALL;
    } else if (!to && chn == 8 && !memcmp(ch, "analysis", 8)) {
        p->mode = M_THINK;
    } else {
        /* final, a preamble on commentary, another channel: content; a
         * call with tools off is content as the model wrote it */
        p->mode = M_TEXT;
        if (to) emit(p, &out->content, p->hdr.data, p->hdr.len);
    }
    return 0;
}

/* Ends the call message in progress with body pend[0..n); term is the
 * consumed marker after it (NULL: none). A body that is not a JSON object,
 * or a call to a function the request does not have, is content, header and
 * marker included. */
static int harmony_call(chat_outparse *p, size_t n, const char *term, chat_out *out) {
    calls c = {0};
    const char *t = p->pend.data ? p->pend.data : "";
    size_t tn = n;
    trim(&t, &tn);
    struct json_object *v = NULL;
    int rc = 0, ok = 0;
    if (p->to && *p->to && tn && json_whole(t, tn, &v) && v && json_object_is_type(v, json_type_object))
        ok = calls_add(&c, p->to, strlen(p->to), v) == 0 && known_calls(p, &c);
    json_object_put(v);
    if (ok) {
        rc = commit(p, &c, out);
    } else {
        if (c.oom) rc = HL_ENOMEM;
        calls_free(&c);
        emit(p, &out->content, p->hdr.data ? p->hdr.data : "", p->hdr.len);
        emit(p, &out->content, p->pend.data ? p->pend.data : "", n);
        if (term) emit(p, &out->content, term, strlen(term));
    }
    free(p->to);
    p->to = NULL;
    return rc;
}

static int step_harmony(chat_outparse *p, chat_out *out) {
    for (;;) {
        const char *s = p->pend.data;
        size_t n = p->pend.len;
        if (!n) return 0;
        if (p->mode == M_HEADER) {
            const char *q = find(s, n, CHAT_H_MESSAGE);
            size_t hn = q ? (size_t)(q - s) : n;
            /* decided from the text alone: without <|message|> yet, only
             * once it could no longer start within the limit */
            if (!harmony_header_start(s, n) || (q ? hn > HARMONY_HEADER_MAX : n >= HARMONY_HEADER_MAX + strlen(CHAT_H_MESSAGE))) {
                p->mode = M_TEXT; /* text where a header should be: content, as it stands */
                hl_buf_reset(&p->hdr);
                /* its opener too, or the text loop would take that for the next header again, forever */
                for (int i = H_N_CONSUMED; i < H_N_TERM; i++) {
                    size_t tl = strlen(H_TERM[i]);
                    if (n >= tl && !memcmp(s, H_TERM[i], tl)) {
                        emit(p, &out->content, s, tl);
                        consume(p, tl);
                        break;
                    }
                }
                continue;
            }
            if (!q) return 0;
            hl_buf_reset(&p->hdr);
            hl_buf_append(&p->hdr, s, hn + strlen(CHAT_H_MESSAGE));
            if (p->hdr.oom) return HL_ENOMEM;
            int rc = harmony_begin(p, s, hn, out);
            if (rc) return rc;
            consume(p, hn + strlen(CHAT_H_MESSAGE));
            continue;
        }
        const char *best = NULL;
        int bi = -1;
        size_t hold = 0;
        for (int i = 0; i < H_N_TERM; i++) {
            const char *q = find(s, n, H_TERM[i]);
            if (q && (!best || q < best)) best = q, bi = i;
            size_t h = partial(s, n, H_TERM[i]);
            if (h > hold) hold = h;
        }
        if (best) {
            size_t i = (size_t)(best - s), tl = bi < H_N_CONSUMED ? strlen(H_TERM[bi]) : 0;
            int rc = 0;
            if (p->mode == M_CALL) rc = harmony_call(p, i, tl ? H_TERM[bi] : NULL, out);
            else emit(p, p->mode == M_THINK ? &out->thinking : &out->content, s, i);
            consume(p, i + tl);
            p->mode = M_HEADER;
            if (rc) return rc;
            continue;
        }
        if (p->mode == M_CALL) return 0; /* held whole until it ends */
        emit(p, p->mode == M_THINK ? &out->thinking : &out->content, s, n - hold);
        consume(p, n - hold);
        return 0;
    }
}

int chat_outparse_feed(chat_outparse *p, const char *text, size_t n, chat_out *out, hl_err *err) {
    if (n) hl_buf_append(&p->pend, text, n);
    int rc = p->pend.oom ? HL_ENOMEM : step(p, out);
    if (!rc && (out->content.oom || out->thinking.oom)) rc = HL_ENOMEM;
    return rc ? hl_err_set(err, rc, "out of memory parsing the output") : 0;
}

int chat_outparse_finish(chat_outparse *p, chat_out *out, hl_err *err) {
    int rc = step(p, out);
    if (!rc && p->harmony && p->mode == M_CALL) {
        rc = harmony_call(p, p->pend.len, NULL, out); /* <|call|> ended generation: the body is whole */
        hl_buf_reset(&p->pend);
    } else if (!rc && p->harmony && p->mode == M_HEADER) {
        hl_buf_reset(&p->pend); /* a header cut short (a length limit): markers and names, no message text */
    } else if (!rc && p->pend.len) {
        if (p->mode == M_CALL) rc = end_call(p, p->pend.len, 0, out);
        else if (p->mode == M_THINK) emit(p, &out->thinking, p->pend.data, p->pend.len);
        else emit(p, &out->content, p->pend.data, p->pend.len);
        hl_buf_reset(&p->pend);
    } else if (!rc && p->mode == M_CALL && p->call) {
        rc = end_call(p, 0, 0, out); /* an opener with nothing after it */
    }
    if (!rc && (out->content.oom || out->thinking.oom)) rc = HL_ENOMEM;
    return rc ? hl_err_set(err, rc, "out of memory parsing the output") : 0;
}

size_t chat_outparse_n_calls(const chat_outparse *p) { return p->n_calls; }

/* ---- setup -------------------------------------------------------------------- */

void chat_outparse_free(chat_outparse *p) {
    if (!p) return;
    free(p->prefix);
    free(p->suffix);
    free(p->think_open);
    free(p->think_close);
    json_object_put(p->defs);
    hl_buf_free(&p->pend);
    hl_buf_free(&p->hdr);
    free(p->to);
    free(p);
}

static void add_marker(chat_outparse *p, const char *open, const char *close, int think) {
    if (p->n_mk < MAX_MARKERS && open && *open) p->mk[p->n_mk++] = (marker){open, close, think};
}

int chat_outparse_new(chat_outparse **out, const chat_outparse_cfg *cfg, hl_err *err) {
    *out = NULL;
    chat_outparse *p = calloc(1, sizeof *p);
    if (!p) return hl_err_set(err, HL_ENOMEM, "out of memory");
    p->fmt = cfg->tools;
    int think = cfg->think_open && *cfg->think_open && cfg->think_close && *cfg->think_close;
    if ((cfg->prefix && !(p->prefix = strdup(cfg->prefix))) || (cfg->suffix && *cfg->suffix && !(p->suffix = strdup(cfg->suffix))) ||
        (think && (!(p->think_open = strdup(cfg->think_open)) || !(p->think_close = strdup(cfg->think_close)))) ||
        (cfg->tool_defs && json_object_deep_copy(cfg->tool_defs, &p->defs, NULL) != 0)) {
        chat_outparse_free(p);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    if (think) add_marker(p, p->think_open, NULL, 1);
    switch (p->fmt) {
    case CHAT_TOOLS_HERMES:
        add_marker(p, CHAT_TOOL_CALL_OPEN, CHAT_TOOL_CALL_CLOSE, 0);
        p->bare_json = 1; /* lenient: small models often drop the tags */
        break;
    case CHAT_TOOLS_QWEN3_XML: add_marker(p, CHAT_TOOL_CALL_OPEN, CHAT_TOOL_CALL_CLOSE, 0); break;
    case CHAT_TOOLS_LLAMA3:
        add_marker(p, CHAT_PYTHON_TAG, NULL, 0);
        p->bare_json = 1;
        break;
    case CHAT_TOOLS_MISTRAL: add_marker(p, CHAT_MISTRAL_CALLS, NULL, 0); break;
    case CHAT_TOOLS_DEEPSEEK: add_marker(p, DS_CALLS_BEGIN, DS_CALLS_END, 0); break;
    case CHAT_TOOLS_PREFIX:
        if (p->prefix && *p->prefix) add_marker(p, p->prefix, p->suffix, 0);
        p->bare_json = 1; /* a JSON answer is a call too, with or without the prefix */
        break;
    case CHAT_TOOLS_HARMONY: /* harmony's own loop, below; without cfg.harmony no calls */
    case CHAT_TOOLS_NONE: break;
    }
    if (cfg->harmony) {
        /* the prompt ended with <|start|>assistant: a header comes first */
        p->harmony = 1;
        p->mode = M_HEADER;
        if (p->fmt != CHAT_TOOLS_NONE) p->fmt = CHAT_TOOLS_HARMONY;
        *out = p;
        return 0;
    }
    if (think && cfg->in_thinking) {
        p->mode = M_THINK;
        p->skip_ws = 1;
    }
    *out = p;
    return 0;
}

unsigned chat_template_caps(const char *src) {
    unsigned c = 0;
    if (!src) return 0;
    chat_outparse_cfg cfg;
    chat_outparse_detect(src, &cfg);
    if (cfg.tools != CHAT_TOOLS_NONE) c |= CHAT_CAP_TOOLS; /* reads tools, or writes a family's calls (DeepSeek's) */
    if (strstr(src, "<think>") || cfg.harmony) c |= CHAT_CAP_THINKING;
    return c;
}

void chat_outparse_detect(const char *src, chat_outparse_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    if (!src) return;
    if (strstr(src, CHAT_H_CHANNEL) && strstr(src, CHAT_H_MESSAGE)) { /* gpt-oss: it names "tools" too */
        cfg->harmony = 1;
        cfg->tools = CHAT_TOOLS_HARMONY;
        return;
    }
    if (strstr(src, "<tool_call>")) cfg->tools = strstr(src, "<function=") ? CHAT_TOOLS_QWEN3_XML : CHAT_TOOLS_HERMES;
    else if (strstr(src, "[TOOL_CALLS]")) cfg->tools = CHAT_TOOLS_MISTRAL;
    else if (strstr(src, "tool\xe2\x96\x81" "calls\xe2\x96\x81" "begin")) cfg->tools = CHAT_TOOLS_DEEPSEEK;
    else if (strstr(src, "<|python_tag|>") || (strstr(src, "<|start_header_id|>") && strstr(src, "tools")))
        cfg->tools = CHAT_TOOLS_LLAMA3;
    else if (strstr(src, "tools")) cfg->tools = CHAT_TOOLS_PREFIX; /* a JSON answer */
    if (strstr(src, "<think>")) {
        cfg->think_open = "<think>";
        cfg->think_close = "</think>";
    }
}

int chat_prompt_opens_thinking(const char *prompt, const char *open, const char *close) {
    if (!prompt || !open || !*open || !close || !*close) return 0;
    const char *last = NULL, *q = prompt;
    while ((q = strstr(q, open))) last = q, q += strlen(open);
    return last && !strstr(last + strlen(open), close);
}
