# rpmem — build, install, demo and test.
#
#   make build                 release build of the whole workspace
#   make install PREFIX=DIR    install binaries, library, header, pkg-config file,
#                              manual pages and shell completions
#                              (default PREFIX=/usr/local; DESTDIR honoured)
#   make demo                  install into target/demo-prefix and run `rpmem demo`
#   make test                  install into target/test-prefix and run every test
#   make bench                 install into target/bench-prefix and run `rpmem bench`
#   make soak DURATION=S       install into target/test-prefix and run the randomized
#                              crash test for S seconds (default 300; make test runs 30)
#   make lint                  rustfmt check + clippy with warnings as errors
#   make doc                   API docs of the library crates, warnings as errors
#   make package               cargo package the crates a Rust user depends on

CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=

# Where cargo puts its output (honours CARGO_TARGET_DIR).
TARGET_DIR  := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE_DIR := $(TARGET_DIR)/release
VERSION     := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' $(CURDIR)/Cargo.toml | head -n 1)

BINARIES := rpmemd rpmem rpmem-ssh-local
# The crates a Rust user depends on (rpmem and what it pulls in).
LIB_CRATES := rpmem-proto rpmem-fabric rpmem-storage rpmem-transport rpmem
CAPI_SO  := librpmem_capi.so
HEADER   ?= $(CURDIR)/crates/librpmem/include/librpmem.h
PC_IN    ?= $(CURDIR)/crates/librpmem/librpmem.pc.in
MAN_SRC  := $(CURDIR)/docs/man
# Functions documented on another function's page: LINK:PAGE.
MAN_LINKS := rpmem_open:rpmem_create rpmem_set_attr:rpmem_create \
             rpmem_close:rpmem_create rpmem_remove:rpmem_create \
             rpmem_deep_persist:rpmem_persist rpmem_flush:rpmem_persist \
             rpmem_drain:rpmem_persist rpmem_read:rpmem_persist

DEMO_PREFIX := $(CURDIR)/target/demo-prefix
TEST_PREFIX := $(CURDIR)/target/test-prefix
BENCH_PREFIX := $(CURDIR)/target/bench-prefix
BENCH_ARGS ?=

BINDIR := $(DESTDIR)$(PREFIX)/bin
LIBDIR := $(DESTDIR)$(PREFIX)/lib
INCDIR := $(DESTDIR)$(PREFIX)/include
PCDIR  := $(LIBDIR)/pkgconfig
DATADIR := $(DESTDIR)$(PREFIX)/share
MANDIR  := $(DATADIR)/man
BASHCOMPDIR := $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  := $(DATADIR)/zsh/site-functions
FISHCOMPDIR := $(DATADIR)/fish/vendor_completions.d

.PHONY: all build install demo test bench soak lint doc package clean

all: build

build:
	$(CARGO) build --release --workspace

# `install` (coreutils) unlinks before writing, so processes still running the
# old binaries or library are not disturbed.
install: build
	install -d $(BINDIR) $(LIBDIR) $(INCDIR) $(PCDIR)
	install -m 0755 $(addprefix $(RELEASE_DIR)/,$(BINARIES)) $(BINDIR)/
	install -m 0755 $(RELEASE_DIR)/$(CAPI_SO) $(LIBDIR)/librpmem.so.1
	ln -sfn librpmem.so.1 $(LIBDIR)/librpmem.so
	install -m 0644 $(HEADER) $(INCDIR)/librpmem.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $(PC_IN) > $(PCDIR)/librpmem.pc.tmp
	mv -f $(PCDIR)/librpmem.pc.tmp $(PCDIR)/librpmem.pc
	install -d $(MANDIR)/man1 $(MANDIR)/man3 $(MANDIR)/man5 $(MANDIR)/man7 \
		$(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	for n in 1 3 5 7; do install -m 0644 $(MAN_SRC)/*.$$n $(MANDIR)/man$$n/; done
	for l in $(MAN_LINKS); do ln -sfn $${l#*:}.3 $(MANDIR)/man3/$${l%%:*}.3; done
	$(RELEASE_DIR)/rpmem man-pages $(MANDIR)/man1
	$(RELEASE_DIR)/rpmem completions bash > $(BASHCOMPDIR)/rpmem
	$(RELEASE_DIR)/rpmem completions zsh > $(ZSHCOMPDIR)/_rpmem
	$(RELEASE_DIR)/rpmem completions fish > $(FISHCOMPDIR)/rpmem.fish

demo:
	$(MAKE) --no-print-directory install PREFIX=$(DEMO_PREFIX) DESTDIR=
	$(DEMO_PREFIX)/bin/rpmem demo

test:
	$(MAKE) --no-print-directory install PREFIX=$(TEST_PREFIX) DESTDIR=
	RPMEM_PREFIX=$(TEST_PREFIX) $(CARGO) test --workspace --release --no-fail-fast

bench:
	$(MAKE) --no-print-directory install PREFIX=$(BENCH_PREFIX) DESTDIR=
	$(BENCH_PREFIX)/bin/rpmem bench $(BENCH_ARGS)

DURATION ?= 300

soak:
	$(MAKE) --no-print-directory install PREFIX=$(TEST_PREFIX) DESTDIR=
	RPMEM_PREFIX=$(TEST_PREFIX) RPMEM_SOAK_SECS=$(DURATION) $(CARGO) test --release -p e2e --test faults soak -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps $(addprefix -p ,$(LIB_CRATES))

# cargo verifies each package against the others through a local registry,
# and takes registry crates of one version as unchanged: it keeps their
# unpacked sources and builds. Start from neither, so a second run sees
# today's code.
package:
	rm -rf $(TARGET_DIR)/package $(TARGET_DIR)/package-build \
		"$${CARGO_HOME:-$$HOME/.cargo}"/registry/src/-*/rpmem-*-$(VERSION)
	$(CARGO) package --target-dir $(TARGET_DIR)/package-build $(addprefix -p ,$(LIB_CRATES))

clean:
	$(CARGO) clean
