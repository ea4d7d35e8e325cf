"""opsctl/progress.py: the progress callback type and say()."""

from opsctl.progress import Progress, say


def test_say_hands_the_line_to_the_callback():
    lines: list[str] = []
    progress: Progress = lines.append
    say(progress, "building")
    assert lines == ["building"]


def test_say_with_no_callback_is_quiet():
    say(None, "nobody listens")  # must not raise
