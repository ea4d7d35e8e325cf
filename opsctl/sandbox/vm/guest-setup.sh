#!/bin/bash
# shellcheck disable=SC2012  # `ls /usr/lib/modules`: kernel version directories, plain names
# The sandbox VM image's guest recipe: runs once inside the debootstrap chroot (bash, as root) while
# `opsctl sandbox build-image` builds the image (opsctl/sandbox/vm/image.py).
#
# Inputs come from the environment: KERNEL_PACKAGES, BUILD_PACKAGES, GUEST_PACKAGES,
# OPTIONAL_PACKAGES, INITRD_MODULES, VERSION_PACKAGES, SUITE, COMPONENTS, MIRROR (this machine's
# Debian mirror, never written here). The guest's root public key is at /tmp/opsctl/authorized_keys;
# outputs go to /tmp/opsctl (kver, versions).
#
# Everything below the marker line is the recipe: its bytes are part of the image hash (the cache key
# under $OPSCTL_CACHE/zfsvm/<hash>), so any change there builds a new image (10-20 minutes). Add new
# guest software as a few lines before "# Identity, network, console, ssh." (packages go in
# GUEST_PACKAGES in image.py). Lines above the marker are not hashed.
# ---- recipe (hashed) ----

set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

rm -f /etc/apt/sources.list
cat > /etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: ${MIRROR}
Suites: ${SUITE}
Components: ${COMPONENTS}
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat > /etc/apt/apt.conf.d/90opsctl <<'EOF'
// The package mirror may serve a dated snapshot whose Release files are past Valid-Until.
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Dpkg::Options { "--force-confdef"; "--force-confold"; };
EOF
echo 'zfs-dkms zfs-dkms/note-incompatible-licenses note' | debconf-set-selections
# Build-time only (undone below): dpkg skips fsync (a half-written chroot is thrown away anyway),
# and the initramfs is generated once at the end instead of by every kernel/zfs trigger (five times).
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/90opsctl-build
mkdir -p /etc/initramfs-tools
printf 'update_initramfs=no\nbackup_initramfs=no\n' > /etc/initramfs-tools/update-initramfs.conf

apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q ${KERNEL_PACKAGES}
KVER=$(ls /usr/lib/modules | sort -V | tail -n 1)
test -e "/usr/src/linux-headers-${KVER}/Makefile"

for m in ${INITRD_MODULES}; do echo "$m"; done >> /etc/initramfs-tools/modules
# shellcheck disable=SC2086
apt-get install -y -q ${BUILD_PACKAGES}
ZVER=$(dpkg-query -W -f='${Version}' zfs-dkms | sed -e 's/-[^-]*$//')
if [ -z "$(dkms status -m zfs -v "${ZVER}" -k "${KVER}" | grep installed || true)" ]; then
    # KCFLAGS=-g0: no DWARF for the modules (the kernel's config asks for it; nothing here reads it),
    # a shorter compile of configure's probes and of zfs.ko.
    KCFLAGS=-g0 dkms install "zfs/${ZVER}" -k "${KVER}"
fi
dkms status
# Keep the compiled modules outside dkms' reach, then drop the compiler and headers.
mkdir -p "/usr/lib/modules/${KVER}/extra/opsctl-zfs"
find "/usr/lib/modules/${KVER}/updates/dkms" -name '*.ko*' \
    -exec cp -a {} "/usr/lib/modules/${KVER}/extra/opsctl-zfs/" \;
ls -l "/usr/lib/modules/${KVER}/extra/opsctl-zfs/"

OPTIONAL=""
for p in ${OPTIONAL_PACKAGES}; do
    if apt-cache show "$p" > /dev/null 2>&1; then OPTIONAL="$OPTIONAL $p"; fi
done
# shellcheck disable=SC2086
apt-get install -y -q ${GUEST_PACKAGES} ${OPTIONAL}
# shellcheck disable=SC2086
apt-mark auto ${BUILD_PACKAGES} > /dev/null
# shellcheck disable=SC2086
apt-mark manual ${GUEST_PACKAGES} ${OPTIONAL} > /dev/null
apt-get purge -y -q zfs-dkms dkms 'linux-headers-*'
apt-get autoremove --purge -y -q
depmod -a "${KVER}"
modinfo -k "${KVER}" zfs | grep -E '^(filename|version):'
echo zfs > /etc/modules-load.d/zfs.conf

# Docker is in the image for backup.mode containers only: off at boot (the backup_containers role
# enables and starts it), so host-mode tests do not pay for dockerd under TCG.
systemctl disable docker.service docker.socket
systemctl disable containerd.service 2> /dev/null || true

# Identity, network, console, ssh.
echo backup > /etc/hostname
cat > /etc/hosts <<'EOF'
127.0.0.1   localhost
127.0.1.1   backup
::1         localhost ip6-localhost ip6-loopback
EOF
cat > /etc/fstab <<'EOF'
/dev/vda  /  ext4  defaults,errors=remount-ro  0  0
EOF
mkdir -p /etc/systemd/network
cat > /etc/systemd/network/20-virtio.network <<'EOF'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
EOF
systemctl enable systemd-networkd.service serial-getty@ttyS0.service
systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2> /dev/null || true
rm -f /etc/machine-id /var/lib/dbus/machine-id
systemd-machine-id-setup
echo 'nameserver 10.0.2.3' > /etc/resolv.conf

mkdir -p /etc/ssh/sshd_config.d /root/.ssh
cat > /etc/ssh/sshd_config.d/opsctl.conf <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
install -m 0600 /tmp/opsctl/authorized_keys /root/.ssh/authorized_keys
chmod 0700 /root/.ssh
passwd -l root

printf 'update_initramfs=yes\nbackup_initramfs=no\n' > /etc/initramfs-tools/update-initramfs.conf
rm -f /etc/dpkg/dpkg.cfg.d/90opsctl-build "/boot/initrd.img-${KVER}"
update-initramfs -c -k "${KVER}"
lsinitramfs "/boot/initrd.img-${KVER}" > /tmp/opsctl/initrd.list
for m in virtio_blk virtio_net ext4; do grep -E "/${m}\.ko" /tmp/opsctl/initrd.list; done

: > /tmp/opsctl/versions
for p in ${VERSION_PACKAGES} ${OPTIONAL}; do
    printf '%s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")" >> /tmp/opsctl/versions
done
printf 'zfs-module %s\n' "$(modinfo -k "${KVER}" -F version zfs)" >> /tmp/opsctl/versions
printf 'kernel %s\n' "${KVER}" >> /tmp/opsctl/versions
printf '%s\n' "${KVER}" > /tmp/opsctl/kver

apt-get clean
rm -f /usr/sbin/policy-rc.d
rm -rf /var/log/*.log /var/log/apt/* /var/cache/debconf/*-old /usr/share/doc/* /usr/share/man/*
