/* AVX2 vector kernels (placeholder: scalar until written). */
#include "backend/cpu/cpu_impl.h"
void hl_avx2_init_vec(hl_cpu_kernels *kt) { (void)kt; }
