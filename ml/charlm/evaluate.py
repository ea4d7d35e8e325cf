"""Loss of a model over a dataset (sum of NLL over real target tokens), and `charlm eval`."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from charlm.data import IGNORE_INDEX, PairDataset, SeqBuckets, Vocab, read_names
from charlm.errors import CharlmError
from charlm.metrics import loss_summary


def loss_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of cross-entropy over real targets; padded positions (IGNORE_INDEX) are masked."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


@torch.no_grad()
def dataset_loss(model, dataset, device, autocast=None) -> tuple[float, int]:
    """(total NLL in nats, number of target tokens) of `model` over `dataset`."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    ctx = autocast if autocast is not None else contextlib.nullcontext()
    try:
        for x, y in dataset.batches():
            with ctx:
                logits = model(x.to(device))
            total += loss_sum(logits, y.to(device)).double().cpu()
            count += int((y != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return float(total), count


def mean_loss(model, dataset, device, autocast=None) -> float | None:
    if dataset is None:
        return None
    total, count = dataset_loss(model, dataset, device, autocast)
    return total / count if count else None


def build_dataset(model, names, vocab: Vocab):
    if model.layout == "pairs":
        return PairDataset.build(names, vocab, model.context)
    return SeqBuckets.build(names, vocab)


def eval_file(model, vocab: Vocab, path: str, max_len: int = 10_000) -> dict:
    """Evaluate a checkpointed model on a names file. Names with characters outside the
    model's vocabulary, or longer than its context allows, are skipped and reported."""
    names, stats = read_names(path, max_len=max_len)
    unknown: dict[str, int] = {}
    oov, too_long, ok = 0, 0, []
    limit = model.block_size - 1 if getattr(model, "block_size", None) else None
    for w in names:
        bad = vocab.unknown_chars(w)
        if bad:
            oov += 1
            for c in bad:
                unknown[c] = unknown.get(c, 0) + 1
        elif limit is not None and len(w) > limit:
            too_long += 1
        else:
            ok.append(w)
    result = {
        "data": stats.to_dict(),
        "evaluated_names": len(ok),
        "skipped_out_of_vocabulary": oov,
        "unknown_chars": dict(sorted(unknown.items())),
        "skipped_longer_than_model_context": too_long,
    }
    if not ok:
        raise CharlmError(
            f"nothing to evaluate in {path}: {oov} names have characters outside the checkpoint's vocabulary "
            f"{sorted(unknown)}, {too_long} are longer than the model's context"
        )
    ds = build_dataset(model, ok, vocab)
    total, count = dataset_loss(model, ds, torch.device("cpu"))
    result["tokens"] = count
    result["loss"] = loss_summary(total / count)
    return result
