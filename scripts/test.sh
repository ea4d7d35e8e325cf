#!/usr/bin/env bash
# The test command (README, CI): installs what it needs, lints, then runs every test:
# spec/render with the real config readers, the ML core, the Docker sandbox containers, the
# Ansible roles twice (second run: zero changes) and the qemu OpenZFS VM end to end.
# Pass pytest arguments to narrow it, e.g. `bash scripts/test.sh tests/spec`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== lint"
ruff check .
yamllint -s .
ansible-lint -q --profile production roles playbooks

echo "== tests"
# Two workers: every test file of the one OpenZFS VM (tests/support/vm.py) runs on one worker, so
# the VM boots once; every other test file is a unit of its own (module fixtures are set up once). The VM and Slurm modules spend much of their time waiting (ssh round trips under
# TCG, Slurm's requeue delay), so the two workers overlap well on 2 cores.
if [ "$#" -eq 0 ]; then
    exec pytest -n 2 --dist loadfile
fi
exec pytest "$@"
