# modelgate — GNU make build.
#
#   make                 build everything into build/bin and build/lib
#   make test            unit + integration tests, again under ASan+UBSan,
#                        then every fuzz target for a bounded time
#   make SANITIZE=1 ...  the same targets with ASan+UBSan, in build-asan/
#   make fuzz            the libFuzzer targets (clang), in build-fuzz/
#   make demo            runs what modelgate has so far on loopback (mk/demo.sh)
#   make bench           the benchmarks in bench/, results in bench/RESULTS.md
#   make install PREFIX=/usr/local DESTDIR=
#   make clean
#
# Every target first runs mk/deps.sh, which installs missing Debian packages.

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX  ?= /usr/local
DESTDIR ?=
SANITIZE ?= 0
V ?= 0

ifeq ($(SANITIZE),1)
BUILD   ?= build-asan
OPT     := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
HARDEN  :=
LDSAN   := -fsanitize=address,undefined
else
BUILD   ?= build
OPT     := -O2
HARDEN  := -D_FORTIFY_SOURCE=2
LDSAN   :=
endif
FUZZ_BUILD ?= build-fuzz

CC      ?= cc
ifeq ($(CC),cc)
CC      := gcc
endif
PKGS    := jansson yaml-0.1 libcurl sqlite3 openssl libwebsockets

# Recursive (=) so pkg-config runs only after mk/deps.sh has installed things.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral -Wvla -Wno-unused-parameter
CFLAGS_ALL = -std=gnu11 $(OPT) -g $(WARN) $(HARDEN) -fstack-protector-strong \
           -fPIE -fno-strict-aliasing -pthread -I. $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = -pie -Wl,-z,relro,-z,now -Wl,--as-needed -pthread $(LDSAN) $(LDFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm $(LDLIBS)

ifeq ($(V),0)
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2);
else
Q :=
msg =
endif

# --- sources ---------------------------------------------------------------

LIB_SRC   := $(sort $(wildcard lib/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIBA      := $(BUILD)/lib/libmodelgate.a

# Programs: one folder, one binary. A folder joins the build when its code arrives.
PROG_DIRS := sidecar:modelgate-sidecar operator:modelgate-operator \
             apiserver:modelgate-apiserver tests/modelsim:modelsim
PROGRAMS  :=
define prog_rule
$(2)_SRC := $$(sort $$(wildcard $(1)/*.c))
ifneq ($$($(2)_SRC),)
PROGRAMS += $(BUILD)/bin/$(2)
$(BUILD)/bin/$(2): $$($(2)_SRC:%.c=$(BUILD)/obj/%.o) $(LIBA)
	$$(call msg,LINK,$$@)
	$(Q)mkdir -p $$(@D) && $$(CC) -o $$@ $$^ $$(LDFLAGS_ALL) $$(LDLIBS_ALL)
endif
endef
$(foreach pd,$(PROG_DIRS),$(eval $(call prog_rule,$(word 1,$(subst :, ,$(pd))),$(word 2,$(subst :, ,$(pd))))))

# Single-file test tools (servers and clients the integration tests drive).
TOOL_SRC  := $(sort $(wildcard tests/tools/*.c))
TOOLS     := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/bin/%)

# Unit tests mirror the source tree: tests/unit/lib/test_http1.c tests lib/http1.c.
UNIT_SRC  := $(sort $(shell find tests/unit -name 'test_*.c' 2>/dev/null))
UNITS     := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)

# Benchmarks built from C (bench/*.c); their drivers are scripts.
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES   := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

ALL_OBJ   := $(LIB_OBJ) $(foreach pd,$(PROG_DIRS),$($(word 2,$(subst :, ,$(pd)))_SRC:%.c=$(BUILD)/obj/%.o))

# --- rules -----------------------------------------------------------------

.PHONY: all deps test-deps tests check test fuzz bench demo install clean
all: $(LIBA) $(PROGRAMS)

deps:
	$(Q)mk/deps.sh build

test-deps:
	$(Q)mk/deps.sh build test node

$(BUILD)/obj/%.o: %.c | deps
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)mkdir -p $(@D) && rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/bin/%: tests/tools/%.c $(LIBA) | deps
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) -MMD -MP -o $@ $< $(LIBA) $(LDFLAGS_ALL) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c tests/unit/test.h $(LIBA) | deps
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) -MMD -MP -o $@ $< $(LIBA) $(LDFLAGS_ALL) $(LDLIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(LIBA) | deps
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS_ALL) -MMD -MP -o $@ $< $(LIBA) $(LDFLAGS_ALL) $(LDLIBS_ALL)

tests: all $(TOOLS) $(UNITS) $(BENCHES)

# --- fuzzing (clang + libFuzzer) -------------------------------------------

FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZERS     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIBOBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_CFLAGS = -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter \
              -fsanitize=fuzzer-no-link,address,undefined \
              -fno-sanitize-recover=all -fno-omit-frame-pointer -pthread -I. \
              -DMG_FUZZING $(PKG_CFLAGS)

$(FUZZ_BUILD)/obj/%.o: %.c | test-deps
	$(call msg,CLANG,$<)
	$(Q)mkdir -p $(@D) && clang $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIBOBJ) | test-deps
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D) && clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< \
	    $(FUZZ_LIBOBJ) $(PKG_LIBS) -lm

fuzz: $(FUZZERS)

# --- tests -----------------------------------------------------------------

# FUZZ_SECONDS bounds each fuzz target's run inside `make test`.
FUZZ_SECONDS ?= 15
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: test-deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) tests
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) SANITIZE=1 tests
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) fuzz
	$(Q)tests/run.sh --build build --build build-asan --fuzz $(FUZZ_BUILD) --fuzz-seconds $(FUZZ_SECONDS)

# Only the normal build, no sanitizers, no fuzzing: the quick loop.
check: test-deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) tests
	$(Q)tests/run.sh --build $(BUILD)

demo: all $(BUILD)/bench/ttft
	$(Q)mk/deps.sh build test
	$(Q)mk/demo.sh

bench: all
	$(Q)mk/deps.sh build bench
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)bench/run.sh

# --- install / clean ---------------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/modelgate
	$(if $(PROGRAMS),install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/)
	install -m 0644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 lib/*.h $(DESTDIR)$(PREFIX)/include/modelgate/

clean:
	rm -rf build build-asan $(FUZZ_BUILD)

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
