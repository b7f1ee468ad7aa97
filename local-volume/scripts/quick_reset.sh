#!/bin/bash
# Quick reset of a block volume before it is offered again: erase every
# filesystem / partition-table signature (wipefs) and zero the first and
# last MiB, so the next tenant finds no filesystem and no partition table.
# Data beyond those regions is NOT overwritten: use shred.sh for that.
# The provisioner sets LOCAL_PV_BLKDEVICE to the device (or a symlink to it).
# No --force: wipefs opens the device with O_EXCL and refuses one that is
# mounted (in any namespace) or otherwise held, before dd touches it.
set -euo pipefail
dev="${LOCAL_PV_BLKDEVICE:?LOCAL_PV_BLKDEVICE is not set}"
[ -b "$dev" ] || { echo "$dev is not a block device" >&2; exit 1; }
size=$(blockdev --getsize64 "$dev")
mib=$((1024 * 1024))
echo "quick reset of $dev ($size bytes)"
wipefs --all "$dev"
count=1
bs=$(( size < mib ? size : mib ))
dd if=/dev/zero of="$dev" bs="$bs" count="$count" conv=fsync,notrunc status=none
if [ "$size" -gt $((2 * mib)) ]; then
  dd if=/dev/zero of="$dev" bs="$mib" count=1 seek=$(( size / mib - 1 )) conv=fsync,notrunc status=none
fi
echo "quick reset of $dev done"
