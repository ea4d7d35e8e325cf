"""Data parallelism: exact global-mean gradients across ranks, and a real 2-process torchrun job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from charlm import distributed
from charlm.evaluate import loss_sum
from charlm.metrics import read_jsonl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, batches, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    info = distributed.init("cpu")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = batches[rank]
    lsum = loss_sum(model(x), y)
    lsum.backward()
    stats = distributed.sync_gradients(list(model.parameters()), torch.tensor([lsum.item(), float(y.numel())]), info)
    for p in model.parameters():
        p.grad.div_(stats[1])
    torch.save({"grads": [p.grad for p in model.parameters()], "stats": stats}, os.path.join(out_dir, f"r{rank}.pt"))
    dist.barrier()
    distributed.shutdown(info)


def test_gradient_is_the_global_token_mean_not_a_mean_of_means(tmp_path):
    g = torch.Generator().manual_seed(1)
    # ranks hold different numbers of tokens (as with length-bucketed batches)
    batches = [
        (torch.randn(3, 4, generator=g), torch.randint(0, 3, (3,), generator=g)),
        (torch.randn(9, 4, generator=g), torch.randint(0, 3, (9,), generator=g)),
    ]
    mp.spawn(_worker, args=(_free_port(), batches, str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    ref = torch.nn.Linear(4, 3)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    loss = torch.nn.functional.cross_entropy(ref(x), y)  # mean over all 12 tokens
    loss.backward()
    for r in (0, 1):
        got = torch.load(tmp_path / f"r{r}.pt")
        assert got["stats"][1].item() == 12
        assert abs(got["stats"][0].item() / 12 - loss.item()) < 1e-5
        for a, b in zip(got["grads"], [p.grad for p in ref.parameters()], strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    # the mean of per-rank means differs, so the test can tell them apart
    m0 = torch.nn.functional.cross_entropy(ref(batches[0][0]), batches[0][1])
    m1 = torch.nn.functional.cross_entropy(ref(batches[1][0]), batches[1][1])
    assert abs((m0 + m1).item() / 2 - loss.item()) > 1e-3


def test_torchrun_two_cpu_processes(tiny_names, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in sys.path if p])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "charlm",
        "train",
        "--data",
        tiny_names,
        "--model",
        "mlp",
        "--out",
        str(out),
        "--steps",
        200,
        "--eval-every",
        100,
        "--batch-size",
        64,
        "--context",
        3,
        "--n-embd",
        8,
        "--n-hidden",
        32,
    ]
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["world_size"] == 2 and rep["status"] == "completed"
    # tokens are summed over both ranks: 200 steps x 64 rows x 2 processes
    assert rep["tokens_trained"] == 200 * 64 * 2
    assert "rank 1/2: trained 200 steps" in r.stderr and "rank 0/2: trained 200 steps" in r.stderr
    recs = read_jsonl(out / "metrics.jsonl")
    assert [x["step"] for x in recs] == [0, 100, 200]
    assert recs[-1]["test_loss"] < recs[0]["test_loss"] - 0.5
    # only rank 0 wrote files: one metrics file, no duplicate lines
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ckpt_best.pt", "ckpt_last.pt", "loss.png", "metrics.jsonl", "report.json", "samples.txt"]
    )
    ck = torch.load(out / "ckpt_last.pt", weights_only=True)
    assert len(ck["rng"]) == 2  # both ranks' sampler states, for an exact resume
