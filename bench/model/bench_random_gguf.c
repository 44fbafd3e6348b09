/* bench_random_gguf: writes a GGUF file of a real model's shape with random
 * weights, for benchmarks on machines that hold no model files (the GPU
 * device check, bench/gpu/device_check.sh). Our own writer
 * (src/gguf/gguf_write.c) and quantizers (hl_quantize), nothing fetched.
 *
 *   bench_random_gguf SHAPE TYPE OUT.gguf
 *     SHAPE  qwen2.5-1.5b | llama3-8b | small | small-qwen   (small*: ~1 MiB of the
 *            llama / qwen2 layout, for lavapipe) | qwen3moe-1g (a qwen3moe of
 *            Qwen3-30B-A3B's proportions scaled to ~1 GB at Q4_K: 64 experts,
 *            top-8, 3-D expert tensors: the decode bound is k/n of them) |
 *            small-moe (~1 MiB of qwen3moe: 8 experts, top-2, for lavapipe)
 *     TYPE   q4_k_m | q8_0 | f16
 *   prints "params N bytes B": the weights' element count and tensor bytes
 *   (for the device check's FLOP and bandwidth arithmetic).
 *
 * Shapes: the published configurations (hidden size, FFN size, layers,
 * heads, KV heads, vocabulary; Qwen2.5-1.5B ties its output to the
 * embedding and has QKV biases). q4_k_m is llama.cpp's recipe in outline:
 * Q4_K matrices, Q6_K for attn_v and ffn_down in every other layer and for
 * the output matrix (the embedding when tied). The vocabulary is a
 * SentencePiece-style list (<unk> <s> </s>, the 256 byte tokens, then
 * "tN"), enough for the tokenizer to load; benchmarks draw token ids at
 * random.
 *
 * Speed: each distinct (type, row length) gets 64 random rows quantized
 * once; a tensor is those rows tiled, and tensors of the same shape and
 * type share one buffer (borrowed by the writer), so an 8B file costs the
 * disk write, not 8 billion quantizations. Weights ~ U(-0.05, 0.05), norms 1,
 * biases 0: finite activations through every layer. */
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name, *arch;
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
    int tied, qkv_bias;
    double rope_base;
    int64_t n_expert, n_expert_used, n_ff_exp; /* MoE shapes (qwen3moe): every FFN is routed experts */
} shape;

static const shape SHAPES[] = {
    {"qwen2.5-1.5b", "qwen2", 1536, 8960, 28, 12, 2, 151936, 32768, 1, 1, 1000000.0},
    {"llama3-8b", "llama", 4096, 14336, 32, 32, 8, 128256, 8192, 0, 0, 500000.0},
    {"small", "llama", 256, 512, 2, 4, 2, 1024, 4096, 0, 0, 10000.0},
    {"small-qwen", "qwen2", 256, 512, 2, 4, 2, 1024, 4096, 1, 1, 1000000.0},
    {"qwen3moe-1g", "qwen3moe", 1024, 3072, 16, 16, 4, 151936, 32768, 1, 0, 1000000.0, 64, 8, 512},
    {"small-moe", "qwen3moe", 256, 512, 2, 4, 2, 1024, 4096, 1, 0, 1000000.0, 8, 2, 256},
};

/* One buffer per distinct tensor (type, ne0, ne1), filled once. */
typedef struct buf {
    hl_type type;
    int64_t ne0, ne1;
    void *data;
    size_t size;
} buf;

typedef struct gen {
    buf bufs[64];
    int n;
    uint64_t rng;
} gen;

static float urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (1.0 / (1ull << 24))) * 0.1f - 0.05f;
}

static const void *tensor_data(gen *g, hl_type type, int64_t ne0, int64_t ne1, float fill, size_t *size) {
    for (int i = 0; i < g->n; i++)
        if (g->bufs[i].type == type && g->bufs[i].ne0 == ne0 && g->bufs[i].ne1 == ne1) return *size = g->bufs[i].size, g->bufs[i].data;
    if (g->n == 64) return NULL;
    const size_t rb = hl_row_size(type, ne0), total = rb * (size_t)ne1;
    const int64_t pool = ne1 < 64 ? ne1 : 64;
    void *data = aligned_alloc(64, (total + 63) & ~(size_t)63);
    float *row = malloc((size_t)ne0 * sizeof *row);
    if (!data || !row) return free(data), free(row), NULL;
    for (int64_t r = 0; r < pool; r++) {
        for (int64_t k = 0; k < ne0; k++) row[k] = fill != 0 || type == HL_TYPE_F32 ? fill : urand(&g->rng);
        if (type == HL_TYPE_F32) memcpy((char *)data + (size_t)r * rb, row, rb);
        else hl_quantize(type, row, (char *)data + (size_t)r * rb, ne0);
    }
    for (int64_t r = pool; r < ne1; r++) memcpy((char *)data + (size_t)r * rb, (char *)data + (size_t)(r % pool) * rb, rb);
    free(row);
    g->bufs[g->n++] = (buf){type, ne0, ne1, data, total};
    *size = total;
    return data;
}

static int64_t n_params, n_bytes;

static int64_t n_active_bytes; /* bytes a decode step reads: k of n expert slices */

/* ne2 > 1: a 3-D tensor of ne2 slices (MoE experts), k of which a step reads. */
static int add3(gguf_writer *w, gen *g, const char *name, hl_type type, int64_t ne0, int64_t ne1, int64_t ne2,
                int64_t k, float fill, hl_err *err) {
    size_t size = 0;
    const void *d = tensor_data(g, type, ne0, ne1 * ne2, fill, &size);
    if (!d) return hl_err_set(err, HL_ENOMEM, "out of memory for %s", name);
    n_params += ne0 * ne1 * ne2, n_bytes += (int64_t)size;
    n_active_bytes += ne2 > 1 ? (int64_t)(size / (size_t)ne2 * (size_t)k) : (int64_t)size;
    int64_t ne[3] = {ne0, ne1, ne2};
    return gguf_add_tensor(w, name, type, ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1, ne, d, size, 1, err);
}

static int add(gguf_writer *w, gen *g, const char *name, hl_type type, int64_t ne0, int64_t ne1, float fill, hl_err *err) {
    return add3(w, g, name, type, ne0, ne1, 1, 1, fill, err);
}

static void set_u32(gguf_writer *w, const char *arch, const char *suffix, int64_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    gguf_set_u32(w, key, (uint32_t)v);
}

static int write_vocab(gguf_writer *w, int64_t n) {
    char **t = calloc((size_t)n, sizeof *t);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!t || !scores || !types) return free(t), free(scores), free(types), -1;
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        char s[32];
        if (i == 0) snprintf(s, sizeof s, "<unk>");
        else if (i == 1) snprintf(s, sizeof s, "<s>");
        else if (i == 2) snprintf(s, sizeof s, "</s>");
        else if (i < 3 + 256) snprintf(s, sizeof s, "<0x%02X>", (unsigned)(i - 3));
        else snprintf(s, sizeof s, "t%lld", (long long)i);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 3 + 256 ? 6 : 1;
        scores[i] = -(float)i;
        ok = (t[i] = strdup(s)) != NULL;
    }
    if (ok) {
        gguf_set_str(w, "tokenizer.ggml.model", "llama");
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t, (uint64_t)n);
        gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n);
        gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
        gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    }
    for (int64_t i = 0; i < n; i++) free(t[i]);
    free(t), free(scores), free(types);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_random_gguf qwen2.5-1.5b|llama3-8b|small|small-qwen|qwen3moe-1g|small-moe q4_k_m|q8_0|f16 OUT.gguf\n");
        return 2;
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!strcmp(argv[1], SHAPES[i].name)) sh = &SHAPES[i];
    int kq = !strcmp(argv[2], "q4_k_m"), q8 = !strcmp(argv[2], "q8_0"), f16 = !strcmp(argv[2], "f16");
    if (!sh || !(kq || q8 || f16)) {
        fprintf(stderr, "bench_random_gguf: unknown shape or type (%s %s)\n", argv[1], argv[2]);
        return 2;
    }
    const hl_type base = kq ? HL_TYPE_Q4_K : q8 ? HL_TYPE_Q8_0 : HL_TYPE_F16, big = kq ? HL_TYPE_Q6_K : base;
    const int64_t hd = sh->n_embd / sh->n_head, nq = sh->n_head * hd, nkv = sh->n_head_kv * hd;
    const char *a = sh->arch;
    gguf_writer *w = gguf_writer_new();
    gen g = {.rng = 0x5EED};
    hl_err err = {0};
    int rc = w ? 0 : hl_err_set(&err, HL_ENOMEM, "out of memory");
    if (!rc) {
        char name[128];
        snprintf(name, sizeof name, "random %s %s", sh->name, argv[2]);
        gguf_set_str(w, "general.architecture", a);
        gguf_set_str(w, "general.name", name);
        set_u32(w, a, "context_length", sh->n_ctx);
        set_u32(w, a, "embedding_length", sh->n_embd);
        set_u32(w, a, "feed_forward_length", sh->n_ff);
        set_u32(w, a, "block_count", sh->n_layer);
        set_u32(w, a, "attention.head_count", sh->n_head);
        set_u32(w, a, "attention.head_count_kv", sh->n_head_kv);
        set_u32(w, a, "rope.dimension_count", hd);
        if (sh->n_expert) {
            set_u32(w, a, "expert_count", sh->n_expert);
            set_u32(w, a, "expert_used_count", sh->n_expert_used);
            set_u32(w, a, "expert_feed_forward_length", sh->n_ff_exp);
        }
        char key[128];
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
        gguf_set_f32(w, key, 1e-6f);
        snprintf(key, sizeof key, "%s.rope.freq_base", a);
        gguf_set_f32(w, key, (float)sh->rope_base);
        if (write_vocab(w, sh->n_vocab)) rc = hl_err_set(&err, HL_ENOMEM, "out of memory for the vocabulary");
    }
    if (!rc) rc = add(w, &g, "token_embd.weight", sh->tied ? big : base, sh->n_embd, sh->n_vocab, 0, &err);
    if (!rc) rc = add(w, &g, "output_norm.weight", HL_TYPE_F32, sh->n_embd, 1, 1.0f, &err);
    if (!rc && !sh->tied) rc = add(w, &g, "output.weight", big, sh->n_embd, sh->n_vocab, 0, &err);
    for (int64_t l = 0; l < sh->n_layer && !rc; l++) {
        char n[96];
        const hl_type vdown = l % 2 == 0 ? big : base;
#define T(fmt, type, ne0, ne1, fill) \
    if (!rc) snprintf(n, sizeof n, fmt, (int)l), rc = add(w, &g, n, type, ne0, ne1, fill, &err);
        T("blk.%d.attn_norm.weight", HL_TYPE_F32, sh->n_embd, 1, 1.0f)
        T("blk.%d.attn_q.weight", base, sh->n_embd, nq, 0)
        T("blk.%d.attn_k.weight", base, sh->n_embd, nkv, 0)
        T("blk.%d.attn_v.weight", vdown, sh->n_embd, nkv, 0)
        if (sh->qkv_bias) {
            T("blk.%d.attn_q.bias", HL_TYPE_F32, nq, 1, 1e-9f)
            T("blk.%d.attn_k.bias", HL_TYPE_F32, nkv, 1, 1e-9f)
            T("blk.%d.attn_v.bias", HL_TYPE_F32, nkv, 1, 1e-9f)
        }
        if (sh->n_expert) {
            T("blk.%d.attn_q_norm.weight", HL_TYPE_F32, hd, 1, 1.0f)
            T("blk.%d.attn_k_norm.weight", HL_TYPE_F32, hd, 1, 1.0f)
        }
        T("blk.%d.attn_output.weight", base, nq, sh->n_embd, 0)
        T("blk.%d.ffn_norm.weight", HL_TYPE_F32, sh->n_embd, 1, 1.0f)
        if (sh->n_expert) {
            const int64_t ne = sh->n_expert, k = sh->n_expert_used, f = sh->n_ff_exp;
            T("blk.%d.ffn_gate_inp.weight", HL_TYPE_F32, sh->n_embd, ne, 0)
#define T3(fmt, type, ne0, ne1) \
    if (!rc) snprintf(n, sizeof n, fmt, (int)l), rc = add3(w, &g, n, type, ne0, ne1, ne, k, 0, &err);
            T3("blk.%d.ffn_gate_exps.weight", base, sh->n_embd, f)
            T3("blk.%d.ffn_up_exps.weight", base, sh->n_embd, f)
            T3("blk.%d.ffn_down_exps.weight", vdown, f, sh->n_embd)
#undef T3
        } else {
            T("blk.%d.ffn_gate.weight", base, sh->n_embd, sh->n_ff, 0)
            T("blk.%d.ffn_up.weight", base, sh->n_embd, sh->n_ff, 0)
            T("blk.%d.ffn_down.weight", vdown, sh->n_ff, sh->n_embd, 0)
        }
#undef T
    }
    if (!rc) rc = gguf_write(w, argv[3], &err);
    gguf_writer_free(w);
    for (int i = 0; i < g.n; i++) free(g.bufs[i].data);
    if (rc) {
        fprintf(stderr, "bench_random_gguf: %s\n", err.msg);
        return 1;
    }
    printf("params %lld bytes %lld active_bytes %lld\n", (long long)n_params, (long long)n_bytes,
           (long long)n_active_bytes);
    return 0;
}
