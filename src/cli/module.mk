DEPS_cli := store gotmpl runner model backend/cpu tokenizer chat sample gguf quant base
LIBS_cli := -ledit -lsqlite3 -lcurl -lcrypto -ljson-c
