/* AVX2 kernel table (placeholder until the SIMD kernels land). */
#include "backend/cpu/cpu_impl.h"

void hl_cpu_kernels_init_avx2(hl_cpu_kernels *kt) { kt->level = HL_SIMD_AVX2; }
