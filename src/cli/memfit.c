/* Will a model fit in this machine's memory? The one estimate every verb
 * uses: `run` (both paths) refuses a model that does not fit before loading
 * it, and `show` prints the same numbers as its hardware-fit line. The
 * estimate is the weights (the tensors' bytes) plus the KV cache (f16, or
 * Q8_0 when the server reports kv_cache_type "q8_0") for the context the
 * engine will hold (cli_run_ctx: num_ctx, else 4096, never past the model's
 * trained context; `run`'s in-process KV pool is sized by the same function)
 * plus a fixed allowance for activations and buffers,
 * against MemAvailable (or HYPERLAMA_MEMORY_LIMIT, for tests and capped
 * hosts). The model's shape comes from its GGUF file or from the server's
 * /api/show reply (model_info carries the same GGUF keys), through one
 * reader so both sources are read by the same rules. The refusal's wording
 * is base/memfit.h's, shared with the GPU backend's. */
#include "cli/cli.h"
#include "cli/client.h"

#include "base/memfit.h"
#include "gguf/gguf.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_DEFAULT_CTX 4096
#define MEM_OVERHEAD (64ll << 20) /* activations, logits, scratch buffers */

int64_t cli_mem_available(void) {
    const char *lim = getenv("HYPERLAMA_MEMORY_LIMIT"); /* bytes */
    if (lim && *lim) return strtoll(lim, NULL, 10);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* A metadata lookup: the integer under "<arch>.<suffix>", or dflt. */
typedef int64_t (*meta_fn)(void *src, const char *key, int64_t dflt);

static int64_t arch_int(meta_fn get, void *src, const char *arch, const char *suffix, int64_t dflt) {
    char key[192];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return get(src, key, dflt);
}

/* The shape from metadata, by the same keys whichever side holds them.
 * Head dimensions default as GGUF says: embedding / heads. */
static void shape_from_meta(meta_fn get, void *src, const char *arch, int64_t weights, cli_mem_shape *out) {
    memset(out, 0, sizeof *out);
    out->weights = weights;
    out->n_layer = arch_int(get, src, arch, "block_count", 0);
    int64_t n_embd = arch_int(get, src, arch, "embedding_length", 0);
    int64_t n_head = arch_int(get, src, arch, "attention.head_count", 1);
    out->n_head_kv = arch_int(get, src, arch, "attention.head_count_kv", n_head);
    out->k_dim = arch_int(get, src, arch, "attention.key_length", n_head > 0 ? n_embd / n_head : 0);
    out->v_dim = arch_int(get, src, arch, "attention.value_length", out->k_dim);
    out->train_ctx = arch_int(get, src, arch, "context_length", 0);
}

static int64_t gguf_meta(void *src, const char *key, int64_t dflt) {
    int64_t v;
    return gguf_get_int(src, key, &v) == 0 ? v : dflt;
}

int cli_mem_shape_gguf(const char *path, cli_mem_shape *out, hl_err *err) {
    gguf_file *g;
    if (gguf_open(&g, path, err)) return -1;
    gguf_str a;
    char arch[64] = "llama";
    if (gguf_get_str(g, "general.architecture", &a) == 0) snprintf(arch, sizeof arch, "%.*s", (int)a.len, a.ptr);
    int64_t weights = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) weights += (int64_t)gguf_tensor_at(g, i)->size;
    shape_from_meta(gguf_meta, g, arch, weights, out);
    gguf_close(g);
    return 0;
}

static int64_t json_meta(void *src, const char *key, int64_t dflt) {
    struct json_object *v;
    if (!json_object_object_get_ex(src, key, &v)) return dflt;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) return dflt;
    return json_object_get_int64(v);
}

int cli_mem_shape_show(struct json_object *show, cli_mem_shape *out, hl_err *err) {
    struct json_object *info = NULL, *ws = NULL;
    json_object_object_get_ex(show, "model_info", &info);
    const char *arch = cli_jstr(info, "general.architecture");
    if (!info || !arch || !json_object_object_get_ex(show, "weights_size", &ws))
        return hl_err_set(err, HL_EINVAL, "the server did not report the model's size and shape (an older server?)");
    shape_from_meta(json_meta, info, arch, json_object_get_int64(ws), out);
    const char *kvt = cli_jstr(show, "kv_cache_type");
    out->kv_q8 = kvt && !strcmp(kvt, "q8_0");
    return 0;
}

/* One head's row of the cache: f16, or Q8_0 blocks of 32 (34 bytes each) */
static int64_t kv_row_bytes(int64_t dim, int q8) { return q8 && dim % 32 == 0 ? dim / 32 * 34 : 2 * dim; }

int32_t cli_run_ctx(int32_t num_ctx, int64_t train_ctx) {
    int32_t ctx = num_ctx > 0 ? num_ctx : MEM_DEFAULT_CTX;
    if (train_ctx > 0 && ctx > train_ctx) ctx = (int32_t)train_ctx;
    return ctx;
}

void cli_mem_estimate(const cli_mem_shape *m, int32_t num_ctx, cli_mem_need *out) {
    int64_t ctx = cli_run_ctx(num_ctx, m->train_ctx);
    out->ctx = ctx;
    out->weights = m->weights;
    out->kv = m->n_layer * ctx * m->n_head_kv * (kv_row_bytes(m->k_dim, m->kv_q8) + kv_row_bytes(m->v_dim, m->kv_q8));
    out->overhead = MEM_OVERHEAD;
    out->need = out->weights + out->kv + out->overhead;
    out->avail = cli_mem_available();
}

int cli_mem_fits(const cli_mem_need *n) { return n->avail < 0 || n->need <= n->avail; }

void cli_mem_bytes(int64_t b, char *out, size_t cap) { hl_mem_bytes(b, out, cap); }

static hl_mem_need shared_need(const cli_mem_need *n) {
    return (hl_mem_need){.weights = n->weights, .kv = n->kv, .overhead = n->overhead, .ctx = n->ctx, .need = n->need,
                         .avail = n->avail};
}

/* "X (W of weights + K of KV cache for a N-token context + B of buffers)" */
static void need_text(const cli_mem_need *n, char *out, size_t cap) {
    hl_mem_need s = shared_need(n);
    hl_mem_need_text(&s, out, cap);
}

static void what_to_try(const cli_mem_need *n, char *out, size_t cap) {
    snprintf(out, cap, "a smaller quantization (e.g. q4_K_M), a smaller model, or a smaller context (--num-ctx %lld)",
             (long long)(n->ctx > 512 ? n->ctx / 4 : 256));
}

int cli_mem_error(const cli_mem_need *n, hl_err *err) {
    char tr[160];
    what_to_try(n, tr, sizeof tr);
    hl_mem_need s = shared_need(n);
    return hl_mem_refuse(err, "system memory", &s, NULL, tr);
}

void cli_mem_fit_line(const cli_mem_need *n, char *out, size_t cap) {
    char need[320], ab[32], tr[160];
    need_text(n, need, sizeof need);
    if (n->avail < 0) {
        snprintf(out, cap, "needs %s; available memory unknown", need);
        return;
    }
    cli_mem_bytes(n->avail, ab, sizeof ab);
    if (cli_mem_fits(n)) {
        snprintf(out, cap, "needs %s, %s available", need, ab);
    } else {
        what_to_try(n, tr, sizeof tr);
        snprintf(out, cap, "needs %s, only %s available; try %s", need, ab, tr);
    }
}

int cli_check_memory(const char *path, int32_t num_ctx, int kv_q8, hl_err *err) {
    cli_mem_shape m;
    if (cli_mem_shape_gguf(path, &m, err)) return -1;
    m.kv_q8 = kv_q8;
    cli_mem_need n;
    cli_mem_estimate(&m, num_ctx, &n);
    return cli_mem_fits(&n) ? 0 : cli_mem_error(&n, err);
}
