#!/bin/bash
# Discard (TRIM/UNMAP) every block of the volume: fast on SSDs/NVMe that
# support it, and afterwards reads return zeros on devices that guarantee
# it (check `lsblk -D`: DISC-ZERO). Fails on devices without discard support
# instead of pretending: pick quick_reset.sh or shred.sh for those.
# No --force: blkdiscard then opens the device with O_EXCL and refuses one
# that is mounted (in any namespace) or otherwise held.
set -euo pipefail
dev="${LOCAL_PV_BLKDEVICE:?LOCAL_PV_BLKDEVICE is not set}"
[ -b "$dev" ] || { echo "$dev is not a block device" >&2; exit 1; }
echo "discarding all blocks of $dev"
blkdiscard "$dev"
echo "blkdiscard of $dev done"
