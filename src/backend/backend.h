/* The backend interface: what the model asks of whatever runs it (the CPU's
 * SIMD kernels, the scalar reference, a GPU), and the backend-neutral layer
 * plan it hands over.
 *
 * The plan. At load the model module compiles its architecture description
 * into an hl_plan (model/plan.c): an ordered list of ops over NAMED
 * activation buffers. Each op says what it computes, from which buffers into
 * which, with which weight tensors and parameters; nothing is reused by
 * convention (an op whose out equals its in updates that buffer in place, and
 * says so by naming it twice). Buffers are [rows][width] floats: one row per
 * batch token, except the output buffers (HL_BUF_OUT_*, HL_BUF_LOGITS) which
 * hold one row per token that wants logits, in batch order. A step is:
 * prologue (EMBED), then per block the ops of plan.layer_ops[l] ..
 * layer_ops[l+1], then the epilogue (GATHER, output norm, logits matmul).
 *
 *   EMBED     out[t] = row token[t] of w, dequantized, times p.embed.scale,
 *             plus row pos[t] of p.embed.pos (absolute position embeddings)
 *             and b (token-type row) when the model has them (encoders)
 *   NORM      out = norm(in) * w (+ b) over groups of p.norm.group elements
 *             (the whole row, or each head for per-head q/k norms); RMS or
 *             LayerNorm (mean removed); w may be NULL (plain normalization)
 *   MATMUL    out[t][j] = sum_k in[t][k] * w[j][k] (+ b[j])
 *   ROPE      rotates in place the first n_rot dims of every head of in by
 *             pos * inv_freq[i] (NORM: adjacent pairs, NEOX: halves), those
 *             dims times mscale when it is set
 *   KV_STORE  rows of in (K) and in2 (V) go to each token's pool slot, layer
 *   ATTN      out = softmax(scale * q.k (softcapped), masked) . v over the
 *             token's sequence in the pool: causal (positions <= pos, the
 *             last `window` of them when window > 0) or bidirectional
 *             (positions 0 .. the last position of the token's sequence in
 *             this batch: an encoder's whole input); with p.attn.sinks, head
 *             h's softmax denominator also has exp(sinks[h]) (a learned
 *             logit with no value: gpt-oss's attention sinks)
 *   GLU       out = act(in) * in2 (SwiGLU: silu, GeGLU: gelu); SWIGLU_CLAMP:
 *             gpt-oss's clamped form, (up + 1) times the gate's activation
 *   ACT       out = act(in) (a non-gated MLP; SOFTCAP or SCALE on the logits, in place)
 *   ADD       out += in (residual), in times p.add.scale when it is set
 *   GATHER    out[r] = in[t] for the r-th token that wants logits
 *   MOE       routed-experts feed-forward (p.moe): logits = in . router (+ b);
 *             per token the top n_expert_used of n_expert experts with their
 *             weights (gating: softmax over all then top-k, or top-k then
 *             softmax over those; renormalized to sum 1 when norm_topk);
 *             out[t] = sum over its experts, in rank order, of weight times
 *             down_e(glu(in . gate_e (+ b), in . up_e (+ b))) (+ b) (glu as GLU's), plus
 *             an optional shared expert (its output times sigmoid(in . shexp_gate)
 *             when that gate is set). Expert tensors are 3-D: slice e of
 *             gate/up_exps [n_embd, n_ff_exp, n_expert], down_exps
 *             [n_ff_exp, n_embd, n_expert]; a backend reads only the slices
 *             of the experts a step routes to
 *
 * A backend is one small table of function pointers (hl_backend_ops). It
 * says what it supports (a plan whose every op and weight type it can run),
 * takes the weights in (binds the mmapped file or uploads/repacks: `prepare`
 * returns its own compiled program for the plan), owns KV storage (allocate
 * the pool, copy a block, truncate a sequence), runs the program over a
 * batch writing only the wanted logits rows, runs one op on host buffers (the
 * cross-backend op harness, tests/unit/backend/ref/test_ops*.c) and reports its
 * memory. Implementations: backend/cpu (SIMD kernels on the process's thread
 * pool; fuses the ops it recognizes) and backend/ref (the scalar oracle, one
 * op at a time, slow and simple). Nothing above model/ sees which one runs.
 *
 * Results of a backend for one sequence must not depend on the rest of the
 * batch (batch invariance): the scheduler relies on it. */
#ifndef HL_BACKEND_H
#define HL_BACKEND_H

#include "backend/kv.h"
#include "base/err.h"
#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

/* ---- tensors ---- */

/* A weight tensor in GGUF order: ne1 rows of ne0 elements of `type`.
 * data is borrowed (the file's mapping) unless a backend says otherwise. */
typedef struct hl_tensor {
    const void *data; /* NULL when an optional tensor is absent */
    hl_type type;
    int64_t ne0, ne1; /* ne1 = 1 for vectors */
    int64_t ne2;      /* 3-D tensors (MoE experts): ne2 slices of ne1 rows, slice e at data + e * ne1 * row_bytes;
                       * 0 or 1 otherwise */
    size_t row_bytes; /* bytes of one row of ne0 elements */
    char name[64];    /* "blk.3.attn_q.weight" (for messages) */
} hl_tensor;

/* ---- batches ---- */

typedef struct hl_batch_token {
    int32_t token;  /* token id, < n_vocab */
    int32_t pos;    /* position in its sequence */
    int32_t seq;    /* index into hl_batch.seqs */
    int32_t logits; /* nonzero: write this token's logits */
} hl_batch_token;

typedef struct hl_batch_seq {
    const int32_t *blocks; /* block table: blocks[i] holds positions [i*bs, (i+1)*bs) */
    int32_t n_blocks;      /* entries in blocks; must cover every position used */
} hl_batch_seq;

typedef struct hl_batch {
    const hl_batch_token *tokens; /* n_tokens entries, any order */
    int32_t n_tokens;
    const hl_batch_seq *seqs;     /* n_seqs entries */
    int32_t n_seqs;
} hl_batch;

/* ---- the layer plan ---- */

typedef enum hl_rope_style {
    HL_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama GGUFs (Q/K permuted by the converter) */
    HL_ROPE_NEOX = 1, /* rotate halves (x[i], x[i + n_rot/2]): qwen2, gemma, phi3 */
} hl_rope_style;

typedef enum hl_act {
    HL_ACT_SILU = 0,
    HL_ACT_GELU = 1,    /* tanh approximation */
    HL_ACT_SOFTCAP = 2, /* ACT only: p.act.cap * tanh(x / p.act.cap) (gemma2's final-logit softcapping) */
    HL_ACT_SCALE = 3,   /* ACT only: x * p.act.cap (granite's logits divided by logit_scale) */
    HL_ACT_GELU_ERF = 4, /* exact: 0.5 x (1 + erf(x / sqrt 2)) (BERT) */
    /* GLU only (gpt-oss): g = min(gate, limit), u = clamp(up, -limit, limit),
     * out = (u + 1) * g * sigmoid(alpha * g); p.act.alpha, p.act.limit */
    HL_ACT_SWIGLU_CLAMP = 5,
} hl_act;
typedef enum hl_moe_gating {
    HL_MOE_SOFTMAX_TOPK = 0, /* softmax over all n_expert logits, then the k largest (qwen2moe, qwen3moe, olmoe) */
    HL_MOE_TOPK_SOFTMAX = 1, /* the k largest logits, then softmax over those k (mixtral, gpt-oss) */
} hl_moe_gating;
typedef enum hl_norm_kind { HL_NORM_RMS = 0, HL_NORM_LAYER = 1 } hl_norm_kind;

typedef enum hl_buf_id {
    HL_BUF_NONE = 0,
    HL_BUF_X,        /* [T][n_embd]  residual stream */
    HL_BUF_ATTN_IN,  /* [T][n_embd]  normed input of the attention block */
    HL_BUF_Q,        /* [T][n_head * head_dim_k] */
    HL_BUF_K,        /* [T][n_head_kv * head_dim_k] */
    HL_BUF_V,        /* [T][n_head_kv * head_dim_v] */
    HL_BUF_ATTN,     /* [T][n_head * head_dim_v]  attention output, heads concatenated */
    HL_BUF_ATTN_OUT, /* [T][n_embd]  output projection: the attention branch */
    HL_BUF_FFN_IN,   /* [T][n_embd]  normed input of the feed-forward block */
    HL_BUF_GATE,     /* [T][n_ff] */
    HL_BUF_UP,       /* [T][n_ff] */
    HL_BUF_FFN_ACT,  /* [T][n_ff]    act(gate) * up */
    HL_BUF_FFN_OUT,  /* [T][n_embd]  down projection: the feed-forward branch */
    HL_BUF_OUT_IN,   /* [R][n_embd]  residual rows of the tokens that want logits */
    HL_BUF_OUT_NORM, /* [R][n_embd]  the same after the output norm */
    HL_BUF_LOGITS,   /* [R][n_vocab] the caller's logits ([R][n_embd] hidden states when plan.embedding) */
    HL_BUF_COUNT
} hl_buf_id;

typedef enum hl_op_kind {
    HL_OP_EMBED = 0,
    HL_OP_NORM,
    HL_OP_MATMUL,
    HL_OP_ROPE,
    HL_OP_KV_STORE,
    HL_OP_ATTN,
    HL_OP_GLU,
    HL_OP_ACT,
    HL_OP_ADD,
    HL_OP_GATHER,
    HL_OP_MOE,
    HL_OP_COUNT
} hl_op_kind;

typedef struct hl_op {
    hl_op_kind kind;
    int32_t layer;         /* block index (KV_STORE/ATTN address the pool's layer); -1 outside the blocks */
    hl_buf_id in, in2, out;
    const hl_tensor *w;    /* EMBED table, NORM weight (NULL: none), MATMUL weight */
    const hl_tensor *b;    /* NORM / MATMUL bias, or NULL */
    int64_t n_in, n_out;   /* row widths of in and out (elements) */
    union {
        struct {
            float scale;
            const hl_tensor *pos; /* optional: [n_embd, n_pos] absolute position table (row = pos) */
        } embed;
        struct { hl_norm_kind kind; float eps; int32_t group; } norm; /* group divides n_in */
        struct {
            hl_rope_style style;
            int32_t n_rot, head_dim, n_head; /* rotate dims [0, n_rot) of each of n_head heads */
            const double *inv_freq;          /* [n_rot / 2]: angle_i = pos * inv_freq[i] */
            float mscale;                    /* 0 (= 1) or the factor cos and sin are multiplied by: the
                                              * rotated dims scaled (LongRoPE's attn_factor, partial rotary) */
        } rope;
        struct { int32_t n_head_kv, head_dim_k, head_dim_v; } kv;
        struct {
            int32_t n_head, n_head_kv, head_dim_k, head_dim_v;
            float scale;    /* multiplies q.k */
            float softcap;  /* > 0: scores become softcap * tanh(score / softcap) */
            int32_t window; /* > 0: causal attention to the last `window` positions (this one included) */
            int causal;     /* 0: bidirectional over the sequence's tokens in the batch (encoders) */
            const hl_tensor *sinks; /* NULL, or [n_head] F32: a logit per head in every softmax denominator */
        } attn;
        struct {
            hl_act act;
            float cap;          /* SOFTCAP: > 0; SCALE: the factor */
            float alpha, limit; /* SWIGLU_CLAMP: the sigmoid's slope, the clamp (> 0) */
        } act;
        struct { float scale; /* 0 (= 1) or what in is multiplied by before it is added (granite) */ } add;
        struct {
            int32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp; /* n_ff_shexp 0: no shared expert */
            const hl_tensor *router;                          /* [n_embd, n_expert] */
            const hl_tensor *gate_exps, *up_exps, *down_exps; /* 3-D, see MOE above */
            /* optional (NULL): F32 biases [n_expert], [n_ff_exp, n_expert] x2, [n_embd, n_expert] */
            const hl_tensor *router_b, *gate_exps_b, *up_exps_b, *down_exps_b;
            /* optional shared expert: [n_embd, n_ff_shexp] x2, [n_ff_shexp, n_embd]; its gate [n_embd] F32 */
            const hl_tensor *gate_shexp, *up_shexp, *down_shexp, *shexp_gate;
            hl_moe_gating gating;
            int norm_topk;  /* renormalize the k weights to sum 1 (SOFTMAX_TOPK) */
            hl_act act;     /* SILU, GELU or SWIGLU_CLAMP (as GLU's) */
            float alpha, limit; /* SWIGLU_CLAMP: the sigmoid's slope, the clamp (> 0) */
        } moe;
    } p;
} hl_op;

typedef struct hl_plan_buf {
    const char *name;  /* "attn_in" */
    int64_t width;     /* floats per row; 0 = unused by this plan */
    int per_output;    /* rows are the tokens that want logits, not all tokens */
} hl_plan_buf;

typedef struct hl_plan {
    const char *arch;
    int32_t n_embd, n_vocab, n_layer, n_ctx_train;
    hl_kv_params kv;          /* the pool's shape (n_blocks, block_size, type filled by its creator) */
    hl_plan_buf bufs[HL_BUF_COUNT];
    hl_op *ops;               /* owned by the plan */
    int32_t n_ops;
    int32_t *layer_ops;       /* [n_layer + 1]: block l is ops[layer_ops[l] .. layer_ops[l + 1]) */
    size_t weight_bytes;      /* bytes a step reads (decode bandwidth bound) */
    int embedding;            /* 1: the output rows (HL_BUF_LOGITS) are hidden states of n_embd
                                 floats, not logits (an embedding model: no logits matmul) */
} hl_plan;

const char *hl_op_name(hl_op_kind k);   /* "matmul" */
/* Why a MOE op is malformed (counts out of range, a tensor missing, shapes or
 * biases that do not match the op, an activation or gating no backend has),
 * or NULL: what every backend checks before its own weight types. */
const char *hl_moe_op_malformed(const hl_op *op);
const char *hl_buf_name(hl_buf_id b);   /* "attn_in" */

/* ---- the interface ---- */

typedef struct hl_backend hl_backend;
typedef struct hl_backend_prog hl_backend_prog; /* a backend's compiled plan + weights + scratch */

typedef struct hl_backend_mem {
    size_t weights;   /* bytes of weights the backend holds itself (0 when it reads the mapping) */
    size_t scratch;   /* activation buffers */
    size_t kv;        /* KV pools it allocated */
    const char *where; /* "host" or a device's name */
    size_t free;       /* device memory the backend may still take (its share of the free memory); 0 on the host */
} hl_backend_mem;

/* What a step hands a backend besides the batch. A plan is usually the
 * whole model (EMBED first, the output ops last); for partial offload
 * (model/forward.c) it can be a slice of the layers: one that does not start
 * with EMBED starts from x_in, one that another backend continues gives its
 * residual stream back in x_out. */
typedef struct hl_step_io {
    float *logits;     /* logits[r * n_vocab ..] of the r-th token that wants them (plans with the output ops) */
    const float *x_in; /* plans without EMBED: HL_BUF_X [n_tokens][n_embd] to start from */
    float *x_out;      /* non-NULL: HL_BUF_X [n_tokens][n_embd] after the plan's last op */
} hl_step_io;

/* Host buffers for run_op: buf[id] has the plan's width per row, rows =
 * batch->n_tokens (or the wanted rows for per_output buffers). */
typedef struct hl_op_io {
    float *buf[HL_BUF_COUNT];
    const hl_batch *batch;
    hl_kv_cache *kv;  /* KV_STORE and ATTN; from this backend's kv_new */
} hl_op_io;

typedef struct hl_backend_ops {
    const char *name; /* "cpu", "ref" */
    /* 0 when every op and weight type of the plan can run here; else
     * HL_ENOTSUP with a message naming the first op or tensor that cannot. */
    int (*supports)(hl_backend *be, const hl_plan *plan, hl_err *err);
    /* Weight residency and the compiled program for batches of up to
     * max_tokens tokens. The plan (and the tensors it points to) outlives it. */
    int (*prepare)(hl_backend *be, const hl_plan *plan, int32_t max_tokens, hl_backend_prog **out, hl_err *err);
    void (*release)(hl_backend *be, hl_backend_prog *prog);
    /* One step: writes io->logits[r * n_vocab ..] for the r-th token that
     * wants them (and X in/out for a slice of the layers, hl_step_io). The
     * batch has been validated by the caller (model/forward.c). */
    int (*run)(hl_backend *be, hl_backend_prog *prog, hl_kv_cache *kv, const hl_batch *b, const hl_step_io *io,
               hl_err *err);
    /* One op on host buffers (tests: every op against the reference). */
    int (*run_op)(hl_backend *be, const hl_op *op, const hl_op_io *io, hl_err *err);
    /* KV storage: a zeroed pool of p->n_blocks blocks; copy every layer of a
     * block; truncate: positions >= n_keep of the sequence with this block
     * table are dead (cleared, so a rolled-back draft can never be read). */
    int (*kv_new)(hl_backend *be, const hl_kv_params *p, hl_kv_cache **out, hl_err *err);
    void (*kv_free)(hl_backend *be, hl_kv_cache *kv);
    void (*kv_copy_block)(hl_backend *be, hl_kv_cache *kv, int32_t dst, int32_t src);
    void (*kv_truncate)(hl_backend *be, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep);
    void (*memory)(hl_backend *be, const hl_backend_prog *prog, hl_backend_mem *out);
    void (*destroy)(hl_backend *be);
} hl_backend_ops;

/* Every implementation's instance starts with this. */
struct hl_backend {
    const hl_backend_ops *ops;
};

static inline const char *hl_backend_name(const hl_backend *be) { return be->ops->name; }
static inline void hl_backend_free(hl_backend *be) {
    if (be) be->ops->destroy(be);
}

/* Shared by backends that keep KV in host memory (cpu, ref). */
int hl_host_kv_new(const hl_kv_params *p, hl_kv_cache **out, hl_err *err);
void hl_host_kv_truncate(hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks, int32_t n_keep);

/* Bytes of the plan's activation buffers for steps of up to rows tokens
 * (each buffer [rows][width] floats): what a backend's step buffers take. */
static inline size_t hl_plan_buffer_bytes(const hl_plan *p, int32_t rows) {
    size_t n = 0;
    for (int i = 0; i < HL_BUF_COUNT; i++)
        if (p->bufs[i].width > 0) n += (size_t)rows * (size_t)p->bufs[i].width * sizeof(float);
    return n;
}

/* Row width and row count of buffer b for a batch (helpers for run_op users). */
static inline int64_t hl_plan_rows(const hl_plan *p, hl_buf_id b, int32_t n_tokens, int32_t n_wanted) {
    return p->bufs[b].per_output ? n_wanted : n_tokens;
}

#endif
