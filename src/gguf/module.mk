DEPS_gguf := quant base
LIBS_gguf :=
