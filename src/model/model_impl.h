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
} hl_dim;

/* What a tensor is used for decides which element types it may have. */
typedef enum hl_tkind {
    HL_TK_MATMUL, /* weight of a matmul: a type the CPU backend multiplies */
    HL_TK_VEC,    /* norm weight, bias, rope factors: F32 */
    HL_TK_EMBD,   /* embedding table: rows dequantized by hl_dequantize */
} hl_tkind;

#define HL_TF_OPTIONAL 1u /* absent tensor leaves the field empty (data == NULL) */

typedef struct hl_arch_tensor {
    const char *name; /* "output.weight", or "blk.%d.attn_q.weight" in the per-layer list */
    size_t offset;    /* offsetof the hl_wt field in hl_weights / hl_layer_weights */
    hl_dim ne0, ne1;  /* expected shape; ne1 NONE for 1-D */
    hl_tkind kind;
    unsigned flags;
} hl_arch_tensor;

/* One architecture: everything the generic loader and forward pass need to
 * know. Adding one = a new arch_<name>.c filling this struct + a line in the
 * registry (arch.c). */
typedef struct hl_arch {
    const char *name; /* general.architecture */
    hl_rope_style rope_style;
    hl_act act;
    int embd_scale_sqrt;   /* multiply embeddings by sqrt(n_embd) */
    /* Sliding-window attention: 0 = the arch has none (the key is ignored);
     * n > 0 = every n-th layer is global, the others local (1 = all local). */
    int swa_period;
    const hl_arch_tensor *global;
    int n_global;
    const hl_arch_tensor *layer;
    int n_layer_tensors;
    /* Optional: adjusts the model after hparams and weights are bound. */
    int (*hook)(hl_model *m, hl_err *err);
} hl_arch;

const hl_arch *hl_arch_find(const char *name); /* NULL if unknown */

extern const hl_arch hl_arch_llama;
extern const hl_arch hl_arch_qwen2;
extern const hl_arch hl_arch_qwen3;
extern const hl_arch hl_arch_gemma3;

/* ---- bound weights ---- */

/* A tensor bound from the mapping (data borrowed from the gguf_file). */
typedef struct hl_wt {
    const void *data; /* NULL when an optional tensor is absent */
    hl_type type;
    int64_t ne0, ne1; /* ne1 = 1 for vectors */
    size_t row_bytes; /* bytes of one row of ne0 elements */
} hl_wt;

typedef struct hl_layer_weights {
    hl_wt attn_norm;      /* [n_embd] */
    hl_wt wq;             /* [n_embd, n_head * head_dim_k] */
    hl_wt wk;             /* [n_embd, n_head_kv * head_dim_k] */
    hl_wt wv;             /* [n_embd, n_head_kv * head_dim_v] */
    hl_wt bq;             /* [n_head * head_dim_k]    optional (qwen2) */
    hl_wt bk;             /* [n_head_kv * head_dim_k] optional (qwen2) */
    hl_wt bv;             /* [n_head_kv * head_dim_v] optional (qwen2) */
    hl_wt q_norm;         /* [head_dim_k] optional (qwen3, gemma3) */
    hl_wt k_norm;         /* [head_dim_k] optional (qwen3, gemma3) */
    hl_wt wo;             /* [n_head * head_dim_v, n_embd] */
    hl_wt post_attn_norm; /* [n_embd] optional (gemma) */
    hl_wt ffn_norm;       /* [n_embd] */
    hl_wt ffn_gate;       /* [n_embd, n_ff] */
    hl_wt ffn_up;         /* [n_embd, n_ff] */
    hl_wt ffn_down;       /* [n_ff, n_embd] */
    hl_wt post_ffn_norm;  /* [n_embd] optional (gemma) */
} hl_layer_weights;

typedef struct hl_weights {
    hl_wt token_embd;  /* [n_embd, n_vocab] */
    hl_wt output_norm; /* [n_embd] */
    hl_wt output;      /* [n_embd, n_vocab]; = token_embd when tied */
    hl_wt rope_freqs;  /* [n_rot / 2] optional: divisors of the rope frequencies */
    hl_layer_weights *layers; /* [n_layer], owned */
} hl_weights;

struct hl_model {
    const hl_arch *arch;
    hl_hparams hp;
    hl_weights w;
    double *rope_inv_freq; /* [n_rot / 2] owned: freq_scale * base^(-2i/n_rot) / factor_i */
    double *rope_inv_freq_swa; /* [n_rot / 2] owned: the same for sliding-window layers (base_swa, unscaled) */
    uint8_t *layer_swa;    /* [n_layer] owned: 1 = layer attends within n_swa positions only */
    size_t weight_bytes;
    gguf_file *file;       /* owned; weights point into its mapping */
};

/* ---- forward context ---- */

#define HL_ATTN_CHUNK 256 /* positions scored per online-softmax step (long spans) */
#define HL_ATTN_MAX_SCORES (1 << 17) /* single-pass attention up to this many positions */
#define HL_ATTN_GROUP 8 /* query heads sharing a KV head attended together, at most */

struct hl_forward_ctx {
    int32_t max_tokens, max_threads;
    int32_t n_embd, n_vocab;
    float *x;       /* [max_tokens][n_embd] residual stream */
    float *xb;      /* [max_tokens][n_embd] normed input / branch output */
    float *q;       /* [max_tokens][n_head * head_dim_k] */
    float *k;       /* [max_tokens][n_head_kv * head_dim_k] */
    float *v;       /* [max_tokens][n_head_kv * head_dim_v] */
    float *att;     /* [max_tokens][n_head * head_dim_v] attention output */
    float *gate;    /* [max_tokens][n_ff] */
    float *up;      /* [max_tokens][n_ff] */
    float *rope;    /* [max_tokens][n_rot / 2][2] cos, sin of each token's angles */
    float *rope_swa; /* [max_tokens][n_rot / 2][2] the same for sliding-window layers */
    float *xout;    /* [max_tokens][n_embd] final-normed rows that want logits, dense */
    float *scores;  /* [max_threads][HL_ATTN_GROUP][n_scores] attention weights of a group of query heads */
    const void **rows; /* [max_threads][n_scores] K or V row pointers of the positions attended */
    int32_t n_scores; /* min(max(n_ctx_train, HL_ATTN_CHUNK), HL_ATTN_MAX_SCORES) */
    void *xq[3];    /* converted activations, one per distinct activation type in a stage */
    size_t xq_size; /* bytes of each xq buffer */
    int32_t *out_row; /* [max_tokens] dense logits row of each token, or -1 */
    /* per-call state, set by hl_model_forward before the parallel region */
    const hl_model *m;
    const hl_vec_ops *vo; /* kernels of the SIMD level in use, resolved once per step */
    hl_pool *pool;
    hl_kv_cache *kv;
    const hl_batch *batch;
    float *logits;
    int32_t n_wanted;
    int serial; /* this step runs on the calling thread only (no barriers) */
    hl_threads_mode threads_mode;
};

/* kv.c internals the forward pass uses to address slots without calls. */
uint8_t *hl_kv_layer_k(hl_kv_cache *kv, int32_t layer);
uint8_t *hl_kv_layer_v(hl_kv_cache *kv, int32_t layer);

#endif
