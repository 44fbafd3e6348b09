DEPS_runner := model backend/vulkan backend/ref backend/cpu backend tokenizer chat gotmpl sample gguf quant base
LIBS_runner := -lxxhash -ljson-c
