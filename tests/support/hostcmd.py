"""Commands on a provisioned host through opsctl's own connection (:func:`opsctl.connections.connection_for`).

* :func:`sh`: a shell command, asserting rc 0 unless ``check=False``;
* :func:`smbclient`: smbclient on the host as a Samba user, the credentials in a 0600 file written
  through stdin (never in argv).

Example::

    conn = connection_for(load(site).site.host("opsbackup"))
    res = smbclient(conn, "alice", password, "put /root/a.txt a.txt", share="Projects")
"""

from __future__ import annotations

import shlex


def sh(conn, command: str, check: bool = True):
    res = conn.run(command)
    if check:
        assert res.rc == 0, f"{command}: {res.stdout}{res.stderr}"
    return res


def smbclient(conn, user: str, password: str, commands: str, share: str | None = None):
    """``smbclient //127.0.0.1/<share>`` (the user's own share unless ``share``) running ``commands``."""
    auth = f"/root/.{user}.smbauth"
    conn.run_stdin(f"umask 077; cat > {auth}", f"username = {user}\npassword = {password}\n")
    return conn.run(f"smbclient //127.0.0.1/{share or user} -A {auth} -m SMB3 -c {shlex.quote(commands)}")
