/* The cross-backend op cases of tests/unit/backend/ref/test_ops.c, run on
 * the Vulkan backend instead of the CPU's (ops_harness.h picks the table):
 * every case of an op and weight type with a kernel is compared with the
 * reference within test_ops.c's stated bounds; weight types without a
 * kernel yet are printed as "not supported" and counted (the backend's
 * supports() refuses plans that need them). test_vk_matmul.c adds the
 * matrix products' shape classes and batch invariance. */
#define HL_OPS_UNDER_TEST_VULKAN 1
#include "backend/ref/test_ops.c"
