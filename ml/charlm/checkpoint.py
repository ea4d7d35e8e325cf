"""Atomic checkpoints (temp file + fsync + os.replace) and RNG state capture.

A checkpoint holds everything needed to continue a run bit-for-bit: model weights,
optimizer state, the step and elapsed training time (the LR schedule is a function of
them), the best loss so far, and the RNG states of torch, numpy, python and the data
sampler of every rank.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from charlm.errors import CharlmError

LAST = "ckpt_last.pt"
BEST = "ckpt_best.pt"


def atomic_save(obj, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load(path: str) -> dict:
    if os.path.isdir(path):
        for name in (BEST, LAST):
            if os.path.exists(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise CharlmError(f"no checkpoint ({BEST} or {LAST}) in directory {path}")
    if not os.path.exists(path):
        raise CharlmError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated / not a torch file
        raise CharlmError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict) or "model_kind" not in ckpt or "model_state" not in ckpt:
        raise CharlmError(f"{path} is not a charlm checkpoint")
    return ckpt


def rng_state(sampler_generator: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "sampler": sampler_generator.get_state(),
    }


def set_rng_state(state: dict, sampler_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    sampler_generator.set_state(state["sampler"])
