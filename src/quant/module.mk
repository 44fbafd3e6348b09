DEPS_quant := base
LIBS_quant :=
