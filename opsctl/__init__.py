"""opsctl: one declarative site file for a lab's Mac backup server and GPU training hosts.

The flow is spec -> render -> apply -> verify -> observe:

- :mod:`opsctl.site` loads and validates the site YAML (pydantic),
- :mod:`opsctl.render` renders every config file from ``templates/`` (Jinja2),
- :mod:`opsctl.apply` runs the Ansible playbooks in ``playbooks/`` with roles in ``roles/``,
- :mod:`opsctl.verify` checks the hosts with testinfra,
- :mod:`opsctl.status` observes them.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Repository/package data root: templates/, roles/, playbooks/ and inventory/ live here.
ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
ROLES = ROOT / "roles"
PLAYBOOKS = ROOT / "playbooks"
INVENTORY = ROOT / "inventory"
