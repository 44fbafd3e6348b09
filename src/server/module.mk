DEPS_server := store runner gotmpl model backend/vulkan backend/ref backend/cpu backend grammar tokenizer chat sample gguf quant base
LIBS_server := -lmicrohttpd -ljson-c
