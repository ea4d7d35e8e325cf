#!/bin/sh
# ZFS plan for backup (site sandbox), rendered by opsctl from the site spec:
# the pool, the Time Machine users' accounts, the extra shares' groups, every dataset with its
# properties, and the owner and mode of each share's mountpoint. `opsctl provision` applies the
# same desired state (plan.json) idempotently. Review it, then run it as root.
# It only creates: every step is skipped when its pool/account/dataset already exists, and nothing
# here destroys or recreates a pool or dataset. When the pool is not imported but can be imported
# from its disks (after an OS reinstall, say), the script stops: import it (`opsctl provision` does).
set -eu
if ! zpool list -H -o name tank >/dev/null 2>&1; then
    if zpool import -d /dev/disk/by-id 2>/dev/null | grep -q 'pool:'; then
        printf '%s\n' 'a pool can be imported from /dev/disk/by-id: run '"'"'zpool import -d /dev/disk/by-id'"'"' and import it; not creating tank' >&2
        exit 1
    fi
fi

# pool:tank
if ! zpool list -H -o name tank >/dev/null 2>&1; then
    zpool create -o ashift=12 -O normalization=formD -O utf8only=on -O casesensitivity=insensitive -O aclinherit=passthrough -O nbmand=off -O compression=lz4 -O atime=off -O mountpoint=/tank tank mirror /dev/disk/by-id/virtio-opsctl-disk-0 /dev/disk/by-id/virtio-opsctl-disk-1
fi

# group:alice
if ! getent group alice >/dev/null 2>&1; then
    groupadd alice
fi

# user:alice
if ! getent passwd alice >/dev/null 2>&1; then
    useradd -M -g alice -d /tank/timemachine/alice -s /usr/sbin/nologin -c '' alice
fi

# group:bob
if ! getent group bob >/dev/null 2>&1; then
    groupadd bob
fi

# user:bob
if ! getent passwd bob >/dev/null 2>&1; then
    useradd -M -g bob -d /tank/timemachine/bob -s /usr/sbin/nologin -c '' bob
fi

# dataset:tank/timemachine
if ! zfs list -H -o name tank/timemachine >/dev/null 2>&1; then
    zfs create -o mountpoint=/tank/timemachine tank/timemachine
fi

# dataset:tank/timemachine/alice
if ! zfs list -H -o name tank/timemachine/alice >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=200M -o mountpoint=/tank/timemachine/alice -o opsctl:user=alice tank/timemachine/alice
fi

# owner:/tank/timemachine/alice
chown alice:alice /tank/timemachine/alice

# mode:/tank/timemachine/alice
chmod 0700 /tank/timemachine/alice

# dataset:tank/timemachine/bob
if ! zfs list -H -o name tank/timemachine/bob >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=100M -o mountpoint=/tank/timemachine/bob -o opsctl:user=bob tank/timemachine/bob
fi

# owner:/tank/timemachine/bob
chown bob:bob /tank/timemachine/bob

# mode:/tank/timemachine/bob
chmod 0700 /tank/timemachine/bob
