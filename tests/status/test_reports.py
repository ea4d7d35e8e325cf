"""Report formats: Prometheus textfile (parsed back line by line) and the self-contained HTML page,
rendered by a real headless Chromium (screenshot + DOM)."""

from __future__ import annotations

import re
import stat
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from opsctl.status import html, prometheus
from tests.support.ci import require
from tests.support.opsdata import sample_facts

NOW = 1_800_000_000.0
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\} (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict[tuple, float]:
    """A strict reader of the text format: HELP/TYPE once per metric, before its samples."""
    samples: dict[tuple, float] = {}
    typed: dict[str, str] = {}
    current = None
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in typed, f"{name} declared twice"
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in ("gauge", "counter")
            typed[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"bad sample line {line!r}"
            name, labels, value = match.groups()
            assert name == current, f"{name} outside its TYPE block"
            key = (name, tuple(sorted(_LABEL.findall(labels))))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = float(value)
    return samples


def test_prometheus_names_units_and_values():
    facts = sample_facts(NOW)
    facts["users"][0]["user"] = 'we"ird\\name'  # label escaping
    samples = parse_exposition(prometheus.render([facts, {"host": "down", "probe_error": "unreachable"}]))
    host_pool = (("host", "backup"), ("pool", "tank"))

    def get(name, *extra):
        return samples[(name, tuple(sorted(host_pool + extra)))]

    assert get("opsctl_pool_healthy") == 1
    assert get("opsctl_pool_size_bytes") == 1 << 30
    assert get("opsctl_pool_last_scrub_timestamp_seconds") == NOW - 3 * 86400
    assert get("opsctl_pool_errors", ("kind", "cksum")) == 0
    assert get("opsctl_user_used_bytes", ("user", "we\\\"ird\\\\name")) == 95 << 20
    assert get("opsctl_user_quota_bytes", ("user", "bob")) == 100 << 20
    assert get("opsctl_user_quota_used_ratio", ("user", "bob")) == pytest.approx(0.1)
    assert get("opsctl_last_backup_timestamp_seconds", ("user", "bob")) == NOW - 10 * 86400
    assert samples[("opsctl_service_up", (("host", "backup"), ("service", "smbd")))] == 1
    assert samples[("opsctl_probe_success", (("host", "down"),))] == 0
    assert samples[("opsctl_probe_success", (("host", "backup"),))] == 1
    for name, _ in samples:
        assert name.startswith("opsctl_")
        if "bytes" in name or "seconds" in name or "ratio" in name:
            assert name.endswith(("_bytes", "_seconds", "_ratio"))


def test_prometheus_file_is_replaced_atomically(tmp_path):
    target = tmp_path / "opsctl.prom"
    target.write_text("old\n")
    inode = target.stat().st_ino
    prometheus.write(target, [sample_facts(NOW)])
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name != "opsctl.prom"]  # no temp files left
    parse_exposition(target.read_text())


def test_html_is_self_contained_and_marks_stale_and_full():
    page = html.render([sample_facts(NOW)], now=NOW)
    assert "<script" not in page and "http://" not in page and "https://" not in page and "<link" not in page
    assert 'class="user stale" data-user="bob"' in page
    assert 'class="user" data-user="alice"' in page
    assert 'class="fill full" style="width:95.0%"' in page  # alice above 90 %
    assert 'class="fill " style="width:10.0%"' in page
    hostile = sample_facts(NOW)
    hostile["users"][0]["bundles"][0]["name"] = "<img src=x onerror=alert(1)>.sparsebundle"
    assert "<img" not in html.render([hostile], now=NOW)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def test_html_in_headless_chromium(tmp_path):
    chromium = require("chromium")
    facts = sample_facts(NOW)
    down = {"host": "offline-box", "probe_error": "ssh: connect to host: Connection refused"}
    page = html.write(tmp_path / "status.html", [facts, down], now=NOW)
    with tempfile.TemporaryDirectory() as profile:
        shot = tmp_path / "out.png"
        res = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                              "--window-size=1200,800", page.as_uri()], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
        assert _png_size(shot) == (1200, 800)
        assert shot.stat().st_size > 10_000  # not a blank page: bars, colors, text
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert '<tr class="user stale" data-user="bob"' in text
    assert 'data-user="alice" data-percent="95.0"' in text
    assert "Alice's MacBook.sparsebundle" in text or "Alice&#x27;s MacBook.sparsebundle" in text
    assert 'data-host="offline-box"' in text and "unreachable" in text
    assert "pool tank ONLINE" in " ".join(text.split())
