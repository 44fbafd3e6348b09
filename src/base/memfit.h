/* The one wording of "this does not fit in memory": what a model needs
 * (weights, KV cache for a context, buffers), how much there is, and what to
 * try. The CLI's fit check (cli/memfit.c: system memory, before loading) and
 * the GPU backends (device memory, when weights or a KV pool are placed)
 * both refuse through it, so a user reads the same sentence whichever memory
 * ran out. Pure formatting: nothing here measures memory. */
#ifndef HL_BASE_MEMFIT_H
#define HL_BASE_MEMFIT_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hl_mem_need {
    int64_t weights, kv, overhead; /* bytes of each part (0: not part of this need) */
    int64_t ctx;                   /* tokens the KV cache is for (0: no KV part) */
    int64_t need;                  /* the sum */
    int64_t avail;                 /* what there is; -1 unknown */
} hl_mem_need;

/* Binary units with one decimal ("1.3 GiB", "80.0 KiB"), as free(1) counts. */
void hl_mem_bytes(int64_t b, char *out, size_t cap);
/* "X (W of weights + K of KV cache for a N-token context + B of buffers)" (parts that are 0 left out) */
void hl_mem_need_text(const hl_mem_need *n, char *out, size_t cap);
/* HL_ENOMEM: "model requires more <memory> (<need text>) than is available
 * (<avail>[, <avail_note>]). Try <try_text>". avail_note may be NULL. */
int hl_mem_refuse(hl_err *err, const char *memory, const hl_mem_need *n, const char *avail_note, const char *try_text);

#endif
