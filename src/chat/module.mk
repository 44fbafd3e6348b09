DEPS_chat := base
LIBS_chat := -ljson-c
