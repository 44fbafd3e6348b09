/* The model: architectures, weight binding, the layer plan, and the forward
 * pass on a backend.
 *
 * hl_model_load opens a GGUF file, reads the hyperparameters of its
 * architecture (general.architecture picks a description from the registry in
 * arch.c: llama, qwen2, qwen3, gemma3) and binds every tensor the architecture
 * needs, checking presence, element type and exact shape once. Weights stay
 * in the read-only mapping. Then plan.c compiles the model into its layer
 * plan (backend/backend.h): per block an ordered list of ops over named
 * buffers. A loaded model is immutable and may be shared by any number of
 * threads. Adding an architecture = one arch_<name>.c filling an hl_arch
 * (model_impl.h: tensor table with symbolic shapes, rope style, activation,
 * embedding scale, sliding-window pattern) + one line in arch.c; the plan
 * already expresses QKV biases, per-head q/k norms, post-attention and
 * post-FFN norms, GELU or SiLU, tied output, sliding windows, and a new op
 * kind is a plan op plus its kernels in each backend.
 *
 * Running it: open a backend (hl_backend_open: "cpu" on the process's thread
 * pool, or "ref", the scalar reference), bind the model to it
 * (hl_forward_ctx_new: the backend refuses a plan it cannot run, naming the
 * op or tensor), create KV storage through it, and run steps.
 *
 * One forward step (hl_model_forward) processes an hl_batch: a flat list of
 * tokens, each with its position, the index of its sequence in the batch's
 * sequence list, and whether its logits are wanted. Prefill chunks and single
 * decode tokens of several sequences mix freely, in any order. Every token's
 * K/V is written to its slot in the paged pool through its sequence's block
 * table, then each token attends causally to positions 0..pos of its own
 * sequence (the last n_swa of them in sliding-window layers); every earlier
 * position must already be in the pool (from an earlier step, or earlier in
 * this batch). Logits are written densely, in batch order, for the tokens
 * that want them: logits[i * n_vocab ...] for the i-th wanting token.
 * Speculative verification is just a batch of several tokens of one sequence
 * with logits wanted for each; rejected positions are then truncated
 * (hl_forward_kv_truncate).
 *
 * Results for one sequence do not depend on what else is in the batch nor on
 * the number of threads (tests/unit/model checks both on the CPU backend,
 * and tests/unit/model/test_backends.c compares backends). The model knows
 * nothing of tokenizers or chat templates; the runner loads those from the
 * same file through hl_model_gguf(). */
#ifndef HL_MODEL_H
#define HL_MODEL_H

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "base/err.h"
#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hl_model hl_model;
typedef struct hl_forward_ctx hl_forward_ctx;

/* How an embedding model turns the hidden states of a sequence into one
 * vector (<arch>.pooling_type; the GGUF values). */
typedef enum hl_pooling {
    HL_POOLING_NONE = 0, /* one vector per token: no sequence embedding */
    HL_POOLING_MEAN = 1, /* mean over the sequence's tokens */
    HL_POOLING_CLS = 2,  /* the first token's */
    HL_POOLING_LAST = 3, /* the last token's (decoders used as embedders) */
} hl_pooling;

/* Hyperparameters, from the GGUF keys <arch>.*; filled at load, then constant. */
typedef struct hl_hparams {
    char arch[32];          /* general.architecture */
    char name[128];         /* general.name (may be empty) */
    int32_t n_vocab;        /* rows of token_embd.weight */
    int32_t n_ctx_train;    /* <arch>.context_length */
    int32_t n_embd;         /* <arch>.embedding_length: residual stream width */
    int32_t n_layer;        /* <arch>.block_count */
    int32_t n_ff;           /* <arch>.feed_forward_length */
    int32_t n_head;         /* <arch>.attention.head_count */
    int32_t n_head_kv;      /* <arch>.attention.head_count_kv (GQA; = n_head without it) */
    int32_t head_dim_k;     /* <arch>.attention.key_length (default n_embd / n_head) */
    int32_t head_dim_v;     /* <arch>.attention.value_length (default head_dim_k) */
    int32_t n_rot;          /* <arch>.rope.dimension_count: leading dims of a head that rotate */
    float norm_eps;         /* <arch>.attention.layer_norm_rms_epsilon */
    float rope_freq_base;   /* <arch>.rope.freq_base (default 10000) */
    float rope_freq_scale;  /* 1 / <arch>.rope.scaling.factor for linear scaling, else 1 */
    float attn_scale;       /* multiplies q.k: 1/sqrt(head_dim_k) unless the arch says otherwise */
    float embd_scale;       /* multiplies embedding rows: 1, or sqrt(n_embd) (gemma) */
    hl_rope_style rope_style;
    hl_act act;
    int has_rope_freqs;     /* rope_freqs.weight present: per-frequency divisors (Llama 3 scaling) */
    int tied_output;        /* no output.weight: logits use token_embd.weight */
    int32_t n_swa;          /* <arch>.attention.sliding_window: window of local layers (0 = none) */
    float rope_freq_base_swa; /* rope base of sliding-window layers (gemma3: 10000) */
    float attn_softcap;     /* <arch>.attn_logit_softcapping: > 0 caps attention scores (gemma2) */
    float final_softcap;    /* <arch>.final_logit_softcapping: > 0 caps the logits (gemma2) */
    float rope_attn_factor; /* <arch>.rope.scaling.attn_factor (LongRoPE's magnitude scaling; default 1) */
    float rope_mscale;      /* 0, or what ROPE multiplies the rotated dims by (phi3, partial rotary) */
    float residual_scale;   /* <arch>.residual_scale: 0, or what each branch is multiplied by (granite) */
    float logit_scale;      /* <arch>.logit_scale: 0, or what the logits are divided by (granite) */
    int rope_longrope;      /* rope.scaling.type longrope / su: frequencies from rope_factors_short.weight */
    int32_t rope_long_after; /* rope.scaling.original_context_length (not yarn; 0: absent): with
                                rope_factors_long.weight (phi3's LongRoPE), a context beyond it
                                rotates by the long factors (hl_model_plan_for) */
    /* rope.scaling.type yarn: the frequencies blend interpolated (/ factor)
     * and original ones along a ramp between the dims that rotate beta_fast
     * and beta_slow times over the original context; rotated dims scaled by
     * (0.1 ln factor + 1) * yarn_attn_factor * attn_factor (model/load.c) */
    int rope_yarn;
    float rope_yarn_factor;    /* rope.scaling.factor */
    int32_t rope_yarn_orig_ctx; /* rope.scaling.original_context_length */
    float rope_yarn_beta_fast, rope_yarn_beta_slow; /* rope.scaling.yarn_beta_fast / _slow (32, 1) */
    float rope_yarn_attn_factor; /* rope.scaling.yarn_attn_factor (1) */
    /* Embedding models: an encoder (bert, nomic-bert), or a decoder whose file
     * names a pooling type (qwen3-embedding). The forward pass then writes the
     * final hidden states (after the output norm, if any) of the wanted
     * tokens, n_embd floats each, instead of logits; nothing is generated. */
    int embedding;
    hl_pooling pooling;     /* <arch>.pooling_type (encoders: mean when absent) */
    int causal;             /* 0: bidirectional attention over the whole input (encoders) */
    /* mixture of experts (0 when dense) */
    int32_t n_expert;       /* <arch>.expert_count */
    int32_t n_expert_used;  /* <arch>.expert_used_count */
    int32_t n_ff_exp;       /* <arch>.expert_feed_forward_length (default n_ff) */
    int32_t n_ff_shexp;     /* <arch>.expert_shared_feed_forward_length (0: no shared expert) */
} hl_hparams;

/* ---- lifecycle ---- */
/* Loads path; on failure *out is NULL and err says what is wrong with the
 * file ("tensor blk.3.attn_q.weight has shape [576, 512], expected [576, 576]",
 * "unsupported architecture 'mamba' (supported: llama, qwen2)"). */
int hl_model_load(hl_model **out, const char *path, hl_err *err);
/* Same, from an already opened file; the model takes ownership of f (it is
 * closed by hl_model_free, or on failure). */
int hl_model_load_gguf(hl_model **out, gguf_file *f, hl_err *err);
void hl_model_free(hl_model *m);

/* ---- inspection ---- */
const hl_hparams *hl_model_hparams(const hl_model *m);
/* The open file (borrowed, lives as long as the model): tokenizer and chat
 * template metadata are read from it by the runner. */
const gguf_file *hl_model_gguf(const hl_model *m);
/* Bytes of weights the forward pass reads per step (decode bandwidth bound):
 * every matmul weight and vector, not the embedding table unless it is tied
 * to the output (only looked-up rows of it are read). */
size_t hl_model_weight_bytes(const hl_model *m);
/* Comma-separated list of supported architecture names (static string). */
const char *hl_model_supported_archs(void);

/* KV pool shape for this model (n_blocks, block_size 0 = default). */
hl_kv_params hl_model_kv_params(const hl_model *m, int32_t n_blocks, int32_t block_size);

/* The backend-neutral layer plan compiled from the architecture at load
 * (backend/backend.h describes its ops and buffers); borrowed, lives as long
 * as the model. */
const hl_plan *hl_model_plan(const hl_model *m);
/* The plan a forward context serving n_ctx positions runs: LongRoPE's long
 * factors when n_ctx exceeds the original context and the file has them
 * (llama.cpp's choice; transformers switches per sequence length, which
 * agrees for a sequence filling the context), else hl_model_plan. */
const hl_plan *hl_model_plan_for(const hl_model *m, int32_t n_ctx);

/* ---- backends ---- */
/* Opens a backend by name: "cpu" (SIMD kernels on pool, which must be the
 * process's pool), "ref" (the scalar reference, one thread; pool unused),
 * "vulkan" (the GPU with the most memory), "vulkan:N" (Vulkan device N,
 * whatever it is: lavapipe too) or "auto" (the GPU "vulkan" would take,
 * else the CPU). Names are case-sensitive; anything else is HL_EINVAL naming
 * the choices. Same as hl_backend_open_choice with no other setting. */
int hl_backend_open(hl_backend **out, const char *name, hl_pool *pool, hl_err *err);

/* What the settings say about the backend (server/config.c and the CLI's
 * flags read them; nothing below reads the environment). */
typedef struct hl_backend_choice {
    const char *name;           /* as hl_backend_open; NULL = "auto" */
    int vulkan_device;          /* HYPERLAMA_VULKAN_DEVICE: >= 0 the device "auto" / "vulkan" take; -1 none */
    double gpu_memory_fraction; /* engine.gpu_memory_fraction: share of the free device memory a model may
                                   use (weights, buffers, KV); <= 0: HL_GPU_MEMORY_FRACTION_DEFAULT */
} hl_backend_choice;
#define HL_GPU_MEMORY_FRACTION_DEFAULT 0.9
/* As hl_backend_open. When "auto" finds no GPU it opens the CPU backend and
 * writes why into note (one line for the log: "no GPU: ...; running on the
 * CPU"); note is "" otherwise. note may be NULL. */
int hl_backend_open_choice(hl_backend **out, const hl_backend_choice *c, hl_pool *pool, char *note, size_t note_cap,
                           hl_err *err);
/* "auto, cpu, ref, vulkan, vulkan:N" (static string) */
const char *hl_backend_names(void);
/* Whether name is one hl_backend_open knows (settings check it when read). */
int hl_backend_name_valid(const char *name);
/* Whether be computes on a GPU (its memory is not the host's). */
int hl_backend_is_gpu(const hl_backend *be);
/* A GPU backend's device as logs print it ("NVIDIA H200 (discrete, Vulkan 1.3.x, 139.8 GiB,
 * subgroup 32 with arithmetic, fp16, int8, int8 dot, cooperative matrix); matmul: subgroup
 * (32 lanes, 4 rows per work group)"); "" on the host. Borrowed. */
const char *hl_backend_description(const hl_backend *be);

/* ---- the forward pass ---- */
/* The model bound to a backend, for batches of up to max_tokens tokens: the
 * backend checks it can run every op and weight type of the plan (HL_ENOTSUP
 * naming what it lacks), then takes the weights in and prepares its program.
 * One context per engine thread; not shareable. The backend is borrowed. */
int hl_forward_ctx_new(hl_forward_ctx **out, const hl_model *m, hl_backend *be, int32_t max_tokens, hl_err *err);

/* Partial offload (Ollama's num_gpu): the model's layers split between two
 * backends. `be` runs the last n_on_be layers and the output (norm and
 * logits: the largest single matrix, and where llama.cpp and Ollama put
 * them too), `first` the embedding lookup and the layers before them. A
 * step runs the first part, copies the residual stream (n_tokens x n_embd
 * floats: the one transfer per step whichever end is offloaded) and runs
 * the second; each part keeps the KV cache of its own layers in its own
 * backend. n_on_be < 0 or >= n_layer: everything on be (no split); 0:
 * everything on first. */
typedef struct hl_forward_placement {
    hl_backend *be;    /* the last n_on_be layers and the output; required */
    hl_backend *first; /* the embedding and the other layers; NULL: be runs everything */
    int32_t n_on_be;   /* layers on be */
    int32_t n_ctx;     /* the positions the context serves (its KV's): picks the plan (hl_model_plan_for);
                          0: the model's original context */
} hl_forward_placement;
int hl_forward_ctx_new_placed(hl_forward_ctx **out, const hl_model *m, const hl_forward_placement *pl, int32_t max_tokens,
                              hl_err *err);
/* Layers the context runs on a GPU backend, and the bytes of weights those
 * backends hold (for /api/ps size_vram and ps's PROCESSOR column). */
void hl_forward_gpu_share(const hl_forward_ctx *ctx, int32_t *gpu_layers, size_t *gpu_weight_bytes);
void hl_forward_ctx_free(hl_forward_ctx *ctx);
int32_t hl_forward_ctx_max_tokens(const hl_forward_ctx *ctx);
/* "cpu", "vulkan", or "vulkan (12 of 30 layers, the rest on cpu)" */
const char *hl_forward_backend_name(const hl_forward_ctx *ctx);
/* the part with the output's backend (for a split, hl_forward_gpu_share says the rest) */
void hl_forward_memory(const hl_forward_ctx *ctx, hl_backend_mem *out);

/* KV storage for this model on the context's backend: n_blocks blocks of
 * block_size (0 = default) positions, type F16 or Q8_0. */
int hl_forward_kv_new(hl_forward_ctx *ctx, int32_t n_blocks, int32_t block_size, hl_type kv_type, hl_kv_cache **out,
                      hl_err *err);
void hl_forward_kv_free(hl_forward_ctx *ctx, hl_kv_cache *kv);
void hl_forward_kv_copy_block(hl_forward_ctx *ctx, hl_kv_cache *kv, int32_t dst, int32_t src);
/* Positions >= n_keep of the sequence with this block table are dead (a
 * rolled-back draft); the blocks must be the sequence's own. */
void hl_forward_kv_truncate(hl_forward_ctx *ctx, hl_kv_cache *kv, const int32_t *blocks, int32_t n_blocks,
                            int32_t n_keep);

/* Width of one output row of hl_model_forward: n_vocab, or n_embd for an
 * embedding model (hparams.embedding). */
int32_t hl_model_n_out(const hl_model *m);

/* Runs one step. logits: [n_wanted][n_vocab] floats (n_embd hidden-state
 * floats per row for an embedding model: hl_model_n_out), n_wanted = tokens with
 * logits != 0 (may be NULL when n_wanted is 0). Fails with HL_EINVAL for a
 * malformed batch (token id out of range, position outside the block table,
 * block id outside the pool, bad sequence index) and HL_ERANGE when the batch
 * exceeds the context's max_tokens; nothing is written to the pool then.
 * Allocates nothing. */
int hl_model_forward(hl_forward_ctx *ctx, hl_kv_cache *kv, const hl_batch *batch, float *logits, hl_err *err);

#endif
