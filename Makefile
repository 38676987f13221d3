# raftfs: one non-recursive Makefile for every layer, test suite and tool.
#
#   make                      build everything into build/
#   make check                everything CI runs (unit, simulation, mutants, end-to-end)
#   make SANITIZE=address,undefined check
#                             the same, built with sanitizers into build-address-undefined/
#   make V=1                  show the commands
#
# Sources are discovered by folder, so adding a file needs no edit here. The folders are the
# layers of DESIGN.md section 1: raft/*.c the pure consensus core, raft/runtime/ and raft/net/
# the threads and the transport around it, store/ the storage layer, lib/ the helpers every
# layer uses, fs/node/ the node's cluster side and fs/ the FUSE layer; tools/ctl/*.c the control
# protocol shared by raftfsd and raftfs-ctl, test/unit/test_*.c one cmocka program each,
# test/sim/*.c the simulator.

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

# Every file of raft/ (top level) is the pure core and must not call I/O, clock or randomness
# functions (see `make lint`); the runtime and the transport are one archive, because the
# transport runs on the runtime's event loop and the runtime drives the transport.
RAFT_CORE_SRC    := $(wildcard raft/*.c)
RAFT_RUNTIME_SRC := $(wildcard raft/runtime/*.c raft/net/*.c)
STORE_SRC        := $(wildcard store/*.c store/*/*.c)
LIB_SRC          := $(wildcard lib/*.c)
NODE_SRC         := $(wildcard fs/node/*.c)
FS_SRC           := $(wildcard fs/*.c)
CTL_SRC          := $(wildcard tools/ctl/*.c)
SIM_SRC          := $(filter-out test/sim/main.c,$(wildcard test/sim/*.c))
UNIT_SRC         := $(wildcard test/unit/test_*.c)

RAFT_CORE_OBJ := $(RAFT_CORE_SRC:%.c=$(B)/%.o)
RAFT_RUNTIME_OBJ := $(RAFT_RUNTIME_SRC:%.c=$(B)/%.o)
STORE_OBJ     := $(STORE_SRC:%.c=$(B)/%.o)
LIB_OBJ       := $(LIB_SRC:%.c=$(B)/%.o)
NODE_OBJ      := $(NODE_SRC:%.c=$(B)/%.o)
FS_OBJ        := $(FS_SRC:%.c=$(B)/%.o)
CTL_OBJ       := $(CTL_SRC:%.c=$(B)/%.o)
SIM_OBJ       := $(SIM_SRC:%.c=$(B)/%.o)
UNIT_BIN      := $(UNIT_SRC:%.c=$(B)/%)

LIBRAFT  := $(B)/libraft.a
LIBRUNTIME := $(B)/libraftrt.a
LIBSTORE := $(B)/libstore.a
LIBRFS   := $(B)/librfs.a
LIBNODE  := $(B)/libnode.a
LIBFS    := $(B)/libfs.a
# What a program of the cluster links, in link order (each archive uses only those after it).
CLUSTER_LIBS := $(LIBNODE) $(LIBRUNTIME) $(LIBRAFT) $(LIBSTORE) $(LIBRFS)
LIBCTL   := $(B)/libctl.a
RAFTNODE := $(B)/test/raftnode
RAWPEER  := $(B)/test/rawpeer
# Stand-alone helpers of the filesystem's end-to-end tests (test/node/NAME.c -> $(B)/test/NAME):
# fsdiff (differential test against tmpfs), rename2 (renameat2 flags from the shell).
FS_TEST_BIN := $(B)/test/fsdiff $(B)/test/rename2
LIBSIM   := $(B)/libsim.a
SIM_BIN  := $(B)/test/sim/raftsim
BENCH_SRC := $(wildcard test/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:%.c=$(B)/%)
# make bench: the small-file load generator, and libfuse's passthrough example to compare with.
FSLOAD      := $(B)/test/bench/fsload
PASSTHROUGH := $(B)/test/bench/passthrough_ll
LIBFUSE_EXAMPLES ?= /usr/share/doc/libfuse3-dev/examples
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

.PHONY: all check check-unit check-sim check-mutants check-bats check-runtime lint fuzz clean \
        install uninstall run stop bench bench-scale bench-locks

HAVE_SIM := $(wildcard test/sim/main.c)

all: $(CLUSTER_LIBS) $(LIBFS) $(LIBCTL) $(UNIT_BIN) $(if $(HAVE_SIM),$(SIM_BIN)) $(BENCH_BIN) \
     $(TOOLS_BIN) $(RAFTNODE) $(RAWPEER) $(FSLOAD) $(FS_TEST_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(if $(filter test/%,$<),$(TEST_CFLAGS)) -c $< -o $@

$(LIBRAFT): $(RAFT_CORE_OBJ)
$(LIBRUNTIME): $(RAFT_RUNTIME_OBJ)
$(LIBSTORE): $(STORE_OBJ)
$(LIBRFS): $(LIB_OBJ)
$(LIBNODE): $(NODE_OBJ)
$(LIBFS): $(FS_OBJ)
$(LIBCTL): $(CTL_OBJ)
$(LIBSIM): $(SIM_OBJ)
$(CLUSTER_LIBS) $(LIBSIM) $(LIBFS) $(LIBCTL):
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/test/unit/%: $(B)/test/unit/%.o $(LIBSIM) $(LIBCTL) $(CLUSTER_LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) -lcmocka $(EXTERNAL_LIBS)

# The parser of raftfs.conf is raftfsd's own module, tested on its own.
$(B)/test/unit/test_config: $(B)/tools/raftfsd/config.o

# The version --version reports: git describe in a checkout, else the VERSION file of a release.
# A stamp that changes only with it rebuilds the one object that holds it.
RAFTFS_VERSION := $(shell { test -e .git && git describe --tags --always --dirty; } 2>/dev/null || \
                    cat VERSION 2>/dev/null || echo unknown)
$(B)/version-stamp: FORCE
	@mkdir -p $(B)
	@echo '$(RAFTFS_VERSION)' | cmp -s - $@ || echo '$(RAFTFS_VERSION)' >$@
$(B)/tools/ctl/version.o: $(B)/version-stamp
$(B)/tools/ctl/version.o: ALL_CFLAGS += -DRAFTFS_VERSION='"$(RAFTFS_VERSION)"'
.PHONY: FORCE
FORCE:

# Per-program extras: TOOL_LIBS_NAME (our archives, linked before libraft and libstore) and
# TOOL_LDLIBS_NAME (system libraries). Only raftfsd links FUSE, only raftfs-ctl the JSON library
# (jansson, for --json); both talk the control protocol.
TOOL_LIBS_raftfsd   := $(LIBFS) $(LIBCTL)
TOOL_LIBS_raftfs-ctl := $(LIBCTL)
TOOL_LDLIBS_raftfsd := -lfuse3
TOOL_LDLIBS_raftfs-ctl := -ljansson
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/include/fuse3)
$(FS_OBJ): ALL_CFLAGS += $(FUSE_CFLAGS)

.SECONDEXPANSION:
$(TOOLS_BIN): $(B)/%: $$(call tool_objs,$$*) $$(TOOL_LIBS_$$*) $(CLUSTER_LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS) $(TOOL_LDLIBS_$*)

# The end-to-end tests' node: runtime, transport and state machine without FUSE.
$(RAFTNODE): $(B)/test/node/raftnode.o $(CLUSTER_LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

# A misbehaving peer for the refusal tests: valid TLS, then malformed frames.
$(RAWPEER): $(B)/test/node/rawpeer.o $(CLUSTER_LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

$(FS_TEST_BIN): $(B)/test/%: $(B)/test/node/%.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

$(SIM_BIN): $(B)/test/sim/main.o $(LIBSIM) $(LIBRAFT)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

$(B)/test/bench/%: $(B)/test/bench/%.o $(LIBSIM) $(CLUSTER_LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(EXTERNAL_LIBS)

$(FSLOAD): $(B)/test/bench/fsload.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lpthread

# libfuse's own passthrough_ll example, as the package ships it (Debian may gzip the examples),
# built with its documented command line: third-party code, so without our warning flags.
$(PASSTHROUGH):
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@ (from $(LIBFUSE_EXAMPLES))")
	$(Q)for f in passthrough_ll.c passthrough_helpers.h; do \
		if [ -f $(LIBFUSE_EXAMPLES)/$$f ]; then cp $(LIBFUSE_EXAMPLES)/$$f $(dir $@); \
		elif [ -f $(LIBFUSE_EXAMPLES)/$$f.gz ]; then gzip -dc $(LIBFUSE_EXAMPLES)/$$f.gz >$(dir $@)$$f; \
		else echo "bench: $(LIBFUSE_EXAMPLES)/$$f not found: install libfuse3-dev" \
			"(tools/install-deps)" >&2; exit 1; fi; \
	done
	$(Q)$(CC) -Wall -O2 -g $(FUSE_CFLAGS) -o $@ $(dir $@)passthrough_ll.c -lfuse3 -lpthread

# Fuzzers: clang's libFuzzer with ASan and UBSan, built from the sources directly: the core,
# the store, the runtime's pure frame functions (raft/net/frame.c; no sockets, no OpenSSL) and the
# control protocol's codec (tools/ctl/proto.c).
$(B)/fuzz/%: test/fuzz/%.c $(RAFT_CORE_SRC) $(STORE_SRC) $(LIB_SRC) raft/net/frame.c tools/ctl/proto.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang -std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined \
		-o $@ $^ $(EXTERNAL_LIBS)
$(B)/fuzz/fuzz_config: tools/raftfsd/config.c

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
RUNTIME_UNIT := $(filter $(addprefix $(B)/test/unit/test_,loop transport tls histogram queue heap rt_table),$(UNIT_BIN))
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

# The FUSE benchmarks, each on a raftfsd cluster, a local directory and passthrough_ll: the
# small-file workload (about three minutes), the daemons' memory with 100,000 files, and
# flock and fcntl locks (about 1.5 minutes).
FUSE_BENCH_DEPS := $(B)/raftfsd $(B)/raftfs-ctl $(FSLOAD) $(PASSTHROUGH)
bench: $(FUSE_BENCH_DEPS)
	$(Q)test/bench/run-smallfile $(B)
bench-scale: $(FUSE_BENCH_DEPS)
	$(Q)test/bench/run-smallfile --scale 100000 $(B)
bench-locks: $(FUSE_BENCH_DEPS)
	$(Q)test/bench/run-locks $(B)

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

# --- installation -----------------------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the programs, the manual pages, an example
# configuration and the systemd unit (its ExecStart follows PREFIX). make uninstall removes them
# and keeps /etc/raftfs/raftfs.conf.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALLED := $(BINDIR)/raftfsd $(BINDIR)/raftfs-ctl $(MANDIR)/man8/raftfsd.8 \
             $(MANDIR)/man8/raftfs-ctl.8 $(MANDIR)/man5/raftfs.conf.5 \
             $(SYSCONFDIR)/raftfs/raftfs.conf.example $(UNITDIR)/raftfsd.service

install: $(B)/raftfsd $(B)/raftfs-ctl
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/raftfs $(DESTDIR)$(UNITDIR)
	install -m 755 $(B)/raftfsd $(B)/raftfs-ctl $(DESTDIR)$(BINDIR)/
	install -m 644 man/raftfsd.8 man/raftfs-ctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 man/raftfs.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 tools/raftfs.conf.example $(DESTDIR)$(SYSCONFDIR)/raftfs/raftfs.conf.example
	sed 's|/usr/local/bin/raftfsd|$(BINDIR)/raftfsd|' tools/systemd/raftfsd.service \
		>$(DESTDIR)$(UNITDIR)/raftfsd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/raftfsd.service

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(SYSCONFDIR)/raftfs 2>/dev/null || true

# The quick start's local three-node cluster (tools/quickstart; README.md).
run:
	tools/quickstart start

stop:
	tools/quickstart stop

clean:
	rm -rf build build-*

-include $(shell find $(B) -name '*.d' 2>/dev/null)
