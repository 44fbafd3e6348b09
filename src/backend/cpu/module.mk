DEPS_backend/cpu := quant base
LIBS_backend/cpu :=
