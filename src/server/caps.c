/* Model capabilities, as /api/show and /api/tags list them (Ollama's names,
 * in Ollama's order): "embedding" alone for an embedding model; else
 * "completion" always, "tools" and "thinking" from the Modelfile TEMPLATE or
 * else from the GGUF's chat template, "insert" when the TEMPLATE uses .Suffix
 * or the vocabulary has FIM tokens. The one place that decides them.
 *
 * Deciding needs the model file's metadata and its vocabulary (a tokenizer
 * load: milliseconds for a 150k vocabulary), so /api/tags would pay that
 * for every model of the store on every call. The server's srv_caps_cache
 * remembers the answer per (model file, its size and mtime, the TEMPLATE):
 * a file replaced in place or a new TEMPLATE is decided anew. The cache is
 * owned by the srv_server and guarded by its own mutex; deciding happens
 * outside the lock (two requests may both decide the same model once). */
#include "server/internal.h"
#include "base/json_write.h"
#include "chat/outparse.h"
#include "gguf/gguf.h"
#include "runner/prompt.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CAP_EMBEDDING = 1 << 4, CAP_INSERT = 1 << 5 }; /* beside chat/outparse.h's CHAT_CAP_* bits */

#define CAPS_CACHE_MAX 512 /* more distinct entries than this: start over (a store has far fewer models) */

typedef struct srv_caps_entry {
    char *path;
    int64_t size, mtime_ns;
    uint64_t template_hash; /* FNV-1a of the TEMPLATE text (0 length: none) */
    unsigned caps;
} srv_caps_entry;

void srv_caps_cache_init(srv_caps_cache *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->m, NULL);
}

void srv_caps_cache_destroy(srv_caps_cache *c) {
    for (int i = 0; i < c->n; i++) free(c->e[i].path);
    free(c->e);
    pthread_mutex_destroy(&c->m);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* An embedding model (model/model.h: an encoder, or a decoder whose file
 * names a pooling type), from its metadata alone. */
static int gguf_is_embedding(const gguf_file *f) {
    gguf_str a;
    if (gguf_get_str(f, "general.architecture", &a) != 0) return 0;
    if ((a.len == 4 && !memcmp(a.ptr, "bert", 4)) || (a.len == 10 && !memcmp(a.ptr, "nomic-bert", 10))) return 1;
    char key[96];
    snprintf(key, sizeof key, "%.*s.pooling_type", (int)(a.len < 64 ? a.len : 64), a.ptr);
    int64_t v;
    return gguf_get_int(f, key, &v) == 0 && v > 0;
}

static unsigned decide(const char *go_template, const char *path) {
    unsigned caps = 0;
    int has_template = go_template && *go_template;
    if (hl_prompt_template_inserts(go_template)) caps |= CAP_INSERT;
    gguf_file *f = NULL;
    if (path && gguf_open(&f, path, NULL) == 0) {
        if (gguf_is_embedding(f)) {
            gguf_close(f);
            return CAP_EMBEDDING;
        }
        gguf_str s;
        if (!has_template && gguf_get_str(f, "tokenizer.chat_template", &s) == 0) {
            char *src = strndup(s.ptr, s.len);
            caps |= srv_template_caps(NULL, src);
            free(src);
        }
        tok_vocab *v = NULL;
        int32_t ids[3];
        if (!(caps & CAP_INSERT) && tok_load(&v, f, NULL) == 0 && tok_fim(v, ids)) caps |= CAP_INSERT;
        tok_free(v);
        gguf_close(f);
    }
    if (has_template) caps |= srv_template_caps(go_template, NULL);
    return caps;
}

static unsigned lookup(srv_caps_cache *c, const char *go_template, const char *path) {
    struct stat sb;
    if (!c || !path || stat(path, &sb) != 0) return decide(go_template, path);
    int64_t size = (int64_t)sb.st_size, mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec;
    uint64_t th = fnv1a(go_template);
    pthread_mutex_lock(&c->m);
    for (int i = 0; i < c->n; i++) {
        srv_caps_entry *e = &c->e[i];
        if (e->size == size && e->mtime_ns == mtime && e->template_hash == th && !strcmp(e->path, path)) {
            unsigned caps = e->caps;
            pthread_mutex_unlock(&c->m);
            return caps;
        }
    }
    pthread_mutex_unlock(&c->m);
    unsigned caps = decide(go_template, path);
    char *p = strdup(path);
    if (!p) return caps;
    pthread_mutex_lock(&c->m);
    if (c->n == CAPS_CACHE_MAX) {
        for (int i = 0; i < c->n; i++) free(c->e[i].path);
        c->n = 0;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        srv_caps_entry *ne = realloc(c->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            pthread_mutex_unlock(&c->m);
            free(p);
            return caps;
        }
        c->e = ne;
        c->cap = cap;
    }
    c->e[c->n++] = (srv_caps_entry){p, size, mtime, th, caps};
    pthread_mutex_unlock(&c->m);
    return caps;
}

void srv_put_capabilities(srv_caps_cache *c, hl_jw *w, const char *go_template, const char *path) {
    unsigned caps = lookup(c, go_template, path);
    hl_jw_key(w, "capabilities");
    hl_jw_arr_begin(w);
    if (caps & CAP_EMBEDDING) { /* Ollama lists embedding models with this one capability */
        hl_jw_str(w, "embedding");
        hl_jw_arr_end(w);
        return;
    }
    hl_jw_str(w, "completion");
    if (caps & CHAT_CAP_TOOLS) hl_jw_str(w, "tools");
    if (caps & CAP_INSERT) hl_jw_str(w, "insert");
    if (caps & CHAT_CAP_THINKING) hl_jw_str(w, "thinking");
    hl_jw_arr_end(w);
}
