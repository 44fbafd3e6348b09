/* Whole models on the Vulkan backend (lavapipe in CI, HYPERLAMA_VULKAN_DEVICE
 * picks another device), through the model API exactly as the engine runs
 * them (hl_backend_open("vulkan:N"), hl_forward_ctx_new, hl_model_forward):
 *
 * 1. llama.cpp's greedy 40 tokens after BOS + "Once upon a time" for the
 *    stories260K files whose weight types have kernels (F32, F16, Q8_0,
 *    Q4_0), from ../shared/models/stories260K-llamacpp-reference.txt: an
 *    independent engine, not our CPU path.
 * 2. Logits at every position of a prompt and two decode steps against the
 *    CPU backend, f16 KV in 4-position blocks behind a scattered table.
 *    Tolerances as in tests/unit/model/test_backends.c (same reasoning:
 *    identical integer block sums, float order differs by ~1e-7 per op;
 *    quantized inputs can land one rounding step apart): F32/F16 3e-3 /
 *    8e-3, the quantized files 0.6.
 * 3. Batch invariance: two sequences in one batch give, bit for bit, the
 *    logits each gives alone (every kernel sums in a fixed order per row).
 * 4. A model with a weight type that has no kernel is refused at
 *    hl_forward_ctx_new with a message naming the type (SmolLM2 Q4_1 is
 *    not in ../shared, so a stories file's own plan is checked by
 *    supports() after swapping its type: see vk_refuses_what_it_cannot_run
 *    in test_vk_matmul.c). */
#include "model_harness.h"

#include "backend/vulkan/vulkan.h"
#include "base/file.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    hl_forward_ctx *ctx;
    hl_kv_cache *kv;
} run;

static int run_open(run *r, const hl_model *m, const hl_forward_placement *pl, hl_err *err) {
    memset(r, 0, sizeof *r);
    int rc = hl_forward_ctx_new_placed(&r->ctx, m, pl, 64, err);
    if (!rc) rc = hl_forward_kv_new(r->ctx, 32, 4, HL_TYPE_F16, &r->kv, err);
    return rc;
}

static void run_close(run *r) {
    if (r->kv) hl_forward_kv_free(r->ctx, r->kv);
    hl_forward_ctx_free(r->ctx);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static const int32_t table_a[12] = {5, 2, 7, 11, 3, 9, 14, 20, 31, 17, 0, 24}, table_b[4] = {1, 6, 30, 25};

/* greedy: BOS + "Once upon a time", then n_gen tokens one step at a time */
static int greedy_placed(const hl_model *m, const hl_forward_placement *pl, int32_t *out, int n_gen, hl_err *err) {
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    const int32_t nv = hl_model_hparams(m)->n_vocab, np = 5;
    run r;
    int rc = run_open(&r, m, pl, err);
    float *logits = malloc((size_t)nv * sizeof *logits);
    hl_batch_seq seq = {table_a, 12};
    hl_batch_token bt[8];
    for (int i = 0; i < np; i++) bt[i] = (hl_batch_token){prompt[i], i, 0, i == np - 1};
    hl_batch b = {bt, np, &seq, 1};
    if (!rc) rc = hl_model_forward(r.ctx, r.kv, &b, logits, err);
    for (int i = 0; !rc && i < n_gen; i++) {
        out[i] = argmax(logits, nv);
        bt[0] = (hl_batch_token){out[i], np + i, 0, 1};
        b.n_tokens = 1;
        if (i + 1 < n_gen) rc = hl_model_forward(r.ctx, r.kv, &b, logits, err);
    }
    free(logits);
    run_close(&r);
    return rc;
}

static int greedy(const hl_model *m, hl_backend *be, int32_t *out, int n_gen, hl_err *err) {
    return greedy_placed(m, &(hl_forward_placement){.be = be, .n_on_be = -1}, out, n_gen, err);
}

/* prompt of 6 (logits everywhere) + 2 decode steps; logits [8][nv] */
static int steps_placed(const hl_model *m, const hl_forward_placement *pl, const int32_t *tokens, float *logits,
                        hl_err *err) {
    const int32_t nv = hl_model_hparams(m)->n_vocab;
    run r;
    int rc = run_open(&r, m, pl, err);
    hl_batch_seq seq = {table_a, 8};
    hl_batch_token bt[6];
    for (int i = 0; i < 6; i++) bt[i] = (hl_batch_token){tokens[i], i, 0, 1};
    hl_batch b = {bt, 6, &seq, 1};
    if (!rc) rc = hl_model_forward(r.ctx, r.kv, &b, logits, err);
    for (int d = 0; !rc && d < 2; d++) {
        bt[0] = (hl_batch_token){tokens[6 + d], 6 + d, 0, 1};
        b.n_tokens = 1;
        rc = hl_model_forward(r.ctx, r.kv, &b, logits + (size_t)(6 + d) * nv, err);
    }
    run_close(&r);
    return rc;
}

typedef struct vk_case {
    const char *file;
    double tol;
} vk_case;

static const vk_case cases[] = {
    {"stories260K.gguf", 3e-3},
    {"stories260K-F16.gguf", 8e-3},
    {"stories260K-Q8_0.gguf", 0.6},
    {"stories260K-Q4_0.gguf", 0.6},
};

static int steps(const hl_model *m, hl_backend *be, const int32_t *tokens, float *logits, hl_err *err) {
    return steps_placed(m, &(hl_forward_placement){.be = be, .n_on_be = -1}, tokens, logits, err);
}

TEST(vk_model_greedy_equals_llama_cpp) {
    hl_backend *vk = hl_test_open_vulkan(1);
    if (!vk) return;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[256];
        snprintf(path, sizeof path, "models/%s", cases[c].file);
        hl_model *m = NULL;
        hl_err err = {0};
        if (hl_model_load(&m, hl_test_shared(path), &err)) {
            hl_test_fail(__FILE__, __LINE__, "load %s: %s", path, err.msg);
            continue;
        }
        int32_t want[64], got[40];
        hl_vulkan_run_stats s0, s1;
        hl_backend_vulkan_run_stats(vk, &s0);
        int n = hl_test_ref_greedy(cases[c].file, want, 64);
        if (n < 40) hl_test_fail(__FILE__, __LINE__, "%s: no greedy ids in the reference file", cases[c].file);
        else if (greedy(m, vk, got, 40, &err)) hl_test_fail(__FILE__, __LINE__, "%s: %s", cases[c].file, err.msg);
        else {
            /* the 39 decode steps have one shape: the first records, the rest resubmit it */
            hl_backend_vulkan_run_stats(vk, &s1);
            CHECK(s1.runs - s0.runs == 40);
            CHECK(s1.reused - s0.reused == 38);
            CHECK(s1.barriers - s0.barriers < s1.dispatches - s0.dispatches);
            printf("    %-24s %llu runs, %llu reused; %llu dispatches, %llu barriers between them\n", cases[c].file,
                   (unsigned long long)(s1.runs - s0.runs), (unsigned long long)(s1.reused - s0.reused),
                   (unsigned long long)(s1.dispatches - s0.dispatches), (unsigned long long)(s1.barriers - s0.barriers));
            int same = 0;
            while (same < 40 && got[same] == want[same]) same++;
            printf("    %-24s greedy: %d of 40 tokens equal llama.cpp's\n", cases[c].file, same);
            CHECK_EQ(same, 40);
        }
        hl_model_free(m);
    }
    hl_backend_free(vk);
}

TEST(vk_model_logits_match_cpu) {
    hl_backend *vk = hl_test_open_vulkan(1);
    if (!vk) return;
    hl_pool *pool = hl_pool_new(2);
    hl_backend *cpu = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_backend_open(&cpu, "cpu", pool, &err), 0);
    for (size_t c = 0; cpu && c < sizeof cases / sizeof cases[0]; c++) {
        char path[256];
        snprintf(path, sizeof path, "models/%s", cases[c].file);
        hl_model *m = NULL;
        if (hl_model_load(&m, hl_test_shared(path), &err)) {
            hl_test_fail(__FILE__, __LINE__, "load %s: %s", path, err.msg);
            continue;
        }
        const int32_t nv = hl_model_hparams(m)->n_vocab;
        int32_t tokens[8] = {1, 403, 407, 261, 378, 267, 265, 282};
        float *lv = malloc((size_t)8 * nv * sizeof *lv), *lc = malloc((size_t)8 * nv * sizeof *lc);
        if (steps(m, vk, tokens, lv, &err) || steps(m, cpu, tokens, lc, &err))
            hl_test_fail(__FILE__, __LINE__, "%s: %s", cases[c].file, err.msg);
        else {
            double md = 0;
            for (size_t i = 0; i < (size_t)8 * nv; i++) md = fmax(md, fabs((double)lv[i] - lc[i]));
            printf("    %-24s logits vs cpu: max |diff| %.3g (tol %.3g)\n", cases[c].file, md, cases[c].tol);
            CHECK(md <= cases[c].tol);
        }
        free(lv), free(lc);
        hl_model_free(m);
    }
    hl_backend_free(cpu);
    hl_pool_free(pool);
    hl_backend_free(vk);
}

TEST(vk_model_batch_invariant) {
    hl_backend *vk = hl_test_open_vulkan(1);
    if (!vk) return;
    hl_model *m = NULL;
    hl_err err = {0};
    if (hl_model_load(&m, hl_test_shared("models/stories260K-Q8_0.gguf"), &err)) {
        hl_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
        hl_backend_free(vk);
        return;
    }
    const int32_t nv = hl_model_hparams(m)->n_vocab;
    static const int32_t ta[5] = {1, 403, 407, 261, 378}, tb[3] = {1, 346, 306};
    float *both = malloc((size_t)8 * nv * sizeof *both), *alone = malloc((size_t)5 * nv * sizeof *alone);
    run r;
    const hl_forward_placement whole = {.be = vk, .n_on_be = -1};
    CHECK_EQ(run_open(&r, m, &whole, &err), 0);
    /* together: sequence b's tokens interleaved with a's */
    hl_batch_seq seqs[2] = {{table_a, 8}, {table_b, 4}};
    hl_batch_token bt[8] = {{ta[0], 0, 0, 1}, {tb[0], 0, 1, 1}, {ta[1], 1, 0, 1}, {tb[1], 1, 1, 1},
                            {ta[2], 2, 0, 1}, {tb[2], 2, 1, 1}, {ta[3], 3, 0, 1}, {ta[4], 4, 0, 1}};
    hl_batch b = {bt, 8, seqs, 2};
    CHECK_EQ(hl_model_forward(r.ctx, r.kv, &b, both, &err), 0);
    run_close(&r);
    /* alone: a, then b, each in a fresh pool */
    const int32_t rows_a[5] = {0, 2, 4, 6, 7}, rows_b[3] = {1, 3, 5};
    for (int s = 0; s < 2; s++) {
        CHECK_EQ(run_open(&r, m, &whole, &err), 0);
        hl_batch_token one[5];
        int n = s ? 3 : 5;
        for (int i = 0; i < n; i++) one[i] = (hl_batch_token){s ? tb[i] : ta[i], i, 0, 1};
        hl_batch_seq sq = s ? seqs[1] : seqs[0];
        hl_batch ob = {one, n, &sq, 1};
        CHECK_EQ(hl_model_forward(r.ctx, r.kv, &ob, alone, &err), 0);
        int same = 1;
        for (int i = 0; i < n; i++)
            same &= !memcmp(alone + (size_t)i * nv, both + (size_t)(s ? rows_b[i] : rows_a[i]) * nv, (size_t)nv * sizeof(float));
        if (!same) hl_test_fail(__FILE__, __LINE__, "sequence %c alone differs from the same sequence in a shared batch", 'a' + s);
        run_close(&r);
    }
    free(both), free(alone);
    hl_model_free(m);
    hl_backend_free(vk);
}

/* 5. Device memory: a model whose weights and step buffers exceed the free
 *    device memory times gpu_memory_fraction is refused at
 *    hl_forward_ctx_new, and a KV pool that exceeds it at kv_new, both with
 *    the shared wording (base/memfit.h): what it needs, split into its
 *    parts, what there is, and what to try. A fraction that leaves room
 *    runs as before. */
TEST(vk_model_refused_when_it_does_not_fit) {
    hl_backend *probe = hl_test_open_vulkan(1);
    if (!probe) return;
    hl_backend_free(probe);
    const char *dev = getenv("HYPERLAMA_VULKAN_DEVICE");
    char name[64];
    snprintf(name, sizeof name, "vulkan:%s", dev && *dev ? dev : "0");
    hl_model *m = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_model_load(&m, hl_test_shared("models/stories260K.gguf"), &err), 0);
    if (!m) return;
    /* 1e-6 of ~2 GiB: a few KiB, less than the weights */
    hl_backend *vk = NULL;
    CHECK_EQ(hl_backend_open_choice(&vk, &(hl_backend_choice){.name = name, .vulkan_device = -1, .gpu_memory_fraction = 1e-6},
                                    NULL, NULL, 0, &err), 0);
    hl_forward_ctx *ctx = NULL;
    CHECK_EQ(hl_forward_ctx_new(&ctx, m, vk, 64, &err), HL_ENOMEM);
    printf("    refused: %s\n", err.msg);
    CHECK(strstr(err.msg, "model requires more GPU memory on ") != NULL);
    CHECK(strstr(err.msg, "of weights") != NULL && strstr(err.msg, "of buffers") != NULL);
    CHECK(strstr(err.msg, "than is available") != NULL && strstr(err.msg, "engine.gpu_memory_fraction") != NULL);
    CHECK(strstr(err.msg, "Try a smaller quantization") != NULL);
    hl_backend_free(vk);
    /* 1% (~20 MiB): the model fits, a pool of 131072 positions (~80 MiB) does not, a small one does */
    CHECK_EQ(hl_backend_open_choice(&vk, &(hl_backend_choice){.name = name, .vulkan_device = -1, .gpu_memory_fraction = 0.01},
                                    NULL, NULL, 0, &err), 0);
    CHECK_EQ(hl_forward_ctx_new(&ctx, m, vk, 64, &err), 0);
    hl_kv_cache *kv = NULL;
    if (ctx) {
        CHECK_EQ(hl_forward_kv_new(ctx, 8192, 16, HL_TYPE_F16, &kv, &err), HL_ENOMEM);
        printf("    refused: %s\n", err.msg);
        CHECK(strstr(err.msg, "of KV cache for a 131072-token context") != NULL && strstr(err.msg, "num_ctx") != NULL);
        CHECK_EQ(hl_forward_kv_new(ctx, 32, 4, HL_TYPE_F16, &kv, &err), 0);
        hl_backend_mem mem;
        hl_forward_memory(ctx, &mem);
        CHECK(mem.weights > 0 && mem.free > 0 && mem.free < (size_t)(25 << 20));
        hl_forward_kv_free(ctx, kv);
        hl_forward_ctx_free(ctx);
    }
    hl_backend_free(vk);
    hl_model_free(m);
}

/* 6. Partial offload (num_gpu): the last N layers and the output on the
 *    GPU, the embedding and the rest on the CPU, the residual stream copied
 *    at the boundary each step and each part keeping the KV of its own
 *    layers. For N = 0, 1 and all 5 layers of stories260K F32 (and N = 2
 *    for Q8_0):
 *    greedy 40 tokens equal llama.cpp's reference ids (and so the CPU's),
 *    and logits over a prompt and two decode steps stay within the
 *    whole-model tolerance of the CPU's. The context names the split and
 *    reports the GPU's share. */
TEST(vk_model_partial_offload) {
    hl_backend *vk = hl_test_open_vulkan(1);
    if (!vk) return;
    hl_pool *pool = hl_pool_new(2);
    hl_backend *cpu = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_backend_open(&cpu, "cpu", pool, &err), 0);
    static const char *files[] = {"stories260K.gguf", "stories260K-Q8_0.gguf"};
    static const double tol[] = {3e-3, 0.6};
    for (size_t f = 0; cpu && f < 2; f++) {
        char path[256];
        snprintf(path, sizeof path, "models/%s", files[f]);
        hl_model *m = NULL;
        if (hl_model_load(&m, hl_test_shared(path), &err)) {
            hl_test_fail(__FILE__, __LINE__, "load %s: %s", path, err.msg);
            continue;
        }
        const int32_t nv = hl_model_hparams(m)->n_vocab, nl = hl_model_hparams(m)->n_layer;
        int32_t want[64], got[40];
        int n = hl_test_ref_greedy(files[f], want, 64);
        CHECK(n >= 40);
        int32_t tokens[8] = {1, 403, 407, 261, 378, 267, 265, 282};
        float *lv = malloc((size_t)8 * nv * sizeof *lv), *lc = malloc((size_t)8 * nv * sizeof *lc);
        CHECK_EQ(steps(m, cpu, tokens, lc, &err), 0);
        /* every split on F32; one on Q8_0 (lavapipe is slow: CI time) */
        const int32_t ns_f32[] = {0, 1, nl}, ns_q8[] = {2}, *ns = f ? ns_q8 : ns_f32;
        for (size_t k = 0; k < (f ? 1u : 3u) && n >= 40; k++) {
            hl_forward_placement pl = {.be = vk, .first = cpu, .n_on_be = ns[k]};
            if (greedy_placed(m, &pl, got, 40, &err) || steps_placed(m, &pl, tokens, lv, &err)) {
                hl_test_fail(__FILE__, __LINE__, "%s num_gpu %d: %s", files[f], ns[k], err.msg);
                continue;
            }
            int same = 0;
            while (same < 40 && got[same] == want[same]) same++;
            double md = 0;
            for (size_t i = 0; i < (size_t)8 * nv; i++) md = fmax(md, fabs((double)lv[i] - lc[i]));
            printf("    %-24s num_gpu %d: greedy %d of 40 equal llama.cpp's, logits vs cpu max |diff| %.3g\n", files[f],
                   ns[k], same, md);
            CHECK_EQ(same, 40);
            CHECK(md <= tol[f]);
        }
        /* the context says where the layers are */
        hl_forward_ctx *ctx = NULL;
        CHECK_EQ(hl_forward_ctx_new_placed(&ctx, m, &(hl_forward_placement){.be = vk, .first = cpu, .n_on_be = 2}, 8, &err), 0);
        if (ctx) {
            int32_t gl = 0;
            size_t gw = 0;
            hl_forward_gpu_share(ctx, &gl, &gw);
            CHECK_EQ(gl, 2);
            CHECK(gw > 0 && gw < hl_model_weight_bytes(m));
            CHECK(strstr(hl_forward_backend_name(ctx), "(2 of 5 layers, the rest on cpu)") != NULL);
            hl_forward_ctx_free(ctx);
        }
        free(lv), free(lc);
        hl_model_free(m);
    }
    hl_backend_free(cpu);
    hl_pool_free(pool);
    hl_backend_free(vk);
}

/* 7. Embedding models: the tiny random BERT and nomic-bert fixtures
 *    (position / token-type embedding rows, LayerNorm with bias, exact GELU,
 *    bidirectional attention) and a decoder used as an embedder (qwen2,
 *    last-token pooling: the normed hidden state is the output row), F32
 *    and F16 weights. Two sequences in one batch: every output row on the
 *    Vulkan backend against the CPU backend's, within 1e-4 of the largest
 *    value (float order of the sums only; measured ~1e-6), and sequence A's
 *    rows the same bits alone as beside B. */
static int vk_embed_pass(const hl_model *m, hl_backend *be, const hl_batch *b, float *out, hl_err *err) {
    hl_forward_ctx *ctx = NULL;
    hl_kv_cache *kv = NULL;
    int rc = hl_forward_ctx_new(&ctx, m, be, b->n_tokens, err);
    if (!rc) rc = hl_forward_kv_new(ctx, 32, 4, HL_TYPE_F16, &kv, err);
    if (!rc) rc = hl_model_forward(ctx, kv, b, out, err);
    if (kv) hl_forward_kv_free(ctx, kv);
    hl_forward_ctx_free(ctx);
    return rc;
}

TEST(vk_model_embeddings_match_cpu) {
    hl_backend *vk = hl_test_open_vulkan(1);
    if (!vk) return;
    hl_pool *pool = hl_pool_new(2);
    hl_backend *cpu = NULL;
    hl_err err = {0};
    CHECK_EQ(hl_backend_open(&cpu, "cpu", pool, &err), 0);
    static const char *const files[] = {"tiny-bert-f32.gguf", "tiny-bert-f16.gguf", "tiny-nomic-f32.gguf",
                                        "tiny-nomic-f16.gguf", "tiny-qwen2-last-f32.gguf"};
    for (size_t f = 0; cpu && f < sizeof files / sizeof files[0]; f++) {
        char p[256];
        snprintf(p, sizeof p, "tests/data/embed/%s", files[f]);
        hl_model *m = NULL;
        if (hl_model_load(&m, p, &err)) {
            hl_test_fail(__FILE__, __LINE__, "load %s: %s", p, err.msg);
            continue;
        }
        const hl_hparams *hp = hl_model_hparams(m);
        enum { NA = 7, NB = 3, E_MAX = 256 };
        const int32_t E = (int32_t)hl_model_n_out(m);
        CHECK(hp->embedding && E <= E_MAX);
        hl_batch_token bt[NA + NB];
        for (int t = 0; t < NA + NB; t++)
            bt[t] = (hl_batch_token){(int32_t)((7919u * (unsigned)t + 13u) % (unsigned)hp->n_vocab), t < NA ? t : t - NA,
                                     t < NA ? 0 : 1, 1};
        hl_batch_seq seqs[2] = {{table_a, 3}, {table_b, 2}};
        hl_batch both = {bt, NA + NB, seqs, 2}, alone = {bt, NA, seqs, 1};
        static float ov[(NA + NB) * E_MAX], oc[(NA + NB) * E_MAX], oa[NA * E_MAX];
        if (E > E_MAX || vk_embed_pass(m, vk, &both, ov, &err) || vk_embed_pass(m, cpu, &both, oc, &err) ||
            vk_embed_pass(m, vk, &alone, oa, &err)) {
            hl_test_fail(__FILE__, __LINE__, "%s: %s", files[f], err.msg);
        } else {
            double md = 0, mx = 0;
            for (int i = 0; i < (NA + NB) * E; i++) {
                md = fmax(md, fabs((double)ov[i] - oc[i]));
                mx = fmax(mx, fabs((double)oc[i]));
            }
            printf("    %-26s embeddings vs cpu: max |diff| %.3g of max |x| %.3g\n", files[f], md, mx);
            CHECK(mx > 0 && md <= 1e-4 * mx);
            CHECK(memcmp(oa, ov, (size_t)NA * E * sizeof(float)) == 0);
        }
        hl_model_free(m);
    }
    hl_backend_free(cpu);
    hl_pool_free(pool);
    hl_backend_free(vk);
}
