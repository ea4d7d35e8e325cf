"""The progress callback the long steps take (image builds, VM start, lab up/down): one line of text
at a time, or nothing.

Example::

    def build(progress: Progress = None) -> None:
        say(progress, "building the image")

    build(progress=print)
"""

from __future__ import annotations

from collections.abc import Callable

#: A function that shows one progress line; ``None`` means stay quiet.
Progress = Callable[[str], None] | None


def say(progress: Progress, message: str) -> None:
    """Hand ``message`` to ``progress`` unless it is None."""
    if progress is not None:
        progress(message)
