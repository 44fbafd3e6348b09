/* The type traits table (name, block length, block bytes, what we can convert)
 * for every GGML type id a GGUF file may carry, and the lookups built on it:
 * by id, by name, and the byte size of a row. The conversions themselves live
 * in quant_dequant.c and quant_iquant.c (to f32) and quant_legacy.c / quant_kquant.c (from f32). */
#include "quant/quant.h"

#include <stdint.h>

/* Sizes are the on-disk block sizes GGML defines. Q8_1 is 36 bytes (f16 d and
 * s): gguf-py's table still says 40, from when both were f32, but no file
 * stores Q8_1 (it is an activation format) so only our kernels read it. */
static const hl_type_traits k_traits[HL_TYPE_COUNT] = {
    [HL_TYPE_F32] = {"F32", 1, 4, 0, 1, 1},
    [HL_TYPE_F16] = {"F16", 1, 2, 0, 1, 1},
    [HL_TYPE_Q4_0] = {"Q4_0", HL_QK, sizeof(hl_block_q4_0), 1, 1, 1},
    [HL_TYPE_Q4_1] = {"Q4_1", HL_QK, sizeof(hl_block_q4_1), 1, 1, 1},
    [HL_TYPE_Q5_0] = {"Q5_0", HL_QK, sizeof(hl_block_q5_0), 1, 1, 1},
    [HL_TYPE_Q5_1] = {"Q5_1", HL_QK, sizeof(hl_block_q5_1), 1, 1, 1},
    [HL_TYPE_Q8_0] = {"Q8_0", HL_QK, sizeof(hl_block_q8_0), 1, 1, 1},
    [HL_TYPE_Q8_1] = {"Q8_1", HL_QK, sizeof(hl_block_q8_1), 1, 1, 1},
    [HL_TYPE_Q2_K] = {"Q2_K", HL_QK_K, sizeof(hl_block_q2_K), 1, 1, 1},
    [HL_TYPE_Q3_K] = {"Q3_K", HL_QK_K, sizeof(hl_block_q3_K), 1, 1, 1},
    [HL_TYPE_Q4_K] = {"Q4_K", HL_QK_K, sizeof(hl_block_q4_K), 1, 1, 1},
    [HL_TYPE_Q5_K] = {"Q5_K", HL_QK_K, sizeof(hl_block_q5_K), 1, 1, 1},
    [HL_TYPE_Q6_K] = {"Q6_K", HL_QK_K, sizeof(hl_block_q6_K), 1, 1, 1},
    [HL_TYPE_Q8_K] = {"Q8_K", HL_QK_K, sizeof(hl_block_q8_K), 1, 1, 1},
    [HL_TYPE_IQ2_XXS] = {"IQ2_XXS", HL_QK_K, sizeof(hl_block_iq2_xxs), 1, 1, 0},
    [HL_TYPE_IQ2_XS] = {"IQ2_XS", HL_QK_K, sizeof(hl_block_iq2_xs), 1, 1, 0},
    [HL_TYPE_IQ3_XXS] = {"IQ3_XXS", HL_QK_K, sizeof(hl_block_iq3_xxs), 1, 1, 0},
    [HL_TYPE_IQ1_S] = {"IQ1_S", HL_QK_K, sizeof(hl_block_iq1_s), 1, 1, 0},
    [HL_TYPE_IQ4_NL] = {"IQ4_NL", HL_QK, sizeof(hl_block_iq4_nl), 1, 1, 1},
    [HL_TYPE_IQ3_S] = {"IQ3_S", HL_QK_K, sizeof(hl_block_iq3_s), 1, 1, 0},
    [HL_TYPE_IQ2_S] = {"IQ2_S", HL_QK_K, sizeof(hl_block_iq2_s), 1, 1, 0},
    [HL_TYPE_IQ4_XS] = {"IQ4_XS", HL_QK_K, sizeof(hl_block_iq4_xs), 1, 1, 1},
    [HL_TYPE_I8] = {"I8", 1, 1, 0, 1, 0},
    [HL_TYPE_I16] = {"I16", 1, 2, 0, 1, 0},
    [HL_TYPE_I32] = {"I32", 1, 4, 0, 1, 0},
    [HL_TYPE_I64] = {"I64", 1, 8, 0, 1, 0},
    [HL_TYPE_F64] = {"F64", 1, 8, 0, 1, 0},
    [HL_TYPE_IQ1_M] = {"IQ1_M", HL_QK_K, sizeof(hl_block_iq1_m), 1, 1, 0},
    [HL_TYPE_BF16] = {"BF16", 1, 2, 0, 1, 1},
    [34] = {"TQ1_0", 256, 54, 1, 0, 0},
    [35] = {"TQ2_0", 256, 66, 1, 0, 0},
    [HL_TYPE_MXFP4] = {"MXFP4", HL_QK, sizeof(hl_block_mxfp4), 1, 1, 0},
    [40] = {"NVFP4", 64, 36, 1, 0, 0},
    [41] = {"Q1_0", 128, 18, 1, 0, 0},
};

const hl_type_traits *hl_type_get(int type) {
    if (type < 0 || type >= HL_TYPE_COUNT || !k_traits[type].name) return NULL;
    return &k_traits[type];
}

const char *hl_type_name(int type) {
    const hl_type_traits *t = hl_type_get(type);
    return t ? t->name : "unknown";
}

static int ascii_lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

int hl_type_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < HL_TYPE_COUNT; i++) {
        const char *a = k_traits[i].name, *b = name;
        if (!a) continue;
        while (*a && *b && ascii_lower((unsigned char)*a) == ascii_lower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return i;
    }
    return -1;
}

size_t hl_row_size(hl_type type, int64_t n) {
    const hl_type_traits *t = hl_type_get((int)type);
    if (!t || n < 0 || n % t->blck != 0) return 0;
    uint64_t blocks = (uint64_t)n / t->blck;
    if (blocks > SIZE_MAX / t->size) return 0;
    return (size_t)(blocks * t->size);
}
