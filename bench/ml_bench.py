#!/usr/bin/env python3
"""charlm benchmark: test loss at a fixed CPU time budget, and training throughput vs makemore.

    python bench/ml_bench.py NAMES_FILE [--seconds 180] [--models bigram nbigram mlp transformer]

For every model it prints two figures:

1. quality: our test loss (nats, makemore's split) after `--seconds` of training with the
   default configuration, next to the figure makemore's own code reached in 180 s on this
   2-core machine (bigram 2.453, MLP 2.038, transformer 2.001; exact add-one bigram 2.4497).
2. speed: real (unpadded) target tokens per second of our training loop vs a faithful
   makemore-style training step for the *same model size*, both timed in this run for
   `--throughput-seconds` each: makemore pads every name to block_size = max_len + 1 = 16,
   uses batches of 32, computes every position and masks the padding with ignore_index=-1.

Both sides use the same thread count (default 1). The machine may be shared with other
jobs: absolute numbers move with the load, the ratio less so (both sides run back to back).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ml"))

from charlm.data import read_names, split_names  # noqa: E402
from charlm.metrics import read_jsonl  # noqa: E402
from charlm.train import TrainConfig, train  # noqa: E402

# makemore's own results on this machine (180 s, 1 thread, default sizes, batch 32)
MAKEMORE_REFERENCE = {
    "bigram": 2.4497,  # exact add-one count bigram floor on this split
    "nbigram": 2.453,  # makemore's (neural) bigram
    "mlp": 2.038,
    "transformer": 2.001,
}
# makemore's default model sizes, for the like-for-like throughput comparison
SAME_SIZE = {
    "nbigram": {},
    "mlp": dict(context=16, n_embd=64, n_hidden=64, n_layer=1, activation="tanh"),
    "transformer": dict(n_embd=64, n_layer=4, n_head=4),
}


# ---------------------------------------------------------------------------------------
# makemore's models, as in makemore.py (n_embd 64, n_embd2 64, n_layer 4, n_head 4)
class NewGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class MMSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MMBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = MMSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(
            dict(c_fc=nn.Linear(n_embd, 4 * n_embd), c_proj=nn.Linear(4 * n_embd, n_embd), act=NewGELU())
        )
        m = self.mlp
        self.mlpf = lambda x: m.c_proj(m.act(m.c_fc(x)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlpf(self.ln_2(x))


class MMTransformer(nn.Module):
    def __init__(self, V, block_size, n_embd=64, n_layer=4, n_head=4):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(V, n_embd),
                wpe=nn.Embedding(block_size, n_embd),
                h=nn.ModuleList([MMBlock(n_embd, n_head, block_size) for _ in range(n_layer)]),
                ln_f=nn.LayerNorm(n_embd),
            )
        )
        self.lm_head = nn.Linear(n_embd, V, bias=False)

    def forward(self, idx):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long).unsqueeze(0)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class MMMLP(nn.Module):
    def __init__(self, V, block_size, n_embd=64, n_embd2=64):
        super().__init__()
        self.block_size, self.vocab_size = block_size, V
        self.wte = nn.Embedding(V + 1, n_embd)  # +1 for the <BLANK> token
        self.mlp = nn.Sequential(nn.Linear(block_size * n_embd, n_embd2), nn.Tanh(), nn.Linear(n_embd2, V))

    def forward(self, idx):
        embs = []
        for _ in range(self.block_size):
            tok_emb = self.wte(idx)
            idx = torch.roll(idx, 1, 1)
            idx[:, 0] = self.vocab_size
            embs.append(tok_emb)
        return self.mlp(torch.cat(embs, -1))


class MMBigram(nn.Module):
    def __init__(self, V, block_size):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros((V, V)))

    def forward(self, idx):
        return self.logits[idx]


MAKEMORE_MODELS = {"nbigram": MMBigram, "mlp": MMMLP, "transformer": MMTransformer}


def makemore_tensors(words):
    """makemore's CharDataset: x = [0, ids..., 0-pad], y = [ids..., 0, -1-pad], length max_len+1."""
    chars = sorted(set("".join(words)))
    stoi = {c: i + 1 for i, c in enumerate(chars)}
    max_len = max(len(w) for w in words)
    X = torch.zeros(len(words), max_len + 1, dtype=torch.long)
    Y = torch.full((len(words), max_len + 1), -1, dtype=torch.long)
    for i, w in enumerate(words):
        ix = torch.tensor([stoi[c] for c in w], dtype=torch.long)
        X[i, 1 : 1 + len(ix)] = ix
        Y[i, : len(ix)] = ix
        Y[i, len(ix)] = 0
    return X, Y, len(chars) + 1, max_len + 1


def makemore_throughput(kind, train_words, seconds, batch_size=32):
    """Time makemore's training step (AdamW lr 5e-4, wd 0.01, betas 0.9/0.99) on padded batches."""
    X, Y, V, block_size = makemore_tensors(train_words)
    torch.manual_seed(3407)
    model = MAKEMORE_MODELS[kind](V, block_size)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    g = torch.Generator().manual_seed(0)

    def step():
        ix = torch.randint(len(X), (batch_size,), generator=g)
        x, y = X[ix], Y[ix]
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
        model.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return int((y != -1).sum())

    for _ in range(20):  # warm up
        step()
    steps, real, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        real += step()
        steps += 1
    dt = time.perf_counter() - t0
    return {
        "steps_per_s": steps / dt,
        "real_tokens_per_s": real / dt,
        "padded_tokens_per_s": steps * batch_size * block_size / dt,
    }


# ---------------------------------------------------------------------------------------
# upstream makemore (karpathy/makemore's makemore.py itself), run side by side with charlm
_CACHE = os.environ.get("OPSCTL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "opsctl")
MAKEMORE_DEFAULT = os.path.join(_CACHE, "makemore", "makemore.py")
_STEP_LINE = re.compile(r"^step (\d+) \| loss ([0-9.]+) \| step time ([0-9.]+)ms")
_EVAL_LINE = re.compile(r"^step (\d+) train loss: ([0-9.]+) test loss: ([0-9.]+)")


def find_makemore(path: str | None, parser) -> str | None:
    """--makemore PATH, else $CHARLM_MAKEMORE, else OPSCTL_CACHE/makemore/makemore.py if it exists."""
    path = path or os.environ.get("CHARLM_MAKEMORE") or (MAKEMORE_DEFAULT if os.path.isfile(MAKEMORE_DEFAULT) else None)
    if path and not os.path.isfile(path):
        parser.error(f"--makemore {path}: no such file (give the path of upstream makemore.py, or set CHARLM_MAKEMORE)")
    return path


def _pin(core: int | None):
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {core})


def cores_for_two() -> tuple[int | None, int | None]:
    """Two distinct cores of this process's affinity for the side-by-side runs (None: don't pin)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    return (cores[0], cores[1]) if len(cores) >= 2 else (None, None)


class UpstreamMakemore:
    """makemore.py in a subprocess (its own argument defaults: n_embd 64, 4 layers, 4 heads, batch 32,
    AdamW 5e-4), stopped after `seconds` of its training (counted from its first step). It has no
    time limit of its own; it logs every 10th step's time and evaluates every 500 steps."""

    def __init__(self, path, kind, names, seconds, workdir, threads=1, device="cpu", core=None, workers=0, extra=()):
        self.path, self.seconds = path, seconds
        site = os.environ.get("CHARLM_MAKEMORE_SITE") or os.path.join(os.path.dirname(path), "site")
        # makemore imports torch.utils.tensorboard; a tensorboard installed next to it (pip install --target
        # DIR/site tensorboard) goes at the END of sys.path, so this venv's torch and numpy are the ones used
        boot = (
            "import runpy, sys; sys.path.append(sys.argv.pop(1)); sys.argv[0] = sys.argv[1]; "
            "runpy.run_path(sys.argv.pop(1), run_name='__main__')"
        )
        cmd = [sys.executable, "-u", "-c", boot, site, path, "--type", {"nbigram": "bigram"}.get(kind, kind)]
        cmd += ["-i", names, "-o", workdir, "--num-workers", str(workers), "--device", device, *extra]
        self.cmd = cmd[4:]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_pin(core)
        )
        self.step_ms, self.evals, self.tail = [], [], []
        self.t_first = self.t_last = None
        self.last_step = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.perf_counter()
            self.tail = (self.tail + [line.rstrip()])[-5:]
            m = _STEP_LINE.match(line)
            if m:
                if self.t_first is None:
                    self.t_first = now
                self.last_step, self.t_last = int(m[1]), now
                self.step_ms.append(float(m[3]))
            m = _EVAL_LINE.match(line)
            if m:
                self.evals.append((int(m[1]), float(m[3]), now))

    def finish(self, timeout_start=600.0) -> dict:
        """Wait until it has trained `seconds`, stop it, return its figures."""
        t0 = time.perf_counter()
        while self.proc.poll() is None:
            if self.t_first is None and time.perf_counter() - t0 > timeout_start:
                break
            if self.t_first is not None and time.perf_counter() - self.t_first >= self.seconds:
                break
            time.sleep(0.2)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        if self.t_first is None or not self.step_ms:
            raise SystemExit("ml_bench: error: makemore never trained; its last lines:\n" + "\n".join(self.tail))
        return {
            "steps": self.last_step + 1,
            "wall_s": self.t_last - self.t_first,
            "median_step_ms": statistics.median(self.step_ms),
            "test_loss": self.evals[-1][1] if self.evals else None,
            "test_loss_step": self.evals[-1][0] if self.evals else None,
            "args": self.cmd,
        }


def side_by_side(args, kind, names_path, split, root, overrides) -> dict:
    """charlm (this process) and upstream makemore (a subprocess) train for --seconds at the same
    time, each on its own core when there are two; real tokens/s of both, wall-clock and per step.
    makemore gets the shape of charlm's model (--n-layer/--n-head/--n-embd), so both are the same size."""
    core_ours, core_mm = cores_for_two() if args.device == "cpu" else (None, None)
    cfg = TrainConfig(data=names_path, model=kind, out=root, time_budget=args.seconds, **overrides)
    shape = []
    for key in ("n_layer", "n_head", "n_embd") if kind == "transformer" else ():
        value = cfg.resolved(key)
        if value is not None:
            shape += ["--" + key.replace("_", "-"), str(value)]
    mm = UpstreamMakemore(
        args.makemore, kind, names_path, args.seconds, os.path.join(root, kind + "-makemore"),
        threads=args.threads, device=args.device, core=core_mm, workers=args.makemore_workers, extra=shape,
    )  # fmt: skip
    old_affinity = os.sched_getaffinity(0) if core_ours is not None else None
    if core_ours is not None:
        os.sched_setaffinity(0, {core_ours})
    try:
        rep = ours(
            names_path, kind, os.path.join(root, kind), args.threads, time_budget=args.seconds,
            eval_every=10**9, device=args.device, **overrides,
        )  # fmt: skip
    finally:
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)
    m = mm.finish()
    # makemore draws 32 names uniformly: its expected real (unpadded) targets per step
    real_per_step = 32 * statistics.fmean(len(w) + 1 for w in split.train)
    m["real_tokens_per_s_wall"] = m["steps"] * real_per_step / m["wall_s"]
    m["real_tokens_per_s_median_step"] = real_per_step / (m["median_step_ms"] / 1000)
    records = read_jsonl(os.path.join(root, kind, "metrics.jsonl"))
    elapsed = records[-1]["elapsed"] if records else rep["train_time_s"]
    r = {
        "ours": {
            "test_loss": rep["test_loss"]["nats"],
            "steps": rep["steps"],
            "real_tokens_per_s_wall": rep["tokens_trained"] / elapsed,
            "real_tokens_per_s_step": rep["tokens_per_s"],
            "params": rep["params"],
            "model_config": rep["model_config"],
            "device": rep["device"],
        },
        "makemore": m,
    }
    r["ratio_wall"] = r["ours"]["real_tokens_per_s_wall"] / m["real_tokens_per_s_wall"]
    r["ratio_step"] = r["ours"]["real_tokens_per_s_step"] / m["real_tokens_per_s_median_step"]
    o = r["ours"]
    mm_loss = "n/a" if m["test_loss"] is None else f"{m['test_loss']:.4f} (its eval at step {m['test_loss_step']})"
    print(
        f"[{kind}] side by side, {args.seconds:.0f} s each, {args.device}"
        + (f", cores {core_ours}/{core_mm}" if core_ours is not None else "")
        + f":\n  charlm   test loss {o['test_loss']:.4f} | {o['steps']} steps"
        f" | real tok/s {o['real_tokens_per_s_wall']:,.0f} wall, {o['real_tokens_per_s_step']:,.0f} in steps"
        f" | {o['params']:,} params\n"
        f"  makemore test loss {mm_loss} | {m['steps']} steps | real tok/s {m['real_tokens_per_s_wall']:,.0f}"
        f" wall, {m['real_tokens_per_s_median_step']:,.0f} at its median step ({m['median_step_ms']:.2f} ms)\n"
        f"  ratio charlm/makemore: wall-clock {r['ratio_wall']:.2f}x, per step (our mean vs its median)"
        f" {r['ratio_step']:.2f}x",
        flush=True,
    )
    return r, rep


def ours(names_path, kind, out, threads, **kw):
    cfg = TrainConfig(data=names_path, model=kind, out=out, threads=threads, quiet=True, notify=False, **kw)
    return train(cfg)


def ours_same_size(args, kind, out, **extra):
    """charlm at makemore's model size (SAME_SIZE), timed for --throughput-seconds like the baseline."""
    return ours(
        args.names,
        kind,
        out,
        args.threads,
        time_budget=args.throughput_seconds,
        eval_every=10**9,
        warmup=0,
        **SAME_SIZE[kind],
        **extra,
    )


def parse_overrides(items, parser) -> dict:
    """KEY=VALUE pairs -> TrainConfig keyword arguments; VALUE is read as JSON (0.1, 32, true),
    else kept as a string."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields or key in ("data", "model", "out", "time_budget", "threads"):
            parser.error(f"--set {item!r}: expected KEY=VALUE with KEY a training option such as dropout, lr")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", help="names file (e.g. ../shared/data/names.txt)")
    p.add_argument("--seconds", type=float, default=180, help="training budget for mlp and transformer")
    p.add_argument(
        "--models",
        nargs="+",
        default=["bigram", "nbigram", "mlp", "transformer"],
        choices=["bigram", "nbigram", "mlp", "transformer"],
    )
    p.add_argument("--throughput-seconds", type=float, default=8.0, help="timing window per side")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: both sides on the GPU")
    p.add_argument(
        "--makemore",
        help="upstream makemore.py, run side by side with charlm for mlp/transformer (default: $CHARLM_MAKEMORE, "
        "else OPSCTL_CACHE/makemore/makemore.py when present; without it, the re-implemented step below)",
    )
    p.add_argument("--makemore-workers", type=int, default=0, help="makemore's --num-workers (default 0: one core)")
    p.add_argument("--out", help="keep run directories here (default: a temporary directory)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training option of the quality runs (mlp/transformer), e.g. --set dropout=0.1 "
        "--set batch_size=32; the throughput comparison keeps the defaults",
    )
    args = p.parse_args(argv)

    overrides = parse_overrides(args.set, p)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    args.makemore = find_makemore(args.makemore, p)
    torch.set_num_threads(args.threads)
    names, _ = read_names(args.names)
    split = split_names(names)
    root = args.out or tempfile.mkdtemp(prefix="charlm-bench-")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"charlm bench: {len(names)} names, {args.threads} thread(s), load average at start {load:.2f}", flush=True)
    results = {}
    for kind in args.models:
        r = {"reference_test_loss": MAKEMORE_REFERENCE[kind]}
        out = os.path.join(root, kind)
        if kind == "bigram":
            rep = ours(args.names, kind, out, args.threads)
        elif kind == "nbigram":
            rep = ours(args.names, kind, out, args.threads)  # converges in its default 1000 steps
        elif args.makemore:
            r["upstream"], rep = side_by_side(args, kind, args.names, split, root, overrides)
        else:
            rep = ours(
                args.names, kind, out, args.threads, time_budget=args.seconds, eval_every=10**9,
                device=args.device, **overrides,
            )  # fmt: skip
        r.update(
            test_loss=rep["test_loss"]["nats"],
            steps=rep["steps"],
            train_time_s=rep["train_time_s"],
            params=rep["params"],
            tokens_per_s=rep["tokens_per_s"],
            model_config=rep["model_config"],
        )
        if kind == "bigram":  # must reproduce the exact floor, not beat it
            verdict = "MATCH" if abs(r["test_loss"] - r["reference_test_loss"]) <= 0.001 else "MISMATCH"
        else:
            verdict = "BETTER" if r["test_loss"] < r["reference_test_loss"] else "not better"
        print(
            f"[{kind}] test loss {r['test_loss']:.4f} nats after {rep['steps']} steps / {rep['train_time_s']:.0f} s "
            + (f"with {overrides} " if overrides and kind in ("mlp", "transformer") else "")
            + f"(makemore reference {r['reference_test_loss']}: {verdict}"
            f", delta {r['test_loss'] - r['reference_test_loss']:+.4f})",
            flush=True,
        )
        if kind in MAKEMORE_MODELS and "upstream" not in r and args.device == "cpu":
            base = makemore_throughput(kind, split.train, args.throughput_seconds)
            same = ours_same_size(args, kind, out + "-same-size")
            r["makemore"] = base
            r["ours_same_size"] = {
                "real_tokens_per_s": same["tokens_per_s"],
                "params": same["params"],
                "model_config": same["model_config"],
            }
            r["throughput_ratio"] = same["tokens_per_s"] / base["real_tokens_per_s"]
            if kind == "transformer":  # also at makemore's own batch of 32 names
                b32 = ours_same_size(args, kind, out + "-same-size-b32", batch_size=32)
                r["ours_same_size_b32"] = {"real_tokens_per_s": b32["tokens_per_s"]}
                r["throughput_ratio_b32"] = b32["tokens_per_s"] / base["real_tokens_per_s"]
            print(
                f"[{kind}] throughput, same size ({same['params']:,} params): "
                f"ours {same['tokens_per_s']:,.0f} real tok/s"
                f" vs makemore-style {base['real_tokens_per_s']:,.0f} real tok/s ({base['steps_per_s']:.1f} steps/s)"
                f" -> {r['throughput_ratio']:.2f}x"
                + (
                    f"; at makemore's batch of 32 names {r['ours_same_size_b32']['real_tokens_per_s']:,.0f} real tok/s"
                    f" -> {r['throughput_ratio_b32']:.2f}x"
                    if "throughput_ratio_b32" in r
                    else ""
                ),
                flush=True,
            )
        results[kind] = r

    print("\nmodel        test loss  makemore  delta    | tok/s ours  tok/s makemore  ratio")
    for kind, r in results.items():
        if "upstream" in r:
            u = r["upstream"]
            mm_loss = u["makemore"]["test_loss"]
            tp = (
                f"{u['ours']['real_tokens_per_s_wall']:>10,.0f}  {u['makemore']['real_tokens_per_s_wall']:>14,.0f}"
                f"  {u['ratio_wall']:>4.2f}x wall, {u['ratio_step']:.2f}x per step (upstream makemore"
                + (f", its test loss {mm_loss:.4f})" if mm_loss is not None else ")")
            )
            print(
                f"{kind:<12} {r['test_loss']:.4f}     {r['reference_test_loss']:.4f}    "
                f"{r['test_loss'] - r['reference_test_loss']:+.4f}  | {tp}"
            )
            continue
        tp = (
            f"{r['ours_same_size']['real_tokens_per_s']:>10,.0f}  {r['makemore']['real_tokens_per_s']:>14,.0f}"
            f"  {r['throughput_ratio']:>4.2f}x"
            if "makemore" in r
            else f"{'-':>10}  {'-':>14}  {'-':>5}"
        )
        print(
            f"{kind:<12} {r['test_loss']:.4f}     {r['reference_test_loss']:.4f}    "
            f"{r['test_loss'] - r['reference_test_loss']:+.4f}  | {tp}"
        )
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at end {end_load:.2f}; run directories in {root}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "load_start": load,
                    "load_end": end_load,
                    "threads": args.threads,
                    "seconds": args.seconds,
                    "overrides": overrides,
                    "device": args.device,
                    "makemore": args.makemore,
                    "results": results,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
