#!/bin/sh
# ZFS plan for tm1 (site lab), rendered by opsctl from the site spec.
# Review it, then run it as root; `opsctl provision` applies the same plan idempotently.
# It only creates: every step is skipped when its pool/dataset already exists, and
# nothing here destroys or recreates a pool or dataset.
set -eu

# pool:backup
if ! zpool list -H -o name backup >/dev/null 2>&1; then
    zpool create -o ashift=12 -O normalization=formD -O utf8only=on -O casesensitivity=insensitive -O aclinherit=passthrough -O nbmand=off -O compression=lz4 -O atime=off -O mountpoint=/backup backup raidz2 /dev/disk/by-id/ata-WDC_WD40EFRX-1 /dev/disk/by-id/ata-WDC_WD40EFRX-2 /dev/disk/by-id/ata-WDC_WD40EFRX-3 /dev/disk/by-id/ata-WDC_WD40EFRX-4
fi

# dataset:backup/tm
if ! zfs list -H -o name backup/tm >/dev/null 2>&1; then
    zfs create -o mountpoint=/srv/timemachine backup/tm
fi

# dataset:backup/tm/alice
if ! zfs list -H -o name backup/tm/alice >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=500G -o mountpoint=/srv/timemachine/alice backup/tm/alice
fi

# owner:/srv/timemachine/alice
chown alice:alice /srv/timemachine/alice

# mode:/srv/timemachine/alice
chmod 0700 /srv/timemachine/alice

# dataset:backup/tm/bob_2
if ! zfs list -H -o name backup/tm/bob_2 >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=1.5T -o mountpoint=/srv/timemachine/bob_2 backup/tm/bob_2
fi

# owner:/srv/timemachine/bob_2
chown bob_2:bob_2 /srv/timemachine/bob_2

# mode:/srv/timemachine/bob_2
chmod 0700 /srv/timemachine/bob_2

# dataset:backup/tm/carol-c
if ! zfs list -H -o name backup/tm/carol-c >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=250G -o mountpoint=/srv/timemachine/carol-c backup/tm/carol-c
fi

# owner:/srv/timemachine/carol-c
chown carol-c:carol-c /srv/timemachine/carol-c

# mode:/srv/timemachine/carol-c
chmod 0700 /srv/timemachine/carol-c

# dataset:backup/projects
if ! zfs list -H -o name backup/projects >/dev/null 2>&1; then
    zfs create -p -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=2T -o mountpoint=/backup/projects backup/projects
fi
