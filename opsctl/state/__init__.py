"""Desired state computed once from the validated site (see :mod:`opsctl.state.backup`)."""

from opsctl.state.backup import BackupState, backup_state

__all__ = ["BackupState", "backup_state"]
