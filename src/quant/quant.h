/* Tensor element types and quantized block formats, as stored in GGUF files.
 *
 * Every type is a sequence of blocks; a block holds `blck` elements in `size`
 * bytes. Row lengths must be a multiple of the block length. Layouts (QK =
 * 32 for the legacy formats, QK_K = 256 for the K-quants; "half" is IEEE f16):
 *
 *   Q4_0  { half d; u8 qs[16]; }                       x = (q - 8) * d
 *   Q4_1  { half d; half m; u8 qs[16]; }               x = q * d + m
 *         (qs[j] low nibble = element j, high nibble = element j + 16)
 *   Q5_0  { half d; u8 qh[4]; u8 qs[16]; }             x = (q - 16) * d
 *   Q5_1  { half d; half m; u8 qh[4]; u8 qs[16]; }     x = q * d + m
 *         (bit j of the little-endian u32 qh is the 5th bit of element j)
 *   Q8_0  { half d; i8 qs[32]; }                       x = q * d
 *   Q8_1  { half d; half s; i8 qs[32]; }               s = d * sum(qs)
 *   Q2_K  { u8 scales[16]; u8 qs[64]; half d; half dmin; }
 *   Q3_K  { u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d; }
 *   Q4_K  { half d; half dmin; u8 scales[12]; u8 qs[128]; }
 *   Q5_K  { half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
 *   Q6_K  { u8 ql[128]; u8 qh[64]; i8 scales[16]; half d; }
 *   Q8_K  { float d; i8 qs[256]; i16 bsums[16]; }      (activations only)
 *
 * The i-quants (quant_iquant.c has each one's element order) and MXFP4:
 *   IQ4_NL  { half d; u8 qs[16]; }          x = d * kv[q], kv the 16 values
 *           of hl_iq4nl_values (-127..113), nibbles ordered as in Q4_0
 *   IQ4_XS  { half d; u16 scales_h; u8 scales_l[4]; u8 qs[128]; }  8 sub-blocks
 *           of 32, 6-bit scale ls (4 low bits in scales_l, 2 high in scales_h):
 *           x = (d * (ls - 32)) * kv[q]
 *   MXFP4   { u8 e; u8 qs[16]; }            x = 2^(e - 128) * v[q], v the
 *           doubled e2m1 values (0, ±1, ±2, ±3, ±4, ±6, ±8, ±12)
 *   IQ2_XXS { half d; u16 qs[32]; }         8 groups of 32: per group 4 grid
 *           indices (bytes) and a u32 of 4 x 7 sign bits + 4-bit scale
 *   IQ2_XS  { half d; u16 qs[32]; u8 scales[8]; }   9-bit index, 7-bit signs
 *   IQ2_S   { half d; u8 qs[64]; u8 qh[8]; u8 scales[8]; }  (qs: 32 index
 *           low bytes, then 32 bytes of sign bits)
 *   IQ3_XXS { half d; u8 qs[96]; }          64 index bytes, then 8 u32 of
 *           signs + scale
 *   IQ3_S   { half d; u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4]; }
 *   IQ1_S   { half d; u8 qs[32]; u16 qh[8]; }         x = dl * (g + delta)
 *   IQ1_M   { u8 qs[32]; u8 qh[16]; u8 scales[8]; }   (d spread over the
 *           top nibbles of the 4 scale words)
 * Their grids are data of the format (quant_iq_tables.c, generated from the
 * gguf package by scripts/gen_iquant_tables.py).
 *
 * This module is the scalar reference ("the oracle"): dequantization that
 * matches the `gguf` Python package bit for bit, and quantization for the types
 * used for activations and for writing test files. SIMD kernels live in
 * backend/cpu and are tested against these functions. */
#ifndef HL_QUANT_H
#define HL_QUANT_H

#include "base/half.h"

#include <stddef.h>
#include <stdint.h>

/* Type ids are GGML's, as written in GGUF tensor infos. */
typedef enum hl_type {
    HL_TYPE_F32 = 0,
    HL_TYPE_F16 = 1,
    HL_TYPE_Q4_0 = 2,
    HL_TYPE_Q4_1 = 3,
    HL_TYPE_Q5_0 = 6,
    HL_TYPE_Q5_1 = 7,
    HL_TYPE_Q8_0 = 8,
    HL_TYPE_Q8_1 = 9,
    HL_TYPE_Q2_K = 10,
    HL_TYPE_Q3_K = 11,
    HL_TYPE_Q4_K = 12,
    HL_TYPE_Q5_K = 13,
    HL_TYPE_Q6_K = 14,
    HL_TYPE_Q8_K = 15,
    HL_TYPE_IQ2_XXS = 16,
    HL_TYPE_IQ2_XS = 17,
    HL_TYPE_IQ3_XXS = 18,
    HL_TYPE_IQ1_S = 19,
    HL_TYPE_IQ4_NL = 20,
    HL_TYPE_IQ3_S = 21,
    HL_TYPE_IQ2_S = 22,
    HL_TYPE_IQ4_XS = 23,
    HL_TYPE_I8 = 24,
    HL_TYPE_I16 = 25,
    HL_TYPE_I32 = 26,
    HL_TYPE_I64 = 27,
    HL_TYPE_F64 = 28,
    HL_TYPE_IQ1_M = 29,
    HL_TYPE_BF16 = 30,
    HL_TYPE_MXFP4 = 39,
    /* Ids 34, 35, 40, 41 (TQ1_0, TQ2_0, NVFP4, Q1_0) have traits
     * (name, block size) so files holding them can be described, but no
     * conversion: hl_type_traits.supported is 0 for them. */
    HL_TYPE_COUNT = 42 /* upper bound (exclusive) of ids we know the name of */
} hl_type;

#define HL_QK 32
#define HL_QK_K 256
#define HL_K_SCALE_SIZE 12

typedef struct { hl_f16 d; uint8_t qs[HL_QK / 2]; } hl_block_q4_0;
typedef struct { hl_f16 d, m; uint8_t qs[HL_QK / 2]; } hl_block_q4_1;
typedef struct { hl_f16 d; uint8_t qh[4]; uint8_t qs[HL_QK / 2]; } hl_block_q5_0;
typedef struct { hl_f16 d, m; uint8_t qh[4]; uint8_t qs[HL_QK / 2]; } hl_block_q5_1;
typedef struct { hl_f16 d; int8_t qs[HL_QK]; } hl_block_q8_0;
typedef struct { hl_f16 d, s; int8_t qs[HL_QK]; } hl_block_q8_1;
typedef struct { uint8_t scales[HL_QK_K / 16]; uint8_t qs[HL_QK_K / 4]; hl_f16 d, dmin; } hl_block_q2_K;
typedef struct { uint8_t hmask[HL_QK_K / 8]; uint8_t qs[HL_QK_K / 4]; uint8_t scales[12]; hl_f16 d; } hl_block_q3_K;
typedef struct { hl_f16 d, dmin; uint8_t scales[HL_K_SCALE_SIZE]; uint8_t qs[HL_QK_K / 2]; } hl_block_q4_K;
typedef struct { hl_f16 d, dmin; uint8_t scales[HL_K_SCALE_SIZE]; uint8_t qh[HL_QK_K / 8]; uint8_t qs[HL_QK_K / 2]; } hl_block_q5_K;
typedef struct { uint8_t ql[HL_QK_K / 2]; uint8_t qh[HL_QK_K / 4]; int8_t scales[HL_QK_K / 16]; hl_f16 d; } hl_block_q6_K;
typedef struct { float d; int8_t qs[HL_QK_K]; int16_t bsums[HL_QK_K / 16]; } hl_block_q8_K;
typedef struct { hl_f16 d; uint8_t qs[HL_QK / 2]; } hl_block_iq4_nl;
typedef struct { hl_f16 d; uint16_t scales_h; uint8_t scales_l[HL_QK_K / 64]; uint8_t qs[HL_QK_K / 2]; } hl_block_iq4_xs;
typedef struct { uint8_t e; uint8_t qs[HL_QK / 2]; } hl_block_mxfp4;
typedef struct { hl_f16 d; uint16_t qs[HL_QK_K / 8]; } hl_block_iq2_xxs;
typedef struct { hl_f16 d; uint16_t qs[HL_QK_K / 8]; uint8_t scales[HL_QK_K / 32]; } hl_block_iq2_xs;
typedef struct { hl_f16 d; uint8_t qs[HL_QK_K / 4]; uint8_t qh[HL_QK_K / 32]; uint8_t scales[HL_QK_K / 32]; } hl_block_iq2_s;
typedef struct { hl_f16 d; uint8_t qs[3 * HL_QK_K / 8]; } hl_block_iq3_xxs;
typedef struct { hl_f16 d; uint8_t qs[HL_QK_K / 4]; uint8_t qh[HL_QK_K / 32]; uint8_t signs[HL_QK_K / 8]; uint8_t scales[HL_QK_K / 64]; } hl_block_iq3_s;
typedef struct { hl_f16 d; uint8_t qs[HL_QK_K / 8]; uint16_t qh[HL_QK_K / 32]; } hl_block_iq1_s;
typedef struct { uint8_t qs[HL_QK_K / 8]; uint8_t qh[HL_QK_K / 16]; uint8_t scales[HL_QK_K / 32]; } hl_block_iq1_m;

_Static_assert(sizeof(hl_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(hl_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(hl_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(hl_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(hl_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(hl_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(hl_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(hl_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(hl_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(hl_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(hl_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(hl_block_q8_K) == 292, "q8_K layout");
_Static_assert(sizeof(hl_block_iq4_nl) == 18, "iq4_nl layout");
_Static_assert(sizeof(hl_block_iq4_xs) == 136, "iq4_xs layout");
_Static_assert(sizeof(hl_block_mxfp4) == 17, "mxfp4 layout");
_Static_assert(sizeof(hl_block_iq2_xxs) == 66, "iq2_xxs layout");
_Static_assert(sizeof(hl_block_iq2_xs) == 74, "iq2_xs layout");
_Static_assert(sizeof(hl_block_iq2_s) == 82, "iq2_s layout");
_Static_assert(sizeof(hl_block_iq3_xxs) == 98, "iq3_xxs layout");
_Static_assert(sizeof(hl_block_iq3_s) == 110, "iq3_s layout");
_Static_assert(sizeof(hl_block_iq1_s) == 50, "iq1_s layout");
_Static_assert(sizeof(hl_block_iq1_m) == 56, "iq1_m layout");

typedef struct hl_type_traits {
    const char *name;   /* "Q4_K", as GGUF tools print it */
    uint32_t blck;      /* elements per block (1 for plain types) */
    uint32_t size;      /* bytes per block */
    int quantized;      /* block-quantized (not a plain number type) */
    int supported;      /* hl_dequantize can convert it */
    int quantizable;    /* hl_quantize can produce it */
} hl_type_traits;

/* NULL for an id we do not know. */
const hl_type_traits *hl_type_get(int type);
const char *hl_type_name(int type); /* "unknown" for unknown ids */
/* Parses a type name as hl_type_name prints it, case-insensitively ("q4_K",
 * "Q8_0", "f16", "bf16"); -1 if unknown. File-type names with a mix suffix
 * ("q4_k_m") are the quantize command's business, not this function's. */
int hl_type_from_name(const char *name);
/* Bytes for a row of n elements; 0 if the type is unknown, n is negative or
 * not a multiple of the block length, or the size would overflow. */
size_t hl_row_size(hl_type type, int64_t n);

/* Dequantizes n elements (a multiple of the block length) from src to f32.
 * Bit-identical to gguf-py's gguf.quants.dequantize (float32 numpy with the
 * same operation order). Supports F32, F16, BF16, F64, I8..I64, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K, every i-quant (IQ1_S, IQ1_M,
 * IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS) and MXFP4. Returns 0, HL_ENOTSUP for a type it
 * cannot convert, HL_EINVAL for a bad n. src must be aligned for the block
 * struct (GGUF tensor data is). */
int hl_dequantize(hl_type type, const void *src, float *dst, int64_t n);

/* Reference quantizers. n must be a multiple of the block length; returns
 * bytes written (hl_row_size), or 0 for an unsupported type or bad n.
 * Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (bit-identical to
 * gguf-py's gguf.quants.quantize), Q8_1 and Q8_K (activations: d = max|x|/127,
 * q = round-half-away(x * (1/d)); Q8_1 s = f16(d * sum q) with the f32 d;
 * Q8_K bsums[k] = sum of q[16k..16k+15]) and Q2_K, Q3_K, Q4_K, Q5_K, Q6_K
 * (scale search by weighted least squares; see quant_kquant.c), IQ4_NL and
 * IQ4_XS (our own scale search, see quant_iq4.c; gguf-py has no quantizer
 * for them). Values must
 * be finite, and small enough that every f16 block scale stays below 65504
 * (|x| up to ~5e5 for Q4_0, far more for Q8_0; Q8_K's scale is f32); as in
 * GGML, larger blocks overflow to inf. Pure functions, no shared state: rows
 * may be quantized from several threads. dst needs the block struct's
 * alignment. */
size_t hl_quantize(hl_type type, const float *src, void *dst, int64_t n);

#endif
