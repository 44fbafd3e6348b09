# HyperLlama build: one static library per module under src/, one binary
# (hyperlama), unit tests that mirror the source tree (tests/unit/<module>/test_*.c)
# and libFuzzer targets (fuzz/<module>/fuzz_*.c).
#
#   make                      release build of build/release/hyperlama
#   make tests                every unit-test binary
#   make MODE=asan tests      the same under ASan + UBSan
#   make MODE=fuzz fuzz       fuzz targets (clang + libFuzzer)
#   make benches              benchmark drivers (bench/<module>/bench_*.c)
#
# A module declares what it links against in src/<module>/module.mk:
#   DEPS_<module> := the modules it uses, in link order (users before used)
#   LIBS_<module> := external libraries (-lpcre2-8 ...)
# Kernels for one instruction set live in files named *_avx2.c / *_avx512.c and
# are compiled with that ISA's flags only; everything else stays portable, and
# the choice is made at run time.

.DEFAULT_GOAL := all

MODE   ?= release
BUILD  := build/$(MODE)
WERROR ?= 1
CC     ?= cc
ifeq ($(MODE),fuzz)
CC     := clang
endif

MODULES := base gguf quant tokenizer chat gotmpl sample grammar backend backend/cpu backend/ref backend/vulkan model runner store server cli

CPPFLAGS := -Isrc -Iinclude -Itests/unit -D_GNU_SOURCE -MMD -MP
CFLAGS   := -std=c17 -g -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-format-truncation -pthread -fno-strict-aliasing
LDFLAGS  := -pthread
ifeq ($(WERROR),1)
CFLAGS += -Werror
endif
ifeq ($(MODE),fuzz)
CFLAGS := $(filter-out -Wno-format-truncation,$(CFLAGS))
endif
ifeq ($(MODE),release)
CFLAGS += -O2 -DNDEBUG_FAST
else ifeq ($(MODE),asan)
CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(MODE),debug)
CFLAGS += -O0
else ifeq ($(MODE),fuzz)
CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
$(error unknown MODE=$(MODE): use release, asan, debug or fuzz)
endif

ISA_avx2   := -mavx2 -mfma -mf16c -mbmi2
ISA_avx512 := -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

-include $(wildcard src/*/module.mk src/*/*/module.mk)

lib_of   = $(BUILD)/lib/libhl_$(subst /,_,$(1)).a
mod_srcs = $(wildcard src/$(1)/*.c)
# the libraries (ours, then external) a module links against
link_libs = $(foreach m,$(1) $(DEPS_$(1)),$(if $(call mod_srcs,$(m)),$(call lib_of,$(m))))
ext_libs  = $(sort $(foreach m,$(1) $(DEPS_$(1)),$(LIBS_$(m)))) -lm

.PHONY: all tests benches fuzz clean
all: $(BUILD)/hyperlama

# ---- objects -------------------------------------------------------------
$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(ISA_avx2) -c -o $@ $<
$(BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(ISA_avx512) -c -o $@ $<
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# ---- one static library per module --------------------------------------
define module_rules
$(call lib_of,$(1)): $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out src/cli/main.c,$(call mod_srcs,$(1)))) $(EXTRA_OBJS_$(1))
	@mkdir -p $$(@D)
	rm -f $$@ && $$(AR) rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(if $(call mod_srcs,$(m)),$(eval $(call module_rules,$(m)))))

# ---- the program -----------------------------------------------------------
$(BUILD)/hyperlama: $(BUILD)/obj/src/cli/main.o $(call link_libs,cli)
	$(CC) $(LDFLAGS) -o $@ $^ $(call ext_libs,cli)

# ---- unit tests: tests/unit/<module>/test_*.c ----------------------------
HARNESS := $(BUILD)/obj/tests/unit/harness.o
define test_rules
$(BUILD)/tests/$(2)/$(basename $(notdir $(1))): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) $(HARNESS) $(call link_libs,$(2))
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(call ext_libs,$(2))
TEST_BINS += $(BUILD)/tests/$(2)/$(basename $(notdir $(1)))
endef
$(foreach m,$(MODULES),$(foreach t,$(wildcard tests/unit/$(m)/test_*.c),$(eval $(call test_rules,$(t),$(m)))))
# tools for the Python tests, not tests: tests/unit/<module>/dump_*.c (own main)
define tool_rules
$(BUILD)/tools/$(basename $(notdir $(1))): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) $(call link_libs,$(2))
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(call ext_libs,$(2))
TOOL_BINS += $(BUILD)/tools/$(basename $(notdir $(1)))
endef
$(foreach m,$(MODULES),$(foreach t,$(wildcard tests/unit/$(m)/dump_*.c),$(eval $(call tool_rules,$(t),$(m)))))
tests: $(TEST_BINS) $(TOOL_BINS)

# ---- benchmark drivers: bench/<module>/bench_*.c (own main) ----------------
define bench_rules
$(BUILD)/bench/$(basename $(notdir $(1))): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) $(call link_libs,$(2))
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(call ext_libs,$(2))
BENCH_BINS += $(BUILD)/bench/$(basename $(notdir $(1)))
endef
$(foreach m,$(MODULES),$(foreach t,$(wildcard bench/$(m)/bench_*.c),$(eval $(call bench_rules,$(t),$(m)))))
benches: $(BENCH_BINS)

# ---- fuzz targets: fuzz/<module>/fuzz_*.c (MODE=fuzz) ---------------------
define fuzz_rules
$(BUILD)/fuzz/$(basename $(notdir $(1))): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) $(call link_libs,$(2))
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(call ext_libs,$(2))
FUZZ_BINS += $(BUILD)/fuzz/$(basename $(notdir $(1)))
endef
$(foreach m,$(MODULES),$(foreach t,$(wildcard fuzz/$(m)/fuzz_*.c),$(eval $(call fuzz_rules,$(t),$(m)))))
fuzz: $(FUZZ_BINS)

clean:
	rm -rf build

-include $(shell find build/$(MODE)/obj -name '*.d' 2>/dev/null)
