/* Internals of the reference backend shared by ref.c (the hl_backend table:
 * supports, prepare, run, KV, memory) and ref_ops.c (the op kernels): the
 * view of host buffers an op runs on and the scratch it may use. Not for
 * other modules. */
#ifndef HL_BACKEND_REF_IMPL_H
#define HL_BACKEND_REF_IMPL_H

#include "backend/backend.h"

#include <stddef.h>
#include <stdint.h>

/* Scratch one op may need; sized by hl_ref_op_scratch (the maximum over a
 * plan's ops at prepare, or for the one op of a run_op call). */
typedef struct hl_ref_scratch {
    void *xq;        /* converted activation rows of one matmul */
    size_t xq_bytes;
    float *row;      /* one K or V row read back from the pool: [max head dim] */
    double *acc;     /* one head's value accumulator: [max head dim] */
    int64_t row_n;   /* elements of row and acc */
} hl_ref_scratch;

/* What an op runs on: host buffers [rows][width] (width = the op's n_in /
 * n_out, see ref_ops.c), which of them have one row per wanted token, the
 * batch and the pool. */
typedef struct hl_ref_io {
    float *buf[HL_BUF_COUNT];
    int per_output[HL_BUF_COUNT];
    const hl_batch *batch;
    int32_t n_wanted; /* tokens of the batch with logits != 0 */
    hl_kv_cache *kv;
} hl_ref_io;

/* Scratch op needs for `rows` batch rows (adds to *xq_bytes / *row_n as maxima). */
void hl_ref_op_scratch(const hl_op *op, int64_t rows, size_t *xq_bytes, int64_t *row_n);
/* Runs one op; every check of the batch against the pool (token ids, block
 * tables) happens here, so a bad input is an error, never a wild access. */
int hl_ref_exec(const hl_op *op, const hl_ref_io *io, hl_ref_scratch *s, hl_err *err);
/* One element of a gated unit, in double: act(gate) * up, or for
 * HL_ACT_SWIGLU_CLAMP gpt-oss's (clamp(up) + 1) * g * sigmoid(alpha * g),
 * g = min(gate, limit). The GLU op's definition, for any op with a GLU. */
double hl_ref_glu(hl_act a, double alpha, double limit, double gate, double up);

#endif
