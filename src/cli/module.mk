DEPS_cli := server store gotmpl runner model backend/cpu tokenizer chat sample gguf quant base
LIBS_cli := -ledit -lmicrohttpd -lsqlite3 -lcurl -lcrypto -ljson-c
