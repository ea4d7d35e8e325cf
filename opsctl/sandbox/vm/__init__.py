"""The sandbox's OpenZFS VM: the guest recipe (``guest-setup.sh``), the image build (:mod:`.image`,
the Debian mirror from :mod:`.apt_sources`) and the qemu lifecycle (:mod:`.machine`).

Use it through the CLI::

    opsctl sandbox build-image     # build or reuse the image, print its directory
    opsctl sandbox up              # boot the site's `sandbox: vm` host
"""

from __future__ import annotations

from opsctl.sandbox.vm.image import (
    GUEST_PACKAGES,
    IMAGE_FILES,
    VmImage,
    ensure_vm_image,
    image_dir,
    vm_image_hash,
    vm_image_inputs,
)
from opsctl.sandbox.vm.machine import ZfsVM, ansible_host_vars

__all__ = ["GUEST_PACKAGES", "IMAGE_FILES", "VmImage", "ZfsVM", "ansible_host_vars", "ensure_vm_image",
           "image_dir", "vm_image_hash", "vm_image_inputs"]
