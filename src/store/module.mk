DEPS_store := gotmpl gguf quant base
LIBS_store := -lsqlite3 -lcurl -lcrypto -ljson-c
