"""The site file (the flow's "spec" step): pydantic models (:mod:`.models`), value checks (:mod:`.types`),
YAML loading with line numbers (:mod:`.loader`) and comment-keeping edits (:mod:`.edit`).

Named for the word the CLI uses (``--site``, "site file"); it was ``opsctl.spec``, a name that readers
and tools from other ecosystems take for a folder of tests.
"""

from opsctl.site.loader import DEFAULT_SITE, Loaded, SpecError, load, parse
from opsctl.site.models import Backup, Host, Site, Slurm, Training, User

__all__ = ["DEFAULT_SITE", "Backup", "Host", "Loaded", "Site", "Slurm", "SpecError", "Training", "User", "load",
           "parse"]
