# SPDX-License-Identifier: GPL-2.0
# twinfs top-level build.
#
#   make            twinfs.ko, libtwinfscore, tools, twinfsd, unit tests
#   make module     only twinfs.ko (KDIR= selects the kernel build tree)
#   make check      every test: Catch2 unit tests and the VM suite
#   make unit       Catch2 unit tests only
#   make vmtest     VM suite only
#   make demo       the main job: two-node cluster in VMs, kill the owner, takeover
#   make bench      benchmarks, local and mirrored (Documentation/benchmarks.md)
#   make fuzz       the change-record decoder fuzzer, bounded (FUZZ_SECS)
#   make install    module under /lib/modules/$(KVER)/extra, tools in /usr/sbin
#   make fuzz       fuzz the change-record decoder (tests/fuzz/run.sh)

# The guest kernel: Debian 12's amd64 kernel, the one the VM tests boot.
KVER ?= $(shell bash scripts/guest-kernel.sh 2>/dev/null)
KDIR ?= /lib/modules/$(KVER)/build

BUILD ?= build
CC ?= gcc
CXX ?= g++
CFLAGS_USER := -std=gnu11 -O2 -g -Wall -Wextra -Werror -I. -Ikmod/core
CXXFLAGS_USER := -std=c++20 -O2 -g -Wall -Wextra -Werror -I. -Ikmod/core \
	-Iuserspace/include

CORE_SRCS := kmod/core/csum.c kmod/core/layout.c kmod/core/bitmap.c \
	kmod/core/extent.c kmod/core/dir.c kmod/core/undo.c \
	kmod/core/cm.c kmod/core/crc32c_user.c
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)
LIBCORE := $(BUILD)/libtwinfscore.a

.PHONY: all module user clean check unit vmtest demo bench deps install fuzz

all: module user

deps:
	@bash scripts/install-deps.sh

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR)/kmod modules W=1

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_USER) -MMD -c $< -o $@

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_USER) -MMD -c $< -o $@

$(LIBCORE): $(CORE_OBJS)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

USER_TARGETS :=
include tools/Makefile.inc
include userspace/Makefile.inc
include tests/unit/Makefile.inc

user: $(LIBCORE) $(USER_TARGETS)

unit: $(UNIT_TEST_BIN)
	$(UNIT_TEST_BIN)

check:
	@bash tests/run-all.sh

vmtest: all
	@bash tests/vm/run-all.sh

demo:
	@bash scripts/demo.sh

# Both benchmarks: the local one (tests/vm/bench.sh) and the mirroring one
# (tests/vm/bench-mirror.sh, two guests); BENCH_SUITE=local|mirror for one.
bench:
	@rc=0; \
	case "$${BENCH_SUITE:-all}" in all|local) bash tests/vm/bench.sh || rc=1;; esac; \
	case "$${BENCH_SUITE:-all}" in all|mirror) bash tests/vm/bench-mirror.sh || rc=1;; esac; \
	exit $$rc

# libFuzzer (clang) on the change-record decoder; FUZZ_SECS=60 by default.
fuzz:
	@bash tests/fuzz/run.sh

# Installs the module for $(KVER) and the programs; DESTDIR= for packaging.
install: all
	install -D -m 644 kmod/twinfs.ko \
		$(DESTDIR)/lib/modules/$(KVER)/extra/twinfs.ko
	install -D -m 755 $(BUILD)/mkfs.twinfs $(DESTDIR)/usr/sbin/mkfs.twinfs
	install -D -m 755 $(BUILD)/fsck.twinfs $(DESTDIR)/usr/sbin/fsck.twinfs
	install -D -m 755 $(BUILD)/twinfsctl $(DESTDIR)/usr/sbin/twinfsctl
	install -D -m 755 $(BUILD)/twinfsd $(DESTDIR)/usr/sbin/twinfsd
	install -D -m 644 userspace/twinfsd.service \
		$(DESTDIR)/lib/systemd/system/twinfsd.service
	[ -n "$(DESTDIR)" ] || depmod $(KVER)

clean:
	rm -rf $(BUILD)
	-$(MAKE) -C $(KDIR) M=$(CURDIR)/kmod clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
