"""Property tests: no spec value can break out of its quoting.

Either the spec refuses a value, or it comes back out of the rendered file exactly as
given: one shell word, one XML text node, one config value on one line.
"""

from __future__ import annotations

import shlex
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsctl.render import render_host
from opsctl.render.filters import confval, shjoin, shquote, xmlescape
from opsctl.site import SpecError, parse
from opsctl.site.types import check_data_root, check_posix_user
from tests.support.paths import REPO

BASE = (REPO / "inventory" / "sandbox.yml").read_text()
nasty = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40) | \
    st.sampled_from(["a;rm -rf /", "$(reboot)", "`id`", "x' y", 'x" y', "a\nb", "--force", "-rf", "*", "~root",
                     "a b", "\\", "'", "\x00", "]", "[global]", "x = y"])


@settings(max_examples=300, deadline=None)
@given(nasty)
def test_shquote_round_trips(value):
    if "\x00" in value:
        return  # no shell word can carry NUL
    assert shlex.split(shquote(value)) == [value]


@settings(max_examples=40, deadline=None)
@given(st.lists(nasty.filter(lambda v: "\x00" not in v), min_size=1, max_size=4))
def test_shjoin_is_argv_for_real_sh(values):
    proc = subprocess.run(["sh", "-c", 'for a in "$@"; do printf "%s\\0" "$a"; done', "sh", *shlex.split(
        shjoin(values))], capture_output=True)
    assert proc.stdout.split(b"\0")[:-1] == [v.encode() for v in values]


@settings(max_examples=300, deadline=None)
@given(nasty)
def test_xmlescape_round_trips(value):
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value) or any(ord(c) >= 0xFFFE or 0xD800 <= ord(c) < 0xE000
                                                                     for c in value):
        return  # not representable in XML 1.0 at all; names that reach XML are validated ASCII
    doc = f'<a b="{xmlescape(value)}">{xmlescape(value)}</a>'
    element = ET.fromstring(doc)
    assert (element.text or "") == value.replace("\r\n", "\n").replace("\r", "\n")
    if not any(c in value for c in "\t\n\r"):  # XML normalizes whitespace in attributes
        assert element.get("b") == value


@given(nasty)
def test_confval_never_ends_a_line(value):
    try:
        out = confval(value)
    except ValueError:
        assert any(ord(c) < 32 or c in "\x7f\x85\u2028\u2029" for c in value) or value.lstrip().startswith("[") \
            or value.rstrip().endswith("\\")
    else:
        assert "\n" not in out and "\r" not in out and not out.rstrip().endswith("\\")
        assert out.splitlines() == ([out] if out else [])  # one line, whatever Python counts as a break


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nasty)
def test_user_names_render_safely_or_are_refused(name):
    text = BASE.replace("name: bob", "name: " + _yaml_str(name))
    try:
        site = parse(text).site
    except SpecError:
        with pytest.raises(ValueError):
            check_posix_user(name)
        return
    files = {f.path: f.content for f in render_host(site, "backup")}
    plan = files["zfs/plan.sh"]
    dataset = f"tank/timemachine/{name}"
    argvs = [shlex.split(line) for line in plan.splitlines() if line.strip().startswith(("zfs create", "chown"))]
    assert any(argv[-1] == dataset for argv in argvs)
    assert any(argv[:2] == ["chown", f"{name}:{name}"] for argv in argvs)
    conf = files["samba/smb.conf"]
    assert f"\n[{name}]\n" in conf and f"   valid users = {name}\n" in conf
    ET.fromstring(files["avahi/services/adisk.service"].split("\n", 2)[2])


@settings(max_examples=150, deadline=None)
@given(nasty)
def test_data_dir_paths_are_safe_or_refused(path):
    assert "data_dir: /var/lib/opsctl-sandbox/ml/data" in BASE
    text = BASE.replace("data_dir: /var/lib/opsctl-sandbox/ml/data", "data_dir: " + _yaml_str("/" + path))
    try:
        site = parse(text).site
    except SpecError:
        with pytest.raises(ValueError):
            check_data_root("/" + path)  # training.data_dir is a DataRoot: a safe path, not a system folder
        return
    run = {f.path: f.content for f in render_host(site, "trainer")}["containers/docker-run.sh"]
    words = shlex.split(run.split("exec ", 1)[1].replace("\\\n", " "), comments=False)
    assert f"type=bind,source=/{path},target=/data,readonly" in words


def _yaml_str(value: str) -> str:
    import json

    return json.dumps(value)
