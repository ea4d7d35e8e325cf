#!/bin/sh
# ZFS plan for backup (site sandbox), rendered by opsctl from the site spec.
# Review it, then run it as root; `opsctl provision` applies the same plan idempotently.
# It only creates: every step is skipped when its pool/dataset already exists, and
# nothing here destroys or recreates a pool or dataset.
set -eu

# pool:tank
if ! zpool list -H -o name tank >/dev/null 2>&1; then
    zpool create -o ashift=12 -O normalization=formD -O utf8only=on -O casesensitivity=insensitive -O aclinherit=passthrough -O nbmand=off -O compression=lz4 -O atime=off -O mountpoint=/tank tank mirror /dev/disk/by-id/virtio-opsctl-disk-0 /dev/disk/by-id/virtio-opsctl-disk-1
fi

# dataset:tank/timemachine
if ! zfs list -H -o name tank/timemachine >/dev/null 2>&1; then
    zfs create -o mountpoint=/tank/timemachine tank/timemachine
fi

# dataset:tank/timemachine/alice
if ! zfs list -H -o name tank/timemachine/alice >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=200M -o mountpoint=/tank/timemachine/alice tank/timemachine/alice
fi

# owner:/tank/timemachine/alice
chown alice:alice /tank/timemachine/alice

# mode:/tank/timemachine/alice
chmod 0700 /tank/timemachine/alice

# dataset:tank/timemachine/bob
if ! zfs list -H -o name tank/timemachine/bob >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=100M -o mountpoint=/tank/timemachine/bob tank/timemachine/bob
fi

# owner:/tank/timemachine/bob
chown bob:bob /tank/timemachine/bob

# mode:/tank/timemachine/bob
chmod 0700 /tank/timemachine/bob
