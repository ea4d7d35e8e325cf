"""Training jobs end to end: learning, outputs, determinism, resume, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import struct
import time
import zlib
from pathlib import Path

import pytest
import torch
from charlm import checkpoint
from charlm.errors import CharlmError
from charlm.metrics import read_jsonl
from charlm.train import TrainConfig, train

SMALL_MLP = dict(context=4, n_embd=8, n_hidden=64, n_layer=1)
SMALL_TF = dict(n_embd=32, n_layer=2, n_head=2)
COMPARED = ("step", "train_loss", "test_loss", "val_loss", "lr")


def curve(out) -> list[tuple]:
    return [tuple(r.get(k) for k in COMPARED) for r in read_jsonl(os.path.join(out, "metrics.jsonl"))]


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    # the image data must inflate to exactly one filter byte + RGB per row
    idat, pos = b"", 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    assert len(zlib.decompress(idat)) == h * (1 + 3 * w)
    return w, h


def test_mlp_beats_bigram_floor_on_names(names_path, tmp_path):
    """A short MLP run on the real data beats the exact bigram floor of 2.4497 nats."""
    out = tmp_path / "mlp"
    rep = train(
        TrainConfig(
            data=names_path,
            model="mlp",
            out=str(out),
            time_budget=20,
            eval_every=400,
            quiet=True,
            context=5,
            n_embd=16,
            n_hidden=128,
            n_layer=1,
            batch_size=256,
        )
    )
    assert rep["status"] == "completed"
    assert rep["test_loss"]["nats"] < 2.40, rep["test_loss"]
    recs = read_jsonl(out / "metrics.jsonl")
    assert recs[0]["step"] == 0 and recs[-1]["step"] == rep["steps"]
    assert recs[-1]["test_loss"] < recs[0]["test_loss"] - 0.8
    for key in ("step", "train_loss", "test_loss", "tokens_per_s", "lr"):
        assert key in recs[-1]
    assert rep["tokens_per_s"] > 0 and rep["wall_time_s"] >= rep["train_time_s"] > 15
    assert rep["device"] == "cpu" and rep["threads"] >= 1
    for key in ("metrics", "plot", "samples", "report", "checkpoint_last", "checkpoint_best"):
        assert os.path.exists(rep["paths"][key]), key
    assert png_size(out / "loss.png") == (720, 440)
    samples = (out / "samples.txt").read_text().splitlines()
    assert len(samples) == 20 and all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in samples)


@pytest.mark.parametrize("batching", ["bucket", "mixed"])
def test_transformer_learns_small_data(tiny_names, tmp_path, batching):
    rep = train(
        TrainConfig(
            batching=batching,
            data=tiny_names,
            model="transformer",
            out=str(tmp_path / "t"),
            steps=200,
            eval_every=100,
            batch_size=32,
            quiet=True,
            **SMALL_TF,
        )
    )
    recs = read_jsonl(tmp_path / "t" / "metrics.jsonl")
    assert [r["step"] for r in recs] == [0, 100, 200]
    assert recs[-1]["test_loss"] < recs[0]["test_loss"] - 0.6
    assert rep["model_config"]["block_size"] == max(len(w) for w in Path(tiny_names).read_text().split()) + 1


@pytest.mark.parametrize(
    "model,kw",
    [
        ("mlp", dict(SMALL_MLP, dropout=0.1, batchnorm=True, optimizer="momentum")),
        ("transformer", dict(SMALL_TF, dropout=0.1, batch_size=16)),
        ("nbigram", dict(batch_size=256)),
    ],
)
def test_same_seed_same_curve(tiny_names, tmp_path, model, kw):
    def run(name, seed):
        cfg = TrainConfig(
            data=tiny_names,
            model=model,
            out=str(tmp_path / name),
            steps=120,
            eval_every=40,
            seed=seed,
            quiet=True,
            val_size=100,
            **kw,
        )
        train(cfg)
        return curve(tmp_path / name)

    a, b, c = run("a", 1), run("b", 1), run("c", 2)
    assert a == b
    assert a != c
    assert len(a) == 4 and all(r[3] is not None for r in a)  # val loss logged


def test_lr_schedule_warmup_and_cosine(tmp_path, tiny_names):
    from charlm.train import lr_at

    cfg = TrainConfig(data=tiny_names, model="mlp", out=str(tmp_path), lr=1e-2, warmup=10, min_lr_ratio=0.1)
    lrs = [lr_at(cfg, s, 0.0, 110) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert lrs[10] == pytest.approx(1e-2) and lrs[60] == pytest.approx(0.55e-2)
    assert lrs[110] == pytest.approx(1e-3)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:], strict=False))
    tb = TrainConfig(data=tiny_names, model="mlp", out=str(tmp_path), lr=1e-2, warmup=0, time_budget=100)
    assert lr_at(tb, 5000, 50.0, None) == pytest.approx(0.5e-2) and lr_at(tb, 1, 100.0, None) == 0.0


def _wait_for_step(path, step, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()[1]}")
        if os.path.exists(path):
            recs = read_jsonl(path)
            if recs and recs[-1]["step"] >= step:
                return
        time.sleep(0.05)
    raise AssertionError("training did not reach the step in time")


@pytest.mark.parametrize(
    "model,kw",
    [
        ("mlp", dict(SMALL_MLP, dropout=0.1, batch_size=64)),
        ("transformer", dict(SMALL_TF, dropout=0.1, batch_size=8)),
    ],
)
def test_sigterm_then_resume_is_bit_for_bit(tiny_names, tmp_path, popen_charlm, model, kw):
    """SIGTERM mid-run: exit 0 within seconds, loadable checkpoint; --resume then reproduces the
    uninterrupted run's metrics exactly (losses and LR at every logged step) and its weights."""
    steps = 600 if model == "mlp" else 400
    base = dict(data=tiny_names, model=model, steps=steps, eval_every=50, seed=7, val_size=100, quiet=True, **kw)
    full = tmp_path / "full"
    train(TrainConfig(out=str(full), threads=1, **base))

    part = tmp_path / "part"
    args = ["train", "--out", part, "--threads", 1]
    for k, v in base.items():
        if k != "quiet":
            args += [f"--{k.replace('_', '-')}", v]
    proc = popen_charlm(*args)
    _wait_for_step(part / "metrics.jsonl", 100, proc)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.time() - t0 < 15
    assert "received SIGTERM" in err and "Traceback" not in err
    ck = checkpoint.load(str(part / "ckpt_last.pt"))
    assert 100 <= ck["step"] < steps, "stopped too late to test resuming"
    rep = json.loads((part / "report.json").read_text())
    assert rep["status"] == "interrupted" and rep["steps"] == ck["step"] and rep["signal"] == "SIGTERM"

    rep = train(TrainConfig(out=str(part), threads=1, resume=True, **base))
    assert rep["status"] == "completed" and rep["steps"] == steps
    assert curve(part) == curve(full)
    a = torch.load(full / "ckpt_last.pt", weights_only=True)["model_state"]
    b = torch.load(part / "ckpt_last.pt", weights_only=True)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_checkpoint_starts_fresh_and_completed_run_is_noop(tiny_names, tmp_path):
    out = str(tmp_path / "r")
    cfg = TrainConfig(data=tiny_names, model="nbigram", out=out, steps=30, eval_every=10, resume=True, quiet=True)
    rep1 = train(cfg)
    rep2 = train(cfg)  # resuming a finished run trains no further
    assert rep1["steps"] == rep2["steps"] == 30
    assert [r[0] for r in curve(out)] == [0, 10, 20, 30]


def test_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    checkpoint.atomic_save({"model_kind": "x", "model_state": {}, "v": 1}, str(path))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        checkpoint.atomic_save({"model_kind": "x", "model_state": {}, "v": 2}, str(path))
    monkeypatch.undo()
    assert checkpoint.load(str(path))["v"] == 1  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_model_training_defaults_apply_and_flags_override(tiny_names, tmp_path):
    """The MLP trains with dropout 0.2 unless --dropout says otherwise; the model records it."""
    common = dict(data=tiny_names, model="mlp", steps=2, eval_every=1, quiet=True, notify=False, num_samples=0)
    rep = train(TrainConfig(out=str(tmp_path / "default"), **common, **SMALL_MLP))
    assert rep["model_config"]["dropout"] == 0.2
    rep = train(TrainConfig(out=str(tmp_path / "flag"), dropout=0.0, **common, **SMALL_MLP))
    assert rep["model_config"]["dropout"] == 0.0
    rep = train(TrainConfig(out=str(tmp_path / "tf"), **dict(common, model="transformer"), **SMALL_TF))
    assert rep["model_config"]["dropout"] == 0.0


def test_long_time_budget_picks_the_long_run_recipe(tiny_names, tmp_path):
    """A transformer given 20 minutes trains with dropout 0.1 at batch 32 (the 180 s defaults overfit
    over that many steps); short budgets keep the defaults, and flags still win."""
    common = dict(data=tiny_names, model="transformer", steps=2, eval_every=1, quiet=True, notify=False)
    rep = train(TrainConfig(out=str(tmp_path / "long"), time_budget=1200, **common, **SMALL_TF))
    assert rep["model_config"]["dropout"] == 0.1 and rep["config"]["time_budget"] == 1200
    assert TrainConfig(data="x", model="transformer", out="o", time_budget=1200).resolved("batch_size") == 32
    rep = train(TrainConfig(out=str(tmp_path / "short"), time_budget=180, **common, **SMALL_TF))
    assert rep["model_config"]["dropout"] == 0.0
    assert TrainConfig(data="x", model="transformer", out="o", time_budget=180).resolved("batch_size") == 64
    # the 180 s recipe (96 x 2 blocks, lr 1.5e-3, decay 0.6) is not the long one's (64 x 4 blocks, lr 1e-3, decay 0.01)
    short = TrainConfig(data="x", model="transformer", out="o", time_budget=180)
    long = TrainConfig(data="x", model="transformer", out="o", time_budget=1200)
    assert [short.resolved(k) for k in ("n_embd", "n_layer", "lr", "weight_decay")] == [96, 2, 1.5e-3, 0.6]
    assert [long.resolved(k) for k in ("n_embd", "n_layer", "lr", "weight_decay")] == [64, 4, 1e-3, 0.01]
    rep = train(TrainConfig(out=str(tmp_path / "flag"), time_budget=1200, dropout=0.0, **common, **SMALL_TF))
    assert rep["model_config"]["dropout"] == 0.0
    assert TrainConfig(data="x", model="mlp", out="o", time_budget=1200).resolved("dropout") == 0.2


class _Payload:
    """Unpickling this object calls ``open(path, "w")``: it creates a file (the stand-in for a command)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_whose_pickle_runs_code_is_refused_and_nothing_runs(tmp_path, tiny_names, capsys):
    """A planted checkpoint is data only: loaded with weights_only=True, a pickle that would call
    anything (here open(..., "w")) is refused with a clear error before it runs."""
    from charlm.cli import main

    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    planted = {"format": 1, "model_kind": "mlp", "model_state": {}, "step": 0, "x": _Payload(marker)}
    torch.save(planted, out / checkpoint.LAST)
    assert not marker.exists()
    with pytest.raises(CharlmError, match=r"refusing checkpoint .*ckpt_last.pt: it would call .*open when loaded"):
        checkpoint.load(str(out / checkpoint.LAST))
    assert not marker.exists()
    # the same through `charlm train --resume` (what a requeued Slurm job runs): one line, exit 2
    code = main(["train", "--data", str(tiny_names), "--out", str(out), "--model", "mlp", "--steps", "5",
                 "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "refusing checkpoint" in err and "Traceback" not in err, err
    assert not marker.exists()


def test_rng_states_are_plain_data(tiny_names, tmp_path):
    """Every value in a checkpoint is a tensor, number, string, None, list/tuple or dict, so it
    loads with weights_only=True; RNG states round-trip exactly."""
    import random

    import numpy as np

    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in the legacy state
    state = checkpoint.rng_state(gen)
    path = tmp_path / "c.pt"
    checkpoint.atomic_save({"model_kind": "x", "model_state": {}, "rng": [state]}, str(path))
    expect = (torch.rand(3), np.random.standard_normal(3), random.random(), torch.rand(3, generator=gen))
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    gen.manual_seed(9)
    checkpoint.set_rng_state(checkpoint.load(str(path))["rng"][0], gen)
    got = (torch.rand(3), np.random.standard_normal(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(got[0], expect[0]) and (got[1] == expect[1]).all() and got[2] == expect[2]
    assert torch.equal(got[3], expect[3])
