"""Decoder-only transformer (GPT): causal self-attention, pre-LayerNorm blocks.

idx (B, T) -> token embedding + position embedding -> n_layer x Block -> LayerNorm ->
Linear -> logits (B, T, V). Each Block is x = x + attn(ln1(x)); x = x + mlp(ln2(x)).
Attention is causal: position t only sees positions <= t.

Padded batches (names of different lengths, padding at the end of each row) can pass
`valid`, a (B, T) bool mask of the real positions. Every position-wise layer (LayerNorm,
the Linear layers, GELU: about 3/4 of the work) then runs on the real tokens only, packed
into one (N, C) matrix; only attention gathers them into (B, T) rows, one per head (see
Packing). Because padding sits at the end of a row and attention is causal, no real
position ever attends to a padded one, so the result is exactly that of the padded
computation, at the cost of the real tokens. The logits come back as (N, V), in the order
of `valid.nonzero()` (i.e. the order of `targets[valid]`). Without `valid` every position
is real: the same code, logits (B, T, V).

Speed notes (1 CPU thread, B=64 names, T~13, measured): exact (erf) GELU is 1.7x faster
than the tanh approximation; explicit attention with a cached causal mask was 1.8x faster
than `scaled_dot_product_attention` per op at head size 16 (C=64); on the gathered heads at
C=96 a whole training step with either is within 1 %. Moving tokens to and from the heads
with one gather each (no padded scatter, no transposed copies) made a training step
1.03-1.09x as fast as view/permute (bench/README.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)  # query, key, value for all heads at once
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        # -inf above the diagonal (the future positions a query must not see), 0 elsewhere: added
        # to the scores by the same matmul that computes them
        future = torch.triu(torch.full((block_size, block_size), float("-inf")), diagonal=1)
        self.register_buffer("future", future, persistent=False)

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """x (N, C), the packed real tokens -> (N, C)."""
        q, k, v = packing.to_heads(self.c_attn(x))  # each (n_head * B, T, head size)
        T, hs = q.shape[1], q.shape[2]
        att = torch.baddbmm(self.future[:T, :T], q, k.transpose(1, 2), alpha=1.0 / math.sqrt(hs))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        return self.resid_dropout(self.c_proj(packing.from_heads(torch.bmm(att, v))))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), packing)
        x = x + self.mlp(self.ln_2(x))
        return x


class Packing:
    """Where the N real positions of a (B, T) batch are. Moves activations between the packed
    (N, C) matrix every position-wise layer works on and the (n_head * B, T, head size) rows,
    one per head and name, that attention multiplies. Each move is one gather (index_select)
    that also does the heads' transpose, so no other copy is made."""

    def __init__(self, valid: torch.Tensor, n_head: int):
        B, T = valid.shape
        dev = valid.device
        self.T, self.n_head = T, n_head
        parts = 3 * n_head  # q, k and v of every head
        self.index = valid.reshape(-1).nonzero().squeeze(1)  # flat positions b * T + t of the real tokens
        # the packed row of each (b, t); padded positions read row 0 (see to_heads)
        row = torch.zeros(B * T, dtype=torch.long, device=dev)
        row[self.index] = torch.arange(self.index.numel(), device=dev)
        # qkv (N, 3C) seen as N * parts pieces of head size, gathered in (3, n_head, B, T) order
        self.heads_index = (torch.arange(parts, device=dev).view(-1, 1) + row.view(1, -1) * parts).view(-1)
        # attention's output, (n_head * B * T) pieces of head size, gathered back in (N, n_head) order
        self.tokens_index = (self.index.view(-1, 1) + torch.arange(n_head, device=dev).view(1, -1) * (B * T)).view(-1)

    def to_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3C) -> q, k, v, each (n_head * B, T, hs). A padded position gets row 0's values.
        Padding sits at the end of a row and attention is causal, so no real query ever sees
        a padded key, and padded outputs are never gathered back: those values change nothing,
        and the gradient they send back to row 0 is exactly zero."""
        hs = qkv.shape[1] // (3 * self.n_head)
        heads = qkv.reshape(-1, hs).index_select(0, self.heads_index)
        return heads.view(3, -1, self.T, hs).unbind(0)

    def from_heads(self, y: torch.Tensor) -> torch.Tensor:
        """(n_head * B, T, hs) -> (N, C)."""
        hs = y.shape[2]
        return y.reshape(-1, hs).index_select(0, self.tokens_index).view(-1, self.n_head * hs)


class Transformer(nn.Module):
    layout = "sequences"
    trainable = True

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 16,
        n_embd: int = 64,
        n_layer: int = 4,
        n_head: int = 4,
        dropout: float = 0.0,
        tie_weights: bool = False,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.context = block_size
        self._config = dict(block_size=block_size, n_embd=n_embd, n_layer=n_layer, n_head=n_head, dropout=dropout)
        if tie_weights:  # only when set, so checkpoints of untied models keep their exact config
            self._config["tie_weights"] = True
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(n_embd, n_head, block_size, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:  # one (V, C) matrix embeds the tokens and scores them (Press & Wolf 2017),
            # initialised as the output layer: N(0, 1) embeddings would start with huge logits
            self.wte.weight = self.lm_head.weight
        # PyTorch's default initialisation, as in makemore: with this tiny model it learns
        # markedly faster per step than GPT-2's N(0, 0.02) (measured on names.txt)

    def config(self) -> dict:
        return dict(self._config)

    def forward(self, idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) for idx (B, T); with `valid` (B, T) bool, logits (N, V) of the
        N real positions only (see the module docstring)."""
        B, T = idx.shape
        if self.block_size < T:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.block_size}")
        real = torch.ones_like(idx, dtype=torch.bool) if valid is None else valid
        packing = Packing(real, self.blocks[0].attn.n_head)
        tokens = idx.reshape(-1).index_select(0, packing.index)
        x = self.drop(self.wte(tokens) + self.wpe(packing.index % T))  # (N, C): token + position embedding
        for block in self.blocks:
            x = block(x, packing)
        logits = self.lm_head(self.ln_f(x))
        return logits if valid is not None else logits.view(B, T, self.vocab_size)
