/* Opening a model file as weights + tokenizer + chat template. */
#include "runner/loaded.h"
#include "base/clock.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

int hl_loaded_open(hl_loaded **out, const char *path, hl_err *err) {
    *out = NULL;
    int64_t t0 = hl_now_ns();
    hl_loaded *lm = calloc(1, sizeof *lm);
    if (!lm) return hl_err_set(err, HL_ENOMEM, "out of memory");
    lm->path = strdup(path);
    int rc = hl_model_load(&lm->model, path, err);
    if (rc) goto fail;
    rc = tok_load(&lm->tok, hl_model_gguf(lm->model), err);
    if (rc) {
        hl_err_prefix(err, "%s: tokenizer: ", path);
        goto fail;
    }
    gguf_str s;
    if (gguf_get_str(hl_model_gguf(lm->model), "tokenizer.chat_template", &s) == 0) {
        if ((rc = hl_loaded_set_template(lm, s.ptr, s.len))) {
            hl_err_set(err, rc, "out of memory");
            goto fail;
        }
        if (lm->tmpl_error) hl_warn("%s: chat template not usable: %s", path, lm->tmpl_error);
    }
    lm->load_ns = hl_now_ns() - t0;
    *out = lm;
    return HL_OK;
fail:
    hl_loaded_free(lm);
    return rc;
}

int hl_loaded_set_template(hl_loaded *lm, const char *src, size_t len) {
    chat_template_free(lm->tmpl);
    free(lm->tmpl_src);
    free(lm->tmpl_error);
    lm->tmpl = NULL, lm->tmpl_error = NULL;
    memset(&lm->outparse, 0, sizeof lm->outparse);
    if (!(lm->tmpl_src = strndup(src, len))) return HL_ENOMEM;
    hl_err terr;
    if (chat_template_parse(&lm->tmpl, lm->tmpl_src, strlen(lm->tmpl_src), &terr) != 0 &&
        !(lm->tmpl_error = strdup(terr.msg)))
        return HL_ENOMEM;
    chat_outparse_detect(lm->tmpl_src, &lm->outparse);
    return HL_OK;
}

void hl_loaded_free(hl_loaded *lm) {
    if (!lm) return;
    chat_template_free(lm->tmpl);
    free(lm->tmpl_src);
    free(lm->tmpl_error);
    tok_free(lm->tok);
    hl_model_free(lm->model);
    free(lm->path);
    free(lm);
}

int hl_loaded_tokenize_prompt(const hl_loaded *lm, const char *text, int32_t **ids, size_t *n_ids, hl_err *err) {
    int32_t bos = tok_bos(lm->tok);
    const char *bos_text = bos >= 0 ? tok_text(lm->tok, bos) : NULL;
    int has_bos_text = bos_text && *bos_text && strncmp(text, bos_text, strlen(bos_text)) == 0;
    int32_t *toks = NULL;
    size_t n = 0;
    int rc = tok_encode(lm->tok, text, strlen(text), 0, 1, &toks, &n, err);
    if (rc) return rc;
    if (tok_add_bos(lm->tok) && bos >= 0 && !has_bos_text) {
        int32_t *t2 = malloc((n + 1) * sizeof *t2);
        if (!t2) {
            free(toks);
            return hl_err_set(err, HL_ENOMEM, "out of memory");
        }
        t2[0] = bos;
        if (n) memcpy(t2 + 1, toks, n * sizeof *toks);
        free(toks);
        toks = t2;
        n++;
    }
    *ids = toks;
    *n_ids = n;
    return HL_OK;
}
