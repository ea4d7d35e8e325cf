"""Old name of :mod:`opsctl.sandbox.vm` (the OpenZFS VM), kept for imports that still use it.

The VM's command line is ``opsctl sandbox build-image`` / ``up`` / ``down`` / ``status``.
"""

from __future__ import annotations

from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.vm.common import cache_root
from opsctl.sandbox.vm.image import (
    GUEST_PACKAGES,
    GUEST_RECIPE,
    IMAGE_FILES,
    ensure_vm_image,
    image_dir,
    vm_image_hash,
    vm_image_inputs,
)
from opsctl.sandbox.vm.machine import ZfsVM, ansible_host_vars

__all__ = ["GUEST_PACKAGES", "GUEST_RECIPE", "IMAGE_FILES", "SandboxError", "ZfsVM", "ansible_host_vars",
           "cache_root", "ensure_vm_image", "image_dir", "vm_image_hash", "vm_image_inputs"]
