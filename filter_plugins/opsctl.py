"""Ansible filter plugin: the same filters ``opsctl render`` uses, so roles render identical files."""

from opsctl.render.filters import FILTERS


class FilterModule:
    def filters(self):
        return dict(FILTERS)
