DEPS_backend/cpu := backend quant base
LIBS_backend/cpu :=
