DEPS_runner := model backend/cpu tokenizer chat gotmpl sample gguf quant base
LIBS_runner := -lxxhash -ljson-c
