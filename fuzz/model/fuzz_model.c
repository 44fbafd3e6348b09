/* libFuzzer target for the model loader and one forward step: any file the
 * GGUF reader accepts must either be refused by hl_model_load_gguf with an
 * error, or load and run a two-token batch without memory errors. Memory use
 * is bounded by the input: every dimension the forward pass sizes scratch
 * with is tied to a tensor shape that must exist in the file. */
#include "model/model.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f;
    hl_err err;
    if (gguf_open_memory(&f, data, size, &err)) return 0;
    hl_model *m;
    if (hl_model_load_gguf(&m, f, &err)) return 0; /* takes f either way */
    const hl_hparams *hp = hl_model_hparams(m);
    hl_pool *pool = hl_pool_new(1);
    /* output rows: n_vocab logits, or n_embd hidden-state floats (embedding models) */
    float *logits = malloc((size_t)hl_model_n_out(m) * 2 * sizeof(float));
    /* both backends: the CPU's fused step and the reference's op-by-op run */
    static const char *const names[] = {"cpu", "ref"};
    for (int i = 0; i < 2 && logits; i++) {
        hl_backend *be = NULL;
        hl_forward_ctx *ctx = NULL;
        hl_kv_cache *kv = NULL;
        if (!hl_backend_open(&be, names[i], pool, &err) && !hl_forward_ctx_new(&ctx, m, be, 2, &err) &&
            !hl_forward_kv_new(ctx, 2, 4, HL_TYPE_F16, &kv, &err)) {
            int32_t blocks[2] = {1, 0};
            hl_batch_seq seq = {blocks, 2};
            hl_batch_token t[2] = {{0, 0, 0, 1}, {hp->n_vocab - 1, 5, 0, 1}};
            hl_batch b = {t, 2, &seq, 1};
            hl_model_forward(ctx, kv, &b, logits, &err);
        }
        if (ctx) hl_forward_kv_free(ctx, kv);
        hl_forward_ctx_free(ctx);
        hl_backend_free(be);
    }
    free(logits);
    hl_pool_free(pool);
    hl_model_free(m);
    return 0;
}
