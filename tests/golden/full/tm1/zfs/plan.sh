#!/bin/sh
# ZFS plan for tm1 (site lab), rendered by opsctl from the site spec:
# the pool, the Time Machine users' accounts, the extra shares' groups, every dataset with its
# properties, and the owner and mode of each share's mountpoint. `opsctl provision` applies the
# same desired state (plan.json) idempotently. Review it, then run it as root.
# It only creates: every step is skipped when its pool/account/dataset already exists, and nothing
# here destroys or recreates a pool or dataset. When the pool is not imported but can be imported
# from its disks (after an OS reinstall, say), the script stops: import it (`opsctl provision` does).
set -eu
if ! zpool list -H -o name backup >/dev/null 2>&1; then
    if zpool import -d /dev/disk/by-id 2>/dev/null | grep -q 'pool:'; then
        printf '%s\n' 'a pool can be imported from /dev/disk/by-id: run '"'"'zpool import -d /dev/disk/by-id'"'"' and import it; not creating backup' >&2
        exit 1
    fi
fi

# pool:backup
if ! zpool list -H -o name backup >/dev/null 2>&1; then
    zpool create -o ashift=12 -O normalization=formD -O utf8only=on -O casesensitivity=insensitive -O aclinherit=passthrough -O nbmand=off -O compression=lz4 -O atime=off -O mountpoint=/backup backup raidz2 /dev/disk/by-id/ata-WDC_WD40EFRX-1 /dev/disk/by-id/ata-WDC_WD40EFRX-2 /dev/disk/by-id/ata-WDC_WD40EFRX-3 /dev/disk/by-id/ata-WDC_WD40EFRX-4
fi

# group:alice
if ! getent group alice >/dev/null 2>&1; then
    groupadd alice
fi

# user:alice
if ! getent passwd alice >/dev/null 2>&1; then
    useradd -M -g alice -d /srv/timemachine/alice -s /usr/sbin/nologin -c '' alice
fi

# group:bob_2
if ! getent group bob_2 >/dev/null 2>&1; then
    groupadd bob_2
fi

# user:bob_2
if ! getent passwd bob_2 >/dev/null 2>&1; then
    useradd -M -g bob_2 -d /srv/timemachine/bob_2 -s /usr/sbin/nologin -c '' bob_2
fi

# group:carol-c
if ! getent group carol-c >/dev/null 2>&1; then
    groupadd carol-c
fi

# user:carol-c
if ! getent passwd carol-c >/dev/null 2>&1; then
    useradd -M -g carol-c -d /srv/timemachine/carol-c -s /usr/sbin/nologin -c '' carol-c
fi

# group:share-projects
if ! getent group share-projects >/dev/null 2>&1; then
    groupadd share-projects
fi

# members:share-projects
gpasswd -M alice,bob_2 share-projects

# dataset:backup/tm
if ! zfs list -H -o name backup/tm >/dev/null 2>&1; then
    zfs create -o mountpoint=/srv/timemachine backup/tm
fi

# dataset:backup/tm/alice
if ! zfs list -H -o name backup/tm/alice >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=500G -o mountpoint=/srv/timemachine/alice -o opsctl:user=alice backup/tm/alice
fi

# owner:/srv/timemachine/alice
chown alice:alice /srv/timemachine/alice

# mode:/srv/timemachine/alice
chmod 0700 /srv/timemachine/alice

# dataset:backup/tm/bob_2
if ! zfs list -H -o name backup/tm/bob_2 >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=1.5T -o mountpoint=/srv/timemachine/bob_2 -o opsctl:user=bob_2 backup/tm/bob_2
fi

# owner:/srv/timemachine/bob_2
chown bob_2:bob_2 /srv/timemachine/bob_2

# mode:/srv/timemachine/bob_2
chmod 0700 /srv/timemachine/bob_2

# dataset:backup/tm/carol-c
if ! zfs list -H -o name backup/tm/carol-c >/dev/null 2>&1; then
    zfs create -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=250G -o mountpoint=/srv/timemachine/carol-c -o opsctl:user=carol-c backup/tm/carol-c
fi

# owner:/srv/timemachine/carol-c
chown carol-c:carol-c /srv/timemachine/carol-c

# mode:/srv/timemachine/carol-c
chmod 0700 /srv/timemachine/carol-c

# dataset:backup/projects
if ! zfs list -H -o name backup/projects >/dev/null 2>&1; then
    zfs create -p -o normalization=formD -o utf8only=on -o casesensitivity=insensitive -o aclinherit=passthrough -o nbmand=off -o compression=lz4 -o atime=off -o quota=2T -o mountpoint=/backup/projects backup/projects
fi

# owner:/backup/projects
chown root:share-projects /backup/projects

# mode:/backup/projects
chmod 2770 /backup/projects
