#!/usr/bin/env bash
# Install the Debian 12 packages twinfs needs to build and test, when missing.
# Idempotent: prints nothing and does nothing when everything is present.
set -euo pipefail

pkgs=(
	build-essential make gcc g++ pkg-config
	linux-image-amd64 linux-headers-amd64
	qemu-system-x86 busybox-static cpio kmod e2fsprogs
	catch2 libnl-genl-3-dev libsystemd-dev
	clang libclang-rt-14-dev
	python3 gnuplot-nox
	drbd-utils perftest ibverbs-providers
	corosync libcpg-dev libquorum-dev libvotequorum-dev libcmap-dev
	libcorosync-common-dev libinih-dev nlohmann-json3-dev
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "twinfs: installing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
