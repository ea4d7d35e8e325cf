"""Shared test support, loaded as pytest plugins by ``tests/conftest.py`` and imported as ``tests.support.*``:

* ``ci``: ``need(reason)`` (skip here, fail under ``CI=true``) and ``require(tool)``;
* ``paths``: ``REPO``, ``DATA`` (``tests/data``), ``NAMES`` (the shared names file), ``avahi_dtd_dir()``;
* ``fixtures``: ``example_yaml``, ``full_yaml``, ``fake_host``;
* ``opsdata``: fake host tools for the status probe, sample facts, ``OPS_SITE``;
* ``hostcmd``: ``sh`` and ``smbclient`` on a provisioned host through opsctl's connection;
* ``webhook``: a local webhook that records what is POSTed to it;
* ``vm``: the session OpenZFS VM (``session_vm``, ``reset_vm``, ``alias_vm``) and the xdist scheduler
  that sends every file using it to one worker.
"""
