DEPS_base :=
LIBS_base :=
