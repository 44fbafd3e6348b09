/* The cross-backend KV cases of tests/unit/backend/ref/test_ops_kv.c on the
 * Vulkan backend (ops_harness.h picks the table): KV_STORE must write the
 * pool's bytes exactly as the reference does (F16 and Q8_0), ATTN (causal,
 * windows, bidirectional, softcap, GQA, both KV types) must match within
 * test_ops_kv.c's bounds, and block copy / truncate act on the device pool
 * through its mapping. */
#define HL_OPS_UNDER_TEST_VULKAN 1
#include "backend/ref/test_ops_kv.c"
