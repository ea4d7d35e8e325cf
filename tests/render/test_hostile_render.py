"""Hostile strings never reach a template engine as templates, nor break a config line (issue #10).

- The inventory opsctl hands to Ansible marks every spec string ``!unsafe``: a ``{{ lookup('pipe', ...) }}``
  that got past validation (a site built with validation bypassed) is printed, never run, by a real
  ``ansible-playbook`` (connection: local).
- The roles' templates still render from unsafe values with Ansible's ``template`` module, through the
  same filters (``confval`` ...), into the very file ``opsctl render`` writes.
- Hostile-but-valid sites render into files the real tools accept: ``testparm -s``, ``xmllint`` with
  Avahi's DTD, ``bash -n``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsctl import TEMPLATES
from opsctl.apply.inventory import Unsafe, build_inventory, inventory_yaml, unsafe, write_inventory
from opsctl.apply.runner import ansible_env
from opsctl.render import render_host
from opsctl.render.filters import confval, confword
from opsctl.site import SpecError, parse
from opsctl.site.types import RESERVED_SHARES, RESERVED_USER_PREFIXES, RESERVED_USERS
from tests.support.ci import require
from tests.support.paths import REPO, avahi_dtd_dir

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

LOCAL_SITE = """\
site: hostile
hosts:
  - name: backup
    connection: local
backup:
  host: backup
  pool:
    name: tank
    vdevs:
      - type: mirror
        disks: [/dev/disk/by-id/a, /dev/disk/by-id/b]
  users:
    - name: alice
      quota: 1G
      protocols: [smb, afp]
  samba:
    interfaces: [eth0]
"""


def _hostile_site(payload: str):
    """A valid site, then the payload put where validation would refuse it (validation bypassed)."""
    site = parse(LOCAL_SITE).site
    site.backup.samba.interfaces = [payload]
    site.backup.samba.server_string = payload
    return site


def _play(tmp_path: Path, tasks: list[dict]) -> Path:
    play = [{"name": "Read the spec data", "hosts": "backup_servers", "gather_facts": False, "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return path


def _ansible(tmp_path: Path, inventory: Path, play: Path) -> subprocess.CompletedProcess:
    if not ANSIBLE_PLAYBOOK.exists():
        require("ansible-playbook")
    env = {**ansible_env(), "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(play)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_repro_template_injection_is_data_for_real_ansible(tmp_path):
    """Issue #10's reproduction, validation bypassed: ansible-playbook prints the lookup, never runs it."""
    marker = tmp_path / "pwned"
    payload = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    inventory = write_inventory(tmp_path / "inventory.yml", build_inventory(_hostile_site(payload)))
    assert inventory.stat().st_mode & 0o777 == 0o600
    assert "!unsafe" in inventory.read_text()
    play = _play(tmp_path, [
        {"name": "Use the interfaces", "ansible.builtin.debug": {"msg": "bind {{ opsctl.backup.samba.interfaces }}"}},
        {"name": "Write the server string", "ansible.builtin.copy": {
            "content": "{{ opsctl.backup.samba.server_string }}\n", "dest": str(tmp_path / "seen.txt"),
            "mode": "0600"}},
    ])
    proc = _ansible(tmp_path, inventory, play)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists(), "the lookup in the spec data ran"
    assert (tmp_path / "seen.txt").read_text() == payload + "\n"  # the literal text, not evaluated
    assert "lookup('pipe'" in proc.stdout


def test_without_unsafe_marking_the_same_inventory_runs_the_command(tmp_path):
    """Control: the same data as plain JSON (what opsctl wrote before) runs the command, so the test above
    proves the marking, not a quirk of the playbook."""
    marker = tmp_path / "pwned"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(build_inventory(_hostile_site(f"{{{{ lookup('pipe', 'touch {marker}') }}}}"))))
    proc = _ansible(tmp_path, inventory, _play(tmp_path, [
        {"name": "Use the interfaces", "ansible.builtin.debug": {"msg": "{{ opsctl.backup.samba.interfaces }}"}}]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.exists()


def test_every_spec_string_in_the_inventory_is_unsafe():
    site = parse((REPO / "tests" / "data" / "full_site.yml").read_text()).site
    inventory = build_inventory(site)
    strings = []

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            strings.append(node)

    for name, hv in inventory["all"]["hosts"].items():
        walk({k: v for k, v in hv.items() if k != "opsctl_templates"})
        assert hv["opsctl"]["host"]["name"] == name
    assert len(strings) > 100
    assert all(isinstance(s, Unsafe) for s in strings), [s for s in strings if not isinstance(s, Unsafe)][:5]
    text = inventory_yaml(inventory)
    assert "ansible_host: !unsafe '192.0.2.10'" in text and "\n      opsctl: !unsafe\n" in text
    assert "opsctl_templates: !unsafe" not in text  # opsctl's own path, not spec data


def test_ansible_reads_the_unsafe_inventory_back_unchanged(tmp_path):
    """ansible-inventory loads the YAML into the same values and types as the plain data
    ('on' stays the string 'on', '' stays '', numbers stay numbers)."""
    site = parse((REPO / "tests" / "data" / "full_site.yml").read_text()).site
    site.backup.samba.workgroup = "12"  # bypassing validation: a string that reads as a number in YAML
    inventory = build_inventory(site)
    # Bare (top-level) unsafe strings that YAML would read as a bool, a number or null.
    inventory["all"]["hosts"]["tm1"].update(probe_on=unsafe("on"), probe_12=unsafe("12"), probe_empty=unsafe(""))
    path = write_inventory(tmp_path / "inventory.yml", inventory)
    env = {**ansible_env(), "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK.with_name("ansible-inventory")), "-i", str(path), "--list"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # ansible-inventory shows an untrusted (unsafe) string as {"__ansible_unsafe": "..."}.
    loaded = json.loads(proc.stdout)["_meta"]["hostvars"]
    plain_strings = []

    def unwrap(node):
        if isinstance(node, dict):
            if set(node) == {"__ansible_unsafe"}:
                return node["__ansible_unsafe"]
            return {key: unwrap(value) for key, value in node.items()}
        if isinstance(node, list):
            return [unwrap(value) for value in node]
        if isinstance(node, str):
            plain_strings.append(node)
        return node

    expected = json.loads(json.dumps(inventory))["all"]["hosts"]
    for name, hv in expected.items():
        got = {key: unwrap(loaded[name][key]) for key in hv if key != "opsctl_templates"}
        assert got == {key: value for key, value in hv.items() if key != "opsctl_templates"}, name
    assert set(plain_strings) == {"on", "12", ""}  # every other spec string reached Ansible as unsafe
    assert unwrap(loaded["tm1"]["opsctl"]["backup"]["dataset_defaults"]["utf8only"]) == "on"
    assert unwrap(loaded["tm1"]["opsctl"]["backup"]["samba"]["workgroup"]) == "12"


def test_roles_template_smb_conf_from_unsafe_data_like_opsctl_render(tmp_path):
    """ansible.builtin.template renders templates/samba/smb.conf.j2 from the unsafe context with the
    opsctl filters (confval ...) into exactly what `opsctl render` writes; confval still refuses."""
    site = parse(LOCAL_SITE).site
    inventory = write_inventory(tmp_path / "inventory.yml", build_inventory(site))
    tasks = [{"name": f"Template {name}", "ansible.builtin.template": {
        "src": str(TEMPLATES / template), "dest": str(tmp_path / name), "mode": "0600"}}
        for name, template in (("smb.conf", "samba/smb.conf.j2"), ("afp.conf", "netatalk/afp.conf.j2"),
                               ("adisk.service", "avahi/adisk.service.j2"), ("plan.sh", "zfs/plan.sh.j2"))]
    proc = _ansible(tmp_path, inventory, _play(tmp_path, tasks))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rendered = {f.path: f.content for f in render_host(site, "backup")}
    assert (tmp_path / "smb.conf").read_text() == rendered["samba/smb.conf"]
    assert (tmp_path / "afp.conf").read_text() == rendered["netatalk/afp.conf"]
    assert (tmp_path / "adisk.service").read_text() == rendered["avahi/services/adisk.service"]
    assert (tmp_path / "plan.sh").read_text() == rendered["zfs/plan.sh"]
    # confval on an unsafe value that would continue the line: the task fails, nothing is written.
    site.backup.samba.server_string = "opsctl\\"
    inventory = write_inventory(tmp_path / "inventory.yml", build_inventory(site))
    proc = _ansible(tmp_path, inventory, _play(tmp_path, [{"name": "Template smb.conf", "ansible.builtin.template": {
        "src": str(TEMPLATES / "samba/smb.conf.j2"), "dest": str(tmp_path / "bad.conf"), "mode": "0600"}}]))
    assert proc.returncode != 0
    assert "refusing to write" in proc.stdout + proc.stderr
    assert not (tmp_path / "bad.conf").exists()


def test_playbooks_syntax_check_with_the_yaml_inventory(tmp_path):
    site = parse((REPO / "tests" / "data" / "full_site.yml").read_text()).site
    inventory = write_inventory(tmp_path / "inventory.yml", build_inventory(site))
    env = {**ansible_env(), "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    for playbook in sorted((REPO / "playbooks").glob("*.yml")):
        proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "--syntax-check", "-i", str(inventory), str(playbook)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{playbook.name}: {proc.stdout}{proc.stderr}"


# --------------------------------------------------------------------------- confval


@pytest.mark.parametrize("value", ["opsctl\\", "a \\", "a\\ ", "x\ny", "x\ry", "x\0y", "x\x0by", "x\u2028y",
                                   "[global]", "  [homes]"])
def test_repro_confval_refuses_line_continuation_and_breaks(value):
    with pytest.raises(ValueError, match="refusing to write"):
        confval(value)


def test_repro_trailing_backslash_cannot_continue_an_smb_conf_line():
    site = parse(LOCAL_SITE).site
    site.backup.samba.server_string = "opsctl\\"  # validation bypassed: the filter is the last line of defence
    with pytest.raises(ValueError, match="refusing to write 'opsctl\\\\\\\\'"):
        render_host(site, "backup")


@pytest.mark.parametrize("value", ["opsctl Time Machine", "a\\b", "100%", "(x)"])
def test_confval_keeps_ordinary_values(value):
    assert confval(value) == value


@pytest.mark.parametrize("value", ["Mac Pro", "Mac\tPro", "x\ny", "a'b", 'a"b', "a\\", ""])
def test_confword_refuses_what_splits_or_quotes_a_word(value):
    with pytest.raises(ValueError, match="as one word of a config line"):
        confword(value)


def test_repro_model_with_spaces_cannot_add_afpd_options():
    """Netatalk 2's afpd.conf server line splits on spaces: with validation bypassed, a model with a
    space is refused by the filter instead of adding `-uampath /tmp` to afpd's options."""
    site = parse(LOCAL_SITE).site
    site.backup.netatalk.version = 2
    assert "-mimicmodel TimeCapsule8,119 " in {f.path: f.content for f in render_host(site, "backup")}[
        "netatalk/afpd.conf"]
    site.backup.avahi.model = "RackMac -uampath /tmp"
    with pytest.raises(ValueError, match="'RackMac -uampath /tmp' as one word"):
        render_host(site, "backup")
    site.backup.avahi.model = "RackMac"
    site.backup.users[0].name = 'alice" /etc'  # AppleVolumes.default: path "name" ... allow:user
    with pytest.raises(ValueError, match="as one word"):
        render_host(site, "backup")


# --------------------------------------------------------------------------- hostile-but-valid sites


def _not_reserved_user(name: str) -> bool:
    return name not in RESERVED_USERS and not name.startswith(RESERVED_USER_PREFIXES)


users = st.from_regex(r"\A[a-z][a-z0-9_-]{0,15}\Z").filter(_not_reserved_user)
free_text = st.from_regex(r"\A[A-Za-z0-9 ,._()%-]{0,64}\Z")
share_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,30}\Z").filter(lambda s: s.lower() not in RESERVED_SHARES)
models = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9,._-]{0,40}\Z")
interfaces = st.lists(st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.:-]{0,14}\Z")
                      | st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(lambda a: f"{a}/64"),
                      max_size=3)


@st.composite
def hostile_sites(draw) -> str:
    names = draw(st.lists(users, min_size=1, max_size=3, unique=True))
    prefix = draw(st.from_regex(r"\A[A-Za-z0-9._-]{0,8}\Z"))
    version = draw(st.sampled_from([2, 3, 4]))
    site = {
        "site": "hostile",
        "hosts": [{"name": "backup", "connection": "local"}],
        "backup": {
            "host": "backup",
            "share_prefix": prefix,
            "pool": {"name": "tank", "vdevs": [{"type": "mirror", "disks": ["/dev/disk/by-id/a", "/dev/disk/by-id/b"]}],
                     "dataset_root": "tm"},
            "users": [{"name": n, "quota": draw(st.sampled_from(["1G", "1.5T", "100M", "16384P"])),
                       "protocols": draw(st.sampled_from([["smb"], ["afp"], ["smb", "afp"]])),
                       "full_name": draw(free_text)} for n in names],
            "shares": [{"name": draw(share_names), "dataset": "shared", "valid_users": names[:1],
                        "protocols": ["smb", "afp"], "comment": draw(free_text),
                        "read_only": draw(st.booleans())}],
            "samba": {"server_string": draw(free_text), "interfaces": draw(interfaces),
                      "workgroup": draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,15}\Z"))},
            "netatalk": {"version": version},
            "avahi": {"model": draw(models), "name": draw(free_text)},
        },
    }
    return yaml.safe_dump(site)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(hostile_sites())
def test_hostile_but_valid_sites_render_files_the_real_tools_accept(text):
    testparm, xmllint, bash = require("testparm"), require("xmllint"), require("bash")
    dtd_dir = avahi_dtd_dir()
    try:
        site = parse(text).site
    except SpecError as exc:  # only share/user name collisions (case-insensitive) may be refused
        assert all("duplicate" in p for p in exc.problems), exc.problems
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        files = {}
        for f in render_host(site, "backup"):
            target = out / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content)
            files[f.path] = target
        proc = subprocess.run([testparm, "-s", str(files["samba/smb.conf"])], capture_output=True, text=True)
        assert proc.returncode == 0 and "Unknown parameter" not in proc.stderr, proc.stderr
        sections = [line.strip("[]") for line in proc.stdout.splitlines() if line.startswith("[")]
        expected = ["global"] + [s["name"] for s in site.backup.time_machine_shares if "smb" in s["protocols"]] \
            + [s.name for s in site.backup.shares]
        assert sections == expected
        if site.backup.samba.server_string:
            assert f"server string = {site.backup.samba.server_string.strip()}" in proc.stdout
        services = sorted(p for k, p in files.items() if k.endswith(".service"))
        proc = subprocess.run([xmllint, "--noout", "--path", str(dtd_dir), "--dtdvalid",
                               str(dtd_dir / "avahi-service.dtd"), *map(str, services)], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        for path in [p for k, p in files.items() if k.endswith(".sh")]:
            subprocess.run([bash, "-n", str(path)], check=True)
        if "netatalk/afpd.conf" in files:  # Netatalk 2: the server line splits on spaces; the model is one word
            line = files["netatalk/afpd.conf"].read_text().splitlines()[-1]
            words = shlex.split(line)
            assert words[words.index("-mimicmodel") + 1] == site.backup.avahi.model
            assert words.count("-mimicmodel") == 1 and words[-2] == "-setuplog"
        if "netatalk/AppleVolumes.default" in files:  # path "name" options... allow:user, split on spaces
            lines = [line for line in files["netatalk/AppleVolumes.default"].read_text().splitlines()
                     if line.startswith("/")]
            afp = [s for s in site.backup.time_machine_shares if "afp" in s["protocols"]] \
                + [s for s in site.backup.other_shares if "afp" in s["protocols"]]
            assert [shlex.split(line)[:2] for line in lines] == [[s["path"], s["name"]] for s in afp]
        if "netatalk/afp.conf" in files:
            text = files["netatalk/afp.conf"].read_text()
            assert all(not line.rstrip().endswith("\\") for line in text.splitlines())
