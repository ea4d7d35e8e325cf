#!/usr/bin/env bash
# The main job on the embedded default site (inventory/sandbox.yml), on this machine:
# start the sandbox (a qemu VM with real OpenZFS + Samba + Netatalk + Avahi, and a trainer
# container), provision it, provision again (must report zero changes), verify it with
# testinfra, then train the name model in a container on the trainer and print its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
NAMES=${1:-../shared/data/names.txt}

opsctl validate
opsctl sandbox up
opsctl provision
opsctl provision --json > /tmp/opsctl-second-provision.json
changed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["changed"])' /tmp/opsctl-second-provision.json)
echo "second provision: $changed change(s)"
[ "$changed" -eq 0 ] || { echo "provision is not idempotent" >&2; exit 1; }
opsctl verify
opsctl train --names "$NAMES"
