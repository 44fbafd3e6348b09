/* `hyperlama run EMBEDDING-MODEL TEXT`: prints the text's embedding as one
 * JSON array (L2-normalized, the /api/embed vector), as Ollama does. A GGUF
 * path embeds in this process on the engine rs_load opened (the server's
 * path: an embed request, its one EMBED event); a store name asks the
 * server's /api/embed. */
#include "cli/cli.h"
#include "cli/client.h"
#include "base/buf.h"
#include "base/json_write.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_vec(const float *v, int32_t n) {
    hl_buf b = {0};
    hl_jw w;
    hl_jw_init(&w, &b);
    hl_jw_arr_begin(&w);
    for (int32_t i = 0; i < n; i++) hl_jw_double(&w, v[i]);
    hl_jw_arr_end(&w);
    fwrite(b.data, 1, b.len, stdout);
    fputc('\n', stdout);
    hl_buf_free(&b);
}

int cli_embed_local(hl_engine *eng, const tok_vocab *tok, const char *text) {
    hl_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(tok, text, strlen(text), 1, 0, &ids, &n, &err)) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    int32_t max = hl_engine_max_embed_tokens(eng);
    if (n > (size_t)max) { /* Ollama's default: truncate, keeping the end token */
        int32_t last = ids[n - 1];
        n = (size_t)max;
        if (tok_add_eos(tok) && last == tok_eos(tok)) ids[n - 1] = last;
    }
    hl_request req = {.prompt = ids, .n_prompt = n, .embed = 1, .sampling = hl_sampling_default_params()};
    hl_handle *h = NULL;
    int rc = hl_engine_submit(eng, &req, NULL, NULL, &h, &err);
    free(ids);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    hl_event ev;
    int ok = 0;
    while (hl_handle_wait(h, &ev, -1)) {
        if (ev.type == HL_EVENT_EMBED) {
            float *v = malloc((size_t)ev.n_embedding * sizeof *v);
            if (v) {
                memcpy(v, ev.embedding, (size_t)ev.n_embedding * sizeof *v);
                hl_embed_normalize(v, ev.n_embedding);
                print_vec(v, ev.n_embedding);
                ok = 1;
            }
            free(v);
        } else if (ev.type == HL_EVENT_ERROR) {
            fprintf(stderr, "Error: %s\n", ev.error);
        } else if (ev.type == HL_EVENT_DONE) {
            break;
        }
    }
    hl_handle_release(h);
    return ok ? 0 : 1;
}

int cli_embed_remote(cli_client *c, const char *model, const char *text) {
    hl_buf body = {0};
    hl_jw w;
    hl_jw_init(&w, &body);
    hl_jw_obj_begin(&w);
    hl_jw_key(&w, "model");
    hl_jw_str(&w, model);
    hl_jw_key(&w, "input");
    hl_jw_str(&w, text);
    hl_jw_obj_end(&w);
    struct json_object *reply = NULL, *embs, *v;
    hl_err err = {0};
    int rc = cli_json(c, "POST", "/api/embed", body.data, &reply, &err);
    hl_buf_free(&body);
    if (rc) {
        fprintf(stderr, "Error: %s\n", err.msg);
        return 1;
    }
    if (!json_object_object_get_ex(reply, "embeddings", &embs) || !json_object_is_type(embs, json_type_array) ||
        !(v = json_object_array_get_idx(embs, 0))) {
        fprintf(stderr, "Error: the server's /api/embed reply has no embedding\n");
        json_object_put(reply);
        return 1;
    }
    printf("%s\n", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    json_object_put(reply);
    return 0;
}

int cli_show_is_embedding(struct json_object *show) {
    struct json_object *caps;
    if (!show || !json_object_object_get_ex(show, "capabilities", &caps) || !json_object_is_type(caps, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(caps); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(caps, i));
        if (s && !strcmp(s, "embedding")) return 1;
    }
    return 0;
}
