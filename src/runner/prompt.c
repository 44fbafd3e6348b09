/* Conversation → prompt text: Go template, the GGUF's Jinja template, raw,
 * or the plain form for a model without a template. */
#include "runner/prompt.h"
#include "base/buf.h"
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

static int render_go(const hl_prompt *p, const chat_message *all, size_t n, char **out, hl_err *err) {
    gotmpl_msg *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) m[i] = (gotmpl_msg){.role = all[i].role, .content = all[i].content};
    gotmpl_chat c = {.msgs = m, .n_msgs = n};
    hl_buf b = {0};
    int rc = gotmpl_render_chat(p->go_template, strlen(p->go_template), &c, &b, err);
    free(m);
    if (rc) {
        hl_buf_free(&b);
        if (rc == HL_ENOMEM) return rc;
        return hl_err_prefix(err, "%s: ", p->template_name ? p->template_name : "the model's TEMPLATE");
    }
    return take(&b, out, err);
}

/* The chat module's context builder sets what transformers sets (tools and
 * documents none, the BOS/EOS texts), so templates take the same branches. */
static int render_jinja(const hl_loaded *lm, const chat_message *all, size_t n, char **out, hl_err *err) {
    struct json_object *ctx = NULL;
    int rc = chat_context_new(&ctx, all, n, 1, special_text(lm->tok, tok_bos(lm->tok)),
                              special_text(lm->tok, tok_eos(lm->tok)), err);
    if (rc) return rc;
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
    int rc = p->go_template && *p->go_template ? render_go(p, all, n, out, err) : render_jinja(lm, all, n, out, err);
    free(all);
    return rc;
}
