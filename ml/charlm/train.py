"""The training job: data -> model -> optimisation loop -> metrics, plot, samples, report.

Deterministic given --seed (same thread count, same device). Checkpoints carry the full
state needed to continue bit-for-bit (see checkpoint.py); SIGTERM/SIGINT ask the loop to
save a checkpoint and return cleanly at the next step boundary.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from charlm import checkpoint, distributed
from charlm.data import IGNORE_INDEX, SeqBuckets, Vocab, read_names, split_names
from charlm.errors import CharlmError
from charlm.evaluate import build_dataset, loss_sum, mean_loss
from charlm.metrics import MetricsLog, finite_or_none, loss_summary, read_jsonl
from charlm.models import build_model, count_params
from charlm.plot import plot_lines
from charlm.sample import sample_names

# Per-model training defaults (any of them can be overridden on the command line).
# batch_size: rows (= target tokens) per step for bigram/nbigram/mlp; for the transformer,
# names per step on average (the token budget is batch_size * mean tokens per name).
TRAIN_DEFAULTS = {
    "bigram": dict(steps=0),
    "nbigram": dict(steps=1000, batch_size=8192, optimizer="sgd", lr=50.0, weight_decay=0.0, warmup=0, grad_clip=0.0),
    # dropout 0.2: without it the default MLP overfits within 180 s on 2 cores (train 1.58, test 1.98 nats)
    "mlp": dict(
        steps=20000,
        batch_size=512,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=0.01,
        warmup=200,
        grad_clip=1.0,
        dropout=0.2,
    ),
    # n_embd 96 x 2 blocks (screened at 180 s on a quiet core, bench/README.md, quiet-machine runs of 2026-12-01):
    # wider and shallower learns more per second than 64 x 3 blocks. Within 180 s the model already overfits
    # (train 1.75, test 1.93), so it wants strong decoupled weight decay, and a higher lr to go with it:
    # lr 1.5e-3 with weight decay 0.6 was the best of six lr/decay pairs on val (runs of 2026-12-02)
    "transformer": dict(
        steps=10000,
        batch_size=64,
        optimizer="adamw",
        lr=1.5e-3,
        weight_decay=0.6,
        warmup=100,
        grad_clip=1.0,
        n_embd=96,
        n_layer=2,
    ),
}
# Long time budgets (>= LONG_BUDGET_S seconds): the 180 s transformer defaults overfit over that many
# steps (bench/README.md: 20 min without dropout 1.90+, with dropout 0.1 1.8924, dropout 0.1 at batch 32
# 1.8838), so a long --time-budget picks these instead. Flags still override them.
LONG_BUDGET_S = 600
LONG_RUN_DEFAULTS = {"transformer": dict(dropout=0.1, batch_size=32, n_layer=4, n_embd=64, lr=1e-3, weight_decay=0.01)}
# Which model-shape options apply to which model (None = the model's own default).
MODEL_OPTIONS = {
    "bigram": ("smoothing",),
    "nbigram": (),
    "mlp": ("context", "n_embd", "n_hidden", "n_layer", "activation", "batchnorm", "dropout"),
    "transformer": ("block_size", "n_embd", "n_layer", "n_head", "dropout", "tie_weights"),
}


@dataclass
class TrainConfig:
    data: str
    model: str
    out: str
    steps: int | None = None
    time_budget: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    min_lr_ratio: float = 0.0
    optimizer: str | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    warmup: int | None = None
    grad_clip: float | None = None
    dropout: float | None = None
    # model shape
    n_embd: int | None = None
    n_layer: int | None = None
    n_head: int | None = None
    n_hidden: int | None = None
    block_size: int | None = None
    context: int | None = None
    activation: str | None = None
    batchnorm: bool | None = None
    smoothing: float | None = None
    tie_weights: bool | None = None  # transformer: one matrix for the token embedding and the output layer
    # data
    max_len: int = 64
    val_size: int = 0
    batching: str = "mixed"  # transformer: "mixed" (uniform names, real positions only) or "bucket" (one length)
    # job
    seed: int = 3407
    resume: bool = False
    device: str = "auto"
    threads: int | None = None
    compile: bool = False
    precision: str = "auto"  # autocast: auto (bf16 on CUDA), bf16 (any device), fp32 (none)
    eval_every: int = 500
    num_samples: int = 20
    notify: bool = True
    quiet: bool = False
    extra: dict = field(default_factory=dict)

    def resolved(self, key: str):
        v = getattr(self, key)
        if v is not None:
            return v
        if self.time_budget and self.time_budget >= LONG_BUDGET_S and key in LONG_RUN_DEFAULTS.get(self.model, {}):
            return LONG_RUN_DEFAULTS[self.model][key]
        return TRAIN_DEFAULTS[self.model].get(key)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharlmError("--device cuda requested but CUDA is not available")
    if name not in ("cpu", "cuda"):
        raise CharlmError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def default_threads(world_size: int = 1) -> int:
    """1 thread per process on small CPUs (on 2 shared cores 1 thread measured 4-13x faster
    than 2 for these tiny models); on bigger machines the cores per process, up to 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    per = max(1, n // max(1, world_size))
    return 1 if per <= 4 else min(per, 8)


class StopFlag:
    """SIGTERM/SIGINT set a flag that the loop checks at each step boundary."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: give up immediately
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(
            f"charlm: received {self.signal_name}, saving a checkpoint and stopping",
            file=sys.stderr,
            flush=True,
        )

    def install(self):
        if hasattr(signal, "SIGTERM") and _in_main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def lr_at(cfg: TrainConfig, step: int, elapsed: float, total_steps: int | None) -> float:
    """Linear warmup over `warmup` steps, then cosine decay from lr to lr*min_lr_ratio at the
    end of the run: the end is --steps, or --time-budget seconds of elapsed time."""
    base = cfg.resolved("lr")
    warmup = cfg.resolved("warmup") or 0
    if step < warmup:
        return base * (step + 1) / warmup
    if cfg.time_budget:  # noqa: SIM108 -- fraction of the time budget used so far
        progress = elapsed / cfg.time_budget
    else:  # fraction of the post-warmup steps done
        progress = (step - warmup) / max(1, total_steps - warmup)
    progress = min(max(progress, 0.0), 1.0)
    floor = base * cfg.min_lr_ratio
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    name = cfg.resolved("optimizer")
    lr = cfg.resolved("lr")
    wd = cfg.resolved("weight_decay") or 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if name == "adamw":
        # decay matrices (weights, embeddings) but not biases and norm gains
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
        # the fused kernel does the whole update in one pass (several times faster for these small models)
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-8, fused=True)
    raise CharlmError(f"--optimizer must be sgd, momentum or adamw, got {name!r}")


class Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(msg, file=sys.stderr, flush=True)


def _model_kwargs(cfg: TrainConfig, names: list[str], say) -> dict:
    kwargs = {}
    for key in MODEL_OPTIONS[cfg.model]:
        v = cfg.resolved(key)  # the flag, else the model's training default (e.g. mlp dropout)
        if v is not None:
            kwargs[key] = v
    if cfg.model == "transformer":
        n_embd, n_head = kwargs.get("n_embd", 64), kwargs.get("n_head", 4)
        if n_embd % n_head:
            raise CharlmError(f"--n-embd {n_embd} is not divisible by --n-head {n_head}")
    if cfg.dropout is not None and not 0 <= cfg.dropout < 1:
        raise CharlmError(f"--dropout must be in [0, 1), got {cfg.dropout}")
    longest = max(len(w) for w in names)
    if cfg.model == "transformer" and "block_size" not in kwargs:
        kwargs["block_size"] = longest + 1  # makemore: max_word_length + 1
    elif cfg.model == "transformer" and kwargs["block_size"] < longest + 1:
        raise CharlmError(
            f"--block-size {kwargs['block_size']} is too small for the longest name ({longest} chars) in "
            f"{cfg.data}: use --block-size {longest + 1} or skip long names with --max-len {kwargs['block_size'] - 1}"
        )
    ignored = [
        k
        for k in (
            "n_embd",
            "n_layer",
            "n_head",
            "n_hidden",
            "block_size",
            "context",
            "activation",
            "batchnorm",
            "smoothing",
            "dropout",
            "tie_weights",
        )
        if getattr(cfg, k) is not None and k not in MODEL_OPTIONS[cfg.model]
    ]
    if ignored:
        say(
            f"charlm: note: options {', '.join('--' + k.replace('_', '-') for k in ignored)} "
            f"do not apply to model {cfg.model} and are ignored"
        )
    return kwargs


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def train(cfg: TrainConfig) -> dict:
    """Run one training job. Returns the report dict (also written to OUT/report.json)."""
    if cfg.model not in TRAIN_DEFAULTS:
        raise CharlmError(f"--model must be one of {sorted(TRAIN_DEFAULTS)}, got {cfg.model!r}")
    if cfg.steps is not None and cfg.steps < 0:
        raise CharlmError("--steps must be >= 0")
    if cfg.time_budget is not None and cfg.time_budget <= 0:
        raise CharlmError("--time-budget must be > 0 seconds")
    if cfg.eval_every < 1:
        raise CharlmError("--eval-every must be >= 1")
    if cfg.resolved("batch_size") is not None and cfg.resolved("batch_size") < 1:
        raise CharlmError("--batch-size must be >= 1")
    t_job = time.time()
    device = resolve_device(cfg.device)
    info = distributed.init(device.type)
    try:
        return _train(cfg, device, info, t_job)
    finally:
        distributed.shutdown(info)


def autocast_for(device: torch.device, precision: str):
    """The autocast context of the forward passes: bf16 on CUDA by default (`auto`), bf16 on
    any device with `bf16`, none with `fp32`."""
    if precision not in ("auto", "bf16", "fp32"):
        raise CharlmError(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Job:
    """What stays fixed during a run: the config, where it runs, the data and the outputs."""

    cfg: TrainConfig
    device: torch.device
    info: distributed.DistInfo
    threads: int
    say: Progress
    stop: StopFlag
    t_job: float
    paths: dict
    vocab: Vocab
    train_ds: object
    test_ds: object
    val_ds: object
    metrics: MetricsLog
    autocast: object
    base_record: dict
    total_steps: int | None = None  # None: the run ends with --time-budget
    t_cpu: float = field(default_factory=time.process_time)  # CPU time at the start (the machine may be shared)


@dataclass
class TrainState:
    """What changes during training: all of it (except the last four fields) goes into a checkpoint."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None
    sampler: torch.Generator | None  # the data order (its state is checkpointed with torch/numpy/python's)
    step: int = 0
    elapsed: float = 0.0  # seconds since the loop started, continued across a resume
    train_time: float = 0.0  # seconds inside training steps
    tokens_total: int = 0
    best: float = float("inf")  # best selection loss (val, else test)
    acc: dict = field(default_factory=lambda: {"loss": 0.0, "tokens": 0})  # since the last evaluation
    lr: float = 0.0
    local_tokens: int = 0  # this rank's share (DDP summary)
    last_local_loss: float = float("nan")
    peer_stop: bool = False  # DDP: a rank was asked to stop
    peer_elapsed: float | None = None  # DDP: rank 0's clock, so every rank ends at the same step

    def to_checkpoint(self, cfg: TrainConfig, vocab: Vocab, rng_states: list) -> dict:
        return {
            "format": 1,
            "model_kind": cfg.model,
            "model_config": self.model.config(),
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "vocab": vocab.to_list(),
            "optimizer_state": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "best_loss": self.best,
            "acc": dict(self.acc),
            "tokens_total": self.tokens_total,
            "train_time": self.train_time,
            "rng": rng_states,
            "train_config": asdict(cfg),
        }

    def restore(self, ckpt: dict, job: Job) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        self.step, self.elapsed, self.best = ckpt["step"], ckpt["elapsed"], ckpt["best_loss"]
        self.acc = dict(ckpt["acc"])
        self.tokens_total, self.train_time = ckpt["tokens_total"], ckpt["train_time"]
        states, rank, world = ckpt["rng"], job.info.rank, job.info.world_size
        if len(states) == world:
            checkpoint.set_rng_state(states[rank], self.sampler)
        else:
            job.say(
                f"charlm: note: checkpoint was written by {len(states)} processes, now {world}: data order reseeded"
            )
            self.sampler.manual_seed(job.cfg.seed * 1000 + rank + self.step)


def _train(cfg: TrainConfig, device: torch.device, info, t_job: float) -> dict:
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    threads = cfg.threads if cfg.threads else default_threads(info.world_size)
    torch.set_num_threads(threads)
    say = Progress(info.is_main and not cfg.quiet)
    stop = StopFlag().install()
    try:
        return _run(cfg, device, info, threads, say, stop, t_job)
    finally:
        stop.restore()


def _run(cfg, device, info, threads, say, stop, t_job) -> dict:
    job, model, ckpt = setup(cfg, device, info, threads, say, stop, t_job)
    if not model.trainable:
        return _fit_count_model(job, model)
    job.total_steps = cfg.resolved("steps") if cfg.time_budget is None or cfg.steps is not None else None
    if cfg.time_budget is None and not job.total_steps:
        raise CharlmError("--steps must be >= 1 for a trained model (or use --time-budget)")
    state = TrainState(model, make_optimizer(cfg, model), torch.Generator().manual_seed(cfg.seed * 1000 + info.rank))
    _seed_all(cfg.seed + 7919 * (info.rank + 1))  # dropout streams differ per rank
    if ckpt is not None:
        state.restore(ckpt, job)
        job.metrics.truncate_after(state.step)
    status = fit(job, state, resumed=ckpt is not None)
    if status != "completed":
        save_checkpoint(job, state, best=False)  # so a resumed run logs exactly like an uninterrupted one
    job.metrics.close()
    if info.enabled:  # every rank reports its own share (only rank 0 writes files)
        print(
            f"charlm: rank {info.rank}/{info.world_size}: trained {state.step} steps, "
            f"{state.local_tokens:,} local tokens, last local batch loss {state.last_local_loss:.4f}",
            file=sys.stderr,
            flush=True,
        )
    report = write_report(job, state, status) if info.is_main else {}
    distributed.barrier(info)
    return report


def setup(cfg, device, info, threads, say, stop, t_job) -> tuple[Job, torch.nn.Module, dict | None]:
    """Data, vocabulary, model (from the checkpoint with --resume) and the job's outputs."""
    out = cfg.out
    if info.is_main:
        os.makedirs(out, exist_ok=True)
    files = {"metrics": "metrics.jsonl", "plot": "loss.png", "samples": "samples.txt", "report": "report.json"}
    paths = {k: os.path.join(out, v) for k, v in files.items()}
    paths["checkpoint_last"] = os.path.join(out, checkpoint.LAST)
    paths["checkpoint_best"] = os.path.join(out, checkpoint.BEST)

    names, stats = read_names(cfg.data, cfg.max_len)
    say(f"charlm: data: {stats.summary()}")
    split = split_names(names, cfg.val_size)
    vocab = Vocab.from_names(names)
    ckpt = None
    if cfg.resume and os.path.exists(paths["checkpoint_last"]):
        ckpt = checkpoint.load(paths["checkpoint_last"])
        if ckpt["model_kind"] != cfg.model:
            raise CharlmError(f"--resume: checkpoint in {out} is a {ckpt['model_kind']} model, not {cfg.model}")
        if ckpt["vocab"] != vocab.to_list():
            raise CharlmError(f"--resume: the vocabulary of {cfg.data} differs from the checkpoint's")
        say(f"charlm: resuming from {paths['checkpoint_last']} at step {ckpt['step']}")
    elif cfg.resume:
        say(f"charlm: --resume: no checkpoint in {out} yet, starting from scratch")
    model_kwargs = ckpt["model_config"] if ckpt is not None else _model_kwargs(cfg, names, say)
    autocast = autocast_for(device, cfg.precision)

    _seed_all(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, vocab.size, **model_kwargs)
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
    model.to(device)
    n_params = count_params(model)
    train_ds, test_ds = build_dataset(model, split.train, vocab), build_dataset(model, split.test, vocab)
    val_ds = build_dataset(model, split.val, vocab) if split.val else None
    say(
        f"charlm: model {cfg.model} ({n_params:,} params) | vocab {vocab.size} | "
        f"train {len(split.train)} names ({train_ds.n_tokens:,} tokens), val {len(split.val)}, "
        f"test {len(split.test)} | device {device} | threads {threads}"
        + (f" | world {info.world_size}" if info.enabled else "")
    )
    data = {**stats.to_dict(), "train_names": len(split.train), "val_names": len(split.val)}
    base_record = {
        "model": cfg.model,
        "params": n_params,
        "device": str(device),
        "threads": threads,
        "world_size": info.world_size,
        "model_config": model.config(),
        "vocab": vocab.to_list(),
        "data": {**data, "test_names": len(split.test)},
    }
    metrics = MetricsLog(paths["metrics"], enabled=info.is_main)
    job = Job(cfg, device, info, threads, say, stop, t_job, paths, vocab, train_ds, test_ds, val_ds, metrics, autocast,
              base_record)  # fmt: skip
    return job, model, ckpt


def fit(job: Job, state: TrainState, resumed: bool) -> str:
    """The training loop. Returns "completed", or "interrupted" after SIGTERM/SIGINT."""
    cfg, info, model = job.cfg, job.info, state.model
    packed = isinstance(job.train_ds, SeqBuckets) and cfg.batching == "mixed"
    draw = job.train_ds.sample_mixed if packed else job.train_ds.sample
    batch = cfg.resolved("batch_size")
    if isinstance(job.train_ds, SeqBuckets):  # names per step -> a token budget
        batch = max(1, round(batch * job.train_ds.mean_seq_len()))
    fwd = torch.compile(model, dynamic=True) if cfg.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    grad_clip = cfg.resolved("grad_clip") or 0.0
    t_loop = time.perf_counter() - state.elapsed  # elapsed counts from here, continuing a resumed run
    window = [0, 0.0]  # tokens and step seconds since the last evaluation (for tokens/s)
    state.lr = lr_at(cfg, state.step, state.elapsed, job.total_steps)
    if not resumed:
        evaluate(job, state, None)
    model.train()
    while True:
        if job.total_steps is not None and state.step >= job.total_steps:
            break
        if cfg.time_budget is not None and state.elapsed >= cfg.time_budget:
            break
        if state.peer_stop if info.enabled else job.stop.requested:
            return "interrupted"
        state.lr = lr_at(cfg, state.step, state.elapsed, job.total_steps)
        for group in state.optimizer.param_groups:
            group["lr"] = state.lr
        t0 = time.perf_counter()
        x, y = draw(batch, state.sampler)
        x, y = x.to(job.device, non_blocking=True), y.to(job.device, non_blocking=True)
        valid = None
        if packed:  # the model computes the real positions only (see models/transformer.py)
            valid = y != IGNORE_INDEX
            y = y[valid]
        with job.autocast:
            logits = fwd(x) if valid is None else fwd(x, valid)
        loss, n_tokens = backward(job, state, loss_sum(logits, y), y.numel(), params, t_loop)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        state.step += 1
        state.train_time += dt
        state.tokens_total += n_tokens
        state.acc["loss"] += loss
        state.acc["tokens"] += n_tokens
        window[0] += n_tokens
        window[1] += dt
        state.elapsed = state.peer_elapsed if info.enabled else time.perf_counter() - t_loop
        if state.step % cfg.eval_every == 0:
            evaluate(job, state, window[0] / window[1] if window[1] else None)
            window = [0, 0.0]
            state.elapsed = state.peer_elapsed if info.enabled else time.perf_counter() - t_loop
    if state.acc["tokens"]:  # steps since the last evaluation: evaluate, log and save them
        evaluate(job, state, window[0] / window[1] if window[1] else None)
    return "completed"


def backward(job: Job, state: TrainState, lsum: torch.Tensor, n_local: int, params, t_loop: float):
    """Gradients of the mean loss per token. With DDP the loss sums, token counts, the stop
    flag and rank 0's clock are summed across ranks with the gradients, and the gradients are
    divided by the global token count. Returns (loss sum, tokens) over all ranks."""
    info = job.info
    state.local_tokens += n_local
    state.last_local_loss = lsum.item() / max(1, n_local)
    if not info.enabled:
        (lsum / n_local).backward()
        return lsum.item(), n_local
    lsum.backward()
    now = time.perf_counter() - t_loop if info.is_main else 0.0
    extra = torch.tensor([lsum.item(), float(n_local), float(job.stop.requested), now], device=job.device)
    extra = distributed.sync_gradients(params, extra, info).cpu()
    n_global = extra[1].item()
    for p in params:
        if p.grad is not None:
            p.grad.div_(n_global)
    state.peer_stop, state.peer_elapsed = extra[2].item() > 0, extra[3].item()
    return extra[0].item(), int(n_global)


def evaluate(job: Job, state: TrainState, tokens_per_s: float | None) -> None:
    """Test (and val) loss on rank 0, a metrics line, a progress line, and a checkpoint
    (also `ckpt_best.pt` when the selection loss improved)."""
    info, model = job.info, state.model
    test_loss = mean_loss(model, job.test_ds, job.device, job.autocast) if info.is_main else None
    val_loss = mean_loss(model, job.val_ds, job.device, job.autocast) if info.is_main else None
    train_loss = state.acc["loss"] / state.acc["tokens"] if state.acc["tokens"] else None
    rec = {"step": state.step, "train_loss": train_loss, "test_loss": test_loss}
    if job.val_ds is not None:
        rec["val_loss"] = val_loss
    rec.update({"lr": state.lr, "tokens_per_s": tokens_per_s, "tokens": state.tokens_total})
    job.metrics.write({**rec, "elapsed": round(state.elapsed, 3)})
    sel = val_loss if job.val_ds is not None else test_loss
    is_best = bool(info.is_main and sel is not None and sel < state.best)
    if is_best:
        state.best = sel
    state.acc = {"loss": 0.0, "tokens": 0}
    save_checkpoint(job, state, best=bool(distributed.broadcast_object(is_best, info)))
    if info.is_main:
        tl = "n/a" if train_loss is None else f"{train_loss:.4f}"
        vl = "" if val_loss is None else f" | val {val_loss:.4f}"
        tps = "" if tokens_per_s is None else f" | {tokens_per_s:,.0f} tok/s"
        total = f"/{job.total_steps}" if job.total_steps else ""
        job.say(
            f"step {state.step}{total} | train {tl}{vl} | test {test_loss:.4f} | lr {state.lr:.3g}{tps} | "
            f"{state.elapsed:.1f}s"
        )


def save_checkpoint(job: Job, state: TrainState, best: bool) -> None:
    """`ckpt_last.pt` (and `ckpt_best.pt`), with every rank's RNG states; written by rank 0."""
    rng_states = distributed.gather_objects(checkpoint.rng_state(state.sampler), job.info)
    if not job.info.is_main:
        return
    ckpt = state.to_checkpoint(job.cfg, job.vocab, rng_states)
    checkpoint.atomic_save(ckpt, job.paths["checkpoint_last"])
    if best:
        checkpoint.atomic_save(ckpt, job.paths["checkpoint_best"])


def _fit_count_model(job: Job, model) -> dict:
    """The count bigram: one pass of counting instead of a training loop."""
    t0 = time.perf_counter()
    model.fit(job.train_ds.X, job.train_ds.Y)
    fit_time = time.perf_counter() - t0
    job.device, job.autocast = torch.device("cpu"), contextlib.nullcontext()
    test_loss = mean_loss(model, job.test_ds, job.device)
    train_loss = mean_loss(model, job.train_ds, job.device)
    rec = {"step": 0, "train_loss": train_loss, "test_loss": test_loss}
    if job.val_ds is not None:
        rec["val_loss"] = mean_loss(model, job.val_ds, job.device)
    n = job.train_ds.n_tokens
    rec.update({"lr": 0.0, "tokens_per_s": n / fit_time if fit_time else None, "tokens": n, "elapsed": fit_time})
    if not job.info.is_main:
        return {}
    job.metrics.truncate_after(-1)
    job.metrics.write(rec)
    job.metrics.close()
    state = {
        "format": 1,
        "model_kind": job.cfg.model,
        "model_config": model.config(),
        "model_state": model.state_dict(),
        "vocab": job.vocab.to_list(),
        "step": 0,
        "train_config": asdict(job.cfg),
    }
    checkpoint.atomic_save(state, job.paths["checkpoint_last"])
    checkpoint.atomic_save(state, job.paths["checkpoint_best"])
    job.say(f"charlm: count bigram (add-{model.smoothing:g}) | train {train_loss:.4f} | test {test_loss:.4f} nats")
    done = TrainState(model, None, None, tokens_total=n, train_time=fit_time, best=test_loss)
    return write_report(job, done, "completed")


def write_report(job: Job, state: TrainState, status: str) -> dict:
    """loss.png, samples.txt and report.json (final losses of the model as it is now)."""
    cfg, paths, model, device = job.cfg, job.paths, state.model, job.device
    records = read_jsonl(paths["metrics"]) if os.path.exists(paths["metrics"]) else []
    series = {}
    for key in ("train", "test", "val"):
        points = [(r["step"], r[f"{key}_loss"]) for r in records if r.get(f"{key}_loss") is not None]
        if points or key != "val":
            series[key] = points
    plot_lines(paths["plot"], series, ylabel="loss (nats)")

    samples = sample_names(model, job.vocab, cfg.num_samples, seed=cfg.seed, device=device)
    _atomic_write(paths["samples"], "\n".join(samples) + ("\n" if samples else ""))

    train_ds = job.train_ds if status == "completed" else None  # an interrupted job ends quickly
    report = {
        "status": status,
        **job.base_record,
        "steps": state.step,
        "train_loss": loss_summary(mean_loss(model, train_ds, device, job.autocast) if train_ds else None),
        "test_loss": loss_summary(mean_loss(model, job.test_ds, device, job.autocast)),
        "val_loss": loss_summary(mean_loss(model, job.val_ds, device, job.autocast)) if job.val_ds else None,
        "best_checkpoint_selected_on": "val" if job.val_ds is not None else "test",
        "best_selection_loss": finite_or_none(state.best),
        "tokens_trained": state.tokens_total,
        "tokens_per_s": state.tokens_total / state.train_time if state.train_time > 0 else None,
        "train_time_s": state.train_time,
        "wall_time_s": time.time() - job.t_job,
        "cpu_time_s": time.process_time() - job.t_cpu,  # all threads; far below wall time on a busy machine
        "paths": {k: os.path.abspath(v) for k, v in paths.items()},
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
    }
    if job.stop.signal_name:
        report["signal"] = job.stop.signal_name
    _atomic_write(paths["report"], json.dumps(report, indent=2, default=str) + "\n")
    return report


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
