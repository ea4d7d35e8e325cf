"""The shared test support itself: ``need`` skips here and fails under ``CI=true``, the names file is
found one way, and the xdist scheduler of ``tests/support/vm.py`` sends every file that uses the
session VM to one worker, first, and its ``VM_TAIL`` files last, to the other worker. Each runs in
a pytest or python subprocess, so the environment (``CI``, ``CHARLM_NAMES``) is the one a developer
or CI would have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.paths import REPO
from tests.support.vm import GROUP, TAIL_GROUP, vm_group, vm_module


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CHARLM_NAMES", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(REPO)  # tests.support, as pytest's rootdir import gives it to the suite
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def _pytest(tmp_path: Path, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the rootdir: none of the repository's options
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfs", *args],
                          cwd=tmp_path, env=_env(**env), capture_output=True, text=True, timeout=300)


NEED = textwrap.dedent("""\
    from tests.support.ci import need, require

    def test_needs_something():
        need("the widget is not installed")

    def test_needs_a_missing_tool():
        require("opsctl-no-such-tool")

    def test_has_a_tool():
        assert require("sh").endswith("/sh")
    """)


def test_need_skips_on_a_developer_machine(tmp_path):
    (tmp_path / "test_need.py").write_text(NEED)
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 skipped" in proc.stdout, proc.stdout
    assert "the widget is not installed" in proc.stdout
    assert "opsctl-no-such-tool is not installed (scripts/test.sh installs it)" in proc.stdout


def test_need_fails_in_ci_with_one_line_and_no_traceback(tmp_path):
    (tmp_path / "test_need.py").write_text(NEED)
    proc = _pytest(tmp_path, CI="true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed, 1 passed" in proc.stdout, proc.stdout
    assert "required in CI: the widget is not installed" in proc.stdout
    assert "required in CI: opsctl-no-such-tool is not installed" in proc.stdout
    assert "Traceback" not in proc.stdout and "def test_needs_something" not in proc.stdout


def _names(**env: str | None) -> str:
    code = "from tests.support.paths import NAMES; print(NAMES)"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(**env), capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_names_file_is_charlm_names_else_next_to_the_repository(tmp_path):
    assert _names(CHARLM_NAMES=str(tmp_path / "n.txt")) == str(tmp_path / "n.txt")
    default = str(REPO.parent / "shared" / "data" / "names.txt")
    assert _names() == default
    assert _names(CHARLM_NAMES="") == default  # set but empty: as if unset


VM_FILES = {
    "tests/conformance/test_fruit_torture.py", "tests/integration/test_sandbox_flow.py",
    "tests/roles/test_zfs.py", "tests/roles/test_zfs_safety.py", "tests/sandbox/test_zfsvm.py",
    "tests/status/test_vm_ops.py",
}


def test_the_vm_files_are_found_at_their_paths():
    files = {str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")}
    vm_files = {f for f in files if vm_module(f, REPO)}
    assert vm_files >= VM_FILES, VM_FILES - vm_files
    assert not vm_module("tests/spec/test_validation.py", REPO)
    assert not vm_module("tests/no/such/file.py", REPO)


def test_xdist_deals_the_vm_files_from_the_front_to_one_worker_and_from_the_back_to_the_other(tmp_path):
    """Six files that use the session VM (two of them ``VM_TAIL`` files) and six that do not, on two
    workers. The VM worker runs VM files only, from the front of the VM queue (xdist's order: here
    one test per file, so collection order; tail files last). The other worker runs every plain
    file, then VM files from the back of that queue, tail files first, while the VM worker is still
    busy. Each file runs once; together the two workers' VM files are the whole queue, met in the
    middle. Plain ``--dist loadfile`` deals the files out in collection order, so the VM files land
    on both workers before the plain ones are done."""
    def body(seconds: float) -> str:
        return textwrap.dedent(f"""\
            import json, os, time

            def test_where():
                time.sleep({seconds})
                with open("where.jsonl", "a") as fh:
                    fh.write(json.dumps([__name__, os.environ["PYTEST_XDIST_WORKER"]]) + "\\n")
            """)
    # collected in this order, ``--dist loadfile`` deals the files out to gw0, gw1, gw0, ...
    for n in (1, 2, 3, 4, 5, 6):
        (tmp_path / f"test_{n}_plain.py").write_text(body(0.2))
    for n in (7, 8):
        (tmp_path / f"test_{n}_tail.py").write_text("# uses the session_vm\nVM_TAIL = True\n" + body(0.2))
    for n in (3, 4):  # 4 x 2 s on the VM worker: the other worker's six plain files end long before
        (tmp_path / f"test_{n}_vm.py").write_text("# uses the session_vm\n" + body(2.0))
        (tmp_path / f"test_{n}b_vm.py").write_text("# uses the session_vm\n" + body(2.0))
    proc = _pytest(tmp_path, "-n", "2", "--dist", "loadfile", "-p", "tests.support.vm", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = [json.loads(line) for line in (tmp_path / "where.jsonl").read_text().splitlines()]
    where = dict(ran)
    assert len(where) == len(ran) == 12, ran
    queue = ["test_3_vm", "test_3b_vm", "test_4_vm", "test_4b_vm", "test_7_tail", "test_8_tail"]
    vm_worker = where["test_3_vm"]
    on_vm = [module for module, w in ran if w == vm_worker]
    on_other = [module for module, w in ran if w != vm_worker]
    assert on_vm == queue[:len(on_vm)], ran  # VM files only, from the front
    plain = [module for module in on_other if module.endswith("_plain")]
    assert sorted(plain) == [f"test_{n}_plain" for n in range(1, 7)] and on_other[:6] == plain, ran
    stolen = on_other[6:]
    assert stolen[:2] == ["test_8_tail", "test_7_tail"], ran  # from the back, after every plain file
    assert on_vm + stolen[::-1] == queue, ran  # met in the middle: each VM file once
    assert (GROUP, TAIL_GROUP) == ("zfs-vm", "zfs-vm-tail")


def test_a_tail_file_is_a_vm_file_of_the_tail_group(tmp_path):
    (tmp_path / "a.py").write_text("def test(session_vm):\n    pass\n")
    (tmp_path / "b.py").write_text("VM_TAIL = True  # why\n\ndef test(session_vm):\n    pass\n")
    (tmp_path / "c.py").write_text("VM_TAIL = True\n")  # no session VM: not a VM file at all
    (tmp_path / "d.py").write_text("# VM_TAIL = True\ndef test(session_vm):\n    pass\n")
    assert [vm_group(f, tmp_path) for f in ("a.py", "b.py", "c.py", "d.py", "nope.py")] == [
        GROUP, TAIL_GROUP, None, GROUP, None]
