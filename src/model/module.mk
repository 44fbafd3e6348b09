DEPS_model := backend/ref backend/cpu backend gguf quant base
LIBS_model :=
