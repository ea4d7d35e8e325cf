"""Atomic checkpoints (temp file + fsync + os.replace) and RNG state capture.

A checkpoint holds everything needed to continue a run bit-for-bit: model weights,
optimizer state, the step and elapsed training time (the LR schedule is a function of
them), the best loss so far, and the RNG states of torch, numpy, python and the data
sampler of every rank.

Checkpoints hold only tensors, numbers, strings, lists and dicts, and are read with
``torch.load(..., weights_only=True)``: a checkpoint file is data, never code. A file whose
pickle would build any other object (e.g. one whose ``__reduce__`` runs a command) is refused
with a :class:`~charlm.errors.CharlmError` before anything in it runs. RNG states are stored
in that form: torch/CUDA/sampler states are uint8 tensors, numpy's MT19937 state is a dict
with its key as an int64 tensor, python's ``random`` state is a list of ints.
"""

from __future__ import annotations

import os
import pickle
import random
import re

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
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any global outside torch's allow-list (os.system, builtins.open, ...);
        # torch's message advises weights_only=False, which is exactly what must not happen here.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise CharlmError(f"refusing checkpoint {path}: it would call {found[1]} when loaded (a charlm "
                              "checkpoint holds only tensors and plain data); delete it, it is not ours") from None
        detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(e))
        raise CharlmError(f"cannot read checkpoint {path}: {detail[1].strip() if detail else type(e).__name__} "
                          "(truncated, or not a charlm checkpoint)") from None
    except Exception as e:  # truncated / not a torch file
        raise CharlmError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict) or "model_kind" not in ckpt or "model_state" not in ckpt:
        raise CharlmError(f"{path} is not a charlm checkpoint")
    return ckpt


def _numpy_state() -> dict:
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: dict) -> None:
    key = state["key"].numpy().astype(np.uint32)
    np.random.set_state((state["kind"], key, state["pos"], state["has_gauss"], state["cached_gaussian"]))


def _python_state() -> dict:
    version, internal, gauss_next = random.getstate()
    return {"version": int(version), "internal": list(internal), "gauss_next": gauss_next}


def _set_python_state(state: dict) -> None:
    random.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))


def rng_state(sampler_generator: torch.Generator) -> dict:
    """Every RNG state as tensors/lists/numbers (loadable with ``weights_only=True``)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": _numpy_state(),
        "python": _python_state(),
        "sampler": sampler_generator.get_state(),
    }


def set_rng_state(state: dict, sampler_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    _set_numpy_state(state["numpy"])
    _set_python_state(state["python"])
    sampler_generator.set_state(state["sampler"])
