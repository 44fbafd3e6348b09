/* Internals shared by the Hugging Face converter's files (convert.c: the
 * families, the tensor table, dense tensors and keys; convert_moe.c: the
 * mixtures of experts' routing config and expert tensors; convert_enc.c:
 * the encoders). Not a public
 * interface: only src/store/convert*.c include it. */
#ifndef HL_STORE_CONVERT_INTERNAL_H
#define HL_STORE_CONVERT_INTERNAL_H

#include "gguf/gguf.h"
#include "store/safetensors.h"
#include "store/store.h"

#include <json-c/json.h>
#include <stdint.h>

/* What a family's checkpoint holds, beyond llama's pre-norm block
 * (arch_def.f; a tensor row needs all of tmap.need and none of tmap.skip). */
enum {
    F_QKV_BIAS = 1 << 0,     /* q/k/v_proj biases */
    F_QK_NORM = 1 << 1,      /* q_norm / k_norm per head */
    F_QK_NORM_FULL = 1 << 2, /* q_norm / k_norm over the whole projection (olmo2) */
    F_GEMMA = 1 << 3,        /* (1 + w) norms, pre_feedforward_layernorm */
    F_POST_NORM = 1 << 4,    /* post_attention / post_feedforward norms after each branch */
    F_NO_PRE_NORM = 1 << 5,  /* no input_layernorm (olmo2) */
    F_FUSED = 1 << 6,        /* qkv_proj and gate_up_proj (phi3) */
    F_MOE = 1 << 7,          /* mlp.gate + mlp.experts.N.{gate,up,down}_proj */
    F_MIXTRAL = 1 << 8,      /* block_sparse_moe.gate + block_sparse_moe.experts.N.w1/w2/w3 */
    F_SHEXP = 1 << 9,        /* mlp.shared_expert.* and its sigmoid gate (qwen2moe) */
    F_SWA = 1 << 10,         /* config.json's sliding_window applies to every layer */
    F_GPTOSS = 1 << 11,      /* gpt-oss: o_proj bias, sinks, router with bias, fused interleaved experts with biases */
    F_MXFP4 = 1 << 12,       /* not a family's: config.json's quantization_config says mxfp4 (gpt-oss's experts as
                              * U8 _blocks / _scales, the hub's layout) */
};

typedef struct arch_def {
    const char *hf;   /* config.json architectures[0] */
    const char *name; /* general.architecture */
    int permute_qk;
    unsigned f;
    int swa_period; /* gemma: one global layer every swa_period (layer_types checked against it) */
    int norm_topk;  /* MoE: 1 the engine renormalizes the top-k weights, 0 it does not, -1 top-k then softmax */
} arch_def;

/* shape symbols: rows x cols of the HF tensor (cols 0 = 1-D) */
enum { D_EMBD = 1, D_Q, D_KV, D_FF, D_HEAD, D_VOCAB, D_QKV, D_FF2, D_EXPERT, D_FF_EXP, D_FF_SH, D_ONE, D_NHEAD };

/* tmap.flags. T_OSS: gpt-oss's experts, one HF tensor [n_exp, rows(, cols)]
 * for all experts, rearranged (tmap.part) into GGUF's layout; T_MXFP4: the
 * same experts as the hub ships them, U8 blocks [n_exp, rows, cols / 32, 16]
 * (rows x cols as GGUF's, out x in) repacked with the next row's scales
 * into GGUF MXFP4; T_SCALES: those scales [n_exp, rows, cols / 32] (checked
 * and counted; written by the T_MXFP4 row); T_AGAIN: the previous row's HF
 * tensor again (counted once); T_F32: a matrix stored as F32 whatever its
 * dtype (the routers, as llama.cpp's converter keeps them: a near-tie
 * between experts must not be decided by rounding). */
enum { T_STACK = 1, T_VEC = 2, T_OSS = 4, T_AGAIN = 8, T_F32 = 16, T_MXFP4 = 32, T_SCALES = 64 };
/* tmap.part: gate = even columns of gate_up (MXFP4: even rows), up = odd */
enum { P_GATE = 0, P_UP = 1, P_DOWN = 2 };

typedef struct tmap {
    const char *hf, *gguf; /* T_STACK: hf has one %d, the expert */
    int rows, cols;
    unsigned need, skip;
    int permute; /* 1 by n_head, 2 by n_head_kv (when the arch permutes) */
    int flags;   /* T_STACK: experts 0..n-1 stacked as a 3-D tensor; T_VEC: a [1, n] matrix stored as an F32 vector */
    int part;    /* T_OSS */
} tmap;

typedef struct hp {
    int64_t embd, n_layer, n_head, n_kv, ff, head, vocab, ctx, n_rot;
    int64_t n_exp, n_exp_used, ff_exp, ff_sh; /* mixtures of experts */
    double eps, theta, rope_factor;
    double lo_factor, hi_factor, orig_ctx; /* llama3 rope scaling; longrope's original context too */
    double theta_swa;                     /* gemma3: local layers' rope base */
    double attn_factor;                   /* longrope, yarn: config.json's attention_factor, 0 when absent */
    double beta_fast, beta_slow;          /* yarn */
    json_object *short_f, *long_f;        /* longrope factors (borrowed from config.json) */
    int tied, linear_rope, llama3_rope, longrope, yarn, yarn_truncate;
} hp;

int store_cv_cfg_int(json_object *c, const char *key, int64_t dflt, int64_t *out, hl_err *err); /* dflt < 0: required */
double store_cv_cfg_num(json_object *c, const char *key, double dflt);
int store_cv_cfg_bool(json_object *c, const char *key, int dflt);
int64_t store_cv_dim(const hp *h, int d);                 /* a D_* symbol's value */
float store_cv_elem_f32(const st_tensor *t, int64_t i);   /* element i of an F32/F16/BF16 tensor */
int store_cv_need_float(const st_tensor *t, hl_err *err); /* HL_EINVAL naming t unless F32/F16/BF16 */
void store_cv_hf_name(char *buf, size_t cap, int64_t l, const tmap *m, int64_t e); /* model.layers.<l>.<row, expert e> */

/* ---- encoders (convert_enc.c) ---- */
int store_cv_is_encoder(const char *hf); /* BertModel, XLMRobertaModel, NomicBertModel, ... */
int store_cv_encoder(const char *dir, const char *out_path, const char *hf, json_object *cfg, const store_ops *ops,
                     gguf_writer *w, st_set *st, hl_err *err);

/* ---- mixtures of experts (convert_moe.c) ---- */
int store_cv_read_moe(const arch_def *a, const char *hf, json_object *cfg, hp *h, hl_err *err);
int store_cv_add_stack(gguf_writer *w, const st_set *st, int64_t l, const tmap *m, const char *gname, const hp *h, hl_err *err);
int store_cv_add_oss(gguf_writer *w, const st_tensor *t, const char *gname, const hp *h, const tmap *m, hl_err *err);
int store_cv_add_mxfp4(gguf_writer *w, const st_set *st, const st_tensor *blocks, const char *gname, const hp *h, const tmap *m,
                       hl_err *err);

#endif
