DEPS_gotmpl := base
LIBS_gotmpl := -ljson-c
