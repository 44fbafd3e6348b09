DEPS_cli := server store runner gotmpl model backend/vulkan backend/ref backend/cpu backend grammar tokenizer chat sample gguf quant base
LIBS_cli := -ledit -lmicrohttpd -lsqlite3 -lcurl -lcrypto -ljson-c
