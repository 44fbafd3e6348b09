/* The long attention cases of tests/unit/backend/ref/test_ops_attn.c on the
 * Vulkan backend (ops_harness.h picks the table): head dims 64/128/256, GQA
 * 1/4/8, f16 and q8_0 KV, lengths across the kernels' key blocks and
 * 256-position splits, against the reference within that file's bound, and
 * batch invariance bit for bit (whole prompts, chunks, decode alone and
 * beside other sequences: the folding and the split-and-combine paths). */
#define HL_OPS_UNDER_TEST_VULKAN 1
#include "backend/ref/test_ops_attn.c"
