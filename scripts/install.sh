#!/usr/bin/env bash
# Install what opsctl and its tests need on a Debian machine (run as root or with sudo):
# system tools from Debian, then a virtualenv in .venv with opsctl, the ML core and test tools.
# Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Host tools: Docker engine (sandbox containers), debootstrap (images), qemu (the OpenZFS VM),
# and the real config readers the render tests call (testparm, xmllint, shellcheck).
packages=(docker.io debootstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client openssh-server
          samba-common-bin samba-testsuite libxml2-utils shellcheck rsync python3-venv python3-pip git ca-certificates
          chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch==2.13.0: the CPU build (the ML core runs on CPU here; GPU hosts build their own image).
stamp=.venv/.opsctl-installed
want=$(cat pyproject.toml ml/pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q "torch==2.13.0" -e ./ml -e '.[test]'
    echo "$want" > "$stamp"
fi
echo "ready: $(.venv/bin/opsctl --version)"
