/* AVX2 K-quant kernels (placeholder). */
#include "backend/cpu/cpu_impl.h"
void hl_avx2_init_kquants(hl_cpu_kernels *kt) { (void)kt; }
