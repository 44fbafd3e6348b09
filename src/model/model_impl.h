/* Internals of the model module, shared by its .c files and nothing else:
 * the architecture description (filled by one arch_<name>.c file per
 * architecture), the bound weights, and the model and forward-context
 * structs. Shapes are written in GGUF order [ne0, ne1]: ne0 is the row length
 * (the input dimension of a matmul), ne1 the number of rows (its output). */
#ifndef HL_MODEL_IMPL_H
#define HL_MODEL_IMPL_H

#include "model/model.h"

#include <stddef.h>
#include <stdint.h>

/* ---- architecture descriptions ---- */

/* Symbolic dimensions of tensor shapes, resolved against the hparams. */
typedef enum hl_dim {
    HL_DIM_NONE = 0, /* unused (1-D tensors have ne[1] = NONE) */
    HL_DIM_EMBD,     /* n_embd */
    HL_DIM_VOCAB,    /* n_vocab */
    HL_DIM_FF,       /* n_ff */
    HL_DIM_Q,        /* n_head * head_dim_k */
    HL_DIM_K,        /* n_head_kv * head_dim_k */
    HL_DIM_V,        /* n_head_kv * head_dim_v */
    HL_DIM_O,        /* n_head * head_dim_v */
    HL_DIM_HEAD_K,   /* head_dim_k (per-head q/k norms) */
    HL_DIM_ROT_HALF, /* n_rot / 2 (rope frequency factors) */
    HL_DIM_CTX,      /* n_ctx_train (absolute position table) */
    HL_DIM_ANY,      /* any positive count (token-type table rows) */
    HL_DIM_HEADS,    /* n_head (per-head values: attention sinks) */
    HL_DIM_EXPERT,   /* n_expert (MoE: expert_count) */
    HL_DIM_FF_EXP,   /* n_ff_exp (expert_feed_forward_length) */
    HL_DIM_FF_SHEXP, /* n_ff_shexp (expert_shared_feed_forward_length) */
} hl_dim;

/* What a tensor is used for decides which element types it may have. */
typedef enum hl_tkind {
    HL_TK_MATMUL, /* weight of a matmul: any readable type; the backend says which it multiplies */
    HL_TK_VEC,    /* norm weight, bias, rope factors: F32 */
    HL_TK_EMBD,   /* embedding table: rows dequantized by hl_dequantize */
} hl_tkind;

#define HL_TF_OPTIONAL 1u /* absent tensor leaves the field empty (data == NULL) */

/* One row range of a fused tensor, bound as a tensor of its own: the views
 * of a tensor take its rows in order (phi3's attn_qkv: Q, K, V rows); of a
 * fused vector (HL_TK_VEC), its elements (nomic-bert's attn_qkv.bias). */
typedef struct hl_arch_view {
    size_t offset; /* offsetof the hl_wt field the view is bound to */
    hl_dim rows;   /* its number of rows */
} hl_arch_view;

#define HL_ARCH_MAX_VIEWS 3

typedef struct hl_arch_tensor {
    const char *name; /* "output.weight", or "blk.%d.attn_q.weight" in the per-layer list */
    size_t offset;    /* offsetof the hl_wt field in hl_weights / hl_layer_weights (unused with views) */
    hl_dim ne0, ne1;  /* expected shape; ne1 NONE for 1-D (with views: the views' rows summed) */
    hl_tkind kind;
    unsigned flags;
    hl_arch_view views[HL_ARCH_MAX_VIEWS]; /* rows NONE ends the list; none: one tensor at offset */
    hl_dim ne2;       /* 3-D tensors (MoE experts, one slice per expert): the slice count; NONE otherwise */
} hl_arch_tensor;

/* One architecture: everything the generic loader and forward pass need to
 * know. Adding one = a new arch_<name>.c filling this struct + a line in the
 * registry (arch.c). */
typedef struct hl_arch {
    const char *name; /* general.architecture */
    hl_rope_style rope_style;
    hl_act act;
    float act_alpha, act_limit; /* HL_ACT_SWIGLU_CLAMP: the sigmoid's slope, the clamp (gpt-oss: 1.702, 7) */
    int embd_scale_sqrt;   /* multiply embeddings by sqrt(n_embd) */
    /* Sliding-window attention: 0 = the arch has none (the key is ignored);
     * n > 0 = every n-th layer is global, the others local (1 = all local). */
    int swa_period;
    /* 1: sliding-window layers have their own rope (rope.freq_base_swa,
     * default 10000, unscaled: gemma3); 0: the same rope as the others. */
    int swa_rope_local;
    /* Encoder (bert, nomic-bert): an embedding model with BERT's post-norm
     * block (x = LayerNorm(x + attn(x)); x = LayerNorm(x + ffn(x))), LayerNorm
     * with bias after the embeddings, bidirectional attention, and no
     * output norm or logits. no_rope: positions come from position_embd. */
    int encoder;
    int no_rope;
    /* YaRN's correction range is rounded outwards to whole dims (the paper's
     * and transformers' default) unless this is set (gpt-oss: not rounded) */
    int yarn_no_truncate;
    /* Mixture of experts: the FFN is a MOE op (expert_count, expert_used_count
     * and the expert tensors required) with this gating; norm_topk: the k
     * weights renormalized to sum 1. */
    int moe;
    hl_moe_gating moe_gating;
    int moe_norm_topk;
    const hl_arch_tensor *global;
    int n_global;
    const hl_arch_tensor *layer;
    int n_layer_tensors;
    /* Optional: more per-layer tensors, bound after `layer` (a mixture of
     * experts takes its dense sibling's attention rows as `layer` and its
     * expert rows here). */
    const hl_arch_tensor *layer_more;
    int n_layer_more;
    /* Optional: adjusts the model after hparams and weights are bound. */
    int (*hook)(hl_model *m, hl_err *err);
} hl_arch;

const hl_arch *hl_arch_find(const char *name); /* NULL if unknown */

extern const hl_arch hl_arch_llama;
extern const hl_arch hl_arch_qwen2;
extern const hl_arch hl_arch_qwen3;
extern const hl_arch hl_arch_gemma2;
extern const hl_arch hl_arch_gemma3;
extern const hl_arch hl_arch_phi3;
extern const hl_arch hl_arch_olmo2;
extern const hl_arch hl_arch_granite;
extern const hl_arch hl_arch_bert;
extern const hl_arch hl_arch_nomic_bert;
extern const hl_arch hl_arch_qwen3moe;
extern const hl_arch hl_arch_qwen2moe;
extern const hl_arch hl_arch_olmoe;
extern const hl_arch hl_arch_gptoss;
extern const hl_arch hl_arch_mixtral; /* general.architecture llama with expert_count > 0 */
/* llama's tensor tables, shared by the architectures with llama's block (granite) */
#define HL_LLAMA_N_GLOBAL 4
#define HL_LLAMA_N_LAYER 9
extern const hl_arch_tensor hl_llama_global[HL_LLAMA_N_GLOBAL], hl_llama_layer[HL_LLAMA_N_LAYER];
/* A decoder's global tensors (token_embd, output_norm, optional output:
 * arch.c), for every architecture without extra global tensors. */
#define HL_DECODER_N_GLOBAL 3
extern const hl_arch_tensor hl_decoder_global[HL_DECODER_N_GLOBAL];
/* llama's first HL_LLAMA_N_ATTN layer rows are its attention (attn_norm .. wo):
 * mixtral binds them before its experts */
#define HL_LLAMA_N_ATTN 5
/* qwen2's and qwen3's layer tables, attention rows first (attn_norm .. wo:
 * HL_QWEN*_N_ATTN), shared with their mixtures of experts (and gpt-oss) */
#define HL_QWEN2_N_LAYER 12
#define HL_QWEN2_N_ATTN 8
#define HL_QWEN3_N_LAYER 11
#define HL_QWEN3_N_ATTN 7
extern const hl_arch_tensor hl_qwen2_layer[HL_QWEN2_N_LAYER], hl_qwen3_layer[HL_QWEN3_N_LAYER];
/* olmo2's layer table, its attention rows first (q .. wo with the
 * projection-wide q/k norms: HL_OLMO2_N_ATTN), which olmoe binds too */
#define HL_OLMO2_N_LAYER 11
#define HL_OLMO2_N_ATTN 6
extern const hl_arch_tensor hl_olmo2_layer[HL_OLMO2_N_LAYER];
/* gemma3's layer table (the q/k norms last), shared with gemma2, which binds
 * all but those two; and the query scale both derive from the layer count */
#define HL_GEMMA_N_LAYER 13
extern const hl_arch_tensor hl_gemma_layer[HL_GEMMA_N_LAYER];
void hl_gemma_query_scale(hl_model *m, int32_t n_layer_27b);

/* ---- bound weights ---- */

/* A tensor bound from the mapping (data borrowed from the gguf_file). */
typedef hl_tensor hl_wt;

typedef struct hl_layer_weights {
    hl_wt attn_norm;      /* [n_embd]; absent in olmo2 */
    hl_wt wq;             /* [n_embd, n_head * head_dim_k] */
    hl_wt wk;             /* [n_embd, n_head_kv * head_dim_k] */
    hl_wt wv;             /* [n_embd, n_head_kv * head_dim_v] */
    hl_wt bq;             /* [n_head * head_dim_k]    optional (qwen2) */
    hl_wt bk;             /* [n_head_kv * head_dim_k] optional (qwen2) */
    hl_wt bv;             /* [n_head_kv * head_dim_v] optional (qwen2) */
    hl_wt q_norm;         /* [head_dim_k] optional (qwen3, gemma3); olmo2: [n_head * head_dim_k] */
    hl_wt k_norm;         /* [head_dim_k] optional (qwen3, gemma3); olmo2: [n_head_kv * head_dim_k] */
    hl_wt wo;             /* [n_head * head_dim_v, n_embd] */
    hl_wt attn_sinks;     /* [n_head] optional (gpt-oss): each head's sink logit */
    hl_wt post_attn_norm; /* [n_embd] optional (gemma) */
    hl_wt ffn_norm;       /* [n_embd]; absent in olmo2 */
    hl_wt ffn_gate;       /* [n_embd, n_ff] */
    hl_wt ffn_up;         /* [n_embd, n_ff] */
    hl_wt ffn_down;       /* [n_ff, n_embd] */
    hl_wt post_ffn_norm;  /* [n_embd] optional (gemma) */
    /* mixture of experts */
    hl_wt ffn_gate_inp;   /* [n_embd, n_expert] router */
    hl_wt ffn_gate_exps, ffn_up_exps; /* [n_embd, n_ff_exp, n_expert] */
    hl_wt ffn_down_exps;  /* [n_ff_exp, n_embd, n_expert] */
    hl_wt ffn_gate_shexp, ffn_up_shexp; /* [n_embd, n_ff_shexp] optional shared expert (qwen2moe) */
    hl_wt ffn_down_shexp; /* [n_ff_shexp, n_embd] */
    hl_wt ffn_gate_inp_shexp; /* [n_embd] F32: the shared expert's sigmoid gate */
    hl_wt ffn_gate_inp_b;     /* [n_expert] optional router bias (gpt-oss) */
    hl_wt ffn_gate_exps_b, ffn_up_exps_b; /* [n_ff_exp, n_expert] optional expert biases (gpt-oss) */
    hl_wt ffn_down_exps_b;    /* [n_embd, n_expert] */
    /* encoders (bert, nomic-bert) */
    hl_wt bo;             /* [n_embd] attn_output.bias (encoders; decoders where bound: gpt-oss) */
    hl_wt attn_out_norm, attn_out_norm_b;   /* LayerNorm of x + attn */
    hl_wt ffn_up_b, ffn_down_b;             /* [n_ff], [n_embd] */
    hl_wt layer_out_norm, layer_out_norm_b; /* LayerNorm of x + ffn */
} hl_layer_weights;

typedef struct hl_weights {
    hl_wt token_embd;  /* [n_embd, n_vocab] */
    hl_wt output_norm; /* [n_embd] */
    hl_wt output;      /* [n_embd, n_vocab]; = token_embd when tied */
    hl_wt rope_freqs;  /* [n_rot / 2] optional: divisors of the rope frequencies (phi3: the short factors) */
    hl_wt rope_factors_long; /* [n_rot / 2] optional (phi3): LongRoPE's long-context divisors (plan_long) */
    /* encoders */
    hl_wt token_types;     /* [n_embd, n_types] F32: row 0 is added to every token (one segment) */
    hl_wt token_type0;     /* view of row 0 of token_types (the EMBED op's b) */
    hl_wt position_embd;   /* [n_embd, n_ctx_train] absolute positions (bert) */
    hl_wt token_embd_norm, token_embd_norm_b; /* LayerNorm after the embeddings */
    hl_layer_weights *layers; /* [n_layer], owned */
} hl_weights;

struct hl_model {
    const hl_arch *arch;
    hl_hparams hp;
    hl_weights w;
    double *rope_inv_freq; /* [n_rot / 2] owned: freq_scale * base^(-2i/n_rot) / factor_i */
    double *rope_inv_freq_swa; /* [n_rot / 2] owned: the same for sliding-window layers (base_swa, unscaled) */
    double *rope_inv_freq_long; /* [n_rot / 2] owned, or NULL: LongRoPE's frequencies over rope_factors_long */
    uint8_t *layer_swa;    /* [n_layer] owned: 1 = layer attends within n_swa positions only */
    size_t weight_bytes;
    hl_plan plan;          /* compiled from arch + weights at load (plan.c); ops point into w */
    hl_plan plan_long;     /* LongRoPE with long factors: plan rotating by rope_inv_freq_long (ops NULL: none) */
    gguf_file *file;       /* owned; weights point into its mapping */
};

/* arch_encoder.c: the encoders' hook (fused qkv row views, token-type row). */
int hl_encoder_hook(hl_model *m, hl_err *err);

/* plan.c: compiles m->plan from the bound weights and hparams. */
int hl_plan_build(hl_model *m, hl_err *err);
void hl_plan_free(hl_plan *p);

#endif
