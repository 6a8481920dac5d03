# meshim — build, test, demo, install.  See README.md.
#
#   make                 build/libmeshim.so and build/meshim
#   make test            unit tests, pass-through tests and integration tests,
#                        then the same under ASan+UBSan (make test-asan), then
#                        the threaded tests under TSan (make test-tsan)
#   make demo            the example mesh of examples/
#   make install PREFIX=/usr/local DESTDIR=

SHELL    := bash
CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := 0.1.0
# The commit a build comes from, for meshim --version ("unknown" outside a
# git clone; "-dirty" with uncommitted changes). $(BUILD)/commit changes only
# when it does, so the command is relinked only then.
COMMIT   := $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
              { git diff --quiet HEAD -- 2>/dev/null && echo $$c || echo $$c-dirty; } || echo unknown)

OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Werror
CPPFLAGS += -Iinclude -Ishim -D_GNU_SOURCE -DMESHIM_VERSION='"$(VERSION)"' \
            -DMESHIM_LIBDIR='"$(PREFIX)/lib/meshim"'
CFLAGS   += $(OPT) $(WARN) -std=c11 -fPIC -fvisibility=hidden $(SANITIZE)
LDFLAGS  += $(SANITIZE)

# The library, layer by layer from the bottom (ARCHITECTURE.md): a file
# includes and calls only its own folder and the folders before it in
# LAYERS; tests/check-layers enforces it.
LAYERS   := policy libc observe tls engine mesh hook
# policy/: no hooks, no threads; the library, the command and the unit tests
# all link it.
POLICY   := util config vip balancer registry breaker backoff discovery identity sniff certdir shared relayname http1 httpretry route trace execenv pskhello dnsreply kcipher \
            beside
SHIM     := $(POLICY) mesh real jumpguard sigdefer ownfd program stdio_exit files log logfile accesslog metrics sharedfile callers engine sendq placeholder health watch otlp \
            tls_loader conn fdtable attempt connect dial sockname relay termsig mtls ktls http httptap threadtrace resolve udp dnscapture exec hooks process
UNIT     := test_config test_vip test_balancer test_registry test_breaker test_backoff test_stats \
            test_fork test_discovery test_identity test_files test_elfinfo test_sniff test_engine test_certdir test_ownfd test_shared test_relayname test_http1 test_route test_trace test_threadtrace test_logfile test_execenv test_pskhello test_dnsreply test_httpretry test_sigdefer test_kcipher \
            test_beside test_sendq

vpath %.c $(LAYERS:%=shim/%)
vpath %.S shim/tls
SHIM_H   := $(wildcard include/meshim/*.h shim/*/*.h shim/*/*.def)

# llhttp, Node.js's HTTP parser, from Debian's node-llhttp (its C sources
# under /usr/share/llhttp), built in rather than linked: it is not packaged
# as a library. policy/http1.c frames HTTP/1.x with it.
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
LLHTTP_O   := $(patsubst %,$(BUILD)/obj/llhttp_%.o,llhttp api http)
CPPFLAGS   += -I$(LLHTTP_INC)

POLICY_O := $(POLICY:%=$(BUILD)/obj/%.o) $(LLHTTP_O)
SHIM_O   := $(SHIM:%=$(BUILD)/obj/%.o) $(LLHTTP_O) $(BUILD)/obj/tls_image.o
# The TLS module (shim/tls/tls_module.h): tls.c and a static OpenSSL, its
# symbols hidden (--exclude-libs, and a version script exporting one table),
# so that it never binds to a program's own OpenSSL (node exports one). It is
# carried inside the library and loaded on first need.
TLSMOD_O := $(patsubst %,$(BUILD)/obj/%.o,tls tls_ktls tls_store tls_module identity util certdir pskhello)
# Static inih and liburing, so that the library needs nothing at run time
# but glibc.
STATIC   := -Wl,-Bstatic -linih -luring -Wl,-Bdynamic
OPENSSL  := -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic
ifeq ($(SANITIZE),)
NOUNDEF  := -Wl,-z,defs
endif

# glibc >= 2.17 (shim/libc/glibc_compat.c): every reference to a libc symbol
# newer than 2.17 goes to a wrapper that calls its oldest version, and the
# libraries those lived in before 2.34 are listed (they are stubs after),
# but libresolv, which the wrappers open when first needed.
# x86_64 and aarch64, release builds (the sanitizers bring their own libc
# interceptors).
GLIBC_WRAPPED := dlopen dlsym dlerror dlclose dladdr pthread_create pthread_once pthread_sigmask                  pthread_attr_setstacksize pthread_key_create pthread_key_delete pthread_getspecific                  pthread_setspecific pthread_rwlock_init pthread_rwlock_destroy pthread_rwlock_rdlock                  pthread_rwlock_wrlock pthread_rwlock_unlock sem_init sem_post sem_wait res_nquery                  res_nmkquery dn_expand stat fstat lstat fstatat getrandom getentropy memfd_create \
                 pthread_condattr_setclock pthread_testcancel _pthread_cleanup_push _pthread_cleanup_pop
ifeq ($(SANITIZE)$(filter-out x86_64 aarch64,$(shell uname -m)),)
GLIBC_FLOOR := $(GLIBC_WRAPPED:%=-Wl,--wrap=%) -Wl,--gc-sections \
               -Wl,--push-state,--no-as-needed -l:libdl.so.2 -l:libpthread.so.0 \
               -Wl,--pop-state
COMPAT_O    := $(BUILD)/obj/glibc_compat.o
COMPAT_MAIN := $(BUILD)/obj/glibc_compat_start.o -Wl,--wrap=__libc_start_main
endif

.PHONY: all tests-built compat deb FORCE chaos chaos-netem deps deps-missing test-suites check-layers fuzz fuzz-build fuzz-objs test-fuzz asan-built tsan-built test-first-half test-second-half $(FUZZ:%=fuzz-run-%) test unit test-unit test-passthrough test-integration test-ktls test-rtt test-uml test-deploy test-asan test-tsan demo bench \
        install clean
BESIDE_MADE := $(BUILD)/libmeshim-tls.made     # the TLS module beside the library: below
all: $(BUILD)/libmeshim.so $(BUILD)/meshim $(BESIDE_MADE)

$(BUILD)/obj/%.o: %.c $(SHIM_H) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(BUILD)/exports.map: shim/hook/exports.map.in shim/libc/hooks.def | $(BUILD)/obj
	$(CC) -E -P -x c -Ishim $< -o $@

$(BUILD)/libmeshim.so: $(SHIM_O) $(COMPAT_O) $(BUILD)/exports.map
	$(CC) -shared -o $@ $(SHIM_O) $(COMPAT_O) $(LDFLAGS) -Wl,--version-script=$(BUILD)/exports.map \
	    -Wl,--exclude-libs,ALL $(NOUNDEF) $(STATIC) -lpthread -ldl $(GLIBC_FLOOR)

$(BUILD)/tls-module.so: $(TLSMOD_O) $(COMPAT_O) shim/tls/tls_module.map
	$(CC) -shared -o $@ $(TLSMOD_O) $(COMPAT_O) $(LDFLAGS) -Wl,--version-script=shim/tls/tls_module.map \
	    -Wl,--exclude-libs,ALL $(NOUNDEF) $(OPENSSL) -lpthread $(GLIBC_FLOOR)

$(BUILD)/obj/glibc_compat.o: shim/libc/glibc_compat.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -ffunction-sections -c -o $@ $<
$(BUILD)/obj/glibc_compat_start.o: shim/libc/glibc_compat.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -ffunction-sections -DGLIBC_COMPAT_START -c -o $@ $<

# The module's identity (16 hex digits of its SHA-256) names the file that
# a user's processes share it through (tls_loader.c).
$(BUILD)/tls_module_id.h: $(BUILD)/tls-module.so
	printf '#define TLS_MODULE_ID "%s"\n#define TLS_MODULE_SIZE %su\n' "$$(sha256sum $< | cut -c1-16)" \
	    "$$(stat -c %s $<)" > $@
$(BUILD)/obj/tls_loader.o: $(BUILD)/tls_module_id.h
$(BUILD)/obj/tls_loader.o: private CPPFLAGS += -include $(BUILD)/tls_module_id.h

# The module beside the library as well, by the name the library looks for
# there first (tls_loader.c, open_beside): a process then maps that file as
# it is, instead of comparing the library's copy with one in the stats
# folder. Mode 0644 whatever the umask (one its group can write is not
# opened); the previous build's is removed.
$(BESIDE_MADE): $(BUILD)/tls-module.so $(BUILD)/tls_module_id.h
	rm -f $(BUILD)/libmeshim-tls-*.so
	install -m 0644 $< $(BUILD)/libmeshim-tls-$$(sed -n 's/.*TLS_MODULE_ID "\(.*\)"/\1/p' $(BUILD)/tls_module_id.h).so
	touch $@

$(BUILD)/obj/tls_image.o: shim/tls/tls_image.S $(BUILD)/tls-module.so | $(BUILD)/obj
	$(CC) -c -DTLS_MODULE_PATH='"$(BUILD)/tls-module.so"' -o $@ $<

# The command's own modules (no hooks; statsview is unit-tested too).
CLI      := statsview sharedview exporter elfinfo install
CLI_O    := $(CLI:%=$(BUILD)/obj/cli_%.o)

$(BUILD)/obj/cli_%.o: cli/%.c $(wildcard cli/*.h include/meshim/*.h) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) -Icli $(CFLAGS) -c -o $@ $<

$(BUILD)/commit: FORCE | $(BUILD)/obj
	@echo '$(COMMIT)' | cmp -s - $@ || echo '$(COMMIT)' > $@
FORCE:

# `meshim check` loads the identity with the TLS module's own code (CLI_TLS_O).
CLI_TLS_O := $(patsubst %,$(BUILD)/obj/%.o,tls tls_ktls tls_store tls_module)
# It knows the module's name beside the library (meshim install copies it).
$(BUILD)/meshim: cli/meshim.c $(CLI_O) $(CLI_TLS_O) $(POLICY_O) $(COMPAT_O:%.o=%_start.o) $(BUILD)/commit \
                 $(BUILD)/tls_module_id.h
	$(CC) $(CPPFLAGS) -DMESHIM_COMMIT='"$(COMMIT)"' -include $(BUILD)/tls_module_id.h -Icli $(CFLAGS) -o $@ $< $(CLI_O) $(CLI_TLS_O) $(POLICY_O) \
	    $(COMPAT_MAIN) $(LDFLAGS) $(STATIC) $(OPENSSL) -lpthread $(GLIBC_FLOOR)

# The command linked statically, for the container image (Dockerfile): its
# final image holds no libc, and an init container runs `meshim install`
# from it. It reads files and /proc only (no NSS), so static glibc is whole.
# The linker warns of dlopen and getaddrinfo inside libcrypto.a: module
# loading and BIO_lookup, which `meshim check`'s identity load never reaches
# (no openssl.cnf is read, the providers are built in).
$(BUILD)/meshim-static: cli/meshim.c $(CLI_O) $(CLI_TLS_O) $(POLICY_O) $(BUILD)/commit $(BUILD)/tls_module_id.h
	$(CC) $(CPPFLAGS) -DMESHIM_COMMIT='"$(COMMIT)"' -include $(BUILD)/tls_module_id.h -Icli $(CFLAGS) -static -o $@ $< $(CLI_O) $(CLI_TLS_O) \
	    $(POLICY_O) $(LDFLAGS) -Wl,-Bstatic -linih -lssl -lcrypto -lpthread

# ------------------------------------------------------------------ tests --
# test_fork links the whole shim: its hooks become the test's own symbols.
$(BUILD)/tests/test_fork: tests/unit/test_fork.c $(SHIM_O) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(SHIM_O) $(LDFLAGS) $(STATIC) -lcmocka -lpthread -ldl

# test_threadtrace links the whole shim too: read() and write() are its hooks.
$(BUILD)/tests/test_threadtrace: tests/unit/test_threadtrace.c $(SHIM_O) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(SHIM_O) $(LDFLAGS) $(STATIC) -lcmocka -lpthread -ldl

# test_stats: the access-log format (library) and the stats reader and host table (command).
$(BUILD)/tests/test_stats: tests/unit/test_stats.c $(POLICY_O) $(BUILD)/obj/accesslog.o $(BUILD)/obj/logfile.o \
        $(BUILD)/obj/ownfd.o $(BUILD)/obj/log.o $(BUILD)/obj/files.o $(BUILD)/obj/real.o $(BUILD)/obj/jumpguard.o $(BUILD)/obj/cli_statsview.o \
        $(BUILD)/obj/cli_sharedview.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -Icli $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(STATIC) -lcmocka -lpthread

# test_logfile: the access log's file kept open and found again after rotation.
$(BUILD)/tests/test_logfile: tests/unit/test_logfile.c $(POLICY_O) $(BUILD)/obj/logfile.o $(BUILD)/obj/ownfd.o \
        $(BUILD)/obj/files.o $(BUILD)/obj/real.o $(BUILD)/obj/jumpguard.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(STATIC) -lcmocka -lpthread -ldl

# test_files: the observe layer's file opening (and the real_ trampolines it closes with).
$(BUILD)/tests/test_files: tests/unit/test_files.c $(POLICY_O) $(BUILD)/obj/files.o $(BUILD)/obj/real.o $(BUILD)/obj/jumpguard.o \
        | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(STATIC) -lcmocka -lpthread -ldl

# test_engine: the engine thread itself (and the layers below it).
$(BUILD)/tests/test_engine: tests/unit/test_engine.c $(POLICY_O) $(BUILD)/obj/engine.o $(BUILD)/obj/sendq.o $(BUILD)/obj/mesh.o $(BUILD)/obj/real.o $(BUILD)/obj/jumpguard.o $(BUILD)/obj/ownfd.o \
        $(BUILD)/obj/log.o $(BUILD)/obj/logfile.o $(BUILD)/obj/files.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(STATIC) -lcmocka -lpthread -ldl

# test_sendq: the engine's queued sends, through a real io_uring.
$(BUILD)/tests/test_sendq: tests/unit/test_sendq.c $(POLICY_O) $(BUILD)/obj/sendq.o $(BUILD)/obj/mesh.o $(BUILD)/obj/real.o \
        $(BUILD)/obj/jumpguard.o $(BUILD)/obj/ownfd.o $(BUILD)/obj/log.o $(BUILD)/obj/logfile.o $(BUILD)/obj/files.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(STATIC) -lcmocka -lpthread -ldl

# test_ownfd: the shim's own descriptors (libc layer, with its trampolines).
$(BUILD)/tests/test_ownfd: tests/unit/test_ownfd.c $(BUILD)/obj/ownfd.o $(BUILD)/obj/real.o $(BUILD)/obj/jumpguard.o \
        $(BUILD)/obj/util.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) -lcmocka -lpthread -ldl

# test_sigdefer: the program's handlers held in the shim's sections (libc layer).
$(BUILD)/tests/test_sigdefer: tests/unit/test_sigdefer.c $(BUILD)/obj/sigdefer.o $(BUILD)/obj/real.o \
        $(BUILD)/obj/jumpguard.o $(BUILD)/obj/util.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) -lcmocka -lpthread -ldl

# test_config: also mesh.c, the loader of the library (the environment kept at start).
$(BUILD)/tests/test_config: tests/unit/test_config.c $(wildcard tests/unit/*.h) $(POLICY_O) $(BUILD)/obj/mesh.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) $(STATIC) -lcmocka -lpthread

$(BUILD)/tests/test_elfinfo: tests/unit/test_elfinfo.c $(BUILD)/obj/cli_elfinfo.o | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -Icli $(CFLAGS) -o $@ $< $(filter %.o,$^) $(LDFLAGS) -lcmocka

$(BUILD)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(POLICY_O) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(POLICY_O) $(LDFLAGS) $(STATIC) -lcmocka -lpthread

$(BUILD)/tests/passthrough: tests/passthrough.c shim/libc/hooks.def | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) -lcmocka -ldl -lpthread

$(BUILD)/tests/%: tests/helpers/%.c | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) -lpthread

# early: a program whose own library calls hooks from its constructor.
$(BUILD)/tests/libearly.so: tests/helpers/early.c | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -DEARLY_LIB -shared -o $@ $< $(LDFLAGS)
$(BUILD)/tests/early: tests/helpers/early.c $(BUILD)/tests/libearly.so
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) -L$(BUILD)/tests -learly -Wl,-rpath,'$$ORIGIN'

# user-mode Linux (tests/uml/run) on hosts with more FPU state than it knows.
$(BUILD)/tests/uml-xstate.so: tests/uml/xstate.c | $(BUILD)/tests
	$(CC) -O2 $(WARN) -shared -fPIC -o $@ $< -ldl

# bench/connrate: the round-trip table's client (bench/run -t).
$(BUILD)/bench/connrate: bench/connrate.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

# llhttp (above): another project's code, its warnings are not ours to fail on.
$(BUILD)/obj/llhttp_%.o: $(LLHTTP_SRC)/%.c | $(BUILD)/obj
	$(CC) $(OPT) -fPIC -fvisibility=hidden $(SANITIZE) -I$(LLHTTP_INC) -c -o $@ $<

# bench/ratebench: the fixed-rate table's open-loop client (bench/run -f).
RATEBENCH := $(BUILD)/bench/ratebench
$(RATEBENCH): bench/ratebench.c $(BUILD)/obj/http1.o $(BUILD)/obj/util.o $(LLHTTP_O)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS)

HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(wildcard tests/helpers/*.c))

unit: $(UNIT:%=$(BUILD)/tests/%)
test-unit: unit
	@set -e; for t in $(UNIT); do echo "== $$t"; $(BUILD)/tests/$$t; done

test-passthrough: all $(BUILD)/tests/passthrough
	BUILD=$(BUILD) tests/run-passthrough

# LANES: how many tests run at once (tests/integration/run); make test: 3.
# Given to that runner alone: not exported, so the user-mode Linux and
# deploy stages, which run it too, keep one at a time.
LANES ?= 1
unexport LANES
test-integration: all $(HELPERS) $(RATEBENCH)
	BUILD=$(BUILD) LANES=$(LANES) tests/integration/run

# The layering of ARCHITECTURE.md: includes and calls go down, never up.
check-layers: all
	tests/check-layers $(LAYERS) --objs $(BUILD)/obj

# What the test stages run, built before any of them runs, with two
# compilers at once (CI builds everything from scratch; the stages then run
# their tests one at a time).
JOBS ?= 2
TESTS_BUILT = all $(UNIT:%=$(BUILD)/tests/%) $(BUILD)/tests/passthrough $(HELPERS) $(RATEBENCH)
tests-built: $(TESTS_BUILT)

# make test: the stages in two halves. While the first half runs (layers,
# unit, passthrough, integration, user-mode Linux: 7 to 12 minutes, by how
# busy the machine is, in which a CPU often waits on readiness checks,
# timeouts and a guest's round trips), what only the second half needs is
# made in the background at the lowest CPU priority: the Debian roots
# (debootstrap, mostly waiting on the mirror), the .deb, and the ASan, TSan
# and fuzzing builds. With the fuzzers beside the ASan stage (below), that
# takes about 3 minutes off here. The integration stages run tests side by
# side: two at a time took make test from 1467 s to 1123 s on one slow day
# of this machine, and three took the first half's stage from 343 s to 250
# s and the ASan stage (the fuzzers beside it) from 337 s to 296 s (CI
# allows 20 minutes for everything, install included). The background builds' output goes to $(BUILD)/prebuild.log,
# shown when they fail; the second half then finds everything made.
PREBUILD := deb $(BUILD)/bullseye/.made $(BUILD)/bookworm/.made asan-built tsan-built fuzz-build
test: deps-missing
	$(MAKE) -j$(JOBS) tests-built $(BUILD)/tests/uml-xstate.so
	@echo "== the second half's builds, in the background (nice 19; log: $(BUILD)/prebuild.log)"
	@nice -n 19 $(MAKE) -j$(JOBS) $(PREBUILD) > $(BUILD)/prebuild.log 2>&1 & pre=$$!; \
	$(MAKE) test-first-half LANES=3; rc=$$?; \
	if [ $$rc -ne 0 ]; then kill $$pre 2> /dev/null; wait $$pre; exit $$rc; fi; \
	wait $$pre || { tail -n 40 $(BUILD)/prebuild.log; echo "make test: the background builds failed (above; all of it in $(BUILD)/prebuild.log)"; exit 1; }
	$(MAKE) test-second-half LANES=3
test-first-half: check-layers test-unit test-passthrough test-integration test-uml
# $(call beside,BACKGROUND,FOREGROUND,TITLE[,PREFIX]): make BACKGROUND (run
# under PREFIX, its output kept in $(BUILD)/BACKGROUND.log) while make
# FOREGROUND runs; then "== BACKGROUND (TITLE)" and the kept output; fails
# if either did.
beside = +@$(4) $(MAKE) -s $(1) > $(BUILD)/$(1).log 2>&1 & bg=$$!; \
	$(MAKE) $(2); fg=$$?; wait $$bg; rc=$$?; \
	echo "== $(1) ($(3))"; cat $(BUILD)/$(1).log; \
	[ $$fg -eq 0 ] && [ $$rc -eq 0 ]
# The threaded tests under TSan run beside the deploy stage, which waits on
# the Debian mirror much of the time (about 40 % of the CPU idle); the
# fuzzers (time-bound, 10 s each) at the lowest priority beside the ASan
# stage, whose tests leave a CPU waiting now and then. The output of what
# ran beside is shown after.
test-second-half:
	$(call beside,test-tsan,test-deploy,make test-tsan; beside test-deploy)
	$(call beside,test-fuzz,test-asan,make test-fuzz; beside test-asan,nice -n 19)
test-suites: test-first-half test-second-half

# The same suite with the library and the tests built under ASan+UBSan.
ASAN := BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer' \
        SANITIZE='-fsanitize=address,undefined -fno-sanitize-recover=undefined'
asan-built:
	$(MAKE) -j$(JOBS) $(ASAN) tests-built
test-asan: asan-built
	$(MAKE) $(ASAN) test-unit test-passthrough test-integration

# The threaded tests (fork test, engine driven from many threads) under TSan.
tsan-built:
	$(MAKE) -j$(JOBS) BUILD=build-tsan OPT='-O1 -g' SANITIZE='-fsanitize=thread' \
	    build-tsan/libmeshim.so build-tsan/tests/test_fork build-tsan/tests/test_shared build-tsan/tests/test_ownfd \
	    build-tsan/tests/test_logfile \
	    build-tsan/tests/nbconnect build-tsan/tests/dialstress build-tsan/tests/forkstress
test-tsan: tsan-built
	tests/run-tsan

# Kernel TLS (tests/ktls) inside user-mode Linux, whose kernel has the tls
# ULP (this machine's has none): the modules it needs (the ULP, AES-GCM and
# ChaCha20-Poly1305, meshim/kcipher.h), then the tests. Their
# test PKI is made once, here on the host, and each test copies it.
KTLS_MODULES := -m gf128mul -m ghash-generic -m gcm -m ctr -m tls -m chacha_generic -m poly1305_generic -m chacha20poly1305
# Ubuntu has no user-mode-linux package: there the stage says it skipped
# (where the package exists but is not installed, it fails as before).
NO_UML := ! command -v linux.uml > /dev/null && ! apt-cache show user-mode-linux > /dev/null 2>&1
# A guest has one vCPU, shared with the other guest of make test-uml: its
# tests' readiness waits may last six times longer (WAIT_SCALE,
# tests/integration/lib.sh) before they call a server dead.
UML_WAIT := WAIT_SCALE=6
test-ktls: all $(HELPERS) $(BUILD)/tests/uml-xstate.so
	@if $(NO_UML); then \
	    echo "test-ktls: SKIPPED: this distribution has no user-mode-linux, which the kernel TLS tests run in"; \
	else \
	    pki=$$(mktemp -d) && bash -c ". tests/integration/certs.sh && make_certs $$pki/pki" && \
	    tests/uml/run $(KTLS_MODULES) env BUILD=$(BUILD) $(UML_WAIT) KTLS_PKI=$$pki/pki \
	        TEST_DIR=tests/ktls tests/integration/run; \
	    rc=$$?; rm -rf "$$pki"; exit $$rc; \
	fi

# The engine-path tests again inside user-mode Linux, with 2 ms of delay on
# its lo (tc netem; NETEM_DELAY in tests/integration/run): there every
# non-blocking connect takes a round trip, as on a real network, instead of
# settling inside connect() as on this machine's loopback.
# t_tls_sessions: mTLS there (meshed clients' handshakes on the engine,
# kernel TLS at both ends, nginx with one and two workers as the server).
RTT_TESTS := t_nonblocking_retries.sh t_nginx_client.sh t_clients.sh t_tls_sessions.sh
test-rtt: all $(HELPERS) $(BUILD)/tests/uml-xstate.so
	@if $(NO_UML); then \
	    echo "test-rtt: SKIPPED: this distribution has no user-mode-linux, which has tc netem"; \
	else \
	    tests/uml/run -m sch_netem $(KTLS_MODULES) env BUILD=$(BUILD) $(UML_WAIT) NETEM_DELAY=2ms \
	        tests/integration/run $(RTT_TESTS); \
	fi

# Both user-mode Linux stages at once, a guest each (each guest uses one
# CPU): the kernel TLS stage (about 260 s in make test, beside the rest)
# and the round trips' tests (about 270 s). The round trips' output is kept
# and shown after the kernel TLS stage's.
test-uml: all $(HELPERS) $(BUILD)/tests/uml-xstate.so
	$(call beside,test-rtt,-s test-ktls,make test-rtt; 2 ms on lo in user-mode Linux)

# The shim in an older userland (tests/deploy): a Debian 11 root (glibc
# 2.31) made once by debootstrap under $(BUILD)/bullseye.
$(BUILD)/bullseye/.made: tests/deploy/mkroot
	tests/deploy/mkroot $(BUILD)/bullseye
# A Debian 12 root: t_image's local base for the Dockerfile's build stage.
$(BUILD)/bookworm/.made: tests/deploy/mkroot
	tests/deploy/mkroot $(BUILD)/bookworm bookworm ""
test-deploy: all deb $(BUILD)/bullseye/.made $(BUILD)/bookworm/.made
	env BUILD=$(BUILD) TEST_DIR=tests/deploy tests/integration/run

# ------------------------------------------------------------------- chaos --
# The mesh on a topology of network namespaces under faults (kill -9,
# SIGSTOP, link down, SYNs dropped), CHAOS_SECONDS (60); needs root and nft.
# Not part of make test: it prints a table to read (tests/chaos/run).
chaos: all
	tests/chaos/run

# The same inside user-mode Linux (tests/uml/run), whose kernel has tc netem:
# every link also delayed, and two more faults, a lossy link and a slow one.
chaos-netem: all $(BUILD)/tests/uml-xstate.so
	tests/uml/run -m sch_netem -m veth -m bridge -m nf_tables \
	    env CHAOS_NETEM=1 tests/chaos/run

# ------------------------------------------------------------------ fuzzing --
# libFuzzer targets (clang, ASan+UBSan) over what other people write: the
# INI file and the environment, endpoints files, DNS answers, certificate
# names, stats files, the exporter's request head, HTTP/1.x framing, traceparent and the collector URL. Seeds in tests/fuzz/corpus/NAME; what a run finds
# goes to build-fuzz/corpus/NAME, a crash to build-fuzz/crash-NAME-*.
#   make fuzz                 each target FUZZ_SECONDS (600) in turn
#   make test-fuzz            each for 10 s, two at a time (part of make test)
FUZZ         := config endpoints dns identity stats http sniff http1 trace pskhello
FUZZ_SECONDS ?= 600
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# clang-14 by name: the package list pins it (Ubuntu 24.04's clang is 18,
# whose libFuzzer runtime is another package).
FUZZ_CC      ?= clang-14
FUZZ_BIN     := $(FUZZ:%=build-fuzz/fuzz_%)

FUZZ_OBJ     := $(POLICY:%=build-fuzz/obj/%.o) $(patsubst %,build-fuzz/obj/llhttp_%.o,llhttp api http) \
                build-fuzz/obj/cli_statsview.o build-fuzz/obj/cli_exporter.o

# The objects the targets share, built once (with clang's coverage hooks).
fuzz-objs:
	$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) OPT='-O1 -g' \
	    SANITIZE='$(FUZZ_SAN) -fsanitize=fuzzer-no-link' $(FUZZ_OBJ)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c fuzz-objs
	$(FUZZ_CC) $(CPPFLAGS) -Icli -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(STATIC) -lpthread

fuzz-build: $(FUZZ_BIN)

# make fuzz runs the targets in turn, each for FUZZ_SECONDS; make test-fuzz
# two at a time (this machine kind has two cores), each for 10 s: a check
# that the seeds and a short search still pass, inside CI's 20 minutes.
fuzz test-fuzz:
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@$(MAKE) --no-print-directory --output-sync=target \
	    $(if $(filter test-fuzz,$@),-j2 FUZZ_TIME=10,-j1 FUZZ_TIME=$(FUZZ_SECONDS)) \
	    $(FUZZ:%=fuzz-run-%)

fuzz-run-%:
	@mkdir -p build-fuzz/corpus/$*; \
	echo "== fuzz_$* ($(FUZZ_TIME) s)"; \
	build-fuzz/fuzz_$* -max_total_time=$(FUZZ_TIME) \
	    -max_len=65536 -print_final_stats=1 -artifact_prefix=build-fuzz/crash-$*- \
	    build-fuzz/corpus/$* tests/fuzz/corpus/$* 2>&1 | \
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)|Done [0-9]+ runs' ; \
	[ $${PIPESTATUS[0]} -eq 0 ] || { echo "fuzz_$*: crashed, see build-fuzz/crash-$*-*"; exit 1; }

# Every Debian 12 package the build and the tests use (as root): the list
# CI installs, in .ci/run.
deps:
	.ci/run --deps

# make demo and make test start here: nothing when every package is in;
# otherwise they are installed (root, or sudo without a password) or the
# one command to run is printed.
deps-missing:
	.ci/run --deps-missing

demo: deps-missing
	$(MAKE) all
	examples/demo

# Side by side with direct connections and sidecar pairs (not part of test;
# tests/integration/t_bench_smoke.sh runs one short round so it cannot rot).
# The host's table (bench/results/latest.md), then the kernel TLS table
# inside user-mode Linux (bench/results/ktls.md; the host kernel has no
# tls ULP), and the round-trip table there with tc netem delaying lo
# (bench/results/rtt.md; nor has it netem). The fixed-rate tables (-f):
# on the host (fixedrate.md; the http rows in fixedrate-http.md, their
# latency at one offered load, up to about half the HAProxy pair's
# capacity here: past its capacity a row's latency is its queue's growth),
# and with kernel TLS in user-mode Linux at 200 requests/s
# (fixedrate-ktls.md; its one vCPU is saturated at 1000).
bench: all $(BUILD)/tests/uml-xstate.so $(BUILD)/bench/connrate $(RATEBENCH)
	bench/run
	bench/run -f
	bench/run -f -n fixedrate-http -R direct,mesh-http,mesh-mtls-http,haproxy-http -C 1000x16,5000x16,10000x16
	env BUILD=$(BUILD) bench/scale
	tests/uml/run $(KTLS_MODULES) bench/run -k -r 3
	tests/uml/run -m sch_netem $(KTLS_MODULES) bench/run -t -r 3
	tests/uml/run $(KTLS_MODULES) bench/run -f -k -r 3 -C 200x16

# The compatibility sweep (compat/run; not part of test: it installs
# PostgreSQL, MariaDB, Redis, memcached, Java, PHP...): a table in
# compat/results.md. Its fast cases (sshd, lftp/vsftpd, Go, gRPC) are in test.
compat: all $(HELPERS)
	env BUILD=$(BUILD) compat/run

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/meshim $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/doc/meshim $(DESTDIR)$(PREFIX)/share/meshim \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0755 $(BUILD)/libmeshim.so $(DESTDIR)$(PREFIX)/lib/meshim/libmeshim.so
	rm -f $(DESTDIR)$(PREFIX)/lib/meshim/libmeshim-tls-*.so
	install -m 0644 $(BUILD)/libmeshim-tls-*.so $(DESTDIR)$(PREFIX)/lib/meshim/
	install -m 0755 $(BUILD)/meshim $(DESTDIR)$(PREFIX)/bin/meshim
	install -m 0644 config/meshim.ini $(DESTDIR)$(PREFIX)/share/meshim/meshim.ini.example
	install -m 0644 README.md LICENSE $(DESTDIR)$(PREFIX)/share/doc/meshim/
	install -m 0644 man/meshim.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 man/meshim.ini.5 $(DESTDIR)$(PREFIX)/share/man/man5/

# A Debian package of this build (packaging/deb): the library in
# /usr/lib/meshim, the command in /usr/bin, man pages, the example config in
# /usr/share/doc/meshim/examples. The command finds the library from its own
# place (../lib/meshim), so the build needs no other PREFIX.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB      := $(BUILD)/meshim_$(VERSION)_$(DEB_ARCH).deb
deb: $(DEB)
$(DEB): all packaging/deb/build man/meshim.1 man/meshim.ini.5 config/meshim.ini
	packaging/deb/build $(BUILD) $(VERSION) $(DEB_ARCH) $@

clean:
	rm -rf build build-asan build-tsan build-fuzz
