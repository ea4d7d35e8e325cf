"""Bigram models: the next character depends only on the current one.

CountBigram: exact maximum-likelihood estimate from a count table N[a, b] (how often b
follows a in the training names), with add-k smoothing: P(b|a) = (N[a,b] + k) / sum_b (N[a,b] + k).
There is nothing to optimize; "training" is counting.

NeuralBigram: one weight matrix W (V x V). logits = one_hot(a) @ W, which is simply row a
of W; softmax gives P(b|a). Trained by gradient descent (plain SGD in the lecture); at its
optimum it recovers the count table's probabilities.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class CountBigram(nn.Module):
    layout = "pairs"
    trainable = False

    def __init__(self, vocab_size: int, smoothing: float = 1.0):
        super().__init__()
        if smoothing < 0:
            raise ValueError("smoothing must be >= 0")
        self.vocab_size = vocab_size
        self.smoothing = float(smoothing)
        self.context = 1
        self.register_buffer("counts", torch.zeros(vocab_size, vocab_size, dtype=torch.float64))

    def config(self) -> dict:
        return {"smoothing": self.smoothing}

    @torch.no_grad()
    def fit(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        """Count every (previous char, next char) pair. X: (n, 1), Y: (n,)."""
        self.counts.zero_()
        ones = torch.ones(Y.numel(), dtype=torch.float64)
        self.counts.index_put_((X[:, -1], Y), ones, accumulate=True)

    def log_probs(self) -> torch.Tensor:
        smoothed = self.counts + self.smoothing
        return (smoothed / smoothed.sum(dim=1, keepdim=True)).log()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        # log-probabilities are valid logits: softmax(log p) = p
        return self.log_probs()[idx[:, -1]].float()


class NeuralBigram(nn.Module):
    layout = "pairs"
    trainable = True

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.context = 1
        self.W = nn.Parameter(torch.randn(vocab_size, vocab_size))  # as in the lecture

    def config(self) -> dict:
        return {}

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        # one_hot(idx) @ W  ==  W[idx]: pick the row of the current character
        return self.W[idx[:, -1]]
