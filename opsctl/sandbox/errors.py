class SandboxError(RuntimeError):
    """A sandbox host cannot be built, started or reached; the message says why and how to fix it."""
