"""opsctl/sizes.py: human_size."""

import pytest

from opsctl.sizes import human_size


@pytest.mark.parametrize(("n", "kwargs", "expected"), [
    (0, {}, "0B"),
    (1023, {}, "1023B"),
    (1024, {}, "1.0K"),
    (1536, {}, "1.5K"),
    (5 * 2**30, {}, "5.0G"),
    (3 * 2**50, {}, "3.0P"),
    (2**60, {}, "1024.0P"),  # the largest unit absorbs the rest
    (-1536, {}, "-1.5K"),  # a negative change keeps its sign and still scales
    (1536, {"iec": True}, "1.5 KiB"),
    (512, {"iec": True}, "512 B"),
    (3 * 2**30, {"iec": True}, "3.0 GiB"),
    (None, {}, "–"),
    (None, {"unknown": "?"}, "?"),
    (1.5 * 2**20, {}, "1.5M"),
])
def test_human_size(n, kwargs, expected):
    assert human_size(n, **kwargs) == expected
