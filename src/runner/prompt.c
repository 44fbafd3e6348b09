/* Conversation → prompt text: Go template, the GGUF's Jinja template, raw,
 * or the plain form for a model without a template. */
#include "runner/prompt.h"
#include "base/buf.h"
#include "chat/outparse.h"
#include "gotmpl/gotmpl.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

int hl_prompt_has_template(const hl_loaded *lm, const char *go_template) {
    return (go_template && *go_template) || lm->tmpl;
}

static const char *special_text(const tok_vocab *v, int32_t id) {
    const char *t = id >= 0 ? tok_text(v, id) : NULL;
    return t ? t : "";
}

/* Takes what b holds as the result ("" when empty). */
static int take(hl_buf *b, char **out, hl_err *err) {
    if (b->oom) {
        hl_buf_free(b);
        return hl_err_set(err, HL_ENOMEM, "out of memory rendering the prompt");
    }
    *out = b->data ? hl_buf_take(b) : strdup("");
    return *out ? HL_OK : hl_err_set(err, HL_ENOMEM, "out of memory");
}

/* A tool result's tool for Ollama's .ToolName: its own name, else the name
 * of the earlier call with its tool_call_id. */
static const char *tool_name_of(const chat_message *all, size_t i, json_object **keep) {
    if (all[i].name && *all[i].name) return all[i].name;
    if (!all[i].tool_call_id) return NULL;
    for (size_t k = i; k-- > 0;) {
        if (!all[k].tool_calls_json) continue;
        json_object *calls = json_tokener_parse(all[k].tool_calls_json), *id, *fn, *name;
        for (size_t j = 0; calls && json_object_is_type(calls, json_type_array) && j < json_object_array_length(calls); j++) {
            json_object *c = json_object_array_get_idx(calls, j);
            if (json_object_object_get_ex(c, "id", &id) && !strcmp(json_object_get_string(id), all[i].tool_call_id) &&
                json_object_object_get_ex(c, "function", &fn) && json_object_object_get_ex(fn, "name", &name)) {
                *keep = calls;
                return json_object_get_string(name);
            }
        }
        json_object_put(calls);
    }
    return NULL;
}

static int render_go(const hl_prompt *p, const chat_message *all, size_t n, char **out, hl_err *err) {
    gotmpl_msg *m = calloc(n ? n : 1, sizeof *m);
    json_object **keep = calloc(n ? n : 1, sizeof *keep);
    if (!m || !keep) {
        free(m);
        free(keep);
        return hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        m[i] = (gotmpl_msg){.role = all[i].role, .content = all[i].content, .thinking = all[i].thinking,
                            .tool_calls_json = all[i].tool_calls_json, .tool_name = tool_name_of(all, i, &keep[i])};
    gotmpl_chat c = {.msgs = m, .n_msgs = n, .tools_json = p->tools_json, .think_set = p->think_set, .think = p->think,
                     .think_level = p->think_level};
    hl_buf b = {0};
    int rc = gotmpl_render_chat(p->go_template, strlen(p->go_template), &c, &b, err);
    for (size_t i = 0; i < n; i++) json_object_put(keep[i]);
    free(keep);
    free(m);
    if (rc) {
        hl_buf_free(&b);
        if (rc == HL_ENOMEM) return rc;
        return hl_err_prefix(err, "%s: ", p->template_name ? p->template_name : "the model's TEMPLATE");
    }
    return take(&b, out, err);
}

/* The conversation as an OpenAI-style messages array, for
 * chat_context_from_openai (which turns string arguments into objects). */
static json_object *openai_messages(const chat_message *all, size_t n, int null_as_empty) {
    json_object *arr = json_object_new_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string(all[i].role ? all[i].role : "user"));
        json_object_object_add(m, "content", all[i].content || null_as_empty ? json_object_new_string(all[i].content ? all[i].content : "")
                                                                             : NULL);
        if (all[i].tool_calls_json) {
            json_object *calls = json_tokener_parse(all[i].tool_calls_json);
            if (calls) json_object_object_add(m, "tool_calls", calls);
        }
        if (all[i].tool_call_id) json_object_object_add(m, "tool_call_id", json_object_new_string(all[i].tool_call_id));
        if (all[i].name) json_object_object_add(m, "name", json_object_new_string(all[i].name));
        /* under both names templates read it by: Qwen3's reasoning_content, gpt-oss's thinking */
        if (all[i].thinking && *all[i].thinking) {
            json_object_object_add(m, "reasoning_content", json_object_new_string(all[i].thinking));
            json_object_object_add(m, "thinking", json_object_new_string(all[i].thinking));
        }
        json_object_array_add(arr, m);
    }
    return arr;
}

/* The chat module's context builder sets what transformers sets (tools and
 * documents none, the BOS/EOS texts), so templates take the same branches. */
static int render_jinja(const hl_loaded *lm, const hl_prompt *p, const chat_message *all, size_t n, char **out,
                        hl_err *err) {
    /* gpt-oss's template looks for markers in every assistant content, which
     * fails on null (OpenAI's content of a message that only calls tools):
     * harmony has no null message, so it gets "" */
    int harmony = lm->outparse.harmony;
    struct json_object *ctx = NULL, *msgs = openai_messages(all, n, harmony), *tools = NULL, *vars = NULL;
    if (!msgs) return hl_err_set(err, HL_ENOMEM, "out of memory");
    if (p->tools_json && !(tools = json_tokener_parse(p->tools_json))) {
        json_object_put(msgs);
        return hl_err_set(err, HL_EINVAL, "tools is not valid JSON");
    }
    int rc = chat_context_from_openai(&ctx, msgs, tools, 1, special_text(lm->tok, tok_bos(lm->tok)),
                                      special_text(lm->tok, tok_eos(lm->tok)), err);
    json_object_put(msgs);
    json_object_put(tools);
    if (rc) return rc;
    /* thinking as Qwen3's (enable_thinking) and gpt-oss's (reasoning_effort) templates read it */
    if (p->think_set) json_object_object_add(ctx, "enable_thinking", json_object_new_boolean(p->think));
    if (p->think_level) json_object_object_add(ctx, "reasoning_effort", json_object_new_string(p->think_level));
    else if (p->think_set && !p->think && harmony)
        json_object_object_add(ctx, "reasoning_effort", json_object_new_string("low")); /* gpt-oss cannot stop reasoning */
    if (p->vars_json && (vars = json_tokener_parse(p->vars_json)) && json_object_is_type(vars, json_type_object)) {
        json_object_object_foreach(vars, k, v) json_object_object_add(ctx, k, json_object_get(v));
    }
    json_object_put(vars);
    hl_buf b = {0};
    rc = chat_template_render(lm->tmpl, ctx, &b, err);
    json_object_put(ctx);
    if (rc) {
        hl_buf_free(&b);
        return rc;
    }
    return take(&b, out, err);
}

int hl_prompt_template_inserts(const char *go_template) {
    if (!go_template || !*go_template) return 0;
    gotmpl *t = NULL;
    if (gotmpl_parse(&t, go_template, strlen(go_template), NULL)) return 0;
    int uses = gotmpl_uses(t, "suffix");
    gotmpl_free(t);
    return uses;
}

int hl_prompt_can_insert(const hl_loaded *lm, const char *go_template) {
    int32_t fim[3];
    return tok_fim(lm->tok, fim) || hl_prompt_template_inserts(go_template);
}

/* The FIM tokens' texts around the two halves; tokenizing the prompt (which
 * parses special-token texts) turns them back into the tokens. */
static int render_fim(const hl_loaded *lm, const hl_prompt *p, const char *prefix, char **out, hl_err *err) {
    if (hl_prompt_template_inserts(p->go_template)) {
        gotmpl_chat c = {.prompt = prefix, .suffix = p->suffix};
        hl_buf b = {0};
        int rc = gotmpl_render_chat(p->go_template, strlen(p->go_template), &c, &b, err);
        if (rc) {
            hl_buf_free(&b);
            return rc == HL_ENOMEM ? rc : hl_err_prefix(err, "%s: ", p->template_name ? p->template_name : "the model's TEMPLATE");
        }
        return take(&b, out, err);
    }
    int32_t fim[3];
    if (!tok_fim(lm->tok, fim))
        return hl_err_set(err, HL_ENOTSUP, "this model cannot fill in the middle (\"suffix\"): it has no FIM tokens and its template has no .Suffix");
    hl_buf b = {0};
    hl_buf_printf(&b, "%s%s%s%s%s", special_text(lm->tok, fim[0]), prefix, special_text(lm->tok, fim[1]), p->suffix,
                  special_text(lm->tok, fim[2]));
    return take(&b, out, err);
}

int hl_prompt_render(const hl_loaded *lm, const hl_prompt *p, char **out, hl_err *err) {
    *out = NULL;
    const char *last = p->n_msgs && p->msgs[p->n_msgs - 1].content ? p->msgs[p->n_msgs - 1].content : "";
    int has_system = p->system && *p->system;
    if (p->suffix && *p->suffix) return render_fim(lm, p, last, out, err);
    if (p->raw) {
        *out = strdup(last);
        return *out ? HL_OK : hl_err_set(err, HL_ENOMEM, "out of memory");
    }
    if (!hl_prompt_has_template(lm, p->go_template)) {
        hl_buf b = {0};
        if (has_system) hl_buf_printf(&b, "%s\n\n", p->system);
        hl_buf_puts(&b, last);
        return take(&b, out, err);
    }
    size_t n = p->n_msgs + (size_t)has_system;
    chat_message *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) return hl_err_set(err, HL_ENOMEM, "out of memory");
    size_t k = 0;
    if (has_system) all[k++] = (chat_message){.role = "system", .content = p->system};
    for (size_t i = 0; i < p->n_msgs; i++) all[k++] = p->msgs[i];
    int rc = p->go_template && *p->go_template ? render_go(p, all, n, out, err) : render_jinja(lm, p, all, n, out, err);
    free(all);
    return rc;
}
