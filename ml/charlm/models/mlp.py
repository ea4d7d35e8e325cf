"""MLP language model (Bengio et al. 2003).

Each of the `context` previous characters is looked up in an embedding table C (V x n_embd);
the embeddings are concatenated into one vector of size context * n_embd, go through
`n_layer` hidden layers (Linear -> optional BatchNorm -> tanh or GELU -> optional dropout),
and a final Linear layer gives the logits for the next character. Positions before the
start of a name hold the start token '.'.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class MLP(nn.Module):
    layout = "pairs"
    trainable = True

    def __init__(
        self,
        vocab_size: int,
        context: int = 8,
        n_embd: int = 24,
        n_hidden: int = 512,
        n_layer: int = 2,
        activation: str = "tanh",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in ("tanh", "gelu"):
            raise ValueError("activation must be 'tanh' or 'gelu'")
        self.vocab_size = vocab_size
        self.context = context
        self._config = dict(
            context=context,
            n_embd=n_embd,
            n_hidden=n_hidden,
            n_layer=n_layer,
            activation=activation,
            batchnorm=batchnorm,
            dropout=dropout,
        )
        self.wte = nn.Embedding(vocab_size, n_embd)
        layers: list[nn.Module] = []
        fan_in = context * n_embd
        for _ in range(n_layer):
            linear = nn.Linear(fan_in, n_hidden, bias=not batchnorm)
            gain = 5 / 3 if activation == "tanh" else 2**0.5  # Kaiming init for the nonlinearity
            nn.init.normal_(linear.weight, std=gain / fan_in**0.5)
            layers.append(linear)
            if batchnorm:
                layers.append(nn.BatchNorm1d(n_hidden))
            layers.append(nn.Tanh() if activation == "tanh" else nn.GELU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            fan_in = n_hidden
        self.hidden = nn.Sequential(*layers)
        self.lm_head = nn.Linear(fan_in, vocab_size)
        with torch.no_grad():  # start with near-uniform predictions (loss ~ ln V)
            self.lm_head.weight.mul_(0.1)
            self.lm_head.bias.zero_()

    def config(self) -> dict:
        return dict(self._config)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        # idx: (B, context) previous characters -> logits (B, vocab_size)
        emb = self.wte(idx)  # (B, context, n_embd)
        h = self.hidden(emb.flatten(1))  # concatenate the context embeddings
        return self.lm_head(h)
