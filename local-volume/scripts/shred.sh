#!/bin/bash
# Full overwrite of a block volume: `shred` with N random passes (first
# argument, default 1) and a final pass of zeros. Slow: hours for large
# disks; raise --block-cleaner-timeout accordingly.
set -euo pipefail
dev="${LOCAL_PV_BLKDEVICE:?LOCAL_PV_BLKDEVICE is not set}"
passes="${1:-1}"
[ -b "$dev" ] || { echo "$dev is not a block device" >&2; exit 1; }
case "$passes" in (''|*[!0-9]*) echo "passes must be a number, got $passes" >&2; exit 2;; esac
echo "shredding $dev with $passes pass(es) and a final zero pass"
shred --force --zero --iterations="$passes" "$dev"
echo "shred of $dev done"
