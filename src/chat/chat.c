/* The public face of the chat-template module (chat.h): parse a template
 * into an immutable tree, render it with a json-c context under limits, and
 * build a context from plain messages. */
#include "chat/chat.h"

#include "chat/internal.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEMPLATE (4u << 20)

chat_limits chat_limits_default(void) {
    chat_limits l = {16u << 20, 1000000, 256, (size_t)1 << 30};
    return l;
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_consts; i++) {
        cv v = t->consts[i];
        if (v.t == CV_STR) v.u.s->rc = 1; /* immortal no more: release it */
        cv_unref(v);
    }
    free(t->consts);
    chat_arena_free(t);
    free(t);
}

int chat_template_parse(chat_template **out, const char *src, size_t len, hl_err *err) {
    *out = NULL;
    if (len > MAX_TEMPLATE)
        return hl_err_set(err, HL_ERANGE, "chat template is %zu bytes, more than the limit of %u", len, MAX_TEMPLATE);
    chat_template *t = calloc(1, sizeof *t);
    if (!t) return hl_err_set(err, HL_ENOMEM, "out of memory");
    ctoks toks;
    int rc = chat_lex(&toks, src ? src : "", src ? len : 0, err);
    if (!rc) rc = chat_parse(t, &toks, err);
    chat_toks_free(&toks);
    if (rc) {
        chat_template_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int chat_template_render_limits(const chat_template *t, struct json_object *ctx, const chat_limits *lim, hl_buf *out,
                                hl_err *err) {
    hl_err tmp;
    if (!err) err = &tmp;
    if (ctx && !json_object_is_type(ctx, json_type_object))
        return hl_err_set(err, HL_EINVAL, "chat template context must be a JSON object");
    crender r = {0};
    r.t = t;
    r.lim = lim ? *lim : chat_limits_default();
    if (!r.lim.max_work) r.lim.max_work = chat_limits_default().max_work;
    r.err = err;
    r.root = chat_scope_new(NULL);
    if (!r.root) return hl_err_set(err, HL_ENOMEM, "out of memory");
    int rc = 0;
    if (ctx) {
        json_object_object_foreach(ctx, key, val) {
            cv v = cv_from_json(val);
            if (cv_is_oom(v) || chat_scope_set(r.root, key, v)) { rc = hl_err_set(err, HL_ENOMEM, "out of memory"); break; }
        }
    }
    if (!rc) rc = chat_eval_render(&r, t->root, out);
    chat_scope_destroy(r.root);
    if (!rc && out->oom) rc = hl_err_set(err, HL_ENOMEM, "out of memory");
    return rc;
}

int chat_template_render(const chat_template *t, struct json_object *ctx, hl_buf *out, hl_err *err) {
    return chat_template_render_limits(t, ctx, NULL, out, err);
}

int chat_context_new(struct json_object **out, const chat_message *msgs, size_t n_msgs, int add_generation_prompt,
                     const char *bos_token, const char *eos_token, hl_err *err) {
    *out = NULL;
    json_object *ctx = json_object_new_object(), *arr = json_object_new_array();
    if (!ctx || !arr) goto oom;
    for (size_t i = 0; i < n_msgs; i++) {
        json_object *m = json_object_new_object();
        if (!m) goto oom;
        json_object_array_add(arr, m);
        json_object_object_add(m, "role", json_object_new_string(msgs[i].role ? msgs[i].role : "user"));
        json_object_object_add(m, "content", msgs[i].content ? json_object_new_string(msgs[i].content) : NULL);
    }
    json_object_object_add(ctx, "messages", arr);
    arr = NULL;
    /* like transformers: tools and documents are always defined (None when absent) */
    json_object_object_add(ctx, "tools", NULL);
    json_object_object_add(ctx, "documents", NULL);
    json_object_object_add(ctx, "add_generation_prompt", json_object_new_boolean(add_generation_prompt));
    json_object_object_add(ctx, "bos_token", json_object_new_string(bos_token ? bos_token : ""));
    json_object_object_add(ctx, "eos_token", json_object_new_string(eos_token ? eos_token : ""));
    *out = ctx;
    return 0;
oom:
    json_object_put(arr);
    json_object_put(ctx);
    return hl_err_set(err, HL_ENOMEM, "out of memory");
}

int chat_context_from_openai(struct json_object **out, struct json_object *messages, struct json_object *tools,
                             int add_generation_prompt, const char *bos_token, const char *eos_token, hl_err *err) {
    *out = NULL;
    if (!messages || !json_object_is_type(messages, json_type_array))
        return hl_err_set(err, HL_EINVAL, "\"messages\" must be an array");
    if (tools && !json_object_is_type(tools, json_type_array) && !json_object_is_type(tools, json_type_null))
        return hl_err_set(err, HL_EINVAL, "\"tools\" must be an array");
    json_object *ctx = json_object_new_object(), *msgs = NULL, *tl = NULL;
    if (!ctx || json_object_deep_copy(messages, &msgs, NULL) != 0) goto oom;
    json_object_object_add(ctx, "messages", msgs);
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *calls;
        if (!json_object_is_type(m, json_type_object)) {
            json_object_put(ctx);
            return hl_err_set(err, HL_EINVAL, "messages[%zu] is not an object", i);
        }
        if (!json_object_object_get_ex(m, "tool_calls", &calls) || !json_object_is_type(calls, json_type_array)) continue;
        for (size_t k = 0; k < json_object_array_length(calls); k++) {
            json_object *fn, *args;
            json_object *call = json_object_array_get_idx(calls, k);
            if (!json_object_object_get_ex(call, "function", &fn) || !json_object_object_get_ex(fn, "arguments", &args) ||
                !json_object_is_type(args, json_type_string))
                continue;
            json_object *parsed = json_tokener_parse(json_object_get_string(args));
            if (parsed && json_object_is_type(parsed, json_type_object)) json_object_object_add(fn, "arguments", parsed);
            else json_object_put(parsed);
        }
    }
    if (tools && json_object_is_type(tools, json_type_array)) {
        if (json_object_deep_copy(tools, &tl, NULL) != 0) goto oom;
        json_object_object_add(ctx, "tools", tl);
    } else json_object_object_add(ctx, "tools", NULL); /* defined but None, as in transformers */
    json_object_object_add(ctx, "documents", NULL);
    json_object_object_add(ctx, "add_generation_prompt", json_object_new_boolean(add_generation_prompt));
    json_object_object_add(ctx, "bos_token", json_object_new_string(bos_token ? bos_token : ""));
    json_object_object_add(ctx, "eos_token", json_object_new_string(eos_token ? eos_token : ""));
    *out = ctx;
    return 0;
oom: /* msgs belongs to ctx once added; before that a failed deep copy left it NULL */
    json_object_put(ctx);
    return hl_err_set(err, HL_ENOMEM, "out of memory");
}

int chat_render_once(const char *src, size_t len, struct json_object *ctx, hl_buf *out, hl_err *err) {
    chat_template *t;
    int rc = chat_template_parse(&t, src, len, err);
    if (rc) return rc;
    rc = chat_template_render(t, ctx, out, err);
    chat_template_free(t);
    return rc;
}
