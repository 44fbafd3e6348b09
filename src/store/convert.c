/* Hugging Face causal-LM checkpoint -> GGUF: reads config.json, maps the
 * SafeTensors weights to GGUF tensor names and the hyperparameters to
 * `<arch>.*` keys (names as the GGUF format defines them), adds the tokenizer
 * (convert_tok.c) and writes the file with our GGUF writer.
 *
 * Supported: LlamaForCausalLM / MistralForCausalLM (llama), Qwen2ForCausalLM
 * (qwen2), Qwen3ForCausalLM (qwen3), Gemma3ForCausalLM (gemma3, text only)
 * and Gemma2ForCausalLM (gemma2, softcaps), both with norm weights stored
 * with Gemma's +1 applied; Phi3ForCausalLM (phi3: qkv_proj and gate_up_proj
 * stay fused, as GGUF's attn_qkv / ffn_up; LongRoPE as rope_factors_short /
 * rope_factors_long.weight), GraniteForCausalLM (granite: llama's layout and
 * its four multipliers), Olmo2ForCausalLM (olmo2: post-norms, q/k norms over
 * the whole projection); the mixtures of experts Qwen2MoeForCausalLM
 * (qwen2moe, shared expert), Qwen3MoeForCausalLM (qwen3moe),
 * MixtralForCausalLM (llama with expert_count) and OlmoeForCausalLM (olmoe),
 * whose per-expert matrices (the hub's layout) are stacked into GGUF's 3-D
 * ffn_*_exps tensors, gathered from the mappings as the file is written,
 * and GptOssForCausalLM (gpt-oss: its fused, interleaved expert tensors
 * rearranged; sinks, biases, YaRN), in its BF16 layout or as the hub ships
 * it (config.json's quantization_config {quant_method: mxfp4}: the experts
 * as U8 _blocks / _scales, repacked bit for bit into GGUF MXFP4, never
 * dequantized; general.file_type then MOSTLY_MXFP4_MOE, 38, as llama.cpp
 * writes); convert_moe.c holds the experts' side. Any other quant_method
 * is refused by name, and U8 tensors anywhere but an MXFP4 expert slot.
 * Each family is a set of feature bits (arch_def.f) that select rows of one
 * tensor table (LAYER). Rope scaling: none, linear, llama3 (as
 * rope_freqs.weight), longrope and yarn. Tensors keep their dtype (F32, F16,
 * BF16; MXFP4 experts stay MXFP4); 1-D tensors (norms, biases) become F32. For llama and granite the
 * Q and K rows are permuted within each head from Hugging Face's half-split
 * rotary layout (pairs (i, i + d/2)) to GGUF llama's interleaved one (pairs
 * (2i, 2i + 1)), which our loader runs with NORM rope; the others keep HF's
 * layout (NEOX). Every expected tensor must be present with the shape
 * config.json implies (each expert too), and no unknown tensor may be left
 * over, so a broken directory fails here, by name, instead of producing a
 * GGUF the loader refuses later; a config whose routing or layer pattern our
 * engine does not run is refused by its key.
 *
 * Encoders (embedding models: BertModel, XLMRobertaModel, NomicBertModel
 * and their masked-LM variants) go to convert_enc.c, which writes bert /
 * nomic-bert GGUFs with the pooling of a sentence-transformers directory. */
#include "store/convert.h"

#include "store/convert_internal.h"

#include "base/half.h"
#include "store/safetensors.h"
#include "store/store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const arch_def ARCHS[] = {
    {"LlamaForCausalLM", "llama", 1, 0, 0, 0},
    {"MistralForCausalLM", "llama", 1, F_SWA, 0, 0},
    {"Qwen2ForCausalLM", "qwen2", 0, F_QKV_BIAS, 0, 0},
    {"Qwen3ForCausalLM", "qwen3", 0, F_QK_NORM, 0, 0},
    {"Gemma3ForCausalLM", "gemma3", 0, F_QK_NORM | F_GEMMA | F_POST_NORM, 6, 0},
    {"Gemma2ForCausalLM", "gemma2", 0, F_GEMMA | F_POST_NORM, 2, 0},
    {"Phi3ForCausalLM", "phi3", 0, F_FUSED | F_SWA, 0, 0},
    {"GraniteForCausalLM", "granite", 1, 0, 0, 0},
    {"Olmo2ForCausalLM", "olmo2", 0, F_NO_PRE_NORM | F_POST_NORM | F_QK_NORM_FULL, 0, 0},
    {"Qwen2MoeForCausalLM", "qwen2moe", 0, F_QKV_BIAS | F_MOE | F_SHEXP, 0, 0},
    {"Qwen3MoeForCausalLM", "qwen3moe", 0, F_QK_NORM | F_MOE, 0, 1},
    {"MixtralForCausalLM", "llama", 1, F_MIXTRAL | F_SWA, 0, -1},
    {"OlmoeForCausalLM", "olmoe", 0, F_QK_NORM_FULL | F_MOE, 0, 0},
    {"GptOssForCausalLM", "gpt-oss", 0, F_QKV_BIAS | F_GPTOSS, 2, -1},
};
#define SUPPORTED                                                                                                    \
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, " \
    "Phi3ForCausalLM, GraniteForCausalLM, Olmo2ForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, "              \
    "MixtralForCausalLM, OlmoeForCausalLM, GptOssForCausalLM; encoders: BertModel, BertForMaskedLM, XLMRobertaModel, " \
    "XLMRobertaForMaskedLM, NomicBertModel"

static const tmap LAYER[] = {
    {"input_layernorm.weight", "attn_norm.weight", D_EMBD, 0, 0, F_NO_PRE_NORM, 0, 0},
    {"self_attn.q_proj.weight", "attn_q.weight", D_Q, D_EMBD, 0, F_FUSED, 1, 0},
    {"self_attn.k_proj.weight", "attn_k.weight", D_KV, D_EMBD, 0, F_FUSED, 2, 0},
    {"self_attn.v_proj.weight", "attn_v.weight", D_KV, D_EMBD, 0, F_FUSED, 0, 0},
    {"self_attn.qkv_proj.weight", "attn_qkv.weight", D_QKV, D_EMBD, F_FUSED, 0, 0, 0},
    {"self_attn.q_proj.bias", "attn_q.bias", D_Q, 0, F_QKV_BIAS, 0, 1, 0},
    {"self_attn.k_proj.bias", "attn_k.bias", D_KV, 0, F_QKV_BIAS, 0, 2, 0},
    {"self_attn.v_proj.bias", "attn_v.bias", D_KV, 0, F_QKV_BIAS, 0, 0, 0},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", D_HEAD, 0, F_QK_NORM, 0, 0, 0},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", D_HEAD, 0, F_QK_NORM, 0, 0, 0},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", D_Q, 0, F_QK_NORM_FULL, 0, 0, 0},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", D_KV, 0, F_QK_NORM_FULL, 0, 0, 0},
    {"self_attn.o_proj.weight", "attn_output.weight", D_EMBD, D_Q, 0, 0, 0, 0},
    {"self_attn.o_proj.bias", "attn_output.bias", D_EMBD, 0, F_GPTOSS, 0, 0, 0},
    {"self_attn.sinks", "attn_sinks.weight", D_NHEAD, 0, F_GPTOSS, 0, 0, 0},
    {"post_attention_layernorm.weight", "ffn_norm.weight", D_EMBD, 0, 0, F_POST_NORM | F_GPTOSS, 0, 0},
    {"post_attention_layernorm.weight", "post_attention_norm.weight", D_EMBD, 0, F_GPTOSS, 0, 0, 0}, /* gpt-oss: pre-FFN */
    {"post_attention_layernorm.weight", "post_attention_norm.weight", D_EMBD, 0, F_POST_NORM, 0, 0, 0},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight", D_EMBD, 0, F_GEMMA, 0, 0, 0},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", D_EMBD, 0, F_POST_NORM, 0, 0, 0},
    {"mlp.gate_proj.weight", "ffn_gate.weight", D_FF, D_EMBD, 0, F_FUSED | F_MOE | F_MIXTRAL | F_GPTOSS, 0, 0},
    {"mlp.up_proj.weight", "ffn_up.weight", D_FF, D_EMBD, 0, F_FUSED | F_MOE | F_MIXTRAL | F_GPTOSS, 0, 0},
    {"mlp.gate_up_proj.weight", "ffn_up.weight", D_FF2, D_EMBD, F_FUSED, 0, 0, 0}, /* gate rows, then up rows */
    {"mlp.down_proj.weight", "ffn_down.weight", D_EMBD, D_FF, 0, F_MOE | F_MIXTRAL | F_GPTOSS, 0, 0},
    {"mlp.gate.weight", "ffn_gate_inp.weight", D_EXPERT, D_EMBD, F_MOE, 0, 0, T_F32},
    {"mlp.experts.%d.gate_proj.weight", "ffn_gate_exps.weight", D_FF_EXP, D_EMBD, F_MOE, 0, 0, T_STACK},
    {"mlp.experts.%d.up_proj.weight", "ffn_up_exps.weight", D_FF_EXP, D_EMBD, F_MOE, 0, 0, T_STACK},
    {"mlp.experts.%d.down_proj.weight", "ffn_down_exps.weight", D_EMBD, D_FF_EXP, F_MOE, 0, 0, T_STACK},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", D_ONE, D_EMBD, F_SHEXP, 0, 0, T_VEC},
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight", D_FF_SH, D_EMBD, F_SHEXP, 0, 0, 0},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight", D_FF_SH, D_EMBD, F_SHEXP, 0, 0, 0},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight", D_EMBD, D_FF_SH, F_SHEXP, 0, 0, 0},
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight", D_EXPERT, D_EMBD, F_MIXTRAL, 0, 0, T_F32},
    {"block_sparse_moe.experts.%d.w1.weight", "ffn_gate_exps.weight", D_FF_EXP, D_EMBD, F_MIXTRAL, 0, 0, T_STACK},
    {"block_sparse_moe.experts.%d.w3.weight", "ffn_up_exps.weight", D_FF_EXP, D_EMBD, F_MIXTRAL, 0, 0, T_STACK},
    {"block_sparse_moe.experts.%d.w2.weight", "ffn_down_exps.weight", D_EMBD, D_FF_EXP, F_MIXTRAL, 0, 0, T_STACK},
    /* gpt-oss: shapes per expert (HF's [embd, 2 ff] is x @ W: columns are the outputs) */
    {"mlp.router.weight", "ffn_gate_inp.weight", D_EXPERT, D_EMBD, F_GPTOSS, 0, 0, T_F32},
    {"mlp.router.bias", "ffn_gate_inp.bias", D_EXPERT, 0, F_GPTOSS, 0, 0, 0},
    {"mlp.experts.gate_up_proj", "ffn_gate_exps.weight", D_EMBD, D_FF2, F_GPTOSS, F_MXFP4, 0, T_OSS, P_GATE},
    {"mlp.experts.gate_up_proj", "ffn_up_exps.weight", D_EMBD, D_FF2, F_GPTOSS, F_MXFP4, 0, T_OSS | T_AGAIN, P_UP},
    /* the hub's MXFP4 layout: [out, in] per expert, gate_up rows interleaved */
    {"mlp.experts.gate_up_proj_blocks", "ffn_gate_exps.weight", D_FF2, D_EMBD, F_GPTOSS | F_MXFP4, 0, 0, T_MXFP4, P_GATE},
    {"mlp.experts.gate_up_proj_blocks", "ffn_up_exps.weight", D_FF2, D_EMBD, F_GPTOSS | F_MXFP4, 0, 0, T_MXFP4 | T_AGAIN, P_UP},
    {"mlp.experts.gate_up_proj_scales", NULL, D_FF2, D_EMBD, F_GPTOSS | F_MXFP4, 0, 0, T_SCALES, 0},
    {"mlp.experts.gate_up_proj_bias", "ffn_gate_exps.bias", D_FF2, 0, F_GPTOSS, 0, 0, T_OSS, P_GATE},
    {"mlp.experts.gate_up_proj_bias", "ffn_up_exps.bias", D_FF2, 0, F_GPTOSS, 0, 0, T_OSS | T_AGAIN, P_UP},
    {"mlp.experts.down_proj", "ffn_down_exps.weight", D_FF_EXP, D_EMBD, F_GPTOSS, F_MXFP4, 0, T_OSS, P_DOWN},
    {"mlp.experts.down_proj_blocks", "ffn_down_exps.weight", D_EMBD, D_FF_EXP, F_GPTOSS | F_MXFP4, 0, 0, T_MXFP4, P_DOWN},
    {"mlp.experts.down_proj_scales", NULL, D_EMBD, D_FF_EXP, F_GPTOSS | F_MXFP4, 0, 0, T_SCALES, 0},
    {"mlp.experts.down_proj_bias", "ffn_down_exps.bias", D_EMBD, 0, F_GPTOSS, 0, 0, T_OSS, P_DOWN},
};
#define N_LAYER_MAP (sizeof LAYER / sizeof LAYER[0])

int store_cv_cfg_int(json_object *c, const char *key, int64_t dflt, int64_t *out, hl_err *err) {
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

double store_cv_cfg_num(json_object *c, const char *key, double dflt) {
    json_object *v;
    if (!c || !json_object_object_get_ex(c, key, &v) || !v) return dflt;
    if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) return json_object_get_double(v);
    return dflt;
}

int store_cv_cfg_bool(json_object *c, const char *key, int dflt) {
    json_object *v;
    if (!c || !json_object_object_get_ex(c, key, &v) || !v) return dflt;
    return json_object_get_boolean(v);
}

static int read_hp(json_object *c, hp *h, hl_err *err) {
    int rc;
    if ((rc = store_cv_cfg_int(c, "hidden_size", -1, &h->embd, err)) || (rc = store_cv_cfg_int(c, "num_hidden_layers", -1, &h->n_layer, err)) ||
        (rc = store_cv_cfg_int(c, "num_attention_heads", -1, &h->n_head, err)) ||
        (rc = store_cv_cfg_int(c, "intermediate_size", -1, &h->ff, err)) || (rc = store_cv_cfg_int(c, "vocab_size", -1, &h->vocab, err)) ||
        (rc = store_cv_cfg_int(c, "num_key_value_heads", h->n_head, &h->n_kv, err)) ||
        (rc = store_cv_cfg_int(c, "head_dim", h->embd / h->n_head, &h->head, err)) ||
        (rc = store_cv_cfg_int(c, "max_position_embeddings", 2048, &h->ctx, err)))
        return rc;
    if (h->n_layer > 4096) return hl_err_set(err, HL_EINVAL, "config.json: num_hidden_layers %lld is too large", (long long)h->n_layer);
    if (h->n_head % h->n_kv)
        return hl_err_set(err, HL_EINVAL, "config.json: %lld heads is not a multiple of %lld KV heads", (long long)h->n_head,
                          (long long)h->n_kv);
    if (h->head % 2) return hl_err_set(err, HL_EINVAL, "config.json: head_dim %lld is odd", (long long)h->head);
    h->eps = store_cv_cfg_num(c, "rms_norm_eps", 1e-6);
    json_object *rp = NULL, *rs = NULL, *t;
    json_object_object_get_ex(c, "rope_parameters", &rp); /* transformers >= 5 */
    json_object_object_get_ex(c, "rope_scaling", &rs);
    json_object *rfull = NULL, *rswa = NULL; /* transformers >= 5, per layer type (gemma3) */
    if (rp && json_object_object_get_ex(rp, "full_attention", &rfull) && json_object_is_type(rfull, json_type_object)) {
        json_object_object_get_ex(rp, "sliding_attention", &rswa);
        rp = rfull;
    }
    h->theta = store_cv_cfg_num(c, "rope_theta", store_cv_cfg_num(rp, "rope_theta", 10000.0));
    h->theta_swa = store_cv_cfg_num(c, "rope_local_base_freq", store_cv_cfg_num(rswa, "rope_theta", 10000.0));
    json_object *sc = rs && json_object_is_type(rs, json_type_object) ? rs : rp;
    const char *type = NULL;
    if (sc && json_object_is_type(sc, json_type_object)) {
        if (json_object_object_get_ex(sc, "rope_type", &t) || json_object_object_get_ex(sc, "type", &t))
            type = json_object_get_string(t);
    }
    h->rope_factor = 1.0;
    if (type && !strcmp(type, "linear")) {
        h->linear_rope = 1;
        h->rope_factor = store_cv_cfg_num(sc, "factor", 1.0);
    } else if (type && !strcmp(type, "llama3")) {
        h->llama3_rope = 1;
        h->rope_factor = store_cv_cfg_num(sc, "factor", 8.0);
        h->lo_factor = store_cv_cfg_num(sc, "low_freq_factor", 1.0);
        h->hi_factor = store_cv_cfg_num(sc, "high_freq_factor", 4.0);
        h->orig_ctx = store_cv_cfg_num(sc, "original_max_position_embeddings", 8192.0);
        if (!(h->rope_factor > 0) || !(h->hi_factor > h->lo_factor) || !(h->lo_factor > 0) || !(h->orig_ctx > 0))
            return hl_err_set(err, HL_EINVAL, "config.json: llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
    } else if (type && (!strcmp(type, "longrope") || !strcmp(type, "su"))) {
        /* LongRoPE (Phi-3): per-frequency divisors for short and long contexts */
        h->longrope = 1;
        json_object_object_get_ex(sc, "short_factor", &h->short_f);
        json_object_object_get_ex(sc, "long_factor", &h->long_f);
        h->orig_ctx = store_cv_cfg_num(c, "original_max_position_embeddings", store_cv_cfg_num(sc, "original_max_position_embeddings", 0));
        h->attn_factor = store_cv_cfg_num(sc, "attention_factor", 0);
        h->rope_factor = store_cv_cfg_num(sc, "factor", 0); /* absent: context / original context */
        if (!(h->orig_ctx >= 2) || h->orig_ctx > (double)INT32_MAX)
            return hl_err_set(err, HL_EINVAL, "config.json: longrope rope scaling needs original_max_position_embeddings >= 2");
    } else if (type && !strcmp(type, "yarn")) {
        /* YaRN (Qwen 2.5 / 3 long context, gpt-oss) as transformers reads it */
        h->yarn = 1;
        h->orig_ctx = store_cv_cfg_num(sc, "original_max_position_embeddings", store_cv_cfg_num(c, "original_max_position_embeddings", 0));
        if (!(h->orig_ctx >= 1) || h->orig_ctx > (double)INT32_MAX)
            return hl_err_set(err, HL_EINVAL, "config.json: yarn rope scaling needs original_max_position_embeddings");
        h->rope_factor = store_cv_cfg_num(sc, "factor", (double)h->ctx / h->orig_ctx);
        h->beta_fast = store_cv_cfg_num(sc, "beta_fast", 0);
        h->beta_slow = store_cv_cfg_num(sc, "beta_slow", 0);
        if (h->beta_fast == 0) h->beta_fast = 32; /* transformers: `or 32`, `or 1` */
        if (h->beta_slow == 0) h->beta_slow = 1;
        h->attn_factor = store_cv_cfg_num(sc, "attention_factor", 0);
        h->yarn_truncate = store_cv_cfg_bool(sc, "truncate", 1);
        if (!(h->rope_factor >= 1 && h->rope_factor <= 1e6) || !(h->beta_fast > 0) || !(h->beta_slow > 0) || h->attn_factor < 0)
            return hl_err_set(err, HL_EINVAL, "config.json: yarn rope scaling needs factor >= 1 and positive beta_fast / beta_slow");
        if ((json_object_object_get_ex(sc, "mscale", &t) && t) || (json_object_object_get_ex(sc, "mscale_all_dim", &t) && t))
            return hl_err_set(err, HL_ENOTSUP, "config.json: yarn mscale / mscale_all_dim are not supported by the converter");
    } else if (type && strcmp(type, "default")) {
        return hl_err_set(err, HL_ENOTSUP, "config.json: rope scaling '%s' is not supported by the converter (supported: "
                                           "default, linear, llama3, longrope, yarn)", type);
    }
    /* partial rotary heads (Phi-4-mini): the first n_rot dims of each head rotate */
    double prf = store_cv_cfg_num(c, "partial_rotary_factor", store_cv_cfg_num(rp, "partial_rotary_factor", 1.0));
    h->n_rot = (int64_t)(prf * (double)h->head); /* truncated, as transformers does */
    if (!(prf > 0 && prf <= 1) || h->n_rot < 2 || h->n_rot % 2)
        return hl_err_set(err, HL_EINVAL, "config.json: partial_rotary_factor %g gives %lld rotary dims of %lld (needs an even count >= 2)",
                          prf, (long long)h->n_rot, (long long)h->head);
    json_object *tv;
    h->tied = json_object_object_get_ex(c, "tie_word_embeddings", &tv) && json_object_get_boolean(tv);
    return HL_OK;
}

static int skip(const arch_def *a, const tmap *m) { return (m->need & a->f) != m->need || (m->skip & a->f); }

int64_t store_cv_dim(const hp *h, int d) {
    switch (d) {
    case D_EMBD: return h->embd;
    case D_Q: return h->n_head * h->head;
    case D_KV: return h->n_kv * h->head;
    case D_FF: return h->ff;
    case D_HEAD: return h->head;
    case D_VOCAB: return h->vocab;
    case D_QKV: return (h->n_head + 2 * h->n_kv) * h->head;
    case D_FF2: return 2 * h->ff;
    case D_EXPERT: return h->n_exp;
    case D_FF_EXP: return h->ff_exp;
    case D_FF_SH: return h->ff_sh;
    case D_ONE: return 1;
    case D_NHEAD: return h->n_head;
    default: return 0;
    }
}

/* The tensors a layer row stands for: one, or n_exp for an expert stack. */
static int64_t row_count(const tmap *m, const hp *h) { return m->flags & T_STACK ? h->n_exp : 1; }

/* "model.layers.<l>." + the row's name (expert e for a stack) */
void store_cv_hf_name(char *buf, size_t cap, int64_t l, const tmap *m, int64_t e) {
    int n = snprintf(buf, cap, "model.layers.%lld.", (long long)l);
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, m->hf, (int)e);
}

/* whether s (a name after "model.layers.<l>.") is the row's, for some expert < n_exp */
static int row_matches(const tmap *m, const char *s, int64_t n_exp) {
    const char *pc = strstr(m->hf, "%d");
    if (!pc) return !strcmp(s, m->hf);
    size_t pre = (size_t)(pc - m->hf);
    if (strncmp(s, m->hf, pre)) return 0;
    s += pre;
    int64_t e = 0;
    const char *d = s;
    while (*s >= '0' && *s <= '9' && s - d < 9) e = e * 10 + (*s++ - '0');
    if (s == d || (s - d > 1 && *d == '0') || e >= n_exp) return 0;
    return !strcmp(s, pc + 2);
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

float store_cv_elem_f32(const st_tensor *t, int64_t i) {
    const uint8_t *p = t->data + (size_t)i * st_type_size(t->type);
    if (t->type == HL_TYPE_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t u = (uint16_t)(p[0] | p[1] << 8);
    return t->type == HL_TYPE_F16 ? hl_f16_to_f32(u) : hl_bf16_to_f32(u);
}

int store_cv_need_float(const st_tensor *t, hl_err *err) {
    if (t->type == HL_TYPE_F32 || t->type == HL_TYPE_F16 || t->type == HL_TYPE_BF16) return HL_OK;
    return hl_err_set(err, HL_EINVAL, "tensor %s is U8 (raw bytes): only gpt-oss's MXFP4 expert blocks and scales may be, "
                                      "with config.json's quantization_config saying mxfp4", t->name);
}

/* shape check and add one tensor (converted / permuted when needed); flags
 * T_VEC: a [1, n] matrix stored as an F32 vector of n; T_F32: a matrix as F32 */
static int add_one(gguf_writer *w, const st_tensor *t, const char *gname, const hp *h, int rows, int cols,
                   int64_t permute_heads, float add, int flags, hl_err *err) {
    int as_vec = flags & T_VEC;
    int rc0 = store_cv_need_float(t, err);
    if (rc0) return rc0;
    int64_t er = store_cv_dim(h, rows), ec = cols ? store_cv_dim(h, cols) : 0;
    int ok = cols ? t->n_dims == 2 && t->shape[0] == er && t->shape[1] == ec : t->n_dims == 1 && t->shape[0] == er;
    if (!ok) {
        char got[128] = "", *p = got;
        for (int i = 0; i < t->n_dims && p < got + sizeof got - 24; i++) p += sprintf(p, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (cols)
            return hl_err_set(err, HL_EINVAL, "tensor %s has shape [%s], config.json implies [%lld, %lld]", t->name, got,
                              (long long)er, (long long)ec);
        return hl_err_set(err, HL_EINVAL, "tensor %s has shape [%s], config.json implies [%lld]", t->name, got, (long long)er);
    }
    if (as_vec) er *= ec, cols = 0;
    int64_t ne[2] = {cols ? ec : er, cols ? er : 1};
    if (!cols) { /* vectors as F32 */
        float *v = malloc((size_t)er * sizeof *v);
        if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (int64_t i = 0; i < er; i++) v[i] = store_cv_elem_f32(t, i) + add;
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
    if (flags & T_F32 && t->type != HL_TYPE_F32) { /* exact: F16 and BF16 values are F32 values */
        float *v = malloc((size_t)t->n_elems * sizeof *v);
        if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
        for (int64_t i = 0; i < t->n_elems; i++) v[i] = store_cv_elem_f32(t, i);
        int rc = permute_heads ? hl_err_set(err, HL_EINVAL, "cannot happen: %s permuted as F32", gname)
                               : gguf_add_tensor(w, gname, HL_TYPE_F32, 2, ne, v, (size_t)t->n_elems * sizeof *v, 0, err);
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

/* LongRoPE's factors as GGUF phi3 carries them: rope_factors_short.weight and
 * rope_factors_long.weight, one divisor per rotary frequency (n_rot / 2). */
static int add_longrope(gguf_writer *w, const hp *h, hl_err *err) {
    int64_t half = h->n_rot / 2;
    json_object *arrs[2] = {h->short_f, h->long_f};
    const char *keys[2] = {"short_factor", "long_factor"}, *names[2] = {"rope_factors_short.weight", "rope_factors_long.weight"};
    float *v = malloc((size_t)half * sizeof *v);
    if (!v) return hl_err_set(err, HL_ENOMEM, "out of memory");
    int rc = HL_OK;
    for (int k = 0; k < 2 && !rc; k++) {
        if (!arrs[k] || !json_object_is_type(arrs[k], json_type_array) || (int64_t)json_object_array_length(arrs[k]) != half) {
            rc = hl_err_set(err, HL_EINVAL, "config.json: longrope %s must be a list of %lld numbers (rotary dims / 2)", keys[k],
                            (long long)half);
            break;
        }
        for (int64_t i = 0; i < half && !rc; i++) {
            json_object *x = json_object_array_get_idx(arrs[k], (size_t)i);
            double d = x && (json_object_is_type(x, json_type_double) || json_object_is_type(x, json_type_int)) ? json_object_get_double(x) : 0;
            if (!(d > 0 && d < 1e6)) rc = hl_err_set(err, HL_EINVAL, "config.json: longrope %s[%lld] is not a positive number", keys[k], (long long)i);
            v[i] = (float)d;
        }
        int64_t ne[1] = {half};
        if (!rc) rc = gguf_add_tensor(w, names[k], HL_TYPE_F32, 1, ne, v, (size_t)half * sizeof *v, 0, err);
    }
    free(v);
    return rc;
}

/* The layer pattern our arch runs: one global layer every swa_period
 * (gemma3 6, gemma2 and gpt-oss 2: the others slide); config.json's
 * layer_types, when present, must say so. */
static int check_layers(const arch_def *a, json_object *cfg, const hp *h, hl_err *err) {
    int64_t period = a->swa_period;
    json_object *lt;
    int rc;
    if (json_object_object_get_ex(cfg, "layer_types", &lt) && json_object_is_type(lt, json_type_array)) {
        if ((int64_t)json_object_array_length(lt) != h->n_layer)
            return hl_err_set(err, HL_EINVAL, "config.json: layer_types has %zu entries for %lld layers", json_object_array_length(lt),
                              (long long)h->n_layer);
        for (int64_t l = 0; l < h->n_layer; l++) {
            const char *t = json_object_get_string(json_object_array_get_idx(lt, (size_t)l));
            if (!t || strcmp(t, (l + 1) % period ? "sliding_attention" : "full_attention"))
                return hl_err_set(err, HL_ENOTSUP, "config.json: layer %lld is %s; %s here has one global layer every %lld",
                                  (long long)l, t ? t : "?", a->name, (long long)period);
        }
    } else if (period == 6 && ((rc = store_cv_cfg_int(cfg, "sliding_window_pattern", 6, &period, err)) || period != 6)) {
        return rc ? rc : hl_err_set(err, HL_ENOTSUP, "config.json: sliding_window_pattern %lld is not supported (6)", (long long)period);
    }
    return HL_OK;
}

/* Gemma's query scale and activation as our gemma2 / gemma3 run them:
 * queries scaled by 1/sqrt(head_dim) (the 27B's n_embd / n_head is the
 * loader's), tanh GELU, no rope scaling; gemma3 without softcapping. */
static int check_gemma(const arch_def *a, json_object *cfg, const hp *h, hl_err *err) {
    int64_t qpas = h->head, n27 = a->swa_period == 6 ? 62 : 46;
    int rc;
    if ((rc = store_cv_cfg_int(cfg, "query_pre_attn_scalar", h->head, &qpas, err))) return rc;
    if (qpas != h->head && !(h->n_layer == n27 && qpas * h->n_head == h->embd))
        return hl_err_set(err, HL_ENOTSUP, "config.json: query_pre_attn_scalar %lld != head_dim %lld is not supported",
                          (long long)qpas, (long long)h->head);
    if (a->swa_period == 6 && (store_cv_cfg_num(cfg, "final_logit_softcapping", 0) != 0 || store_cv_cfg_num(cfg, "attn_logit_softcapping", 0) != 0))
        return hl_err_set(err, HL_ENOTSUP, "config.json: logit softcapping is not supported for gemma3");
    const char *act = NULL;
    json_object *av;
    if (json_object_object_get_ex(cfg, "hidden_activation", &av)) act = json_object_get_string(av);
    if (act && strcmp(act, "gelu_pytorch_tanh"))
        return hl_err_set(err, HL_ENOTSUP, "config.json: hidden_activation %s is not supported (gelu_pytorch_tanh)", act);
    if (h->linear_rope || h->llama3_rope || h->longrope || h->yarn)
        return hl_err_set(err, HL_ENOTSUP, "config.json: rope scaling is not supported for %s yet", a->name);
    return HL_OK;
}

static int convert(const char *dir, const char *out_path, const store_ops *ops, json_object *cfg, gguf_writer *w,
                   st_set *st, hl_err *err) {
    json_object *archs;
    const char *hf = NULL;
    if (json_object_object_get_ex(cfg, "architectures", &archs) && json_object_is_type(archs, json_type_array) &&
        json_object_array_length(archs) > 0)
        hf = json_object_get_string(json_object_array_get_idx(archs, 0));
    if (!hf) return hl_err_set(err, HL_EINVAL, "config.json has no \"architectures\" list");
    if (store_cv_is_encoder(hf)) return store_cv_encoder(dir, out_path, hf, cfg, ops, w, st, err);
    const arch_def *a = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(ARCHS[i].hf, hf)) a = &ARCHS[i];
    if (!a) return hl_err_set(err, HL_ENOTSUP, "architecture %s is not supported by the converter (supported: " SUPPORTED ")", hf);
    arch_def ad = *a; /* plus what config.json adds: F_MXFP4 */
    a = &ad;
    json_object *qc, *qm;
    if (json_object_object_get_ex(cfg, "quantization_config", &qc) && qc) {
        const char *meth = json_object_is_type(qc, json_type_object) && json_object_object_get_ex(qc, "quant_method", &qm) &&
                                   json_object_is_type(qm, json_type_string)
                               ? json_object_get_string(qm)
                               : NULL;
        if (!meth) return hl_err_set(err, HL_EINVAL, "config.json: quantization_config has no quant_method string");
        if (strcmp(meth, "mxfp4") || !(ad.f & F_GPTOSS))
            return hl_err_set(err, HL_ENOTSUP, "config.json: quantization_config quant_method %.64s is not supported for %s (the converter "
                                               "reads mxfp4 for GptOssForCausalLM; convert the unquantized weights)", meth, hf);
        ad.f |= F_MXFP4;
    }
    if ((store_cv_cfg_bool(cfg, "attention_bias", 0) && !(a->f & F_QKV_BIAS)) || store_cv_cfg_bool(cfg, "mlp_bias", 0))
        return hl_err_set(err, HL_ENOTSUP, "config.json: attention_bias / mlp_bias are not supported for %s", hf);
    hp h = {0};
    int rc = read_hp(cfg, &h, err);
    if (rc) return rc;
    if (a->swa_period && (rc = check_layers(a, cfg, &h, err))) return rc;
    if (a->f & F_GEMMA && (rc = check_gemma(a, cfg, &h, err))) return rc;
    if (a->f & F_GPTOSS) { /* the clamped SwiGLU's constants and untruncated YaRN are the arch's */
        if (store_cv_cfg_num(cfg, "swiglu_limit", 7.0) != 7.0 || fabs(store_cv_cfg_num(cfg, "swiglu_alpha", 1.702) - 1.702) > 1e-9)
            return hl_err_set(err, HL_ENOTSUP, "config.json: swiglu_limit / swiglu_alpha other than 7 / 1.702 are not supported for %s", hf);
        if (h.yarn && h.yarn_truncate)
            return hl_err_set(err, HL_ENOTSUP, "config.json: truncated yarn is not supported for %s (ours is untruncated)", hf);
    } else if (h.yarn && !h.yarn_truncate) {
        return hl_err_set(err, HL_ENOTSUP, "config.json: yarn with truncate false is not supported for %s", hf);
    }
    if (h.llama3_rope && strcmp(a->name, "llama"))
        return hl_err_set(err, HL_ENOTSUP, "config.json: llama3 rope scaling is only supported for llama models");
    if (h.longrope && strcmp(a->name, "phi3"))
        return hl_err_set(err, HL_ENOTSUP, "config.json: longrope rope scaling is only supported for phi3 models");
    if (h.n_rot != h.head && a->permute_qk)
        return hl_err_set(err, HL_ENOTSUP, "config.json: partial_rotary_factor is not supported for %s", hf);
    if (a->f & (F_MOE | F_MIXTRAL | F_GPTOSS) && (rc = store_cv_read_moe(a, hf, cfg, &h, err))) return rc;
    int64_t swa = 0;
    json_object *v;
    if (((a->f & F_SWA) || a->swa_period) && json_object_object_get_ex(cfg, "sliding_window", &v) && v &&
        (rc = store_cv_cfg_int(cfg, "sliding_window", 0, &swa, err)))
        return rc;
    if (a->swa_period && !swa) swa = 4096;
    store_report(ops, "reading safetensors", NULL, 0, 0);
    if ((rc = st_open_dir(st, dir, err))) return rc;
    for (size_t i = 0; i < st->n; i++) /* integer buffers (I64 / I32): no causal LM here has one; U8 is MXFP4's */
        if (st->t[i].type == HL_TYPE_I64 || st->t[i].type == HL_TYPE_I32)
            return hl_err_set(err, HL_ENOTSUP, "tensor '%s' has dtype %s (supported: F32, F16, BF16)", st->t[i].name,
                              hl_type_name(st->t[i].type));
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
            if (!(m->flags & T_STACK)) { /* add_stack names a missing expert */
                store_cv_hf_name(hn, sizeof hn, l, m, 0);
                if (!st_find(st, hn)) {
                    char bn[300];
                    snprintf(bn, sizeof bn, "%s_blocks", hn);
                    if ((m->flags & T_OSS) && st_find(st, bn))
                        return hl_err_set(err, HL_EINVAL, "tensor %s is missing (the checkpoint holds %s_blocks / _scales: config.json's "
                                                          "quantization_config must say mxfp4)", hn, m->hf);
                    return hl_err_set(err, HL_EINVAL, "tensor %s is missing (a shard missing from the index?)", hn);
                }
            }
            expected += m->flags & T_AGAIN ? 0 : row_count(m, &h);
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
                for (size_t k = 0; k < N_LAYER_MAP; k++)
                    known |= !skip(a, &LAYER[k]) && row_matches(&LAYER[k], nm + off, h.n_exp);
            if (!known) return hl_err_set(err, HL_ENOTSUP, "tensor %s is not part of a %s checkpoint the converter knows", nm, hf);
        }
        /* all names known but the count differs: an expert is missing (add_stack names it) */
    }

    gguf_set_str(w, "general.architecture", a->name);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    gguf_set_str(w, "general.name", base);
    const st_tensor *emb = st_find(st, "model.embed_tokens.weight");
    gguf_set_u32(w, "general.file_type", a->f & F_MXFP4 ? 38 : emb->type == HL_TYPE_F32 ? 0 : emb->type == HL_TYPE_F16 ? 1 : 32);
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
    gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)h.n_rot);
    gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)h.eps);
    gguf_set_f32(w, KEY("rope.freq_base"), (float)h.theta);
    gguf_set_u32(w, KEY("vocab_size"), (uint32_t)h.vocab);
    if (swa) gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)swa);
    if (a->f & F_GEMMA && a->swa_period == 6 && h.theta_swa != 10000.0) gguf_set_f32(w, KEY("rope.freq_base_swa"), (float)h.theta_swa);
    if (a->f & F_GEMMA && a->swa_period == 2) { /* gemma2's softcaps (0 or absent: none) */
        double cap_attn = store_cv_cfg_num(cfg, "attn_logit_softcapping", 0), cap_final = store_cv_cfg_num(cfg, "final_logit_softcapping", 0);
        if (cap_attn < 0 || cap_final < 0) return hl_err_set(err, HL_EINVAL, "config.json: logit softcapping must not be negative");
        if (cap_attn > 0) gguf_set_f32(w, KEY("attn_logit_softcapping"), (float)cap_attn);
        if (cap_final > 0) gguf_set_f32(w, KEY("final_logit_softcapping"), (float)cap_final);
    }
    if (!strcmp(a->name, "granite")) { /* its four multipliers */
        gguf_set_f32(w, KEY("embedding_scale"), (float)store_cv_cfg_num(cfg, "embedding_multiplier", 1.0));
        gguf_set_f32(w, KEY("attention.scale"), (float)store_cv_cfg_num(cfg, "attention_multiplier", 1.0));
        gguf_set_f32(w, KEY("residual_scale"), (float)store_cv_cfg_num(cfg, "residual_multiplier", 1.0));
        gguf_set_f32(w, KEY("logit_scale"), (float)store_cv_cfg_num(cfg, "logits_scaling", 1.0));
    }
    if (h.linear_rope) {
        gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        gguf_set_f32(w, KEY("rope.scaling.factor"), (float)h.rope_factor);
    }
    if (h.yarn) {
        gguf_set_str(w, KEY("rope.scaling.type"), "yarn");
        gguf_set_f32(w, KEY("rope.scaling.factor"), (float)h.rope_factor);
        gguf_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)h.orig_ctx);
        if (h.beta_fast != 32) gguf_set_f32(w, KEY("rope.scaling.yarn_beta_fast"), (float)h.beta_fast);
        if (h.beta_slow != 1) gguf_set_f32(w, KEY("rope.scaling.yarn_beta_slow"), (float)h.beta_slow);
        /* the loader multiplies 0.1 ln(factor) + 1 by this: an explicit attention_factor replaces that */
        if (h.attn_factor > 0)
            gguf_set_f32(w, KEY("rope.scaling.yarn_attn_factor"),
                         (float)(h.attn_factor / (h.rope_factor > 1 ? 0.1 * log(h.rope_factor) + 1.0 : 1.0)));
    }
    if (h.longrope) { /* the attention factor transformers derives when config.json does not give one */
        double s_ctx = h.rope_factor > 0 ? h.rope_factor : (double)h.ctx / h.orig_ctx;
        double f = h.attn_factor > 0 ? h.attn_factor : s_ctx <= 1 ? 1.0 : sqrt(1.0 + log(s_ctx) / log(h.orig_ctx));
        gguf_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)h.orig_ctx);
        gguf_set_f32(w, KEY("rope.scaling.attn_factor"), (float)f);
    }
    if (h.n_exp) {
        gguf_set_u32(w, KEY("expert_count"), (uint32_t)h.n_exp);
        gguf_set_u32(w, KEY("expert_used_count"), (uint32_t)h.n_exp_used);
        if (a->f & (F_MOE | F_GPTOSS)) gguf_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)h.ff_exp);
        if (a->f & F_SHEXP) gguf_set_u32(w, KEY("expert_shared_feed_forward_length"), (uint32_t)h.ff_sh);
    }
#undef KEY

    int64_t total = 0, done = 0; /* GGUF layer tensors */
    for (size_t k = 0; k < N_LAYER_MAP; k++) total += !skip(a, &LAYER[k]);
    total *= h.n_layer;
    /* Gemma's RMSNorm scales by (1 + w): GGUF stores the sum */
    float norm_add = a->f & F_GEMMA ? 1.0f : 0.0f;
    if ((rc = add_one(w, emb, "token_embd.weight", &h, D_VOCAB, D_EMBD, 0, 0.0f, 0, err)) ||
        (rc = add_one(w, st_find(st, "model.norm.weight"), "output_norm.weight", &h, D_EMBD, 0, 0, norm_add, 0, err)))
        return rc;
    if (!h.tied && (rc = add_one(w, st_find(st, "lm_head.weight"), "output.weight", &h, D_VOCAB, D_EMBD, 0, 0.0f, 0, err)))
        return rc;
    if (h.llama3_rope && (rc = add_llama3_rope(w, &h, err))) return rc;
    if (h.longrope && (rc = add_longrope(w, &h, err))) return rc;
    for (int64_t l = 0; l < h.n_layer; l++) {
        for (size_t k = 0; k < N_LAYER_MAP; k++) {
            const tmap *m = &LAYER[k];
            if (skip(a, m)) continue;
            snprintf(gn, sizeof gn, "blk.%lld.%s", (long long)l, m->gguf ? m->gguf : "");
            if (m->flags & T_SCALES) {
                /* written with its blocks (the row before) */
            } else if (m->flags & T_STACK) {
                if ((rc = store_cv_add_stack(w, st, l, m, gn, &h, err))) return rc;
            } else if (m->flags & T_MXFP4) {
                store_cv_hf_name(hn, sizeof hn, l, m, 0);
                if ((rc = store_cv_add_mxfp4(w, st, st_find(st, hn), gn, &h, m, err))) return rc;
            } else if (m->flags & T_OSS) {
                store_cv_hf_name(hn, sizeof hn, l, m, 0);
                if ((rc = store_cv_add_oss(w, st_find(st, hn), gn, &h, m, err))) return rc;
            } else {
                store_cv_hf_name(hn, sizeof hn, l, m, 0);
                int64_t ph = !a->permute_qk ? 0 : m->permute == 1 ? h.n_head : m->permute == 2 ? h.n_kv : 0;
                float add = m->cols == 0 && strstr(m->hf, "norm") ? norm_add : 0.0f;
                if ((rc = add_one(w, st_find(st, hn), gn, &h, m->rows, m->cols, ph, add, m->flags, err))) return rc;
            }
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
