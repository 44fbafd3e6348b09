/* Structured outputs: the request fields that constrain what a model may
 * write, turned into a grammar at parse time (so a bad schema is a 400
 * before any model loads) and into a logits processor at submit.
 *
 *   Ollama   "format": "json" | a JSON Schema           /api/generate, /api/chat
 *   OpenAI   "response_format": {"type": "json_object"} | {"type": "json_schema",
 *            "json_schema": {"name", "schema", "strict"}}  /v1/chat/completions, /v1/completions
 *   both     "grammar": GBNF text (llama-server's field)
 *
 * The processor goes into hl_request.proc: the engine owns it, forks (n > 1)
 * clone it, streaming sees the same tokens. The vocabulary index it needs is
 * made once per loaded model, on the first constrained request. */
#include "server/internal.h"

#include <json-c/json.h>
#include <string.h>

static int set_grammar(srv_gen *g, hl_grammar *gr, const char *field, hl_err *err) {
    if (g->grammar) {
        hl_grammar_free(gr);
        return hl_err_set(err, HL_EINVAL, "\"%s\": only one of format / response_format / grammar may constrain the output", field);
    }
    g->grammar = gr;
    return 0;
}

static int from_schema(struct json_object *schema, srv_gen *g, const char *field, hl_err *err) {
    hl_buf b = {0};
    int rc = hl_json_schema_to_gbnf_obj(schema, "", &b, err);
    hl_grammar *gr = NULL;
    if (!rc) rc = hl_grammar_parse(&gr, b.data, b.len, err);
    hl_buf_free(&b);
    if (rc) return hl_err_prefix(err, "%s: ", field);
    return set_grammar(g, gr, field, err);
}

static int json_any(srv_gen *g, int object_only, const char *field, hl_err *err) {
    hl_grammar *gr = NULL;
    int rc = hl_grammar_json_any(&gr, object_only, err);
    if (rc) return rc;
    return set_grammar(g, gr, field, err);
}

int srv_structured_grammar(struct json_object *v, srv_gen *g, hl_err *err) {
    if (!v || json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_string)) return hl_err_set(err, HL_EINVAL, "\"grammar\" must be a string of GBNF rules");
    if (!json_object_get_string_len(v)) return 0;
    hl_grammar *gr = NULL;
    int rc = hl_grammar_parse(&gr, json_object_get_string(v), (size_t)json_object_get_string_len(v), err);
    if (rc) return hl_err_prefix(err, "\"grammar\": ");
    return set_grammar(g, gr, "grammar", err);
}

int srv_structured_ollama(struct json_object *root, srv_gen *g, hl_err *err) {
    struct json_object *v;
    if (json_object_object_get_ex(root, "format", &v) && !json_object_is_type(v, json_type_null)) {
        hl_grammar *gr = NULL;
        int rc = hl_grammar_from_format(v, &gr, err);
        if (rc) return json_object_is_type(v, json_type_object) ? hl_err_prefix(err, "format: ") : rc;
        if (gr && (rc = set_grammar(g, gr, "format", err))) return rc;
    }
    if (json_object_object_get_ex(root, "grammar", &v)) return srv_structured_grammar(v, g, err);
    return 0;
}

int srv_structured_response_format(struct json_object *v, srv_gen *g, hl_err *err) {
    struct json_object *t, *js, *schema;
    if (json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, "type", &t) || !json_object_is_type(t, json_type_string))
        return hl_err_set(err, HL_EINVAL, "\"response_format\" must be an object with a \"type\"");
    const char *type = json_object_get_string(t);
    if (!strcmp(type, "text")) return 0;
    if (!strcmp(type, "json_object")) return json_any(g, 1, "response_format", err);
    if (strcmp(type, "json_schema"))
        return hl_err_set(err, HL_EINVAL, "response_format type \"%s\" is not one of text, json_object, json_schema", type);
    if (!json_object_object_get_ex(v, "json_schema", &js) || !json_object_is_type(js, json_type_object))
        return hl_err_set(err, HL_EINVAL, "response_format of type json_schema needs a \"json_schema\" object");
    if (!json_object_object_get_ex(js, "schema", &schema) || json_object_is_type(schema, json_type_null)) {
        /* OpenAI allows a missing schema: any JSON object then */
        return json_any(g, 1, "response_format", err);
    }
    if (!json_object_is_type(schema, json_type_object) && !json_object_is_type(schema, json_type_boolean))
        return hl_err_set(err, HL_EINVAL, "response_format.json_schema.schema must be a JSON Schema object");
    /* strict or not, the output is constrained: strict only changes what
     * OpenAI accepts as a schema, and we refuse what we cannot enforce */
    return from_schema(schema, g, "response_format.json_schema.schema", err);
}

int srv_structured_proc(srv_run *run, hl_logits_proc **out, hl_err *err) {
    *out = NULL;
    if (!run->g.grammar) return 0;
    srv_model *m = run->model;
    hl_grammar_vocab *v = __atomic_load_n(&m->gvocab, __ATOMIC_ACQUIRE);
    if (!v) {
        /* two first requests may race: one index wins, the other is freed */
        hl_grammar_vocab *mine = NULL;
        int rc = hl_grammar_vocab_new(&mine, m->lm->tok, err);
        if (rc) return rc;
        hl_grammar_vocab *expected = NULL;
        if (__atomic_compare_exchange_n(&m->gvocab, &expected, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) v = mine;
        else hl_grammar_vocab_unref(mine), v = expected;
    }
    int rc = hl_grammar_proc_new(out, run->g.grammar, 1, v, err);
    if (!rc) run->g.grammar = NULL; /* the processor owns it now */
    return rc;
}
