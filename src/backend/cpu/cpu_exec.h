/* Internals of the CPU backend's executor, shared by cpu_backend.c (the
 * hl_backend table, lowering a plan into a program), cpu_forward.c (the fused
 * step) and cpu_ops.c (ops run one at a time). Nothing outside backend/cpu
 * sees this.
 *
 * Lowering. Each block of the plan is matched against the one op sequence the
 * fused step knows (model/plan.c's block: norm, q/k/v with optional biases and
 * per-head norms, rope, kv store, causal attention with an optional window,
 * output projection, optional post-norm, residual, the same for a gated FFN).
 * A block that matches runs fused: ~7 barriers, work split so that each
 * thread finishes what it started (bias, norm, rope and KV store of its own
 * heads right after their projection; the activation and the down
 * projection's input conversion of its own columns). A block that does not
 * match runs op by op (cpu_ops.c), one stage and barrier each: slower, but
 * any plan made of supported ops runs. Both use the same kernels in the same
 * order per value, so they give the same bits (tests check fused = unfused). */
#ifndef HL_BACKEND_CPU_EXEC_H
#define HL_BACKEND_CPU_EXEC_H

#include "backend/backend.h"
#include "backend/cpu/cpu.h"

#include <stdatomic.h>

#define HL_ATTN_ROWS 256 /* query rows (token x head) per attention tile, at most */
#define CPU_MAX_ROPE_TABLES 4 /* distinct rope frequency tables a fused plan may use */

/* One block in fused form (the tensors of its ops), or fused = 0. */
typedef struct cpu_block {
    int fused;
    const hl_tensor *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *q_norm, *k_norm, *wo, *post_attn_norm;
    const hl_tensor *ffn_norm, *gate, *up, *down, *post_ffn_norm;
    int rope_table; /* index into the program's rope tables */
    int32_t window; /* > 0: sliding window */
    const float *sinks; /* NULL, or [n_head] attention sink logits */
    float eps;
    hl_act act;
} cpu_block;

typedef struct cpu_moe_scratch cpu_moe_scratch;
typedef struct cpu_backend {
    hl_backend base;
    hl_pool *pool;            /* borrowed: the process's pool */
    hl_threads_mode threads;
    int no_fuse;
    _Atomic size_t kv_bytes;  /* pools allocated by kv_new and not yet freed (engines of any thread) */
} cpu_backend;

struct hl_backend_prog {
    const hl_plan *plan;
    cpu_backend *be;
    cpu_block *blocks;        /* [n_layer] */
    int fused_epilogue;       /* gather + output norm + logits matmul in one stage */
    /* dimensions, from the plan's attention ops (fused blocks agree on them) */
    int32_t n_head, n_head_kv, head_dim_k, head_dim_v, n_rot;
    hl_rope_style rope_style;
    float attn_scale;
    int n_rope_tables;
    const double *rope_tables[CPU_MAX_ROPE_TABLES];
    int32_t max_tokens, max_threads;
    /* scratch */
    float *buf[HL_BUF_COUNT]; /* one per plan buffer (LOGITS is the caller's) */
    float *rope_cs[CPU_MAX_ROPE_TABLES]; /* [max_tokens][n_rot / 2][2] cos, sin per token */
    float *attn;              /* [max_threads][attn_floats]: attention tile scratch (attn_tile.c) */
    size_t attn_floats;
    _Atomic int64_t *attn_claim; /* [2 * 8]: attention units claimed so far by the fused blocks of even
                                  * ([0]) and odd ([8]) turn, a cache line apart (cpu_forward.c) */
    void *xq[3];              /* activations converted for a matmul's weight type (see cpu_forward.c) */
    size_t xq_size;
    int32_t *out_row;         /* [max_tokens] dense logits row of each token, or -1 */
    cpu_moe_scratch *moe;     /* scratch of the plan's MOE ops (cpu_moe.c), or NULL */
    size_t scratch_bytes;
    /* per-call state, set before the parallel region */
    const hl_vec_ops *vo;
    hl_kv_cache *kv;
    const hl_batch *batch;
    float *logits;
    int32_t n_wanted;
    int serial;               /* this step runs on the calling thread only (no barriers) */
    int pending_ffn;          /* block whose FFN residual add is still to do, or -1 */
    int32_t attn_turn;        /* fused blocks run so far in this step (each thread's copy counts) */
};

/* cpu_forward.c */
void cpu_step_thread(void *prog, int ith, int nth);
void cpu_sync(hl_backend_prog *c);
void cpu_rope_head(float *x, const float *cs, int32_t n_rot, hl_rope_style style);
void cpu_rope_angles(float *cs, int32_t pos, const double *inv_freq, int32_t half);
void cpu_store_kv_row(hl_kv_cache *kv, int32_t layer, int which, const hl_batch *b, int64_t t, int32_t head,
                      const float *src, int32_t hd, const hl_vec_ops *vo);
void cpu_flush_pending(hl_backend_prog *c, int ith, int nth);
static inline void cpu_split(int64_t n, int ith, int nth, int64_t *i0, int64_t *i1) {
    *i0 = n * ith / nth;
    *i1 = n * (ith + 1) / nth;
}

/* attn_tile.c: attention of one tile of query rows -- tokens [t0, t1) of
 * one sequence (consecutive in the batch) times query heads [h0, h1), all
 * sharing KV head kvh, at most HL_ATTN_ROWS rows -- over the sequence's
 * cached positions (causal: up to each token's own, within the window when
 * window > 0; else up to the sequence's last position in the batch). Scores
 * are capped at softcap * tanh(s / softcap) when softcap > 0; a head's sink
 * logit (sinks[h]) joins its denominator when sinks is set. A row's result
 * does not depend on the tile it is in. scratch: cpu_attn_scratch_floats()
 * floats of this thread's own. */
typedef struct cpu_attn_job {
    hl_kv_cache *kv;
    int32_t layer, kvh;
    const hl_batch *b;
    int64_t t0, t1;
    int32_t h0, h1;
    const float *q;  /* head h of token t at q + t * ldq + h * hdk */
    int64_t ldq;
    float *out;      /* head h of token t at out + t * ldo + h * hdv */
    int64_t ldo;
    int32_t hdk, hdv, window;
    int causal;
    float scale, softcap;
    const float *sinks; /* NULL, or [n_head]: query head h's sink logit joins its softmax's denominator */
} cpu_attn_job;
void cpu_attend_tile(const hl_vec_ops *vo, const cpu_attn_job *job, float *scratch);
size_t cpu_attn_scratch_floats(int32_t hdk, int32_t hdv);
/* End of the tile that starts at token t0: up to max_tokens consecutive
 * tokens of t0's sequence. */
int64_t cpu_attn_tile_end(const hl_batch *b, int64_t t0, int64_t max_tokens);

/* cpu_ops.c: one op over the program's buffers, called by every thread of
 * the region; ends with the op's results visible to all threads. */
void cpu_op_exec(hl_backend_prog *c, const hl_op *op, int ith, int nth);
/* out = the gated unit of gate and up (n elements): silu/gelu(gate) * up
 * through the vector kernels, or gpt-oss's clamped SwiGLU (backend.h); for
 * every op with a GLU (the GLU op, the experts of MOE). */
void cpu_glu(const hl_vec_ops *vo, hl_act act, float alpha, float limit, float *out, const float *gate,
             const float *up, int64_t n);
/* Whether this backend can run op (NULL) or why not (static string). */
const char *cpu_op_unsupported(const hl_op *op);

/* cpu_moe.c: the MOE op. Scratch for ops[0..n_ops) and batches of up to T
 * tokens (*out NULL when n_ops is 0; adds what it took to *bytes); the op,
 * called by every thread of the region, reads x [T][n_in], writes out. */
const char *cpu_moe_unsupported(const hl_op *op);
int cpu_moe_scratch_new(const hl_op *const *ops, int32_t n_ops, int64_t T, cpu_moe_scratch **out, size_t *bytes);
void cpu_moe_scratch_free(cpu_moe_scratch *s);
void cpu_op_moe(hl_backend_prog *c, const hl_op *op, const float *x, float *out, int ith, int nth);

#endif
