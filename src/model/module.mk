DEPS_model := backend/cpu gguf quant base
LIBS_model :=
