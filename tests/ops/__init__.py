"""Day-2 operations tests moved to the package they test (tests mirror the code): status and the VM
ops module -> tests/status, users -> tests/users, secrets -> tests/apply, host keys -> tests/connections,
CLI guards -> tests/cli, notify -> tests/notify. This folder stays so the documented fast subset
(`tests/spec tests/render tests/ml tests/ops -k "not vm"`) still runs as written."""
