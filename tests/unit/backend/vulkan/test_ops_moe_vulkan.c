/* The cross-backend MOE cases of tests/unit/backend/ref/test_ops_moe.c on
 * the Vulkan backend (ops_harness.h picks the table): routed experts of
 * every weight type listed there, the gatings, biases, the shared expert
 * and its gate, and the clamped SwiGLU, within test_ops_moe.c's bounds, for
 * batches of 1, 5 and 17; each token of the 17 alone gives the bits it gives
 * in the batch; ties in the router broken as the reference breaks them. */
#define HL_OPS_UNDER_TEST_VULKAN 1
#include "backend/ref/test_ops_moe.c"
