DEPS_tokenizer := gguf quant base
LIBS_tokenizer := -lpcre2-8 -lutf8proc
