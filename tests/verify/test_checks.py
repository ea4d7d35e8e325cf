"""verify's checks against a fake host: canned command output in, Check results out."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from opsctl.render.context import context_for
from opsctl.spec.loader import DEFAULT_SITE
from opsctl.spec.models import Site
from opsctl.verify.checks import Probe, samba_version, zfs_datasets


@dataclass
class Result:
    rc: int
    stdout: str = ""
    stderr: str = ""


class FakeHost:
    def __init__(self, answers: dict[str, Result]):
        self.answers = answers
        self.commands: list[str] = []

    def run(self, command: str) -> Result:
        self.commands.append(command)
        return self.answers.get(command, Result(1, "", f"unexpected command: {command}"))


def _probe(answers: dict[str, Result]) -> Probe:
    return Probe("backup", FakeHost(answers), None, {})


def test_samba_release_that_breaks_time_machine_fails_verify():
    bad = samba_version(_probe({"smbd --version": Result(0, "Version 4.22.3-Debian-4.22.3+dfsg-4\n")}))
    assert not bad.ok and "upgrade Samba to 4.22.6 or later" in bad.detail
    good = samba_version(_probe({"smbd --version": Result(0, "Version 4.22.11-Debian-4.22.11+dfsg-1\n")}))
    assert good.ok, good
    broken = samba_version(_probe({"smbd --version": Result(127, "", "smbd: not found")}))
    assert not broken.ok and "smbd --version failed" in broken.detail


def test_every_planned_dataset_property_is_checked():
    site = Site.model_validate(yaml.safe_load(DEFAULT_SITE.read_text()))
    ctx = context_for(site, "backup")
    answers = {}
    for ds in ctx["state"]["datasets"]:
        names = sorted(ds["properties"])
        values = {k: v for k, v in ds["properties"].items()}
        if "quota" in values:
            values["quota"] = str({"200M": 200 << 20, "100M": 100 << 20}[values["quota"]])
        if ds["name"].endswith("/bob"):
            values["quota"] = str(300 << 20)  # drifted
        answers[f"zfs get -Hp -o property,value {','.join(names)} {ds['name']}"] = Result(
            0, "".join(f"{k}\t{values[k]}\n" for k in names))
    checks = {c.name: c for c in zfs_datasets(_probe(answers), ctx)}
    assert set(checks) == {f"dataset {d['name']} properties" for d in ctx["state"]["datasets"]}
    assert checks["dataset tank/timemachine/alice properties"].ok
    bob = checks["dataset tank/timemachine/bob properties"]
    assert not bob.ok and bob.detail == f"quota={300 << 20} (want {100 << 20})"
    missing = list(zfs_datasets(_probe({}), ctx))
    assert all(not c.ok and c.name.endswith("exists") for c in missing)
