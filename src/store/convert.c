/* Hugging Face causal-LM checkpoint -> GGUF: reads config.json, maps the
 * SafeTensors weights to GGUF tensor names and the hyperparameters to
 * `<arch>.*` keys (names as the GGUF format defines them), adds the tokenizer
 * (convert_tok.c) and writes the file with our GGUF writer.
 *
 * Supported: LlamaForCausalLM / MistralForCausalLM (llama), Qwen2ForCausalLM
 * (qwen2), Qwen3ForCausalLM (qwen3), Gemma3ForCausalLM (gemma3, text only;
 * norm weights stored with Gemma's +1 applied). Rope scaling: none, linear, and llama3
 * (as rope_freqs.weight). Tensors keep their dtype (F32, F16,
 * BF16); 1-D tensors (norms, biases) become F32. For llama the Q and K rows
 * are permuted within each head from Hugging Face's half-split rotary layout
 * (pairs (i, i + d/2)) to GGUF llama's interleaved one (pairs (2i, 2i + 1)),
 * which our loader runs with NORM rope; qwen2/qwen3 keep HF's layout (NEOX).
 * Every expected tensor must be present with the shape config.json implies,
 * and no unknown tensor may be left over, so a broken directory fails here,
 * by name, instead of producing a GGUF the loader refuses later. */
#include "store/convert.h"

#include "base/half.h"
#include "store/safetensors.h"
#include "store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arch_def {
    const char *hf;   /* config.json architectures[0] */
    const char *name; /* general.architecture */
    int permute_qk, qkv_bias, qk_norm, gemma;
} arch_def;

static const arch_def ARCHS[] = {
    {"LlamaForCausalLM", "llama", 1, 0, 0},
    {"MistralForCausalLM", "llama", 1, 0, 0},
    {"Qwen2ForCausalLM", "qwen2", 0, 1, 0},
    {"Qwen3ForCausalLM", "qwen3", 0, 0, 1},
    {"Gemma3ForCausalLM", "gemma3", 0, 0, 1, 1},
};

/* shape symbols: rows x cols of the HF tensor (cols 0 = 1-D) */
enum { D_EMBD = 1, D_Q, D_KV, D_FF, D_HEAD, D_VOCAB };

typedef struct tmap {
    const char *hf, *gguf;
    int rows, cols;
    int need; /* 0 always, 1 qkv_bias, 2 qk_norm, 3 gemma only, 4 all but gemma */
    int permute; /* 1 by n_head, 2 by n_head_kv (when the arch permutes) */
} tmap;

static const tmap LAYER[] = {
    {"input_layernorm.weight", "attn_norm.weight", D_EMBD, 0, 0, 0},
    {"self_attn.q_proj.weight", "attn_q.weight", D_Q, D_EMBD, 0, 1},
    {"self_attn.k_proj.weight", "attn_k.weight", D_KV, D_EMBD, 0, 2},
    {"self_attn.v_proj.weight", "attn_v.weight", D_KV, D_EMBD, 0, 0},
    {"self_attn.q_proj.bias", "attn_q.bias", D_Q, 0, 1, 1},
    {"self_attn.k_proj.bias", "attn_k.bias", D_KV, 0, 1, 2},
    {"self_attn.v_proj.bias", "attn_v.bias", D_KV, 0, 1, 0},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", D_HEAD, 0, 2, 0},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", D_HEAD, 0, 2, 0},
    {"self_attn.o_proj.weight", "attn_output.weight", D_EMBD, D_Q, 0, 0},
    {"post_attention_layernorm.weight", "ffn_norm.weight", D_EMBD, 0, 4, 0},
    {"post_attention_layernorm.weight", "post_attention_norm.weight", D_EMBD, 0, 3, 0},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight", D_EMBD, 0, 3, 0},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", D_EMBD, 0, 3, 0},
    {"mlp.gate_proj.weight", "ffn_gate.weight", D_FF, D_EMBD, 0, 0},
    {"mlp.up_proj.weight", "ffn_up.weight", D_FF, D_EMBD, 0, 0},
    {"mlp.down_proj.weight", "ffn_down.weight", D_EMBD, D_FF, 0, 0},
};
#define N_LAYER_MAP (sizeof LAYER / sizeof LAYER[0])

typedef struct hp {
    int64_t embd, n_layer, n_head, n_kv, ff, head, vocab, ctx;
    double eps, theta, rope_factor;
    double lo_factor, hi_factor, orig_ctx; /* llama3 rope scaling */
    double theta_swa;                     /* gemma3: local layers' rope base */
    int tied, linear_rope, llama3_rope;
} hp;

static int cfg_int(json_object *c, const char *key, int64_t dflt, int64_t *out, hl_err *err) {
    json_object *v;
    if (!json_object_object_get_ex(c, key, &v) || !v) {
        if (dflt < 0) return hl_err_set(err, HL_EINVAL, "config.json: %s is missing", key);
        *out = dflt;
        return HL_OK;
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) <= 0 || json_object_get_int64(v) > (1LL << 31))
        return hl_err_set(err, HL_EINVAL, "config.json: %s must be a positive integer", key);
    *out = json_object_get_int64(v);
    return HL_OK;
}

static double cfg_num(json_object *c, const char *key, double dflt) {
    json_object *v;
    if (!c || !json_object_object_get_ex(c, key, &v) || !v) return dflt;
    if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) return json_object_get_double(v);
    return dflt;
}

static int read_hp(json_object *c, hp *h, hl_err *err) {
    int rc;
    if ((rc = cfg_int(c, "hidden_size", -1, &h->embd, err)) || (rc = cfg_int(c, "num_hidden_layers", -1, &h->n_layer, err)) ||
        (rc = cfg_int(c, "num_attention_heads", -1, &h->n_head, err)) ||
        (rc = cfg_int(c, "intermediate_size", -1, &h->ff, err)) || (rc = cfg_int(c, "vocab_size", -1, &h->vocab, err)) ||
        (rc = cfg_int(c, "num_key_value_heads", h->n_head, &h->n_kv, err)) ||
        (rc = cfg_int(c, "head_dim", h->embd / h->n_head, &h->head, err)) ||
        (rc = cfg_int(c, "max_position_embeddings", 2048, &h->ctx, err)))
        return rc;
    if (h->n_layer > 4096) return hl_err_set(err, HL_EINVAL, "config.json: num_hidden_layers %lld is too large", (long long)h->n_layer);
    if (h->n_head % h->n_kv)
        return hl_err_set(err, HL_EINVAL, "config.json: %lld heads is not a multiple of %lld KV heads", (long long)h->n_head,
                          (long long)h->n_kv);
    if (h->head % 2) return hl_err_set(err, HL_EINVAL, "config.json: head_dim %lld is odd", (long long)h->head);
    h->eps = cfg_num(c, "rms_norm_eps", 1e-6);
    json_object *rp = NULL, *rs = NULL, *t;
    json_object_object_get_ex(c, "rope_parameters", &rp); /* transformers >= 5 */
    json_object_object_get_ex(c, "rope_scaling", &rs);
    json_object *rfull = NULL, *rswa = NULL; /* transformers >= 5, per layer type (gemma3) */
    if (rp && json_object_object_get_ex(rp, "full_attention", &rfull) && json_object_is_type(rfull, json_type_object)) {
        json_object_object_get_ex(rp, "sliding_attention", &rswa);
        rp = rfull;
    }
    h->theta = cfg_num(c, "rope_theta", cfg_num(rp, "rope_theta", 10000.0));
    h->theta_swa = cfg_num(c, "rope_local_base_freq", cfg_num(rswa, "rope_theta", 10000.0));
    json_object *sc = rs && json_object_is_type(rs, json_type_object) ? rs : rp;
    const char *type = NULL;
    if (sc && json_object_is_type(sc, json_type_object)) {
        if (json_object_object_get_ex(sc, "rope_type", &t) || json_object_object_get_ex(sc, "type", &t))
            type = json_object_get_string(t);
    }
    h->rope_factor = 1.0;
    if (type && !strcmp(type, "linear")) {
        h->linear_rope = 1;
        h->rope_factor = cfg_num(sc, "factor", 1.0);
    } else if (type && !strcmp(type, "llama3")) {
        h->llama3_rope = 1;
        h->rope_factor = cfg_num(sc, "factor", 8.0);
        h->lo_factor = cfg_num(sc, "low_freq_factor", 1.0);
        h->hi_factor = cfg_num(sc, "high_freq_factor", 4.0);
        h->orig_ctx = cfg_num(sc, "original_max_position_embeddings", 8192.0);
        if (!(h->rope_factor > 0) || !(h->hi_factor > h->lo_factor) || !(h->lo_factor > 0) || !(h->orig_ctx > 0))
            return hl_err_set(err, HL_EINVAL, "config.json: llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
    } else if (type && strcmp(type, "default")) {
        return hl_err_set(err, HL_ENOTSUP, "config.json: rope scaling '%s' is not supported by the converter (supported: default, linear, llama3)",
                          type);
    }
    json_object *tv;
    h->tied = json_object_object_get_ex(c, "tie_word_embeddings", &tv) && json_object_get_boolean(tv);
    return HL_OK;
}

static int skip(const arch_def *a, const tmap *m) {
    return (m->need == 1 && !a->qkv_bias) || (m->need == 2 && !a->qk_norm) || (m->need == 3 && !a->gemma) ||
           (m->need == 4 && a->gemma);
}

static int64_t dimv(const hp *h, int d) {
    switch (d) {
    case D_EMBD: return h->embd;
    case D_Q: return h->n_head * h->head;
    case D_KV: return h->n_kv * h->head;
    case D_FF: return h->ff;
    case D_HEAD: return h->head;
    case D_VOCAB: return h->vocab;
    default: return 0;
    }
}

/* rows of one head: HF row j*half + i -> GGUF row 2*i + j */
static void permute_rows(uint8_t *dst, const uint8_t *src, int64_t n_heads, int64_t head, size_t row_bytes) {
    int64_t half = head / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(dst + (size_t)(h * head + 2 * i + j) * row_bytes, src + (size_t)(h * head + j * half + i) * row_bytes,
                       row_bytes);
}

static float elem_f32(const st_tensor *t, int64_t i) {
    const uint8_t *p = t->data + (size_t)i * st_type_size(t->type);
    if (t->type == HL_TYPE_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t u = (uint16_t)(p[0] | p[1] << 8);
    return t->type == HL_TYPE_F16 ? hl_f16_to_f32(u) : hl_bf16_to_f32(u);
}

/* shape check and add one tensor (converted / permuted when needed) */
static int add_one(gguf_writer *w, const st_tensor *t, const char *gname, const hp *h, int rows, int cols,
                   int64_t permute_heads, float add, hl_err *err) {
    int64_t er = dimv(h, rows), ec = cols ? dimv(h, cols) : 0;
    int ok = cols ? t->n_dims == 2 && t->shape[0] == er && t->shape[1] == ec : t->n_dims == 1 && t->shape[0] == er;
    if (!ok) {
        char got[128] = "", *p = got;
        for (int i = 0; i < t->n_dims && p < got + sizeof got - 24; i++) p += sprintf(p, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (cols)
            return hl_err_set(err, HL_EINVAL, "tensor %s has shape [%s], config.json implies [%lld, %lld]", t->name, got,
                              (long long)er, (long long)ec);
        return hl_err_set(err, HL_EINVAL, "tensor %s has shape [%s], config.json implies [%lld]", t->name, got, (long long)er);
    }
    int64_t ne[2] = {cols ? ec : er, cols ? er : 1};
    if (!cols) { /* vectors as F32 */
        float *v = malloc((size_t)er * sizeof *v);
        if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (int64_t i = 0; i < er; i++) v[i] = elem_f32(t, i) + add;
        if (permute_heads) {
            float *o = malloc((size_t)er * sizeof *o);
            if (!o) {
                free(v);
                return hl_err_set(err, HL_ENOMEM, "out of memory");
            }
            permute_rows((uint8_t *)o, (const uint8_t *)v, permute_heads, h->head, sizeof(float));
            free(v);
            v = o;
        }
        int rc = gguf_add_tensor(w, gname, HL_TYPE_F32, 1, ne, v, (size_t)er * sizeof *v, 0, err);
        free(v);
        return rc;
    }
    if (!permute_heads) return gguf_add_tensor(w, gname, t->type, 2, ne, t->data, t->size, 1, err);
    uint8_t *o = malloc(t->size);
    if (!o) return hl_err_set(err, HL_ENOMEM, "out of memory");
    permute_rows(o, t->data, permute_heads, h->head, (size_t)ec * st_type_size(t->type));
    int rc = gguf_add_tensor(w, gname, t->type, 2, ne, o, t->size, 0, err);
    free(o);
    return rc;
}

/* Llama 3 rope scaling as GGUF llama carries it: rope_freqs.weight holds, per
 * rotary frequency, the divisor of its inverse frequency: 1 for wavelengths
 * shorter than original_ctx / high_freq_factor, `factor` for those longer
 * than original_ctx / low_freq_factor, and a smooth blend in between (the
 * rule transformers' llama3 rope applies). */
static int add_llama3_rope(gguf_writer *w, const hp *h, hl_err *err) {
    int64_t half = h->head / 2;
    float *d = malloc((size_t)half * sizeof *d);
    if (!d) return hl_err_set(err, HL_ENOMEM, "out of memory");
    double lo_wl = h->orig_ctx / h->lo_factor, hi_wl = h->orig_ctx / h->hi_factor;
    for (int64_t i = 0; i < half; i++) {
        double inv = pow(h->theta, -2.0 * (double)i / (double)h->head), wl = 2.0 * M_PI / inv;
        if (wl < hi_wl) d[i] = 1.0f;
        else if (wl > lo_wl) d[i] = (float)h->rope_factor;
        else {
            double s = (h->orig_ctx / wl - h->lo_factor) / (h->hi_factor - h->lo_factor);
            d[i] = (float)(1.0 / ((1.0 - s) / h->rope_factor + s));
        }
    }
    int64_t ne[1] = {half};
    int rc = gguf_add_tensor(w, "rope_freqs.weight", HL_TYPE_F32, 1, ne, d, (size_t)half * sizeof *d, 0, err);
    free(d);
    return rc;
}

static int convert(const char *dir, const char *out_path, const store_ops *ops, json_object *cfg, gguf_writer *w,
                   st_set *st, hl_err *err) {
    json_object *archs;
    const char *hf = NULL;
    if (json_object_object_get_ex(cfg, "architectures", &archs) && json_object_is_type(archs, json_type_array) &&
        json_object_array_length(archs) > 0)
        hf = json_object_get_string(json_object_array_get_idx(archs, 0));
    if (!hf) return hl_err_set(err, HL_EINVAL, "config.json has no \"architectures\" list");
    const arch_def *a = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(ARCHS[i].hf, hf)) a = &ARCHS[i];
    if (!a)
        return hl_err_set(err, HL_ENOTSUP, "architecture %s is not supported by the converter (supported: LlamaForCausalLM, "
                                           "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM)", hf);
    json_object *v;
    if ((json_object_object_get_ex(cfg, "attention_bias", &v) && json_object_get_boolean(v) && !a->qkv_bias) ||
        (json_object_object_get_ex(cfg, "mlp_bias", &v) && json_object_get_boolean(v)))
        return hl_err_set(err, HL_ENOTSUP, "config.json: attention_bias / mlp_bias are not supported for %s", hf);
    hp h = {0};
    int rc = read_hp(cfg, &h, err);
    if (rc) return rc;
    if (a->gemma) {
        /* what our gemma3 runs: every sixth layer global, queries scaled by
         * 1/sqrt(head_dim) (the 27B's n_embd/n_head is the loader's), no
         * softcapping, tanh GELU, no rope scaling (4B+ scale the global layers) */
        int64_t qpas = h.head, period = 6;
        json_object *lt;
        if ((rc = cfg_int(cfg, "query_pre_attn_scalar", h.head, &qpas, err))) return rc;
        if (qpas != h.head && !(h.n_layer == 62 && qpas * h.n_head == h.embd))
            return hl_err_set(err, HL_ENOTSUP, "config.json: query_pre_attn_scalar %lld != head_dim %lld is not supported",
                              (long long)qpas, (long long)h.head);
        if (json_object_object_get_ex(cfg, "layer_types", &lt) && json_object_is_type(lt, json_type_array)) {
            if ((int64_t)json_object_array_length(lt) != h.n_layer)
                return hl_err_set(err, HL_EINVAL, "config.json: layer_types has %zu entries for %lld layers",
                                  json_object_array_length(lt), (long long)h.n_layer);
            for (int64_t l = 0; l < h.n_layer; l++) {
                const char *t = json_object_get_string(json_object_array_get_idx(lt, l));
                if (!t || strcmp(t, (l + 1) % period ? "sliding_attention" : "full_attention"))
                    return hl_err_set(err, HL_ENOTSUP, "config.json: layer %lld is %s; gemma3 here has every sixth layer global",
                                      (long long)l, t ? t : "?");
            }
        } else if ((rc = cfg_int(cfg, "sliding_window_pattern", 6, &period, err)) || period != 6) {
            return rc ? rc : hl_err_set(err, HL_ENOTSUP, "config.json: sliding_window_pattern %lld is not supported (6)", (long long)period);
        }
        if (cfg_num(cfg, "final_logit_softcapping", 0) != 0 || cfg_num(cfg, "attn_logit_softcapping", 0) != 0)
            return hl_err_set(err, HL_ENOTSUP, "config.json: logit softcapping is not supported for gemma3");
        const char *act = NULL;
        json_object *av;
        if (json_object_object_get_ex(cfg, "hidden_activation", &av)) act = json_object_get_string(av);
        if (act && strcmp(act, "gelu_pytorch_tanh"))
            return hl_err_set(err, HL_ENOTSUP, "config.json: hidden_activation %s is not supported (gelu_pytorch_tanh)", act);
        if (h.linear_rope || h.llama3_rope)
            return hl_err_set(err, HL_ENOTSUP, "config.json: rope scaling is not supported for gemma3 yet");
    }
    if (h.llama3_rope && strcmp(a->name, "llama"))
        return hl_err_set(err, HL_ENOTSUP, "config.json: llama3 rope scaling is only supported for llama models");
    store_report(ops, "reading safetensors", NULL, 0, 0);
    if ((rc = st_open_dir(st, dir, err))) return rc;
    json_object *tie;
    if (!json_object_object_get_ex(cfg, "tie_word_embeddings", &tie)) /* defaults differ by family */
        h.tied = st_find(st, "lm_head.weight") == NULL;

    /* every expected tensor present, nothing unknown left over */
    char hn[256], gn[256];
    int64_t expected = 2 + (h.tied ? 0 : 1);
    const char *glob_hf[3] = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
    for (int i = 0; i < (h.tied ? 2 : 3); i++)
        if (!st_find(st, glob_hf[i])) return hl_err_set(err, HL_EINVAL, "tensor %s is missing (a shard missing from the index?)", glob_hf[i]);
    for (int64_t l = 0; l < h.n_layer; l++)
        for (size_t k = 0; k < N_LAYER_MAP; k++) {
            const tmap *m = &LAYER[k];
            if (skip(a, m)) continue;
            snprintf(hn, sizeof hn, "model.layers.%lld.%s", (long long)l, m->hf);
            if (!st_find(st, hn)) return hl_err_set(err, HL_EINVAL, "tensor %s is missing (a shard missing from the index?)", hn);
            expected++;
        }
    int64_t extra = 0;
    for (size_t i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        if (strstr(nm, "rotary_emb.inv_freq") || (h.tied && !strcmp(nm, "lm_head.weight"))) extra++;
    }
    if ((int64_t)st->n - extra != expected) {
        for (size_t i = 0; i < st->n; i++) {
            const char *nm = st->t[i].name;
            int known = strstr(nm, "rotary_emb.inv_freq") || !strcmp(nm, "lm_head.weight");
            for (int g = 0; g < 2; g++) known |= !strcmp(nm, glob_hf[g]);
            long long l;
            int off = 0;
            if (!known && sscanf(nm, "model.layers.%lld.%n", &l, &off) == 1 && off > 0 && l >= 0 && l < h.n_layer)
                for (size_t k = 0; k < N_LAYER_MAP; k++) {
                    const tmap *m = &LAYER[k];
                    if (skip(a, m)) continue;
                    known |= !strcmp(nm + off, m->hf);
                }
            if (!known) return hl_err_set(err, HL_ENOTSUP, "tensor %s is not part of a %s checkpoint the converter knows", nm, hf);
        }
    }

    gguf_set_str(w, "general.architecture", a->name);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    gguf_set_str(w, "general.name", base);
    const st_tensor *emb = st_find(st, "model.embed_tokens.weight");
    gguf_set_u32(w, "general.file_type", emb->type == HL_TYPE_F32 ? 0 : emb->type == HL_TYPE_F16 ? 1 : 32);
    char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s." s, a->name), key)
    gguf_set_u32(w, KEY("context_length"), (uint32_t)h.ctx);
    gguf_set_u32(w, KEY("embedding_length"), (uint32_t)h.embd);
    gguf_set_u32(w, KEY("block_count"), (uint32_t)h.n_layer);
    gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)h.ff);
    gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)h.n_head);
    gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)h.n_kv);
    gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)h.head);
    gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)h.head);
    gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)h.head);
    gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)h.eps);
    gguf_set_f32(w, KEY("rope.freq_base"), (float)h.theta);
    gguf_set_u32(w, KEY("vocab_size"), (uint32_t)h.vocab);
    if (a->gemma) {
        int64_t win = 4096;
        if ((rc = cfg_int(cfg, "sliding_window", 4096, &win, err))) return rc;
        gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)win);
        if (h.theta_swa != 10000.0) gguf_set_f32(w, KEY("rope.freq_base_swa"), (float)h.theta_swa);
    }
    if (h.linear_rope) {
        gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        gguf_set_f32(w, KEY("rope.scaling.factor"), (float)h.rope_factor);
    }
#undef KEY

    int64_t total = expected - 2 - (h.tied ? 0 : 1), done = 0; /* layer tensors */
    /* Gemma's RMSNorm scales by (1 + w): GGUF stores the sum */
    float norm_add = a->gemma ? 1.0f : 0.0f;
    if ((rc = add_one(w, emb, "token_embd.weight", &h, D_VOCAB, D_EMBD, 0, 0.0f, err)) ||
        (rc = add_one(w, st_find(st, "model.norm.weight"), "output_norm.weight", &h, D_EMBD, 0, 0, norm_add, err)))
        return rc;
    if (!h.tied && (rc = add_one(w, st_find(st, "lm_head.weight"), "output.weight", &h, D_VOCAB, D_EMBD, 0, 0.0f, err)))
        return rc;
    if (h.llama3_rope && (rc = add_llama3_rope(w, &h, err))) return rc;
    for (int64_t l = 0; l < h.n_layer; l++) {
        for (size_t k = 0; k < N_LAYER_MAP; k++) {
            const tmap *m = &LAYER[k];
            if (skip(a, m)) continue;
            snprintf(hn, sizeof hn, "model.layers.%lld.%s", (long long)l, m->hf);
            snprintf(gn, sizeof gn, "blk.%lld.%s", (long long)l, m->gguf);
            int64_t ph = !a->permute_qk ? 0 : m->permute == 1 ? h.n_head : m->permute == 2 ? h.n_kv : 0;
            float add = m->cols == 0 && strstr(m->hf, "norm") ? norm_add : 0.0f;
            if ((rc = add_one(w, st_find(st, hn), gn, &h, m->rows, m->cols, ph, add, err))) return rc;
            done++;
        }
        store_report(ops, "converting tensors", NULL, total, done);
        if (store_cancelled(ops)) return hl_err_set(err, HL_EIO, "cancelled");
    }
    if ((rc = store_convert_tokenizer(w, dir, cfg, h.vocab, err))) return rc;
    store_report(ops, "writing gguf", NULL, 0, 0);
    return gguf_write(w, out_path, err);
}

int store_convert_hf(const char *dir, const char *out_path, const store_ops *ops, hl_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_object *cfg = json_object_from_file(path);
    if (!cfg || !json_object_is_type(cfg, json_type_object)) {
        json_object_put(cfg);
        return hl_err_set(err, HL_EINVAL, "%s: missing or not a JSON object", path);
    }
    gguf_writer *w = gguf_writer_new();
    st_set st = {0};
    int rc = w ? convert(dir, out_path, ops, cfg, w, &st, err) : hl_err_set(err, HL_ENOMEM, "out of memory");
    gguf_writer_free(w);
    st_close(&st);
    json_object_put(cfg);
    if (rc) hl_err_prefix(err, "FROM %s: ", dir);
    return rc;
}
