#!/usr/bin/env bash
# Prints the version of the Debian amd64 kernel the VM tests boot and the
# module is built for: the newest /boot/vmlinuz-*-amd64 with headers.
set -euo pipefail
for v in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V -r); do
	if [ -d "/lib/modules/$v/build" ]; then
		echo "$v"
		exit 0
	fi
done
echo "twinfs: no Debian amd64 kernel with headers found (run scripts/install-deps.sh)" >&2
exit 1
