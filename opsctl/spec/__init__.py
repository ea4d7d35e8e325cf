"""The site spec: pydantic models (:mod:`.models`), value checks (:mod:`.types`), YAML loading (:mod:`.loader`)."""

from opsctl.spec.loader import DEFAULT_SITE, Loaded, SpecError, load, parse
from opsctl.spec.models import Backup, Host, Site, Slurm, Training, User

__all__ = ["DEFAULT_SITE", "Backup", "Host", "Loaded", "Site", "Slurm", "SpecError", "Training", "User", "load",
           "parse"]
