/* Internals shared by the quant module's files (not part of its interface):
 * the Q4_K/Q5_K scale packing, used by both directions, and the K-quant
 * quantizers that hl_quantize dispatches to. */
#ifndef HL_QUANT_IMPL_H
#define HL_QUANT_IMPL_H

#include <stdint.h>

/* K-quant quantizers over nb super-blocks of 256 floats (quant_kquant.c). */
void hl_quantize_q2_K(const float *x, void *dst, int64_t nb);
void hl_quantize_q3_K(const float *x, void *dst, int64_t nb);
void hl_quantize_q4_K(const float *x, void *dst, int64_t nb);
void hl_quantize_q5_K(const float *x, void *dst, int64_t nb);
void hl_quantize_q6_K(const float *x, void *dst, int64_t nb);

/* Sub-block j's (0..7) 6-bit scale and min from the 12 packed bytes. */
void hl_q4_K_get_scale_min(const uint8_t *sc, int j, uint8_t *s, uint8_t *m);

#endif
