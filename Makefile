# subgate: one non-recursive Makefile; every habit is a target (see README and docs/ARCHITECTURE.md).
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror -Wpedantic -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wwrite-strings \
            -Wvla -Wformat=2 -Wimplicit-fallthrough -Wconversion
PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
BASE      = -std=c17 -D_GNU_SOURCE -Isrc $(PQ_CFLAGS) -MMD -MP $(WARN)
# Include paths beyond -Isrc, by source file ($(call INC,file.c)): tests see tests/unit (t.h),
# and only the emulator's own tests (test_emu_*, fuzz_emu_*) see emulator/, whose form.h,
# objects.h, api.h, billing.h... share names with headers under src/. Emulator sources need no
# -Iemulator: their quoted includes resolve beside the including file.
INC       = $(if $(filter tests/%,$1),-Itests/unit) \
            $(if $(filter tests/unit/test_emu_% tests/fuzz/fuzz_emu_%,$1),-Iemulator)
LDLIBS    = -lmicrohttpd -ljansson -lsqlite3 -lpq -lcurl -lssl -lcrypto -lpthread
HARDEN    = -D_FORTIFY_SOURCE=2 -fstack-protector-strong
SAN_asan  = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_fuzz  = -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
LINK_fuzz = -fsanitize=fuzzer
FLAVOR   ?= release
B        ?= build/$(FLAVOR)
ALL_CFLAGS = $(BASE) $(if $(SAN_$(FLAVOR)),$(SAN_$(FLAVOR)),$(CFLAGS) $(HARDEN))

# One short line per step ("  CC      src/api/auth.c"); V=1 prints the full commands instead.
# Compiler warnings and errors show either way.
ifneq ($(V),1)
SAY = @printf '  %-7s %s\n' '$1' '$2';
endif

LIB_SRC   = $(filter-out src/main.c,$(shell find src -name '*.c'))
GEN_SRC   = $(B)/gen/migrations.c $(B)/gen/openapi.c $(B)/gen/page.c
LIB_OBJ   = $(LIB_SRC:%.c=$(B)/%.o) $(GEN_SRC:.c=.o)
UNIT_BIN  = $(patsubst %.c,$(B)/%,$(wildcard tests/unit/test_*.c tests/contract/test_*.c \
                                            tests/integration/test_*.c))
TOOL_BIN  = $(patsubst %.c,$(B)/%,$(wildcard tests/tools/*.c))
EMU_SRC   = $(wildcard emulator/*.c)
EMU_OBJ   = $(EMU_SRC:%.c=$(B)/%.o)
FUZZ_SRC  = $(wildcard tests/fuzz/fuzz_*.c)
SQL_FILES = $(wildcard src/store/sql/*/*.sql)

all: $(B)/subgate $(if $(EMU_SRC),$(B)/stripe-emulator)

$(B)/subgate: $(B)/src/main.o $(B)/libsubgate.a
	$(call SAY,LD,$@)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# The Stripe emulator: a separate program on the same base and HTTP layer.
$(B)/stripe-emulator: $(EMU_OBJ) $(B)/libsubgate.a
	$(call SAY,LD,$@)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/libsubgate.a: $(LIB_OBJ)
	@rm -f $@
	$(call SAY,AR,$@)ar rcs $@ $^

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(call SAY,CC,$<)$(CC) $(ALL_CFLAGS) $(call INC,$<) -c -o $@ $<

# Migrations are compiled in (generated from src/store/sql/<backend>/NNN_name.sql), so the binary
# needs no files beside it.
$(B)/gen/migrations.c: $(SQL_FILES) scripts/embed_sql.sh
	@mkdir -p $(@D)
	$(call SAY,GEN,$@)scripts/embed_sql.sh src/store/sql > $@

# The OpenAPI document served at GET /openapi.json is compiled in the same way.
$(B)/gen/openapi.c: docs/openapi.json scripts/embed_file.sh
	@mkdir -p $(@D)
	$(call SAY,GEN,$@)scripts/embed_file.sh openapi_json docs/openapi.json api/openapi.h > $@

# So are the billing page's files (/billing/, docs/billing-page.md) and the JS client it loads.
PAGE_FILES = web/billing/index.html web/billing/billing.css web/billing/billing.js \
             clients/js/subgate.js
$(B)/gen/page.c: $(PAGE_FILES) scripts/embed_file.sh
	@mkdir -p $(@D)
	{ scripts/embed_file.sh page_index_html web/billing/index.html api/page.h && \
	  scripts/embed_file.sh page_billing_css web/billing/billing.css api/page.h && \
	  scripts/embed_file.sh page_billing_js web/billing/billing.js api/page.h && \
	  scripts/embed_file.sh page_subgate_js clients/js/subgate.js api/page.h; } > $@.tmp
	mv $@.tmp $@

$(B)/gen/%.o: $(B)/gen/%.c
	$(call SAY,CC,$<)$(CC) $(ALL_CFLAGS) -Wno-overlength-strings -c -o $@ $<

# A test of an emulator module, tests/unit/test_emu_<m>.c or tests/fuzz/fuzz_emu_<m>.c, links
# emulator/<m>.o, then whatever it needs of the other emulator modules (libemulator.a: all but
# main.o), so a module above the bottom layer can be tested with the ones below it.
EMU_LIB       = $(B)/libemulator.a
EMU_TEST_LINK = $(call SAY,LD,$@)$(CC) $(ALL_CFLAGS) $(call INC,$<) $(LINK_$(FLAVOR)) -o $@ $< \
                $(B)/emulator/$*.o $(EMU_LIB) $(B)/libsubgate.a $(LDLIBS)

$(EMU_LIB): $(filter-out $(B)/emulator/main.o,$(EMU_OBJ))
	@rm -f $@
	$(call SAY,AR,$@)ar rcs $@ $^

$(B)/tests/unit/test_emu_%: tests/unit/test_emu_%.c $(B)/emulator/%.o $(EMU_LIB) $(B)/libsubgate.a
	@mkdir -p $(@D)
	$(EMU_TEST_LINK)

$(B)/tests/fuzz/fuzz_emu_%: tests/fuzz/fuzz_emu_%.c $(B)/emulator/%.o $(EMU_LIB) $(B)/libsubgate.a
	@mkdir -p $(@D)
	$(EMU_TEST_LINK)

$(B)/tests/%: tests/%.c $(B)/libsubgate.a
	@mkdir -p $(@D)
	$(call SAY,LD,$@)$(CC) $(ALL_CFLAGS) $(call INC,$<) $(LINK_$(FLAVOR)) -o $@ $< $(B)/libsubgate.a $(LDLIBS)

units: $(UNIT_BIN) $(TOOL_BIN)

# The whole suite (README's test command): installs what is missing, builds, then runs unit,
# contract, integration and fuzz-smoke tests in the release and ASan+UBSan builds, after the
# format and lint gates.
test:
	@scripts/deps.sh --test
	@scripts/test.sh gates release asan fuzz

# The suite under ASan+UBSan only.
check:
	@scripts/deps.sh --test
	@scripts/test.sh asan

integration:
	@scripts/deps.sh --test
	@scripts/test.sh --only integration release

# Each fuzz target for FUZZ_SECONDS (default 10) over its committed corpus.
fuzz:
	@scripts/deps.sh --fuzz
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-10} scripts/test.sh --only fuzz fuzz

# Built with FLAVOR=fuzz CC=clang (scripts/test.sh does it).
fuzzers: $(FUZZ_SRC:%.c=$(B)/%)

# Throughput, latency and memory against nginx on this machine (not part of the test command).
bench:
	@scripts/deps.sh --bench
	@$(MAKE) --no-print-directory FLAVOR=release all
	@scripts/bench.sh

run:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

# Installs the binary, the systemd unit, the man page and an example environment file under
# PREFIX, staged under DESTDIR (packagers). The unit's and the page's paths follow the variables.
PREFIX           ?= /usr/local
BINDIR           ?= $(PREFIX)/bin
MANDIR           ?= $(PREFIX)/share/man
DOCDIR           ?= $(PREFIX)/share/doc/subgate
SYSCONFDIR       ?= /etc
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
VERSION          := $(shell sed -n 's/^\#define SUBGATE_VERSION "\(.*\)"/\1/p' src/base/version.h)
DIST_SUBST        = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
                    -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@SYSTEMD_UNIT_DIR@|$(SYSTEMD_UNIT_DIR)|g' \
                    -e 's|@VERSION@|$(VERSION)|g'

install: $(B)/subgate
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(SYSTEMD_UNIT_DIR)" "$(DESTDIR)$(MANDIR)/man8" \
	    "$(DESTDIR)$(DOCDIR)"
	install -m 0755 $(B)/subgate "$(DESTDIR)$(BINDIR)/subgate"
	$(DIST_SUBST) dist/subgate.service.in > "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/subgate.service"
	$(DIST_SUBST) dist/subgate.8.in > "$(DESTDIR)$(MANDIR)/man8/subgate.8"
	chmod 0644 "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/subgate.service" "$(DESTDIR)$(MANDIR)/man8/subgate.8"
	install -m 0644 dist/subgate.env.example "$(DESTDIR)$(DOCDIR)/subgate.env.example"

# Removes what install installed; the configuration in SYSCONFDIR and the state are kept.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/subgate" "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/subgate.service" \
	    "$(DESTDIR)$(MANDIR)/man8/subgate.8" "$(DESTDIR)$(DOCDIR)/subgate.env.example"
	rmdir "$(DESTDIR)$(DOCDIR)" 2>/dev/null || true

lint:
	@scripts/lint.sh

format:
	clang-format -i $$(find src tests emulator -name '*.[ch]' 2>/dev/null)

format-check:
	clang-format --dry-run --Werror $$(find src tests emulator -name '*.[ch]' 2>/dev/null)

deps:
	@scripts/deps.sh

clean:
	rm -rf build

.PHONY: all units test check integration fuzz fuzzers bench run install uninstall lint format format-check \
        deps clean
.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
