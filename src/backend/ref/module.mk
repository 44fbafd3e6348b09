DEPS_backend/ref := backend/cpu backend quant base
LIBS_backend/ref :=
