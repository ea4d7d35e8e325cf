"""Model registry: name -> (class, data layout, default hyperparameters)."""

from __future__ import annotations

from charlm.models.bigram import CountBigram, NeuralBigram
from charlm.models.mlp import MLP
from charlm.models.transformer import Transformer

MODELS = {
    "bigram": CountBigram,
    "nbigram": NeuralBigram,
    "mlp": MLP,
    "transformer": Transformer,
}


def build_model(kind: str, vocab_size: int, **kwargs):
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose from {sorted(MODELS)}")
    return MODELS[kind](vocab_size=vocab_size, **kwargs)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
