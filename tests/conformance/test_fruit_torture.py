"""macOS compatibility gate: Samba's own vfs_fruit torture suites against the shares opsctl provisions.

The session VM (tests/support/vm.py) is reset, reached as ``fruitbackup`` (the host of
tests/conformance/fruit_site.yml) and provisioned once with the backup playbook through the CLI.
Then smbtorture (Debian's samba-testsuite, on this machine) runs every suite of each run in
tests/conformance/fruit_expectations.yml against its share through an ssh tunnel to the VM's port
445, and the test fails on any result that differs from the expectations (a new failure, a new
pass, a missing or an unknown test). docs/macos-conformance.md says why each expected failure or
skip is expected (proven against a control server configured as Samba's selftest).

Outside CI the VM part skips when smbtorture or the VM cannot run here; in CI it fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from opsctl.site import load
from tests.support.ci import need
from tests.support.vm import alias_vm, reset_vm

HERE = Path(__file__).resolve().parent
SITE = HERE / "fruit_site.yml"
EXPECTATIONS = HERE / "fruit_expectations.yml"
HOST = "fruitbackup"
USER = "alice"
RESULTS = ("success", "failure", "skip")
TIMINGS: dict[str, float] = {}

# subunit v1 as smbtorture --format=subunit writes it: "result: name" with an optional "[ ... ]" detail block
_SUBUNIT = re.compile(r"^(success|successful|failure|fail|error|skip|xfail|uxsuccess): (.+?)(?: \[\n(.*?)^\])?$",
                      re.M | re.S)
_CANON = {"successful": "success", "fail": "failure", "error": "failure", "xfail": "failure",
          "uxsuccess": "success"}


# ------------------------------------------------------------------------------ pure helpers


def parse_subunit(text: str) -> dict[str, tuple[str, str]]:
    """Test name -> (success|failure|skip, last detail line) from smbtorture's subunit output."""
    results: dict[str, tuple[str, str]] = {}
    for match in _SUBUNIT.finditer(text):
        kind, name, detail = match.group(1), match.group(2).strip(), (match.group(3) or "").strip()
        results[name] = (_CANON.get(kind, kind), detail.splitlines()[-1] if detail else "")
    return results


def load_expectations(path: Path = EXPECTATIONS) -> list[dict]:
    """The runs of the expectations file; every failure or skip must carry a one-line reason."""
    data = yaml.safe_load(path.read_text())
    runs = data.get("runs") if isinstance(data, dict) else None
    if not runs:
        raise ValueError(f"{path.name}: no runs; list each share with its suites and expected results")
    for run in runs:
        share = run.get("share")
        if not share or not run.get("suites") or not run.get("expected"):
            raise ValueError(f"{path.name}: run {run!r} needs share, suites and expected")
        for name, exp in run["expected"].items():
            result = exp.get("result") if isinstance(exp, dict) else None
            if result not in RESULTS:
                raise ValueError(f"{path.name}: {share}/{name}: result {result!r} is not one of {', '.join(RESULTS)}")
            reason = str(exp.get("reason") or "").strip()
            if result != "success" and not reason:
                raise ValueError(f"{path.name}: {share}/{name}: expected {result} without a reason; "
                                 "add a one-line reason (proven by the control share)")
            if "\n" in reason:
                raise ValueError(f"{path.name}: {share}/{name}: the reason must be one line")
    return runs


def compare(share: str, expected: dict[str, dict], got: dict[str, tuple[str, str]]) -> list[str]:
    """One line per difference between the expected and the measured results of a share."""
    problems = []
    for name, exp in expected.items():
        if name not in got:
            problems.append(f"{share}/{name}: expected {exp['result']}, but the test did not run")
        elif got[name][0] != exp["result"]:
            result, detail = got[name]
            problems.append(f"{share}/{name}: expected {exp['result']}, got {result}"
                            + (f" ({detail})" if detail else ""))
    for name in sorted(set(got) - set(expected)):
        problems.append(f"{share}/{name}: not in {EXPECTATIONS.name} (got {got[name][0]}); add it with its result")
    return problems


def counts(got: dict[str, tuple[str, str]]) -> dict[str, int]:
    return {kind: sum(1 for result, _ in got.values() if result == kind) for kind in RESULTS}


# ------------------------------------------------------------------------------ the VM gate


def _opsctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True, text=True, timeout=3000,
                         env={**os.environ, "COLUMNS": "200", **env}, stdin=subprocess.DEVNULL)
    TIMINGS[args[0]] = round(time.monotonic() - started, 1)
    return res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the ssh tunnel exited ({proc.returncode}): {proc.stderr.read()}")
        with socket.socket() as s:
            s.settimeout(2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise AssertionError(f"the ssh tunnel to port 445 did not open on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def fruit_server(session_vm, tmp_path_factory):
    """The session VM provisioned from fruit_site.yml, its port 445 on a loopback port of this machine."""
    torture = shutil.which("smbtorture")
    if torture is None:
        need("smbtorture is not installed (Debian package samba-testsuite; scripts/install.sh installs it)")
    tmp = tmp_path_factory.mktemp("fruit")
    password = secrets.token_urlsafe(12)
    started = time.monotonic()
    reset_vm(session_vm)
    alias_vm(session_vm, HOST)
    TIMINGS["reset"] = round(time.monotonic() - started, 1)
    res = _opsctl("provision", "--site", str(SITE), "--playbook", "backup_server.yml",
                  env={"OPSCTL_SMB_PASSWORD_ALICE": password})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # smbtorture creates its test folder in the extra share: alice may, as a member of the share's group
    # (the folder is root:share-lab 2770; nothing is handed to her by hand).
    lab = next(s["path"] for s in load(SITE).site.backup.other_shares if s["name"] == "lab")
    res = session_vm.ssh(f"stat -c '%a %U %G' {shlex.quote(lab)}", timeout=120)
    assert res.stdout.strip() == "2770 root share-lab", res.stdout + res.stderr
    auth = tmp / "auth"
    auth.touch(mode=0o600)
    auth.write_text(f"username = {USER}\npassword = {password}\n")
    port = _free_port()
    tunnel = subprocess.Popen([*session_vm.ssh_command(), "-N", "-o", "ExitOnForwardFailure=yes",
                               "-L", f"127.0.0.1:{port}:127.0.0.1:445"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_port(port, tunnel)
        yield {"torture": torture, "port": port, "auth": auth, "vm": session_vm, "tmp": tmp, "password": password}
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=30)
        print("timings (s):", TIMINGS)


def _torture(server: dict, share: str, suites: list[str]) -> tuple[dict[str, tuple[str, str]], str]:
    started = time.monotonic()
    proc = subprocess.run([server["torture"], f"//127.0.0.1/{share}", "-p", str(server["port"]),
                           "-A", str(server["auth"]), "--format=subunit", *suites],
                          capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    TIMINGS[f"smbtorture {share} {' '.join(suites)}"] = round(time.monotonic() - started, 1)
    (server["tmp"] / f"{share}.subunit").write_text(proc.stdout)
    got = parse_subunit(proc.stdout)
    assert got, f"smbtorture printed no results (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return got, proc.stdout


@pytest.mark.vm
@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("run", load_expectations(), ids=lambda run: run["share"])
def test_fruit_torture_matches_expectations(fruit_server, run):
    got, _ = _torture(fruit_server, run["share"], run["suites"])
    print(f"{run['share']}: {counts(got)}")
    problems = compare(run["share"], run["expected"], got)
    assert not problems, "smbtorture results differ from fruit_expectations.yml:\n" + "\n".join(problems)


@pytest.mark.vm
@pytest.mark.slow
def test_issue_gate_tests_pass(fruit_server):
    """Issue #12's bar, independent of the expectations file: these pass against provisioned shares."""
    runs = {run["share"]: run for run in load_expectations()}
    assert runs["alice"]["expected"]["Timemachine-volsize"]["result"] == "success"
    assert runs["lab"]["expected"]["SMB2/CREATE context AAPL"]["result"] == "success"
    got, out = _torture(fruit_server, "alice", ["vfs.fruit_timemachine"])
    assert got.get("Timemachine-volsize", ("missing",))[0] == "success", out[-2000:]


@pytest.mark.vm
@pytest.mark.slow
def test_verify_still_passes(fruit_server):
    """The new smb.conf keeps `opsctl verify` green (smbd up, SMB login as alice, datasets, mDNS)."""
    res = _opsctl("verify", "--site", str(SITE), "--json", env={"OPSCTL_SMB_PASSWORD_ALICE": fruit_server["password"]})
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    assert checks["smb login alice@alice"]["ok"], checks["smb login alice@alice"]
    assert checks["smbd running"]["ok"]


# ------------------------------------------------------------------------------ the helpers' own tests

_SAMPLE = """time: 2026-12-01 02:06:57
test: copyfile
skip: copyfile [
../../source4/torture/vfs/fruit.c:3698: missing AAPL copyfile
]
test: read metadata
success: read metadata
test: SMB2/CREATE context AAPL
failure: SMB2/CREATE context AAPL [
(../../source4/torture/vfs/fruit.c:3193) unexpected vol_caps: 4
]
test: stream names
error: stream names [
NT_STATUS_CONNECTION_RESET
]
"""


def test_parse_subunit_reads_every_result():
    got = parse_subunit(_SAMPLE)
    assert got == {
        "copyfile": ("skip", "../../source4/torture/vfs/fruit.c:3698: missing AAPL copyfile"),
        "read metadata": ("success", ""),
        "SMB2/CREATE context AAPL": ("failure", "(../../source4/torture/vfs/fruit.c:3193) unexpected vol_caps: 4"),
        "stream names": ("failure", "NT_STATUS_CONNECTION_RESET"),
    }
    assert counts(got) == {"success": 1, "failure": 2, "skip": 1}


def test_compare_reports_every_difference():
    expected = {"copyfile": {"result": "success"}, "read metadata": {"result": "success"},
                "gone": {"result": "success"}}
    problems = compare("alice", expected, parse_subunit(_SAMPLE))
    assert "alice/copyfile: expected success, got skip (../../source4/torture/vfs/fruit.c:3698: missing AAPL " \
           "copyfile)" in problems
    assert "alice/gone: expected success, but the test did not run" in problems
    assert any(p.startswith("alice/SMB2/CREATE context AAPL: not in") for p in problems)
    assert any(p.startswith("alice/stream names: not in") for p in problems)
    assert len(problems) == 4
    assert compare("alice", {"read metadata": {"result": "success"}},
                   {"read metadata": ("success", "")}) == []


def test_checked_in_expectations_are_complete():
    runs = load_expectations()
    alice = next(run for run in runs if run["share"] == "alice")
    assert len(alice["expected"]) == 33  # 32 vfs.fruit tests of smbtorture 4.17 + Timemachine-volsize
    for run in runs:
        for name, exp in run["expected"].items():
            assert exp["result"] == "success" or len(exp["reason"]) > 20, (run["share"], name)


@pytest.mark.parametrize("bad, message", [
    ({"runs": [{"share": "a", "suites": ["vfs.fruit"], "expected": {"t": {"result": "failure"}}}]},
     "a/t: expected failure without a reason"),
    ({"runs": [{"share": "a", "suites": ["vfs.fruit"], "expected": {"t": {"result": "skip", "reason": " "}}}]},
     "a/t: expected skip without a reason"),
    ({"runs": [{"share": "a", "suites": ["vfs.fruit"], "expected": {"t": {"result": "passed"}}}]},
     "a/t: result 'passed' is not one of success, failure, skip"),
    ({"runs": [{"share": "a", "suites": ["vfs.fruit"],
                "expected": {"t": {"result": "failure", "reason": "one\ntwo"}}}]},
     "a/t: the reason must be one line"),
    ({"runs": []}, "no runs"),
    ({"runs": [{"share": "a", "expected": {"t": {"result": "success"}}}]}, "needs share, suites and expected"),
])
def test_bad_expectations_are_refused(tmp_path, bad, message):
    path = tmp_path / "exp.yml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_expectations(path)
