DEPS_sample := base
LIBS_sample :=
