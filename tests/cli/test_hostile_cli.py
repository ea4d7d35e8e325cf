"""Hostile text through the real CLI: file names in a share, mDNS names, host output and user arguments
are printed literally (never as Rich markup, never as HTML), a ``[/]`` cannot crash a command, and the
exit code is the one the situation calls for.

The backup host is this machine (``connection: local``) with the fake zpool/zfs/systemctl/avahi-browse
of ``tests.support.opsdata`` on PATH, so ``opsctl status`` runs the real probe through the real connection.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from opsctl.cli import app
from tests.support.opsdata import write_tool

#: Issue #10's reproductions: styled text that would hide the real name, and a tag that crashed Rich.
STYLED = "[bold red]x.sparsebundle"
CLOSER = "[reverse][link=evil]evil.sparsebundle"  # a file name cannot hold "/", so no "[/]" here
HTML = "<img src=x onerror=alert(1)>.sparsebundle"
MDNS_NAME = "[/]Bob's [bold]Mac"


@pytest.fixture(autouse=True)
def _wide_consoles(monkeypatch):
    """Tables wide enough that no cell wraps (Rich reads COLUMNS once, when the console is made)."""
    from opsctl.cli import common

    for con in (common.console, common.err):
        monkeypatch.setattr(con, "_width", 400)


def run(*args: str, env: dict | None = None):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400", **(env or {})})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def _local_site(tmp_path, root, training: dict | None = None) -> str:
    data = {
        "site": "hostile",
        "hosts": [{"name": "backup", "connection": "local"}],
        "backup": {"host": "backup",
                   "pool": {"name": "tank", "vdevs": [{"type": "mirror", "disks": ["/dev/disk/by-id/virtio-a",
                                                                                   "/dev/disk/by-id/virtio-b"]}],
                            "dataset_root": "timemachine", "mountpoint_root": str(root)},
                   "users": [{"name": "alice", "quota": "100M", "protocols": ["smb", "afp"]},
                             {"name": "bob", "quota": "100M", "protocols": ["smb"]}]},
    }
    if training:
        data["hosts"].append({"name": "gpu", "connection": "local"})
        data["training"] = training
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def hostile_host(tmp_path, fake_host):
    """The fake backup host with hostile bundle names in the shares and hostile mDNS names on the LAN."""
    fake_host()
    (fake_host.root / "alice" / STYLED).mkdir()
    (fake_host.root / "alice" / HTML).mkdir()
    (fake_host.root / "bob" / CLOSER).mkdir()
    txt = '"dk0=adVN=[/]alice,adVF=0x82" "sys=waMa=0,adVF=0x100"'
    write_tool(tmp_path / "bin", "avahi-browse", textwrap.dedent(f"""\
        cat <<'EOF'
        =;eth0;IPv4;{MDNS_NAME};_smb._tcp;local;backup.local;10.0.2.15;445;
        =;eth0;IPv4;{MDNS_NAME};_adisk._tcp;local;backup.local;10.0.2.15;9;{txt}
        EOF
        """))
    return _local_site(tmp_path, fake_host.root)


def test_status_prints_hostile_bundle_and_mdns_names_literally(hostile_host):
    code, out = run("status", "--site", hostile_host)
    assert code == 0, out
    assert STYLED in out      # reproduction: used to show as "x.sparsebundle" in bold red
    assert CLOSER in out
    assert "[/]alice" in out  # reproduction: an mDNS name with "[/]" used to crash status with a MarkupError


def test_status_html_escapes_hostile_names(hostile_host, tmp_path):
    page = tmp_path / "status.html"
    code, out = run("status", "--site", hostile_host, "--html", str(page))
    assert code == 0, out
    html = page.read_text()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.sparsebundle" in html
    assert STYLED in html  # brackets are not HTML: shown as they are


def test_status_json_keeps_names_verbatim(hostile_host):
    code, out = run("status", "--site", hostile_host, "--json")
    assert code == 0
    facts = json.loads(out)["hosts"][0]
    names = {b["name"] for u in facts["users"] for b in u["bundles"]}
    assert {STYLED, CLOSER, HTML} <= names


def test_html_page_escapes_every_value_from_the_probe():
    """Every value the host reports is data: names, states and numbers cannot inject markup or CSS."""
    from opsctl.status import html
    from tests.support.opsdata import sample_facts

    evil = '"><script>x()</script>'
    facts = sample_facts()
    facts["host"] = evil
    facts["pool"].update(name=evil, health=evil, capacity_percent=evil, errors={"read": evil, "write": evil,
                                                                               "cksum": evil})
    facts["services"] = {evil: evil}
    facts["mdns"]["types"] = [evil]
    facts["errors"] = [evil]
    facts["users"][0].update(user=evil, share=evil, percent=evil, last_backup=None)
    facts["users"][0]["bundles"][0]["name"] = evil
    page = html.render([facts], title=evil)
    assert "<script>" not in page and evil not in page
    assert page.count("&quot;&gt;&lt;script&gt;x()&lt;/script&gt;") >= 10
    unreachable = html.render([{"host": evil, "probe_error": evil}])
    assert "<script>" not in unreachable


@pytest.mark.parametrize("name", ["[/]x", "[bold red]backup", "[link=http://x]y[/link]"])
def test_error_messages_with_user_values_print_literally(hostile_host, name):
    code, out = run("status", "--site", hostile_host, "--limit", name)
    assert code == 2
    assert f"error: --limit {name!r} is not a backup host" in out


def test_probe_error_text_from_the_host_prints_literally(tmp_path, fake_host):
    fake_host()
    site = _local_site(tmp_path, fake_host.root)
    # python3 on the "host" fails with hostile stderr: the probe error quotes it
    write_tool(tmp_path / "bin", "python3", "cat >/dev/null; echo '[/] [bold red]spoofed' >&2; exit 3\n")
    code, out = run("status", "--site", site)
    assert code == 1
    assert "backup: cannot probe: probe exited 3: [/] [bold red]spoofed" in out


def test_verify_prints_host_output_literally(hostile_host, tmp_path, monkeypatch):
    """verify's check names and details (host output) are never markup."""
    for user in ("alice", "bob"):
        monkeypatch.setenv(f"OPSCTL_SMB_PASSWORD_{user.upper()}", "pw-" + user)
    write_tool(tmp_path / "bin", "zpool", "echo '[/] [bold red]FAKE pool' >&2; exit 1\n")
    code, out = run("verify", "--site", hostile_host, "--limit", "backup")
    assert code == 1  # checks fail: no real pool here
    assert "FAIL backup:" in out and "[/] [bold red]FAKE pool" in out


def test_train_prints_job_output_and_report_literally(tmp_path, monkeypatch, fake_host):
    """The job's output, its report.json (both from the host) and opsctl's own progress lines are literal."""
    from opsctl.train import run as train_run

    fake_host()
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    ckpt = tmp_path / "ckpt"
    monkeypatch.setattr(train_run, "JOB_DIR", str(job_dir))  # the provisioned job dir, here in tmp
    (job_dir / "docker-run.sh").write_text(textwrap.dedent(f"""\
        echo '[/] job line [bold red]x'
        mkdir -p {ckpt}/mlp
        printf '%s' '{{"model": "[/]mlp", "status": "[bold red]done", "steps": 3,
                      "test_loss": {{"[/]nll": 1.5}}}}' > {ckpt}/mlp/report.json
        """))
    site = _local_site(tmp_path, fake_host.root, training={
        "host": "gpu", "runtime": "docker", "data_dir": str(tmp_path / "data"), "checkpoint_dir": str(ckpt),
        "job": {"model": "mlp"}})
    names = tmp_path / "names.txt"
    names.write_text("anna\nbob\n")
    code, out = run("train", "--site", site, "--no-build", "--names", str(names))
    assert code == 0, out
    assert (tmp_path / "data").is_dir()
    assert "[dim]" not in out  # opsctl's own progress line used to print its markup raw
    assert f"uploaded {tmp_path / 'data'}/" in out
    assert "[/] job line [bold red]x" in out
    assert "[/]mlp on gpu: [bold red]done" in out and "test_loss [/]nll" in out


def test_train_upload_failure_is_one_line_not_a_traceback(tmp_path, fake_host):
    fake_host()
    site = _local_site(tmp_path, fake_host.root, training={
        "host": "gpu", "runtime": "docker", "data_dir": str(tmp_path / "data"),
        "checkpoint_dir": str(tmp_path / "ckpt"), "job": {"model": "mlp"}})
    (tmp_path / "data").write_text("a file where the data dir should be")
    names = tmp_path / "names.txt"
    names.write_text("anna\n")
    code, out = run("train", "--site", site, "--no-build", "--names", str(names))
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: could not write") and "names" in lines[0], lines
