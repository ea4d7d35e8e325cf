"""The one interface of every image builder, and the list of them.

Each builder is content-addressed: :meth:`Builder.inputs` is everything that determines the image,
:meth:`Builder.tag` names it after their hash, and :meth:`Builder.ensure` builds it once (later calls
reuse it) and returns where it is (a Docker tag, or the VM image's directory).

=============================  ==========================================================
builder                        image
=============================  ==========================================================
``images.SandboxImage(kind)``  the sandbox's systemd containers (backup, trainer, slurm)
``slurmimage.SlurmImage()``    the sandbox's bookworm Slurm cluster nodes
``vm.VmImage()``               the OpenZFS VM's root disk (``opsctl sandbox build-image``)
``opsctl.train.jobbase.JobBase()``  the job image's base for sites without a registry
``opsctl.train.image.JobImage(site)``  the training job image (product: ``opsctl train``)
=============================  ==========================================================

The product's builders (``opsctl.train``) have the same shape without importing this module.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from opsctl.progress import Progress


@runtime_checkable
class Builder(Protocol):
    """A content-addressed image builder."""

    name: str

    def tag(self) -> str:
        """The image's name, from the hash of :meth:`inputs`."""
        ...

    def inputs(self) -> dict[str, Any]:
        """Everything that determines the image."""
        ...

    def ensure(self, progress: Progress = None) -> str:
        """Build the image unless it exists; return its tag (or directory)."""
        ...


def sandbox_builders() -> list[Builder]:
    """The sandbox's image builders."""
    from opsctl.sandbox.images import KINDS, SandboxImage
    from opsctl.sandbox.slurmimage import SlurmImage
    from opsctl.sandbox.vm import VmImage

    return [*(SandboxImage(kind) for kind in sorted(KINDS)), SlurmImage(), VmImage()]
