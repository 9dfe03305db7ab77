#!/usr/bin/env bash
# Guest side of `make demo`: a visible workload on twinfs.
set -euo pipefail
. "$TWINFS_GUEST_LIB"
step() { printf '\n== %s\n' "$*"; }

step "load twinfs.ko and mount /dev/vda"
load_twinfs
mount -t twinfs /dev/vda /mnt
dmesg | grep 'twinfs (vda)' | tail -2

step "workload: a source-tree-like copy, a big file, renames, links"
start=$(date +%s.%N)
cp -a /usr/include/linux /mnt/include
dd if=/dev/urandom of=/mnt/big bs=1M count=64 status=none
mkdir -p /mnt/projects/a /mnt/projects/b
for i in $(seq 1 2000); do echo "file $i" > "/mnt/projects/a/f$i"; done
for i in $(seq 1 1000); do mv "/mnt/projects/a/f$i" "/mnt/projects/b/g$i"; done
ln /mnt/big /mnt/big.link
ln -s ../big /mnt/projects/big.sym
rm -rf /mnt/include/netfilter
sync
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "workload took %.1f s (software-emulated guest)\n", e - s }'
find /mnt -type f | wc -l | xargs printf '%s files\n'
find /mnt -type d | wc -l | xargs printf '%s directories\n'
sha256sum /mnt/big | tee /out/big.sha256

step "df and /sys/fs/twinfs/vda"
df -h /mnt
"$TWINFS_BIN/twinfsctl" status

step "umount, fsck.twinfs, mount again"
( cd /mnt && find . -type f -print0 | sort -z | xargs -0 sha256sum ) > /out/before.sha
umount /mnt
"$TWINFS_BIN/fsck.twinfs" /dev/vda
mount -t twinfs /dev/vda /mnt
( cd /mnt && find . -type f -print0 | sort -z | xargs -0 sha256sum ) > /out/after.sha
cmp /out/before.sha /out/after.sha
echo "all $(wc -l < /out/after.sha) files identical after remount"
umount /mnt
