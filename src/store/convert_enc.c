/* Hugging Face encoder (embedding model) checkpoints -> GGUF, the encoders
 * our engine runs (src/model/arch_bert.c, arch_nomic_bert.c):
 *
 *   BertModel / BertForMaskedLM   -> bert (absolute positions, token types,
 *                                    erf GELU); a "bert." prefix is accepted
 *   XLMRobertaModel / ...ForMaskedLM -> bert, its position rows from
 *                                    padding_idx + 1 on (XLM-R numbers
 *                                    positions from there), context length
 *                                    max_position_embeddings - padding_idx - 1
 *   NomicBertModel                 -> nomic-bert, with either config.json: the
 *                                    hub's remote-code one (nomic-embed-text:
 *                                    n_embd, n_layer, rotary_emb_base, ...) or
 *                                    transformers' native one (hidden_size, ...,
 *                                    rope_parameters). Tensors in the hub's
 *                                    layout (encoder.layers.N.attn.Wqkv, emb_ln,
 *                                    mlp.fc11 up / fc12 gate / fc2, norm1 /
 *                                    norm2), which transformers 5 writes too,
 *                                    or transformers' in-memory names (q/k/v_proj
 *                                    fused here into attn_qkv, gate/up/down_proj,
 *                                    post_attention / post_mlp layernorms)
 *
 * Tensor names are gguf-py's (MODEL_TENSORS[BERT] / [NOMIC_BERT]); matrices
 * keep their dtype, vectors and the position / token-type tables become F32
 * (as llama.cpp's converter keeps them). The pooler, masked-LM heads and
 * position_ids are dropped; any other tensor left over, a missing one or a
 * wrong shape fails by name. The pooling comes from a sentence-transformers
 * directory's modules.json and its Pooling module's config.json (mean, cls,
 * lasttoken -> <arch>.pooling_type 1, 2, 3; other modes and modules that
 * change the output, such as Dense, are refused by name); without
 * modules.json no pooling key is written (the loader then pools by the
 * mean, as for llama.cpp's files). The tokenizer is convert_tok.c's
 * (WordPiece -> "bert", Unigram -> "t5"). */
#include "store/convert.h"

#include "store/convert_internal.h"

#include "store/safetensors.h"
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FAM_BERT, FAM_XLMR, FAM_NOMIC_HUB, FAM_NOMIC_HF }; /* nomic: by config.json; the tables by the tensors */

typedef struct enc_hp {
    int fam;
    int64_t embd, n_layer, n_head, ff, vocab, n_pos, n_types, pad;
    double eps, theta;
    char prefix[16]; /* "", "bert.", "roberta.", "model." */
} enc_hp;

/* shape symbols */
enum { E_EMBD = 1, E_FF, E_VOCAB, E_POS, E_TYPES, E_QKV };

/* K_F32: stored as F32; K_POS: XLM-R's position table (rows from pad + 1);
 * K_QKV3: hf holds "%c" for q, k, v, concatenated by rows into one tensor */
enum { K_F32 = 1, K_POS = 2, K_QKV3 = 4 };

typedef struct etab {
    const char *hf, *gguf; /* layer rows: hf and gguf hold one %d */
    int rows, cols, kind;
} etab;

static const etab BERT_G[] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight", E_VOCAB, E_EMBD, 0},
    {"embeddings.position_embeddings.weight", "position_embd.weight", E_POS, E_EMBD, K_F32 | K_POS},
    {"embeddings.token_type_embeddings.weight", "token_types.weight", E_TYPES, E_EMBD, K_F32},
    {"embeddings.LayerNorm.weight", "token_embd_norm.weight", E_EMBD, 0, 0},
    {"embeddings.LayerNorm.bias", "token_embd_norm.bias", E_EMBD, 0, 0},
};
static const etab BERT_L[] = {
    {"encoder.layer.%d.attention.self.query.weight", "blk.%d.attn_q.weight", E_EMBD, E_EMBD, 0},
    {"encoder.layer.%d.attention.self.query.bias", "blk.%d.attn_q.bias", E_EMBD, 0, 0},
    {"encoder.layer.%d.attention.self.key.weight", "blk.%d.attn_k.weight", E_EMBD, E_EMBD, 0},
    {"encoder.layer.%d.attention.self.key.bias", "blk.%d.attn_k.bias", E_EMBD, 0, 0},
    {"encoder.layer.%d.attention.self.value.weight", "blk.%d.attn_v.weight", E_EMBD, E_EMBD, 0},
    {"encoder.layer.%d.attention.self.value.bias", "blk.%d.attn_v.bias", E_EMBD, 0, 0},
    {"encoder.layer.%d.attention.output.dense.weight", "blk.%d.attn_output.weight", E_EMBD, E_EMBD, 0},
    {"encoder.layer.%d.attention.output.dense.bias", "blk.%d.attn_output.bias", E_EMBD, 0, 0},
    {"encoder.layer.%d.attention.output.LayerNorm.weight", "blk.%d.attn_output_norm.weight", E_EMBD, 0, 0},
    {"encoder.layer.%d.attention.output.LayerNorm.bias", "blk.%d.attn_output_norm.bias", E_EMBD, 0, 0},
    {"encoder.layer.%d.intermediate.dense.weight", "blk.%d.ffn_up.weight", E_FF, E_EMBD, 0},
    {"encoder.layer.%d.intermediate.dense.bias", "blk.%d.ffn_up.bias", E_FF, 0, 0},
    {"encoder.layer.%d.output.dense.weight", "blk.%d.ffn_down.weight", E_EMBD, E_FF, 0},
    {"encoder.layer.%d.output.dense.bias", "blk.%d.ffn_down.bias", E_EMBD, 0, 0},
    {"encoder.layer.%d.output.LayerNorm.weight", "blk.%d.layer_output_norm.weight", E_EMBD, 0, 0},
    {"encoder.layer.%d.output.LayerNorm.bias", "blk.%d.layer_output_norm.bias", E_EMBD, 0, 0},
};
static const etab NOMIC_HUB_G[] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight", E_VOCAB, E_EMBD, 0},
    {"embeddings.token_type_embeddings.weight", "token_types.weight", E_TYPES, E_EMBD, K_F32},
    {"emb_ln.weight", "token_embd_norm.weight", E_EMBD, 0, 0},
    {"emb_ln.bias", "token_embd_norm.bias", E_EMBD, 0, 0},
};
static const etab NOMIC_HUB_L[] = {
    {"encoder.layers.%d.attn.Wqkv.weight", "blk.%d.attn_qkv.weight", E_QKV, E_EMBD, 0},
    {"encoder.layers.%d.attn.out_proj.weight", "blk.%d.attn_output.weight", E_EMBD, E_EMBD, 0},
    {"encoder.layers.%d.norm1.weight", "blk.%d.attn_output_norm.weight", E_EMBD, 0, 0},
    {"encoder.layers.%d.norm1.bias", "blk.%d.attn_output_norm.bias", E_EMBD, 0, 0},
    {"encoder.layers.%d.mlp.fc11.weight", "blk.%d.ffn_up.weight", E_FF, E_EMBD, 0},
    {"encoder.layers.%d.mlp.fc12.weight", "blk.%d.ffn_gate.weight", E_FF, E_EMBD, 0},
    {"encoder.layers.%d.mlp.fc2.weight", "blk.%d.ffn_down.weight", E_EMBD, E_FF, 0},
    {"encoder.layers.%d.norm2.weight", "blk.%d.layer_output_norm.weight", E_EMBD, 0, 0},
    {"encoder.layers.%d.norm2.bias", "blk.%d.layer_output_norm.bias", E_EMBD, 0, 0},
};
static const etab NOMIC_HF_G[] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight", E_VOCAB, E_EMBD, 0},
    {"embeddings.token_type_embeddings.weight", "token_types.weight", E_TYPES, E_EMBD, K_F32},
    {"embeddings.LayerNorm.weight", "token_embd_norm.weight", E_EMBD, 0, 0},
    {"embeddings.LayerNorm.bias", "token_embd_norm.bias", E_EMBD, 0, 0},
};
static const etab NOMIC_HF_L[] = {
    {"layers.%d.self_attn.%c_proj.weight", "blk.%d.attn_qkv.weight", E_EMBD, E_EMBD, K_QKV3},
    {"layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", E_EMBD, E_EMBD, 0},
    {"layers.%d.post_attention_layernorm.weight", "blk.%d.attn_output_norm.weight", E_EMBD, 0, 0},
    {"layers.%d.post_attention_layernorm.bias", "blk.%d.attn_output_norm.bias", E_EMBD, 0, 0},
    {"layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", E_FF, E_EMBD, 0},
    {"layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", E_FF, E_EMBD, 0},
    {"layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", E_EMBD, E_FF, 0},
    {"layers.%d.post_mlp_layernorm.weight", "blk.%d.layer_output_norm.weight", E_EMBD, 0, 0},
    {"layers.%d.post_mlp_layernorm.bias", "blk.%d.layer_output_norm.bias", E_EMBD, 0, 0},
};

typedef struct fam_tabs {
    const etab *g, *l;
    size_t ng, nl;
} fam_tabs;

#define TABS(g, l) {g, l, sizeof g / sizeof g[0], sizeof l / sizeof l[0]}
static const fam_tabs FAMS[] = {TABS(BERT_G, BERT_L), TABS(BERT_G, BERT_L), TABS(NOMIC_HUB_G, NOMIC_HUB_L),
                                TABS(NOMIC_HF_G, NOMIC_HF_L)};

int store_cv_is_encoder(const char *hf) {
    static const char *const N[] = {"BertModel", "BertForMaskedLM", "XLMRobertaModel", "XLMRobertaForMaskedLM", "NomicBertModel"};
    for (size_t i = 0; i < sizeof N / sizeof N[0]; i++)
        if (!strcmp(hf, N[i])) return 1;
    return 0;
}

static int64_t dim(const enc_hp *h, int d) {
    switch (d) {
    case E_EMBD: return h->embd;
    case E_FF: return h->ff;
    case E_VOCAB: return h->vocab;
    case E_POS: return h->n_pos;
    case E_TYPES: return h->n_types;
    case E_QKV: return 3 * h->embd;
    default: return 0;
    }
}

static const char *cfg_str(json_object *c, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(c, key, &v) || !v || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

/* a key that must be absent, null or false (what our engine runs) */
static int want_off(json_object *c, const char *key, const char *hf, hl_err *err) {
    json_object *v;
    if (json_object_object_get_ex(c, key, &v) && v && (!json_object_is_type(v, json_type_boolean) || json_object_get_boolean(v)))
        return hl_err_set(err, HL_ENOTSUP, "config.json: %s %s is not supported for %s", key, json_object_to_json_string(v), hf);
    return HL_OK;
}

static int read_hp(const char *hf, json_object *c, enc_hp *h, hl_err *err) {
    int rc;
    json_object *v;
    const char *act;
    h->fam = !strncmp(hf, "XLMRoberta", 10) ? FAM_XLMR : !strncmp(hf, "Bert", 4) ? FAM_BERT
             : json_object_object_get_ex(c, "n_embd", &v) ? FAM_NOMIC_HUB : FAM_NOMIC_HF;
    if (h->fam == FAM_NOMIC_HUB) { /* nomic's remote-code config (GPT-2 style names) */
        if ((rc = store_cv_cfg_int(c, "n_embd", -1, &h->embd, err)) || (rc = store_cv_cfg_int(c, "n_layer", -1, &h->n_layer, err)) ||
            (rc = store_cv_cfg_int(c, "n_head", -1, &h->n_head, err)) || (rc = store_cv_cfg_int(c, "n_inner", -1, &h->ff, err)) ||
            (rc = store_cv_cfg_int(c, "vocab_size", -1, &h->vocab, err)) || (rc = store_cv_cfg_int(c, "n_positions", 2048, &h->n_pos, err)))
            return rc;
        int64_t trained = 0; /* nomic-embed-text v1 / v1.5: rope to 8192, trained for 2048 (llama.cpp's context too) */
        if ((rc = store_cv_cfg_int(c, "max_trained_positions", 0, &trained, err))) return rc;
        if (trained && trained < h->n_pos) h->n_pos = trained;
        h->eps = store_cv_cfg_num(c, "layer_norm_epsilon", 1e-5);
        h->theta = store_cv_cfg_num(c, "rotary_emb_base", 10000.0);
        if (store_cv_cfg_num(c, "rotary_emb_fraction", 1.0) != 1.0)
            return hl_err_set(err, HL_ENOTSUP, "config.json: rotary_emb_fraction other than 1.0 is not supported for %s", hf);
        if ((act = cfg_str(c, "activation_function")) && strcmp(act, "swiglu"))
            return hl_err_set(err, HL_ENOTSUP, "config.json: activation_function %s is not supported for %s (swiglu)", act, hf);
        static const char *const OFF[] = {"rotary_emb_interleaved", "prenorm", "qkv_proj_bias", "mlp_fc1_bias", "mlp_fc2_bias",
                                          "rotary_scaling_factor", "rotary_emb_scale_base", "causal"};
        for (size_t i = 0; i < sizeof OFF / sizeof OFF[0]; i++)
            if ((rc = want_off(c, OFF[i], hf, err))) return rc;
    } else {
        if ((rc = store_cv_cfg_int(c, "hidden_size", -1, &h->embd, err)) ||
            (rc = store_cv_cfg_int(c, "num_hidden_layers", -1, &h->n_layer, err)) ||
            (rc = store_cv_cfg_int(c, "num_attention_heads", -1, &h->n_head, err)) ||
            (rc = store_cv_cfg_int(c, "intermediate_size", -1, &h->ff, err)) ||
            (rc = store_cv_cfg_int(c, "vocab_size", -1, &h->vocab, err)) ||
            (rc = store_cv_cfg_int(c, "max_position_embeddings", h->fam == FAM_NOMIC_HF ? 2048 : 512, &h->n_pos, err)))
            return rc;
        h->eps = store_cv_cfg_num(c, "layer_norm_eps", 1e-12);
        const char *want = h->fam == FAM_NOMIC_HF ? "silu" : "gelu";
        if ((act = cfg_str(c, "hidden_act")) && strcmp(act, want))
            return hl_err_set(err, HL_ENOTSUP, "config.json: hidden_act %s is not supported for %s (%s)", act, hf, want);
        if ((act = cfg_str(c, "position_embedding_type")) && strcmp(act, "absolute"))
            return hl_err_set(err, HL_ENOTSUP, "config.json: position_embedding_type %s is not supported (absolute)", act);
        if (h->fam == FAM_NOMIC_HF) {
            json_object *rp = NULL;
            json_object_object_get_ex(c, "rope_parameters", &rp);
            h->theta = store_cv_cfg_num(c, "rope_theta", store_cv_cfg_num(rp, "rope_theta", 10000.0));
            const char *rt = rp ? cfg_str(rp, "rope_type") : NULL;
            if (rt && strcmp(rt, "default"))
                return hl_err_set(err, HL_ENOTSUP, "config.json: rope_type %s is not supported for %s", rt, hf);
            if ((rc = want_off(c, "attention_bias", hf, err)) || (rc = want_off(c, "mlp_bias", hf, err))) return rc;
        }
        if (h->fam == FAM_XLMR) {
            if ((rc = store_cv_cfg_int(c, "pad_token_id", 1, &h->pad, err))) return rc;
            if (h->n_pos <= h->pad + 1)
                return hl_err_set(err, HL_EINVAL, "config.json: max_position_embeddings %lld leaves no positions after pad_token_id %lld",
                                  (long long)h->n_pos, (long long)h->pad);
        }
    }
    if ((rc = store_cv_cfg_int(c, "type_vocab_size", 2, &h->n_types, err))) return rc;
    if (h->n_layer > 4096) return hl_err_set(err, HL_EINVAL, "config.json: %lld layers is too many", (long long)h->n_layer);
    if (h->embd % h->n_head)
        return hl_err_set(err, HL_EINVAL, "config.json: hidden size %lld is not a multiple of %lld heads", (long long)h->embd,
                          (long long)h->n_head);
    if (!(h->eps > 0 && h->eps < 1)) return hl_err_set(err, HL_EINVAL, "config.json: layer norm epsilon %g is out of range", h->eps);
    return HL_OK;
}

/* ---- sentence-transformers modules ---- */

/* mean 1, cls 2, lasttoken 3 (GGUF's pooling types) */
static int mode_id(const char *m) {
    return !strcmp(m, "mean") ? 1 : !strcmp(m, "cls") ? 2 : !strcmp(m, "lasttoken") ? 3 : 0;
}

static int read_pooling_cfg(const char *dir, const char *sub, int *pooling, hl_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/config.json", dir, sub);
    json_object *pc = json_object_from_file(path), *v;
    int rc = HL_OK;
    if (!pc || !json_object_is_type(pc, json_type_object)) {
        rc = hl_err_set(err, HL_EINVAL, "%s/config.json: missing or not a JSON object (modules.json names it)", sub);
    } else if (json_object_object_get_ex(pc, "pooling_mode", &v)) { /* sentence-transformers >= 6 */
        if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 1) v = json_object_array_get_idx(v, 0);
        const char *m = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (!m || !(*pooling = mode_id(m)))
            rc = hl_err_set(err, HL_ENOTSUP, "%s/config.json: pooling_mode %s is not supported (mean, cls, lasttoken)", sub,
                            json_object_to_json_string(v));
    } else { /* the pooling_mode_* flags: exactly one, of the three we run */
        static const char *const K[] = {"pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_lasttoken",
                                        "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                        "pooling_mode_weightedmean_tokens"};
        int n_on = 0;
        for (int i = 0; i < 6 && rc == HL_OK; i++) {
            if (!json_object_object_get_ex(pc, K[i], &v) || !json_object_get_boolean(v)) continue;
            if (i >= 3) rc = hl_err_set(err, HL_ENOTSUP, "%s/config.json: %s is not supported (mean, cls, lasttoken)", sub, K[i]);
            else if (n_on++) rc = hl_err_set(err, HL_ENOTSUP, "%s/config.json: %s combined with another pooling mode is not supported", sub, K[i]);
            else *pooling = i + 1;
        }
        if (rc == HL_OK && !n_on) rc = hl_err_set(err, HL_EINVAL, "%s/config.json: no pooling_mode is set", sub);
    }
    json_object_put(pc);
    return rc;
}

/* modules.json: Transformer, Pooling, Normalize are what /api/embed
 * computes (it always normalizes); any other module would change the
 * vector. *pooling stays 0 without modules.json. */
static int read_modules(const char *dir, int *pooling, hl_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return HL_OK;
    fclose(probe);
    json_object *mods = json_object_from_file(path);
    int rc = HL_OK;
    if (!mods || !json_object_is_type(mods, json_type_array)) rc = hl_err_set(err, HL_EINVAL, "modules.json: not a JSON array");
    for (size_t i = 0; rc == HL_OK && i < json_object_array_length(mods); i++) {
        json_object *m = json_object_array_get_idx(mods, i);
        const char *type = m && json_object_is_type(m, json_type_object) ? cfg_str(m, "type") : NULL;
        const char *sub = m && json_object_is_type(m, json_type_object) ? cfg_str(m, "path") : NULL;
        const char *dot = type ? strrchr(type, '.') : NULL;
        const char *cls = dot ? dot + 1 : type;
        if (!cls || !sub) {
            rc = hl_err_set(err, HL_EINVAL, "modules.json: entry %zu has no type / path", i);
        } else if (!strcmp(cls, "Pooling")) {
            if (!*sub || sub[0] == '/' || strstr(sub, ".."))
                rc = hl_err_set(err, HL_EINVAL, "modules.json: Pooling path '%.200s' is not a folder inside the directory", sub);
            else if (*pooling)
                rc = hl_err_set(err, HL_ENOTSUP, "modules.json: more than one Pooling module");
            else
                rc = read_pooling_cfg(dir, sub, pooling, err);
        } else if (strcmp(cls, "Transformer") && strcmp(cls, "Normalize")) {
            rc = hl_err_set(err, HL_ENOTSUP, "modules.json: module %.200s (%.200s) is not supported (Transformer, Pooling, Normalize)",
                            sub, type);
        }
    }
    json_object_put(mods);
    return rc;
}

/* ---- tensors ---- */

static void name_of(char *buf, size_t cap, const char *prefix, const char *fmt, int64_t l, char c) {
    int n = snprintf(buf, cap, "%s", prefix);
    if (n < 0 || (size_t)n >= cap) return;
    if (strstr(fmt, "%c")) snprintf(buf + n, cap - (size_t)n, fmt, (int)l, c);
    else snprintf(buf + n, cap - (size_t)n, fmt, (int)l);
}

static int shape_err(const st_tensor *t, int64_t er, int64_t ec, hl_err *err) {
    if (!st_is_float(t->type))
        return hl_err_set(err, HL_ENOTSUP, "tensor '%s' has dtype %s (supported: F32, F16, BF16)", t->name, hl_type_name(t->type));
    char got[128] = "", *p = got;
    for (int i = 0; i < t->n_dims && p < got + sizeof got - 24; i++) p += sprintf(p, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (ec) return hl_err_set(err, HL_EINVAL, "tensor %s has shape [%s], config.json implies [%lld, %lld]", t->name, got, (long long)er, (long long)ec);
    return hl_err_set(err, HL_EINVAL, "tensor %s has shape [%s], config.json implies [%lld]", t->name, got, (long long)er);
}

static int fits(const st_tensor *t, int64_t er, int64_t ec) {
    if (!st_is_float(t->type)) return 0;
    return ec ? t->n_dims == 2 && t->shape[0] == er && t->shape[1] == ec : t->n_dims == 1 && t->shape[0] == er;
}

static int add_row(gguf_writer *w, const st_set *st, const enc_hp *h, const etab *e, int64_t l, hl_err *err) {
    char hn[256], gn[256];
    int64_t er = dim(h, e->rows), ec = e->cols ? dim(h, e->cols) : 0;
    snprintf(gn, sizeof gn, e->gguf, (int)l);
    if (e->kind & K_QKV3) { /* q, k, v rows one after another: GGUF's attn_qkv */
        const st_tensor *p[3];
        for (int i = 0; i < 3; i++) {
            name_of(hn, sizeof hn, h->prefix, e->hf, l, "qkv"[i]);
            if (!(p[i] = st_find(st, hn))) return hl_err_set(err, HL_EINVAL, "tensor %s is missing", hn);
            if (!fits(p[i], er, ec)) return shape_err(p[i], er, ec, err);
            if (p[i]->type != p[0]->type)
                return hl_err_set(err, HL_EINVAL, "tensor %s is %s but %s is %s", hn, hl_type_name(p[i]->type), p[0]->name,
                                  hl_type_name(p[0]->type));
        }
        int64_t ne[2] = {ec, 3 * er};
        uint8_t *buf = malloc(3 * p[0]->size);
        if (!buf) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (int i = 0; i < 3; i++) memcpy(buf + (size_t)i * p[0]->size, p[i]->data, p[0]->size);
        int rc = gguf_add_tensor(w, gn, p[0]->type, 2, ne, buf, 3 * p[0]->size, 0, err);
        free(buf);
        return rc;
    }
    name_of(hn, sizeof hn, h->prefix, e->hf, l, 0);
    const st_tensor *t = st_find(st, hn);
    if (!t) return hl_err_set(err, HL_EINVAL, "tensor %s is missing", hn);
    if (!fits(t, er, ec)) return shape_err(t, er, ec, err);
    int64_t skip = (e->kind & K_POS) && h->fam == FAM_XLMR ? h->pad + 1 : 0;
    if (ec && !(e->kind & K_F32)) {
        int64_t ne[2] = {ec, er};
        return gguf_add_tensor(w, gn, t->type, 2, ne, t->data, t->size, 1, err);
    }
    int64_t cols = ec ? ec : 1, rows = er - skip, n = rows * cols;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = store_cv_elem_f32(t, skip * cols + i);
    int64_t ne[2] = {ec ? ec : er, rows};
    int rc = gguf_add_tensor(w, gn, HL_TYPE_F32, ec ? 2 : 1, ne, v, (size_t)n * sizeof *v, 0, err);
    free(v);
    return rc;
}

/* the tensors an encoder checkpoint may hold that the embedding model does not use */
static int ignorable(const char *nm, const char *prefix) {
    size_t pl = strlen(prefix);
    if (!strncmp(nm, prefix, pl)) {
        const char *s = nm + pl;
        if (!strcmp(s, "embeddings.position_ids") || !strncmp(s, "pooler.", 7)) return 1;
    }
    return !strncmp(nm, "cls.", 4) || !strncmp(nm, "lm_head.", 8);
}

/* every tensor is expected, ignorable, or named as unknown */
static int check_all(const st_set *st, const enc_hp *h, const fam_tabs *ft, const char *hf, hl_err *err) {
    char hn[256];
    for (size_t i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        int known = ignorable(nm, h->prefix);
        if (!known && !st_is_float(st->t[i].type)) /* only dropped buffers may be integers */
            return hl_err_set(err, HL_ENOTSUP, "tensor '%s' has dtype %s (supported: F32, F16, BF16)", nm, hl_type_name(st->t[i].type));
        for (size_t k = 0; !known && k < ft->ng; k++) {
            name_of(hn, sizeof hn, h->prefix, ft->g[k].hf, 0, 0);
            known = !strcmp(nm, hn);
        }
        for (int64_t l = 0; !known && l < h->n_layer; l++)
            for (size_t k = 0; !known && k < ft->nl; k++)
                for (int c = 0; !known && c < ((ft->l[k].kind & K_QKV3) ? 3 : 1); c++) {
                    name_of(hn, sizeof hn, h->prefix, ft->l[k].hf, l, "qkv"[c]);
                    known = !strcmp(nm, hn);
                }
        if (!known) return hl_err_set(err, HL_ENOTSUP, "tensor %s is not part of a %s checkpoint the converter knows", nm, hf);
    }
    return HL_OK;
}

int store_cv_encoder(const char *dir, const char *out_path, const char *hf, json_object *cfg, const store_ops *ops,
                     gguf_writer *w, st_set *st, hl_err *err) {
    enc_hp h = {0};
    int rc, pooling = 0;
    if ((rc = read_hp(hf, cfg, &h, err)) || (rc = read_modules(dir, &pooling, err))) return rc;
    store_report(ops, "reading safetensors", NULL, 0, 0);
    if ((rc = st_open_dir(st, dir, err))) return rc;
    static const char *const PREFIX[] = {"", "bert.", "roberta.", "model."};
    char hn[256];
    for (size_t i = 0; i < sizeof PREFIX / sizeof PREFIX[0]; i++) {
        snprintf(hn, sizeof hn, "%sembeddings.word_embeddings.weight", PREFIX[i]);
        if (st_find(st, hn)) {
            snprintf(h.prefix, sizeof h.prefix, "%s", PREFIX[i]);
            break;
        }
    }
    /* nomic: transformers (5.x) saves the hub's tensor names too, whichever
     * config it writes; its in-memory names (q/k/v_proj, ...) are read as well */
    int nomic = h.fam == FAM_NOMIC_HUB || h.fam == FAM_NOMIC_HF;
    snprintf(hn, sizeof hn, "%semb_ln.weight", h.prefix);
    const fam_tabs *ft = &FAMS[nomic ? (st_find(st, hn) ? FAM_NOMIC_HUB : FAM_NOMIC_HF) : h.fam];
    if ((rc = check_all(st, &h, ft, hf, err))) return rc;
    const char *arch = nomic ? "nomic-bert" : "bert";
    gguf_set_str(w, "general.architecture", arch);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    gguf_set_str(w, "general.name", base);
    name_of(hn, sizeof hn, h.prefix, "embeddings.word_embeddings.weight", 0, 0);
    const st_tensor *emb = st_find(st, hn);
    if (!emb) return hl_err_set(err, HL_EINVAL, "tensor %s is missing", hn);
    gguf_set_u32(w, "general.file_type", emb->type == HL_TYPE_F32 ? 0 : emb->type == HL_TYPE_F16 ? 1 : 32);
    char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    gguf_set_u32(w, KEY("context_length"), (uint32_t)(h.fam == FAM_XLMR ? h.n_pos - h.pad - 1 : h.n_pos));
    gguf_set_u32(w, KEY("embedding_length"), (uint32_t)h.embd);
    gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)h.ff);
    gguf_set_u32(w, KEY("block_count"), (uint32_t)h.n_layer);
    gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)h.n_head);
    gguf_set_f32(w, KEY("attention.layer_norm_epsilon"), (float)h.eps);
    gguf_set_bool(w, KEY("attention.causal"), 0);
    gguf_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)h.n_types); /* gguf-py's key */
    if (pooling) gguf_set_u32(w, KEY("pooling_type"), (uint32_t)pooling);
    if (!strcmp(arch, "nomic-bert")) gguf_set_f32(w, KEY("rope.freq_base"), (float)h.theta);
#undef KEY
    for (size_t k = 0; k < ft->ng; k++) {
        if (ft->g[k].rows == E_TYPES && h.n_types == 0) continue;
        if ((rc = add_row(w, st, &h, &ft->g[k], 0, err))) return rc;
    }
    for (int64_t l = 0; l < h.n_layer; l++) {
        for (size_t k = 0; k < ft->nl; k++)
            if ((rc = add_row(w, st, &h, &ft->l[k], l, err))) return rc;
        store_report(ops, "converting tensors", NULL, h.n_layer, l + 1);
        if (store_cancelled(ops)) return hl_err_set(err, HL_EIO, "cancelled");
    }
    if ((rc = store_convert_tokenizer(w, dir, cfg, h.vocab, err))) return rc;
    store_report(ops, "writing gguf", NULL, 0, 0);
    return gguf_write(w, out_path, err);
}
