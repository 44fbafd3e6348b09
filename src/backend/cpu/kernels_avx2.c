/* The AVX2 kernel table: every part overrides the scalar entries it
 * accelerates (built once, by cpu.c, only on CPUs with AVX2+FMA+F16C+BMI2). */
#include "backend/cpu/cpu_impl.h"

void hl_cpu_kernels_init_avx2(hl_cpu_kernels *kt) {
    kt->level = HL_SIMD_AVX2;
    hl_avx2_init_act(kt);
    hl_avx2_init_legacy(kt);
    hl_avx2_init_kquants(kt);
    hl_avx2_init_iquants(kt);
    hl_avx2_init_vec(kt);
    hl_avx2_init_attn(kt);
}
