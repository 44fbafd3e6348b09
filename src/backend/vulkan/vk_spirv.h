/* What a kernel's SPIR-V says about its storage buffers: which bindings it
 * may write. The run's barriers (vk_compute.c) come from this, so a kernel
 * declares its outputs in one place, its own GLSL (`readonly` on what it only
 * reads), and nothing else has to list them.
 *
 * The reader walks the module's annotation and type instructions (SPIR-V
 * 1.x, section 2.3 "Physical Layout"): OpDecorate Binding / NonWritable on
 * the variables, OpMemberDecorate NonWritable on their block types,
 * OpTypePointer and OpVariable to join the two. A binding is read-only when
 * its variable or every member of its block is NonWritable. */
#ifndef HL_BACKEND_VULKAN_VK_SPIRV_H
#define HL_BACKEND_VULKAN_VK_SPIRV_H

#include <stddef.h>
#include <stdint.h>

/* Bit j set: the module declares a storage buffer at binding j (< 32) of set
 * 0 that it may write. A module the reader cannot follow (bad magic, an
 * instruction running past the end) gets every bit set, the safe answer. */
uint32_t hl_vk_spirv_written_bindings(const uint32_t *code, size_t words);

#endif
