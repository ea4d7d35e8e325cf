"""The shared test support (``tests/support``), loaded as pytest plugins: fixtures of several
test packages, and the session OpenZFS VM with the xdist grouping that keeps it to one worker."""

pytest_plugins = ["tests.support.fixtures", "tests.support.vm"]
