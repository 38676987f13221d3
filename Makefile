# raftfs: one non-recursive Makefile for every layer, test suite and tool.
#
#   make                      build everything into build/
#   make check                everything CI runs (unit, simulation, mutants, end-to-end)
#   make SANITIZE=address,undefined check
#                             the same, built with sanitizers into build-address-undefined/
#   make V=1                  show the commands
#
# Sources are discovered by folder, so adding a file needs no edit here: raft/*.c is the
# consensus core (plus the runtime files listed below), store/*.c the storage layer,
# test/unit/test_*.c one cmocka program each, test/sim/*.c the simulator.

CC       ?= cc
SANITIZE ?=
SEEDS      ?= 2000
SEED_START ?= 1

comma := ,
ifeq ($(SANITIZE),)
B := build
SANFLAGS :=
else
B := build-$(subst $(comma),-,$(SANITIZE))
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wvla -Wformat=2 -Wno-format-nonliteral
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -I. $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)

# Test programs are allowed file-local helpers without prototypes.
TEST_CFLAGS := -Wno-missing-prototypes

# --- sources ----------------------------------------------------------------------------------

# Files of raft/ that belong to the runtime (threads, sockets, TLS); everything else in raft/
# is the pure core and must not call I/O, clock or randomness functions (see `make lint`).
RAFT_RUNTIME_SRC := $(wildcard $(addprefix raft/,loop.c frame.c transport.c tls.c runtime*.c))
RAFT_CORE_SRC    := $(filter-out $(RAFT_RUNTIME_SRC),$(wildcard raft/*.c))
STORE_SRC        := $(wildcard store/*.c)
FS_SRC           := $(wildcard fs/*.c)
SIM_SRC          := $(filter-out test/sim/main.c,$(wildcard test/sim/*.c))
UNIT_SRC         := $(wildcard test/unit/test_*.c)

RAFT_CORE_OBJ := $(RAFT_CORE_SRC:%.c=$(B)/%.o)
RAFT_RUNTIME_OBJ := $(RAFT_RUNTIME_SRC:%.c=$(B)/%.o)
STORE_OBJ     := $(STORE_SRC:%.c=$(B)/%.o)
FS_OBJ        := $(FS_SRC:%.c=$(B)/%.o)
SIM_OBJ       := $(SIM_SRC:%.c=$(B)/%.o)
UNIT_BIN      := $(UNIT_SRC:%.c=$(B)/%)

LIBRAFT  := $(B)/libraft.a
LIBSTORE := $(B)/libstore.a
LIBFS    := $(B)/libfs.a
RAFTNODE := $(B)/test/raftnode
RAWPEER  := $(B)/test/rawpeer
# Stand-alone helpers of the filesystem's end-to-end tests (test/node/NAME.c -> $(B)/test/NAME):
# fsdiff (differential test against tmpfs), rename2 (renameat2 flags from the shell).
FS_TEST_BIN := $(B)/test/fsdiff $(B)/test/rename2
LIBSIM   := $(B)/libsim.a
SIM_BIN  := $(B)/test/sim/raftsim
BENCH_SRC := $(wildcard test/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:%.c=$(B)/%)
FUZZ_SRC  := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_SECONDS ?= 60

EXTERNAL_LIBS := -llmdb -lssl -lcrypto -lpthread -lm

# Programs: tools/NAME/*.c -> build/NAME (raftfs-ctl, ...).
TOOLS     := $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/main.c))))
TOOLS_BIN := $(TOOLS:%=$(B)/%)
# Objects of tool $(1). A function, because a '%' written in the prerequisites of the static
# pattern rule below would be replaced by the stem before patsubst could see it.
tool_objs = $(patsubst %.c,$(B)/%.o,$(wildcard tools/$(1)/*.c))

# Deliberate safety bugs for `make check-mutants` (raft/mutants.h lists them).
MUTANTS := $(shell sed -n 's/^\#define RAFT_MUTANT_[A-Z0-9_]* *\([0-9][0-9]*\).*/\1/p' raft/mutants.h 2>/dev/null)

# --- targets ----------------------------------------------------------------------------------

.SECONDARY:

.PHONY: all check check-unit check-sim check-mutants check-bats check-runtime lint fuzz clean

HAVE_SIM := $(wildcard test/sim/main.c)

all: $(LIBRAFT) $(LIBSTORE) $(LIBFS) $(UNIT_BIN) $(if $(HAVE_SIM),$(SIM_BIN)) $(BENCH_BIN) \
     $(TOOLS_BIN) $(RAFTNODE) $(RAWPEER) $(FS_TEST_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(if $(filter test/%,$<),$(TEST_CFLAGS)) -c $< -o $@

$(LIBRAFT): $(RAFT_CORE_OBJ) $(RAFT_RUNTIME_OBJ)
$(LIBSTORE): $(STORE_OBJ)
$(LIBFS): $(FS_OBJ)
$(LIBSIM): $(SIM_OBJ)
$(LIBRAFT) $(LIBSTORE) $(LIBSIM) $(LIBFS):
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/test/unit/%: $(B)/test/unit/%.o $(LIBSIM) $(LIBRAFT) $(LIBSTORE)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(EXTERNAL_LIBS)

# Per-program extras: TOOL_LIBS_NAME (our archives, linked before libraft and libstore) and
# TOOL_LDLIBS_NAME (system libraries). Only raftfsd links FUSE.
TOOL_LIBS_raftfsd   := $(LIBFS)
TOOL_LDLIBS_raftfsd := -lfuse3
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/include/fuse3)
$(FS_OBJ): ALL_CFLAGS += $(FUSE_CFLAGS)

.SECONDEXPANSION:
$(TOOLS_BIN): $(B)/%: $$(call tool_objs,$$*) $$(TOOL_LIBS_$$*) $(LIBRAFT) $(LIBSTORE)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS) $(TOOL_LDLIBS_$*)

# The end-to-end tests' node: runtime, transport and state machine without FUSE.
$(RAFTNODE): $(B)/test/node/raftnode.o $(LIBFS) $(LIBRAFT) $(LIBSTORE)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

# A misbehaving peer for the refusal tests: valid TLS, then malformed frames.
$(RAWPEER): $(B)/test/node/rawpeer.o $(LIBRAFT) $(LIBSTORE)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

$(FS_TEST_BIN): $(B)/test/%: $(B)/test/node/%.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

$(SIM_BIN): $(B)/test/sim/main.o $(LIBSIM) $(LIBRAFT)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

$(B)/test/bench/%: $(B)/test/bench/%.o $(LIBSIM) $(LIBFS) $(LIBRAFT) $(LIBSTORE)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

# Fuzzers: clang's libFuzzer with ASan and UBSan, built from the sources directly: the core,
# the store, and the runtime's pure frame functions (raft/frame.c; no sockets, no OpenSSL).
$(B)/fuzz/%: test/fuzz/%.c $(RAFT_CORE_SRC) $(STORE_SRC) raft/frame.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang -std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined \
		-o $@ $^ $(EXTERNAL_LIBS)

# One mutant: the core and simulator rebuilt with one safety bug switched on.
$(B)/mutant-%/raftsim: $(RAFT_CORE_SRC) $(SIM_SRC) test/sim/main.c $(wildcard raft/*.h test/sim/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MUTANT  $*")
	$(Q)$(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -DRAFT_MUTANT=$* -o $@ \
		$(RAFT_CORE_SRC) $(SIM_SRC) test/sim/main.c $(LDFLAGS) $(EXTERNAL_LIBS)

# --- checks -----------------------------------------------------------------------------------
# Each suite writes TAP to $(B)/results/SUITE.tap; test/tally sums them into the closing line.

check: all
	$(Q)rm -rf $(B)/results
	$(Q)st=0; \
	$(MAKE) --no-print-directory check-unit || st=1; \
	$(MAKE) --no-print-directory check-sim || st=1; \
	$(MAKE) --no-print-directory check-mutants || st=1; \
	$(MAKE) --no-print-directory check-bats || st=1; \
	test/tally $(B)/results || st=1; \
	exit $$st

check-unit: $(UNIT_BIN)
	$(Q)test/run-unit $(B) $(UNIT_BIN)

check-sim: $(SIM_BIN)
	$(Q)test/run-sim $(B) $(SIM_BIN) $(SEEDS) $(SEED_START)

# End-to-end: real processes, TLS and disks (test/bats/*.bats), against this build's programs.
check-bats: $(RAFTNODE) $(RAWPEER) $(TOOLS_BIN) $(FS_TEST_BIN)
	$(Q)test/run-bats $(B)

# The threaded runtime's own tests, for `make SANITIZE=thread check-runtime`: a data race stops
# the process that has it, which the tests then see.
export TSAN_OPTIONS ?= halt_on_error=1
RUNTIME_UNIT := $(filter $(addprefix $(B)/test/unit/test_,loop transport tls histogram),$(UNIT_BIN))
check-runtime: $(RUNTIME_UNIT) $(RAFTNODE) $(TOOLS_BIN)
	$(Q)test/run-unit $(B) $(RUNTIME_UNIT) && test/run-bats $(B)

check-mutants: $(MUTANTS:%=$(B)/mutant-%/raftsim)
	$(Q)test/run-mutants $(B) $(MUTANTS)

# A static pattern rule: make never searches implicit rules for .PHONY targets.
BENCH_TARGETS := $(BENCH_SRC:test/bench/bench_%.c=bench-%)
$(BENCH_TARGETS): bench-%: $(B)/test/bench/bench_%
	$(Q)$<

# The storage benchmark covers both environments: the state machine's figures come first.
bench-store: bench-fsm

# Each fuzzer runs FUZZ_SECONDS on its own corpus folder (kept under the build folder).
fuzz: $(FUZZ_SRC:test/fuzz/%.c=$(B)/fuzz/%)
	$(Q)for f in $^; do \
		n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus-$$n; \
		echo "  RUN     $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(B)/fuzz/corpus-$$n \
			$$( [ -d test/fuzz/seeds/$$n ] && echo test/fuzz/seeds/$$n ) || exit 1; \
	done

lint: $(RAFT_CORE_OBJ)
	$(Q)test/lint $(B) $(RAFT_CORE_OBJ)

clean:
	rm -rf build build-*

-include $(shell find $(B) -name '*.d' 2>/dev/null)
