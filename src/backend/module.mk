DEPS_backend := quant base
LIBS_backend :=
