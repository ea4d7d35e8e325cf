"""Names file -> vocabulary -> makemore's train/test split -> pre-tensorized datasets.

Token 0 is the start/stop token '.', exactly like makemore; the characters of the
data (sorted) get indices 1..V-1. Every name `emma` becomes the sequence
`. e m m a .`: the model reads `. e m m a` and must predict `e m m a .`.

Two tensor layouts, both built once up front so a training step does no Python work
per sample:

* `PairDataset` (bigram, neural bigram, MLP): one row per target token, holding the
  `context` previous tokens (left-padded with '.') and the target. No padding tokens
  are ever computed: every row is a real target.
* `SeqBuckets` (transformer): names grouped by length, one `(n, L+1)` tensor per
  length. A batch is drawn from one bucket, so sequences in a batch have equal length
  and no padded position is computed (makemore pads every name to max_len+1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from charlm.errors import CharlmError

START = "."
MAKEMORE_SPLIT_SEED = 3407
IGNORE_INDEX = -1


class DataError(CharlmError):
    pass


@dataclass
class LoadStats:
    """What happened to each line of the input file (all skips are counted, none silent)."""

    path: str
    lines: int = 0
    kept: int = 0
    blank: int = 0
    too_long: int = 0
    reserved_char: int = 0
    max_len: int = 0
    longest_skipped: int = 0

    def skipped(self) -> int:
        return self.blank + self.too_long + self.reserved_char

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "lines": self.lines,
            "kept": self.kept,
            "skipped_blank": self.blank,
            "skipped_too_long": self.too_long,
            "skipped_reserved_char": self.reserved_char,
            "max_len": self.max_len,
        }

    def summary(self) -> str:
        parts = [f"{self.kept} names from {self.lines} lines of {self.path}"]
        if self.blank:
            parts.append(f"skipped {self.blank} blank")
        if self.too_long:
            parts.append(
                f"skipped {self.too_long} longer than --max-len {self.max_len} (longest {self.longest_skipped} chars)"
            )
        if self.reserved_char:
            parts.append(f"skipped {self.reserved_char} containing the reserved start/stop char '{START}'")
        return "; ".join(parts)


def read_names(path: str, max_len: int = 64) -> tuple[list[str], LoadStats]:
    """Read one name per line (UTF-8; CRLF and a BOM are accepted; each line is stripped).

    Blank lines, lines longer than `max_len` characters and lines containing the reserved
    '.' are skipped and counted in the returned stats. Raises DataError (a clear one-line
    message) for a missing file, non-UTF-8 bytes, or a file with no usable name.
    """
    if max_len < 1:
        raise DataError(f"--max-len must be >= 1, got {max_len}")
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"data path is a directory, not a file: {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read data file {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        bad = raw[e.start : e.start + 4]
        raise DataError(
            f"{path} is not valid UTF-8: bad byte(s) {bad!r} at line {line}, byte offset {e.start}"
            " (re-encode the file as UTF-8)"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline does not start another line
    stats = LoadStats(path=path, lines=len(lines), max_len=max_len)
    names = []
    for line in lines:
        w = line.strip()  # also removes the '\r' of CRLF files
        if not w:
            stats.blank += 1
        elif len(w) > max_len:
            stats.too_long += 1
            stats.longest_skipped = max(stats.longest_skipped, len(w))
        elif START in w:
            stats.reserved_char += 1
        else:
            names.append(w)
    stats.kept = len(names)
    if not names:
        raise DataError(f"no usable names in {path}: {stats.summary()}")
    return names, stats


class Vocab:
    """Index 0 is the start/stop token '.', then the sorted characters of the data."""

    def __init__(self, chars):
        chars = sorted(set(chars))
        if START in chars:
            raise DataError(f"character '{START}' is reserved for the start/stop token")
        self.itos = [START] + chars
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_names(cls, names) -> Vocab:
        return cls(set("".join(names)))

    @property
    def size(self) -> int:
        return len(self.itos)

    def unknown_chars(self, name: str) -> set:
        return {c for c in name if c not in self.stoi or c == START}

    def encode(self, name: str) -> list[int]:
        bad = self.unknown_chars(name)
        if bad:
            raise DataError(f"name {name!r} has characters outside the vocabulary: {sorted(bad)}")
        return [self.stoi[c] for c in name]

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in ids if i != 0)

    def to_list(self) -> list[str]:
        return list(self.itos[1:])


@dataclass
class Split:
    train: list[str]
    test: list[str]
    val: list[str] = field(default_factory=list)


def makemore_test_size(n: int) -> int:
    """makemore: test_set_size = min(1000, int(len(words) * 0.1)); at least 1 for tiny files."""
    return max(1, min(1000, int(n * 0.1)))


def split_names(names: list[str], val_size: int = 0, seed: int = MAKEMORE_SPLIT_SEED) -> Split:
    """makemore's split: torch.manual_seed(3407); rp = torch.randperm(N); test = last
    test_set_size names of the permutation, train = the rest. An optional validation slice
    (for model selection) is carved from the end of the train part, so test stays identical."""
    n = len(names)
    if n < 2:
        raise DataError(f"need at least 2 names to make a train/test split, got {n}")
    test_size = makemore_test_size(n)
    g = torch.Generator().manual_seed(seed)
    rp = torch.randperm(n, generator=g).tolist()
    train = [names[i] for i in rp[:-test_size]]
    test = [names[i] for i in rp[-test_size:]]
    val = []
    if val_size:
        if val_size < 0 or val_size >= len(train):
            raise DataError(f"--val-size {val_size} must be in [0, {len(train) - 1}] for {len(train)} train names")
        val = train[-val_size:]
        train = train[:-val_size]
    return Split(train=train, test=test, val=val)


class PairDataset:
    """(context -> next token) rows for every target of every name. X: (n, context), Y: (n,)."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor):
        self.X, self.Y = X, Y

    @classmethod
    def build(cls, names, vocab: Vocab, context: int) -> PairDataset:
        rows, targets = [], []
        pad = [0] * context
        for w in names:
            seq = pad + vocab.encode(w) + [0]
            for t in range(len(w) + 1):
                rows.append(seq[t : t + context])
                targets.append(seq[t + context])
        X = torch.tensor(rows, dtype=torch.long).view(-1, context)
        Y = torch.tensor(targets, dtype=torch.long)
        return cls(X, Y)

    @property
    def n_tokens(self) -> int:
        return self.Y.numel()

    def sample(self, batch_size: int, generator: torch.Generator):
        ix = torch.randint(self.Y.numel(), (batch_size,), generator=generator)
        return self.X[ix], self.Y[ix]

    def batches(self, batch_size: int = 8192):
        for i in range(0, self.Y.numel(), batch_size):
            yield self.X[i : i + batch_size], self.Y[i : i + batch_size]


class SeqBuckets:
    """Names bucketed by length. bucket[L] is a (n_L, L+2) tensor `. c1..cL .`; a batch from
    it is x = [:, :-1], y = [:, 1:] (L+1 real targets per row, no padding)."""

    def __init__(self, buckets: dict[int, torch.Tensor]):
        self.lengths = sorted(buckets)
        self.buckets = [buckets[L] for L in self.lengths]
        # probability of drawing each bucket = its share of all target tokens, so that
        # every target token has the same expected weight as in uniform sampling
        tokens = torch.tensor([b.shape[0] * (b.shape[1] - 1) for b in self.buckets], dtype=torch.double)
        self.total_tokens = int(tokens.sum().item())
        self.probs = tokens / tokens.sum()
        # the same names in one padded table, for "mixed" batches (uniform names, padding masked)
        width = self.lengths[-1] + 1
        n = sum(b.shape[0] for b in self.buckets)
        self.X_all = torch.zeros(n, width, dtype=torch.long)
        self.Y_all = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        self.len_all = torch.zeros(n, dtype=torch.long)
        i = 0
        for L, b in zip(self.lengths, self.buckets, strict=True):
            self.X_all[i : i + b.shape[0], : L + 1] = b[:, :-1]
            self.Y_all[i : i + b.shape[0], : L + 1] = b[:, 1:]
            self.len_all[i : i + b.shape[0]] = L + 1
            i += b.shape[0]

    @classmethod
    def build(cls, names, vocab: Vocab) -> SeqBuckets:
        by_len: dict[int, list[list[int]]] = {}
        for w in names:
            by_len.setdefault(len(w), []).append([0] + vocab.encode(w) + [0])
        return cls({L: torch.tensor(rows, dtype=torch.long) for L, rows in by_len.items()})

    @property
    def n_tokens(self) -> int:
        return self.total_tokens

    @property
    def n_names(self) -> int:
        return sum(b.shape[0] for b in self.buckets)

    def mean_seq_len(self) -> float:
        return self.total_tokens / self.n_names

    def sample(self, batch_tokens: int, generator: torch.Generator):
        k = int(torch.multinomial(self.probs, 1, generator=generator).item())
        b = self.buckets[k]
        rows = max(1, batch_tokens // (b.shape[1] - 1))
        ix = torch.randint(b.shape[0], (rows,), generator=generator)
        seq = b[ix]
        return seq[:, :-1], seq[:, 1:]

    def sample_mixed(self, batch_tokens: int, generator: torch.Generator):
        """Uniformly drawn names (about batch_tokens targets), padded to the longest in the
        batch; padded targets are IGNORE_INDEX."""
        rows = max(1, round(batch_tokens / self.mean_seq_len()))
        ix = torch.randint(self.X_all.shape[0], (rows,), generator=generator)
        T = int(self.len_all[ix].max())
        return self.X_all[ix, :T], self.Y_all[ix, :T]

    def batches(self, batch_tokens: int = 16384):
        for b in self.buckets:
            rows = max(1, batch_tokens // (b.shape[1] - 1))
            for i in range(0, b.shape[0], rows):
                seq = b[i : i + rows]
                yield seq[:, :-1], seq[:, 1:]
