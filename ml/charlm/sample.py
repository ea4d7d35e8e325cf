"""Sampling names from a model: start from '.', draw characters until '.' (or max length)."""

from __future__ import annotations

import torch

from charlm.data import Vocab


@torch.no_grad()
def sample_names(
    model,
    vocab: Vocab,
    n: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    max_len: int = 64,
    device=None,
) -> list[str]:
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    device = device or torch.device("cpu")
    g = torch.Generator(device="cpu")
    if seed is not None:
        g.manual_seed(seed)
    else:
        g.seed()
    was_training = model.training
    model.eval()
    block = getattr(model, "block_size", None)
    if block is not None:
        max_len = min(max_len, block - 1)  # '.' + name must fit the position embeddings
    seqs = torch.zeros(n, 1, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(max_len):
        if block is not None:
            inp = seqs[:, -block:]
            logits = model(inp.to(device))[:, -1, :]
        else:
            ctx = seqs[:, -model.context :]
            if ctx.shape[1] < model.context:  # left-pad with the start token
                ctx = torch.cat([torch.zeros(n, model.context - ctx.shape[1], dtype=torch.long), ctx], dim=1)
            logits = model(ctx.to(device))
        logits = logits.float().cpu() / temperature
        if top_k is not None and 0 < top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=g).squeeze(1)
        nxt = torch.where(done, torch.zeros_like(nxt), nxt)
        seqs = torch.cat([seqs, nxt[:, None]], dim=1)
        done |= nxt == 0
        if bool(done.all()):
            break
    model.train(was_training)
    out = []
    for row in seqs[:, 1:].tolist():
        name = []
        for i in row:
            if i == 0:
                break
            name.append(vocab.itos[i])
        out.append("".join(name))
    return out
