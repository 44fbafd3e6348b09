DEPS_grammar := tokenizer sample gguf quant base
LIBS_grammar := -ljson-c -lpcre2-8 -lutf8proc
