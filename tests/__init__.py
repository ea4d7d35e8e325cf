"""opsctl's tests, one package per package of ``opsctl/`` (``tests/<package>/``).

Every test folder is a package, so pytest imports test files as ``tests.<package>.test_x`` with
the repository root on ``sys.path`` (its "prepend" import mode): shared code is imported as
``tests.support.*`` and no conftest edits ``sys.path``. ``tests/support`` is loaded as a pytest
plugin by ``tests/conftest.py``.
"""
