DEPS_cli := runner model backend/cpu tokenizer chat sample gguf quant base
LIBS_cli := -ledit
