#!/usr/bin/env bash
# The test command (README, CI): installs what it needs, lints, then runs every test:
# spec/render with the real config readers, the ML core, the Docker sandbox containers, the
# Ansible roles twice (second run: zero changes) and the qemu OpenZFS VM end to end.
# Pass pytest arguments to narrow it, e.g. `bash scripts/test.sh tests/spec`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

builder=""
if [ "$#" -eq 0 ] && [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
    # The whole suite needs the OpenZFS VM image (about 10 minutes to build from scratch): start it now
    # so it builds while lint runs. The session VM fixture waits on the image's lock and finds it
    # ready; if this build fails, the fixture builds it itself and reports why.
    log="$(mktemp -t opsctl-vm-image.XXXXXX.log)"
    echo "== building the VM image in the background (log: $log)"
    python -c 'from opsctl.sandbox.vm import ensure_vm_image; ensure_vm_image(progress=print)' >"$log" 2>&1 &
    builder=$!
    trap '[ -z "$builder" ] || kill "$builder" 2>/dev/null || true' EXIT  # lint failed: stop it
fi

echo "== lint"
ruff check .
yamllint -s .
ansible-lint -q --profile production roles playbooks

echo "== tests"
# Two workers: the test files of the OpenZFS VM (tests/support/vm.py) run on one worker, one after
# another, so its VM boots once; once the other worker's own files are done it takes VM files from
# the back of that queue (VM_TAIL ones first) on a VM of its own; every test file is a unit of its own
# (module fixtures are set up once). The VM and Slurm modules spend much of their time waiting (ssh
# round trips under TCG, Slurm's requeue delay), so the two workers overlap well on 2 cores.
trap - EXIT  # from here on the build (if any) runs on; pytest waits for it
if [ "$#" -eq 0 ]; then
    exec pytest -n 2 --dist loadfile
fi
exec pytest "$@"
