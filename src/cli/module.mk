DEPS_cli := base
LIBS_cli :=
