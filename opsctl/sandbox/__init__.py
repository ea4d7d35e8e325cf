"""The development sandbox: the site's ``sandbox:`` hosts made real on this machine (systemd
containers, a qemu VM with OpenZFS). A plug-in: loading it registers how its hosts are reached."""

from opsctl.sandbox import plugin  # noqa: F401  (registers the vm and container resolvers)
