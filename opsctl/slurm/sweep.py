"""Hyperparameter sweeps: ``'lr=1e-3,3e-4 n_embd=64,128'`` -> the cartesian product as
``charlm train`` argument lists, one per Slurm array task.

Example::

    >>> expand("lr=1e-3,3e-4 n_embd=64,128")
    [['--lr', '1e-3', '--n-embd', '64'], ['--lr', '1e-3', '--n-embd', '128'],
     ['--lr', '3e-4', '--n-embd', '64'], ['--lr', '3e-4', '--n-embd', '128']]
"""

from __future__ import annotations

import itertools
import re

_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: a value never starts with '-' (it would be read as a flag), except a negative number
_VALUE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._+-]{0,63}|-[0-9][A-Za-z0-9._+-]{0,62})$")
#: charlm flags a sweep must not override (they belong to the job, not to a combination).
RESERVED = {"data", "out", "resume", "device"}
MAX_TASKS = 1000


class SweepError(ValueError):
    pass


def parse(text: str) -> list[tuple[str, list[str]]]:
    """``'lr=1e-3,3e-4 n_embd=64'`` -> ``[('lr', ['1e-3', '3e-4']), ('n_embd', ['64'])]``."""
    axes: list[tuple[str, list[str]]] = []
    for part in text.split():
        key, sep, values = part.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not _KEY.match(key):
            raise SweepError(f"bad sweep term {part!r}; write name=v1,v2 (e.g. lr=1e-3,3e-4)")
        # charlm's argparse also takes a unique prefix of a flag (--ou = --out): refuse those too
        hit = [r for r in sorted(RESERVED) if r.startswith(key.replace("-", "_"))]
        if hit:
            raise SweepError(f"{key} cannot be swept (it is, or abbreviates, --{hit[0]}, which the job sets)")
        vals = [v for v in values.split(",") if v != ""]
        bad = [v for v in vals if not _VALUE.match(v)]
        if not vals or bad:
            what = f"bad value {bad[0]!r} in {part!r}" if bad else f"no values in {part!r}"
            raise SweepError(f"{what}; use comma-separated numbers or words (letters, digits, . _ + -, not "
                             "starting with '-' unless a negative number)")
        if key in (k for k, _ in axes):
            raise SweepError(f"{key} is swept twice; list all its values in one term")
        axes.append((key, vals))
    if not axes:
        raise SweepError("empty sweep; write e.g. 'lr=1e-3,3e-4 n_embd=64,128'")
    return axes


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def expand(text: str) -> list[list[str]]:
    """The cartesian product of the sweep's values (first axis slowest), as argument lists."""
    axes = parse(text)
    combos = list(itertools.product(*(vals for _, vals in axes)))
    if len(combos) > MAX_TASKS:
        raise SweepError(f"the sweep has {len(combos)} combinations; the limit is {MAX_TASKS}")
    return [[tok for (key, _), val in zip(axes, combo, strict=True) for tok in (flag(key), val)] for combo in combos]
