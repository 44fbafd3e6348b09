# The Vulkan backend: GLSL compute shaders compiled to SPIR-V with glslc
# (Debian: glslc) and embedded as C arrays of 32-bit words
# (hl_vk_spv_<kernel>, hl_vk_spv_<kernel>_words), added to the module's
# library. The loader is opened at run time (dlopen), so nothing links
# against libvulkan; only its headers (libvulkan-dev) are needed to build.
DEPS_backend/vulkan := backend/ref backend/cpu backend quant base
LIBS_backend/vulkan := -ldl

# kernel name -> shader file and defines (the same names as HL_VK_KERNELS in vk_compute.h)
VK_SHADER_DIR := src/backend/vulkan/shaders
# the activation converters: one source, a define per format
VK_SRC_quant_q8_0 := quant.comp
VK_DEF_quant_q8_0 := -DACT_Q8_0
VK_SRC_quant_q8_1 := quant.comp
VK_DEF_quant_q8_1 := -DACT_Q8_1
VK_SRC_quant_q8_k := quant.comp
VK_DEF_quant_q8_k := -DACT_Q8_K
# the matrix products: one source, a define per weight type
VK_MATMUL_TYPES := f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs mxfp4
VK_SRC_matmul_f32 := matmul.comp
VK_DEF_matmul_f32 := -DTYPE_F32
VK_SRC_matmul_f16 := matmul.comp
VK_DEF_matmul_f16 := -DTYPE_F16
VK_SRC_matmul_bf16 := matmul.comp
VK_DEF_matmul_bf16 := -DTYPE_BF16
VK_SRC_matmul_q4_0 := matmul.comp
VK_DEF_matmul_q4_0 := -DTYPE_Q4_0
VK_SRC_matmul_q4_1 := matmul.comp
VK_DEF_matmul_q4_1 := -DTYPE_Q4_1
VK_SRC_matmul_q5_0 := matmul.comp
VK_DEF_matmul_q5_0 := -DTYPE_Q5_0
VK_SRC_matmul_q5_1 := matmul.comp
VK_DEF_matmul_q5_1 := -DTYPE_Q5_1
VK_SRC_matmul_q8_0 := matmul.comp
VK_DEF_matmul_q8_0 := -DTYPE_Q8_0
VK_SRC_matmul_q2_k := matmul.comp
VK_DEF_matmul_q2_k := -DTYPE_Q2_K
VK_SRC_matmul_q3_k := matmul.comp
VK_DEF_matmul_q3_k := -DTYPE_Q3_K
VK_SRC_matmul_q4_k := matmul.comp
VK_DEF_matmul_q4_k := -DTYPE_Q4_K
VK_SRC_matmul_q5_k := matmul.comp
VK_DEF_matmul_q5_k := -DTYPE_Q5_K
VK_SRC_matmul_q6_k := matmul.comp
VK_DEF_matmul_q6_k := -DTYPE_Q6_K
VK_SRC_matmul_iq4_nl := matmul.comp
VK_DEF_matmul_iq4_nl := -DTYPE_IQ4_NL
VK_SRC_matmul_iq4_xs := matmul.comp
VK_DEF_matmul_iq4_xs := -DTYPE_IQ4_XS
VK_SRC_matmul_mxfp4 := matmul.comp
VK_DEF_matmul_mxfp4 := -DTYPE_MXFP4
# the subgroup matrix products (matvec.comp), one for every matmul type;
# vk_compute.c takes them instead of matmul_<type> where the device has
# subgroup arithmetic (the same names as HL_VK_MATVEC in vk_compute.h), and
# for the quantized types the -DINT_DOT builds (matvec_dot_<type>) where it
# also has integer dot products (HL_VK_MATVEC_QUANT)
VK_MATVEC_TYPES := $(VK_MATMUL_TYPES)
VK_MATVEC_DOT_TYPES := q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs mxfp4
$(foreach t,$(VK_MATVEC_TYPES),$(eval VK_SRC_matvec_$(t) := matvec.comp)$(eval VK_DEF_matvec_$(t) := $(VK_DEF_matmul_$(t))))
$(foreach t,$(VK_MATVEC_DOT_TYPES),$(eval VK_SRC_matvec_dot_$(t) := matvec.comp)$(eval VK_DEF_matvec_dot_$(t) := $(VK_DEF_matmul_$(t)) -DINT_DOT))
# the routed experts' products (HL_OP_MOE): matmul.comp and matvec.comp
# with -DMOE, a weight slice and an activation row per output row from an
# index list (moe_matvec_<type> replaces moe_matmul_<type> as matvec_ does)
$(foreach t,$(VK_MATMUL_TYPES),$(eval VK_SRC_moe_matmul_$(t) := matmul.comp)$(eval VK_DEF_moe_matmul_$(t) := $(VK_DEF_matmul_$(t)) -DMOE))
$(foreach t,$(VK_MATVEC_TYPES),$(eval VK_SRC_moe_matvec_$(t) := matvec.comp)$(eval VK_DEF_moe_matvec_$(t) := $(VK_DEF_matvec_$(t)) -DMOE))
$(foreach t,$(VK_MATVEC_DOT_TYPES),$(eval VK_SRC_moe_matvec_dot_$(t) := matvec.comp)$(eval VK_DEF_moe_matvec_dot_$(t) := $(VK_DEF_matvec_dot_$(t)) -DMOE))
VK_SRC_moe_gate    := moe_gate.comp
VK_SRC_elementwise := elementwise.comp
VK_SRC_norm        := norm.comp
VK_SRC_rope        := rope.comp
VK_SRC_gather      := gather.comp
VK_SRC_kv_store_f16  := kv_store.comp
VK_DEF_kv_store_f16  := -DKV_F16
VK_SRC_kv_store_q8_0 := kv_store.comp
VK_DEF_kv_store_q8_0 := -DKV_Q8_0
VK_SRC_attn_f16    := attn.comp
VK_DEF_attn_f16    := -DKV_F16
VK_SRC_attn_q8_0   := attn.comp
VK_DEF_attn_q8_0   := -DKV_Q8_0
VK_SRC_attn_combine := attn_combine.comp
VK_SHADERS := quant_q8_0 quant_q8_1 quant_q8_k $(addprefix matmul_,$(VK_MATMUL_TYPES)) $(addprefix matvec_,$(VK_MATVEC_TYPES)) \
              $(addprefix moe_matmul_,$(VK_MATMUL_TYPES)) $(addprefix moe_matvec_,$(VK_MATVEC_TYPES)) \
              $(addprefix matvec_dot_,$(VK_MATVEC_DOT_TYPES)) $(addprefix moe_matvec_dot_,$(VK_MATVEC_DOT_TYPES)) moe_gate elementwise norm rope gather \
              kv_store_f16 kv_store_q8_0 attn_f16 attn_q8_0 attn_combine

GLSLC ?= glslc
VK_GEN := $(BUILD)/gen/backend/vulkan
EXTRA_OBJS_backend/vulkan := $(patsubst %,$(BUILD)/obj/gen/vk_spv_%.o,$(VK_SHADERS))

define vk_shader_rules
$(VK_GEN)/$(1).spv: $(VK_SHADER_DIR)/$(VK_SRC_$(1)) $(wildcard $(VK_SHADER_DIR)/*.glsl)
	@mkdir -p $$(@D)
	$(GLSLC) --target-env=vulkan1.2 -O $(VK_DEF_$(1)) -I$(VK_SHADER_DIR) -o $$@ $$<
$(VK_GEN)/vk_spv_$(1).c: $(VK_GEN)/$(1).spv
	@{ echo '/* generated from $(VK_SRC_$(1)) $(VK_DEF_$(1)) by module.mk: do not edit */'; \
	   echo '#include <stdint.h>'; \
	   echo 'const uint32_t hl_vk_spv_$(1)[] = {'; \
	   od -An -v -tx4 $$< | sed 's/\([0-9a-f]\{8\}\)/0x\1u,/g'; \
	   echo '};'; \
	   echo "const uint32_t hl_vk_spv_$(1)_words = sizeof hl_vk_spv_$(1) / sizeof hl_vk_spv_$(1)[0];"; } > $$@
$(BUILD)/obj/gen/vk_spv_$(1).o: $(VK_GEN)/vk_spv_$(1).c
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) -c -o $$@ $$<
endef
$(foreach s,$(VK_SHADERS),$(eval $(call vk_shader_rules,$(s))))
