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
    "transformer": dict(
        steps=10000, batch_size=64, optimizer="adamw", lr=1e-3, weight_decay=0.01, warmup=100, grad_clip=1.0
    ),
}
# Which model-shape options apply to which model (None = the model's own default).
MODEL_OPTIONS = {
    "bigram": ("smoothing",),
    "nbigram": (),
    "mlp": ("context", "n_embd", "n_hidden", "n_layer", "activation", "batchnorm", "dropout"),
    "transformer": ("block_size", "n_embd", "n_layer", "n_head", "dropout"),
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
    eval_every: int = 500
    num_samples: int = 20
    notify: bool = True
    quiet: bool = False
    extra: dict = field(default_factory=dict)

    def resolved(self, key: str):
        v = getattr(self, key)
        return TRAIN_DEFAULTS[self.model].get(key) if v is None else v


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
    out = cfg.out
    if info.is_main:
        os.makedirs(out, exist_ok=True)
    paths = {
        "metrics": os.path.join(out, "metrics.jsonl"),
        "plot": os.path.join(out, "loss.png"),
        "samples": os.path.join(out, "samples.txt"),
        "report": os.path.join(out, "report.json"),
        "checkpoint_last": os.path.join(out, checkpoint.LAST),
        "checkpoint_best": os.path.join(out, checkpoint.BEST),
    }

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
        model_kwargs = ckpt["model_config"]
        say(f"charlm: resuming from {paths['checkpoint_last']} at step {ckpt['step']}")
    elif cfg.resume:
        say(f"charlm: --resume: no checkpoint in {out} yet, starting from scratch")
    if ckpt is None:
        model_kwargs = _model_kwargs(cfg, names, say)

    _seed_all(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, vocab.size, **model_kwargs)
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
    model.to(device)
    n_params = count_params(model)

    train_ds = build_dataset(model, split.train, vocab)
    test_ds = build_dataset(model, split.test, vocab)
    val_ds = build_dataset(model, split.val, vocab) if split.val else None
    select_on = "val" if val_ds is not None else "test"
    say(
        f"charlm: model {cfg.model} ({n_params:,} params) | vocab {vocab.size} | "
        f"train {len(split.train)} names ({train_ds.n_tokens:,} tokens), val {len(split.val)}, "
        f"test {len(split.test)} | device {device} | threads {threads}"
        + (f" | world {info.world_size}" if info.enabled else "")
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    metrics = MetricsLog(paths["metrics"], enabled=info.is_main)

    base_record = {
        "model": cfg.model,
        "params": n_params,
        "device": str(device),
        "threads": threads,
        "world_size": info.world_size,
        "model_config": model.config(),
        "vocab": vocab.to_list(),
        "data": {
            **stats.to_dict(),
            "train_names": len(split.train),
            "val_names": len(split.val),
            "test_names": len(split.test),
        },
    }

    if not model.trainable:
        return _finish_count_model(
            cfg, model, vocab, train_ds, test_ds, val_ds, paths, metrics, base_record, info, say, t_job
        )

    # --- training state -------------------------------------------------------------
    total_steps = cfg.resolved("steps") if cfg.time_budget is None or cfg.steps is not None else None
    if cfg.time_budget is None and not total_steps:
        raise CharlmError("--steps must be >= 1 for a trained model (or use --time-budget)")
    optimizer = make_optimizer(cfg, model)
    sampler = torch.Generator().manual_seed(cfg.seed * 1000 + info.rank)
    _seed_all(cfg.seed + 7919 * (info.rank + 1))  # dropout streams differ per rank
    step, elapsed, best = 0, 0.0, float("inf")
    acc = {"loss": 0.0, "tokens": 0}
    tokens_total = 0
    train_time = 0.0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer_state"])
        step, elapsed, best = ckpt["step"], ckpt["elapsed"], ckpt["best_loss"]
        acc = dict(ckpt["acc"])
        tokens_total, train_time = ckpt["tokens_total"], ckpt["train_time"]
        states = ckpt["rng"]
        if len(states) == info.world_size:
            checkpoint.set_rng_state(states[info.rank], sampler)
        else:
            say(
                f"charlm: note: checkpoint was written by {len(states)} processes, "
                f"now {info.world_size}: data order reseeded"
            )
            sampler.manual_seed(cfg.seed * 1000 + info.rank + step)
        metrics.truncate_after(step)

    if isinstance(train_ds, SeqBuckets):
        batch = max(1, round(cfg.resolved("batch_size") * train_ds.mean_seq_len()))
    else:
        batch = cfg.resolved("batch_size")
    padded = isinstance(train_ds, SeqBuckets) and cfg.batching == "mixed"
    draw = train_ds.sample_mixed if padded else train_ds.sample
    grad_clip = cfg.resolved("grad_clip") or 0.0
    fwd = torch.compile(model) if cfg.compile else model
    params = [p for p in model.parameters() if p.requires_grad]

    def save(kind_best: bool) -> None:
        states = distributed.gather_objects(checkpoint.rng_state(sampler), info)
        if not info.is_main:
            return
        state = {
            "format": 1,
            "model_kind": cfg.model,
            "model_config": model.config(),
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "vocab": vocab.to_list(),
            "optimizer_state": optimizer.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "best_loss": best,
            "acc": dict(acc),
            "tokens_total": tokens_total,
            "train_time": train_time,
            "rng": states,
            "train_config": asdict(cfg),
        }
        checkpoint.atomic_save(state, paths["checkpoint_last"])
        if kind_best:
            checkpoint.atomic_save(state, paths["checkpoint_best"])

    def evaluate_and_log(lr: float, interval_tps: float | None) -> None:
        nonlocal best, acc
        test_loss = mean_loss(model, test_ds, device, autocast) if info.is_main else None
        val_loss = mean_loss(model, val_ds, device, autocast) if info.is_main else None
        train_loss = acc["loss"] / acc["tokens"] if acc["tokens"] else None
        rec = {"step": step, "train_loss": train_loss, "test_loss": test_loss}
        if val_ds is not None:
            rec["val_loss"] = val_loss
        rec.update({"lr": lr, "tokens_per_s": interval_tps, "tokens": tokens_total, "elapsed": round(elapsed, 3)})
        metrics.write(rec)
        sel = val_loss if val_ds is not None else test_loss
        is_best = bool(info.is_main and sel is not None and sel < best)
        if is_best:
            best = sel
        is_best = bool(distributed.broadcast_object(is_best, info))
        acc = {"loss": 0.0, "tokens": 0}
        save(is_best)
        tl = "n/a" if train_loss is None else f"{train_loss:.4f}"
        vl = "" if val_loss is None else f" | val {val_loss:.4f}"
        tps = "" if interval_tps is None else f" | {interval_tps:,.0f} tok/s"
        total = f"/{total_steps}" if total_steps else ""
        if info.is_main:
            say(f"step {step}{total} | train {tl}{vl} | test {test_loss:.4f} | lr {lr:.3g}{tps} | {elapsed:.1f}s")

    t_loop = time.perf_counter() - elapsed  # elapsed counts from here, continuing a resumed run
    lr = lr_at(cfg, step, elapsed, total_steps)
    if ckpt is None:
        evaluate_and_log(lr, None)
    status = "completed"
    interval_tokens, interval_time = 0, 0.0
    ctl = torch.zeros(2)  # [stop requested by any rank, elapsed seconds on rank 0]
    local_tokens, last_local_loss = 0, float("nan")
    model.train()
    while True:
        if total_steps is not None and step >= total_steps:
            break
        if cfg.time_budget is not None and elapsed >= cfg.time_budget:
            break
        if ctl[0].item() > 0 if info.enabled else stop.requested:
            status = "interrupted"
            break
        lr = lr_at(cfg, step, elapsed, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        x, y = draw(batch, sampler)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if padded:  # the model computes the real positions only (see models/transformer.py)
            valid = y != IGNORE_INDEX
            y = y[valid]
            with autocast:
                logits = fwd(x, valid)
        else:
            with autocast:
                logits = fwd(x)
        n_local = y.numel()
        lsum = loss_sum(logits, y)
        local_tokens += n_local
        if info.enabled:
            lsum.backward()
            now = time.perf_counter() - t_loop
            stats_t = torch.tensor(
                [lsum.item(), float(n_local), float(stop.requested), now if info.is_main else 0.0],
                device=device,
            )
            stats_t = distributed.sync_gradients(params, stats_t, info)
            n_global = stats_t[1].item()
            for p in params:
                if p.grad is not None:
                    p.grad.div_(n_global)
            step_loss_sum = stats_t[0].item()
            ctl = stats_t[2:].cpu()
        else:
            n_global = n_local
            (lsum / n_global).backward()
            step_loss_sum = lsum.item()
        last_local_loss = lsum.item() / max(1, n_local)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        dt = time.perf_counter() - t0
        train_time += dt
        interval_time += dt
        interval_tokens += int(n_global)
        tokens_total += int(n_global)
        acc["loss"] += step_loss_sum
        acc["tokens"] += int(n_global)
        elapsed = ctl[1].item() if info.enabled else time.perf_counter() - t_loop
        if step % cfg.eval_every == 0:
            evaluate_and_log(lr, interval_tokens / interval_time if interval_time else None)
            interval_tokens, interval_time = 0, 0.0
            elapsed = ctl[1].item() if info.enabled else time.perf_counter() - t_loop

    # --- final evaluation, checkpoint, outputs ---------------------------------------
    if status == "completed":
        if acc["tokens"]:  # steps since the last evaluation: evaluate, log and save them
            evaluate_and_log(lr, interval_tokens / interval_time if interval_time else None)
    else:
        save(False)  # preempted: checkpoint only, so a resumed run logs exactly like an uninterrupted one
    metrics.close()
    if info.enabled:  # every rank reports its own share (only rank 0 writes files)
        print(
            f"charlm: rank {info.rank}/{info.world_size}: trained {step} steps, "
            f"{local_tokens:,} local tokens, last local batch loss {last_local_loss:.4f}",
            file=sys.stderr,
            flush=True,
        )
    if not info.is_main:
        distributed.barrier(info)
        return {}
    report = _write_outputs(
        cfg,
        model,
        vocab,
        train_ds if status == "completed" else None,
        test_ds,
        val_ds,
        paths,
        base_record,
        device,
        autocast,
        step=step,
        status=status,
        tokens_total=tokens_total,
        train_time=train_time,
        t_job=t_job,
        select_on=select_on,
        best=best,
        signal_name=stop.signal_name,
    )
    distributed.barrier(info)
    return report


def _finish_count_model(cfg, model, vocab, train_ds, test_ds, val_ds, paths, metrics, base_record, info, say, t_job):
    t0 = time.perf_counter()
    model.fit(train_ds.X, train_ds.Y)
    fit_time = time.perf_counter() - t0
    device = torch.device("cpu")
    test_loss = mean_loss(model, test_ds, device)
    train_loss = mean_loss(model, train_ds, device)
    rec = {"step": 0, "train_loss": train_loss, "test_loss": test_loss}
    if val_ds is not None:
        rec["val_loss"] = mean_loss(model, val_ds, device)
    rec.update(
        {
            "lr": 0.0,
            "tokens_per_s": train_ds.n_tokens / fit_time if fit_time else None,
            "tokens": train_ds.n_tokens,
            "elapsed": fit_time,
        }
    )
    if info.is_main:
        metrics.truncate_after(-1)
        metrics.write(rec)
        metrics.close()
        state = {
            "format": 1,
            "model_kind": cfg.model,
            "model_config": model.config(),
            "model_state": model.state_dict(),
            "vocab": vocab.to_list(),
            "step": 0,
            "train_config": asdict(cfg),
        }
        checkpoint.atomic_save(state, paths["checkpoint_last"])
        checkpoint.atomic_save(state, paths["checkpoint_best"])
        say(f"charlm: count bigram (add-{model.smoothing:g}) | train {train_loss:.4f} | test {test_loss:.4f} nats")
    if not info.is_main:
        return {}
    return _write_outputs(
        cfg,
        model,
        vocab,
        train_ds,
        test_ds,
        val_ds,
        paths,
        base_record,
        device,
        contextlib.nullcontext(),
        step=0,
        status="completed",
        tokens_total=train_ds.n_tokens,
        train_time=fit_time,
        t_job=t_job,
        select_on="val" if val_ds is not None else "test",
        best=test_loss,
        signal_name=None,
    )


def _write_outputs(
    cfg,
    model,
    vocab,
    train_ds,
    test_ds,
    val_ds,
    paths,
    base_record,
    device,
    autocast,
    *,
    step,
    status,
    tokens_total,
    train_time,
    t_job,
    select_on,
    best,
    signal_name,
) -> dict:
    records = read_jsonl(paths["metrics"]) if os.path.exists(paths["metrics"]) else []
    series = {
        "train": [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None],
        "test": [(r["step"], r["test_loss"]) for r in records if r.get("test_loss") is not None],
    }
    if any(r.get("val_loss") is not None for r in records):
        series["val"] = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    plot_lines(paths["plot"], series, ylabel="loss (nats)")

    samples = sample_names(model, vocab, cfg.num_samples, seed=cfg.seed, device=device)
    tmp = paths["samples"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(samples) + ("\n" if samples else ""))
    os.replace(tmp, paths["samples"])

    test_loss = mean_loss(model, test_ds, device, autocast)
    val_loss = mean_loss(model, val_ds, device, autocast)
    train_loss = mean_loss(model, train_ds, device, autocast) if train_ds is not None else None
    report = {
        "status": status,
        **base_record,
        "steps": step,
        "train_loss": loss_summary(train_loss),
        "test_loss": loss_summary(test_loss),
        "val_loss": loss_summary(val_loss) if val_ds is not None else None,
        "best_checkpoint_selected_on": select_on,
        "best_selection_loss": finite_or_none(best),
        "tokens_trained": tokens_total,
        "tokens_per_s": tokens_total / train_time if train_time > 0 else None,
        "train_time_s": train_time,
        "wall_time_s": time.time() - t_job,
        "paths": {k: os.path.abspath(v) for k, v in paths.items()},
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
    }
    if signal_name:
        report["signal"] = signal_name
    tmp = paths["report"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, paths["report"])
    return report
