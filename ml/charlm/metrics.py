"""Loss units (nats, bits, perplexity) and the metrics JSONL file."""

from __future__ import annotations

import json
import math
import os


def loss_summary(nats: float | None) -> dict:
    """Mean negative log-likelihood per character in nats -> nats, bits and perplexity."""
    if nats is None or not math.isfinite(nats):
        return {"nats": None, "bits": None, "perplexity": None}
    return {"nats": nats, "bits": nats / math.log(2), "perplexity": math.exp(nats)}


def finite_or_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class MetricsLog:
    """Append-only JSONL, one object per logged step. Lines are flushed immediately."""

    def __init__(self, path: str, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        self._f = None

    def truncate_after(self, step: int) -> None:
        """On resume: drop records past the checkpoint's step (written after it was saved)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._f is None:
            self._f = open(self.path, "a")  # noqa: SIM115 (kept open across writes, closed in close())
        self._f.write(json.dumps({k: finite_or_none(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_jsonl(path: str) -> list[dict]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a torn last line from a hard kill
    return out
