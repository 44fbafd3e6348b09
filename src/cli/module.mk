DEPS_cli := server store runner gotmpl model backend/cpu tokenizer chat sample gguf quant base
LIBS_cli := -ledit -lmicrohttpd -lsqlite3 -lcurl -lcrypto -ljson-c
