"""Byte counts for people: :func:`human_size` (``1.5G`` in tables, ``1.5 GiB`` on the HTML page).

Parsing a size a person wrote (``500G``) is the site file's job: ``opsctl.site.types.parse_size``.

Example::

    >>> human_size(1536)
    '1.5K'
    >>> human_size(3 << 30, iec=True)
    '3.0 GiB'
"""

from __future__ import annotations

_SHORT = ("B", "K", "M", "G", "T", "P")
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float | None, *, iec: bool = False, unknown: str = "–") -> str:
    """Bytes as binary units (1K = 1024): whole bytes, else one decimal; ``unknown`` when ``n`` is None.

    ``iec`` writes ``KiB``.. with a space (prose, HTML); the default ``K``.. without one matches
    ``zfs list`` and the site file. Negative counts keep their sign (``-1.5K``).
    """
    if n is None:
        return unknown
    units, sep = (_IEC, " ") if iec else (_SHORT, "")
    value = float(n)
    unit = units[0]
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            break
        value /= 1024
    return f"{value:.0f}{sep}{unit}" if unit == "B" else f"{value:.1f}{sep}{unit}"
