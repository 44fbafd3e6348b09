DEPS_model := backend/vulkan backend/ref backend/cpu backend gguf quant base
LIBS_model :=
