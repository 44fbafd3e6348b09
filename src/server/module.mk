DEPS_server := store runner gotmpl model backend/cpu tokenizer chat sample gguf quant base
LIBS_server := -lmicrohttpd -ljson-c
