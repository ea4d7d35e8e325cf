"""The GPU path: bf16 autocast (its code path also runs on CPU), torch.compile and DDP over nccl
on CUDA (skipped cleanly without a GPU), weight tying, and the CUDA image's torch build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from charlm.errors import CharlmError
from charlm.metrics import read_jsonl
from charlm.models import build_model, count_params
from charlm.train import TrainConfig, autocast_for, train

REPO = Path(__file__).resolve().parents[2]
SMALL_TF = dict(n_embd=32, n_layer=2, n_head=2)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
needs_2_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over nccl needs 2 CUDA devices")


def _losses(out) -> list[float]:
    return [r["test_loss"] for r in read_jsonl(os.path.join(out, "metrics.jsonl"))]


def test_bf16_autocast_runs_the_forward_in_bf16_on_cpu():
    model = build_model("transformer", 10, block_size=8, **SMALL_TF)
    x = torch.randint(0, 10, (3, 8))
    with autocast_for(torch.device("cpu"), "bf16"):
        assert model(x).dtype == torch.bfloat16
    with autocast_for(torch.device("cpu"), "auto"):  # auto: bf16 on CUDA only
        assert model(x).dtype == torch.float32
    with autocast_for(torch.device("cpu"), "fp32"):
        assert model(x).dtype == torch.float32


def test_training_with_bf16_autocast_on_cpu(tiny_names, tmp_path):
    """The training loop and the evaluations go through the autocast: bf16 changes the numbers."""
    kw = dict(data=tiny_names, model="transformer", steps=30, eval_every=10, quiet=True, notify=False, **SMALL_TF)
    fp32 = train(TrainConfig(out=str(tmp_path / "fp32"), precision="fp32", **kw))
    bf16 = train(TrainConfig(out=str(tmp_path / "bf16"), precision="bf16", **kw))
    assert bf16["config"]["precision"] == "bf16" and bf16["status"] == "completed"
    losses = _losses(tmp_path / "bf16")
    assert len(losses) == 4 and all(0 < v < 4 for v in losses) and losses[-1] < losses[0]
    assert losses[1:] != _losses(tmp_path / "fp32")[1:]
    assert abs(bf16["test_loss"]["nats"] - fp32["test_loss"]["nats"]) < 0.1


def test_bad_precision_is_a_clear_error(tiny_names, tmp_path, capsys):
    with pytest.raises(CharlmError, match="--precision must be auto, bf16 or fp32, got 'fp16'"):
        train(TrainConfig(data=tiny_names, model="transformer", out=str(tmp_path / "o"), steps=1, precision="fp16"))
    from charlm.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--data", tiny_names, "--model", "mlp", "--out", str(tmp_path / "c"), "--precision", "fp16"])
    assert e.value.code == 2 and "--precision" in capsys.readouterr().err


def test_tied_weights_share_one_matrix_and_survive_a_checkpoint(tiny_names, tmp_path, capsys):
    untied = build_model("transformer", 27, block_size=16, **SMALL_TF)
    tied = build_model("transformer", 27, block_size=16, tie_weights=True, **SMALL_TF)
    assert tied.wte.weight is tied.lm_head.weight
    assert count_params(untied) - count_params(tied) == 27 * SMALL_TF["n_embd"]
    assert "tie_weights" not in untied.config() and tied.config()["tie_weights"] is True

    out = tmp_path / "tied"
    kw = dict(data=tiny_names, model="transformer", out=str(out), quiet=True, notify=False, **SMALL_TF)
    train(TrainConfig(steps=20, eval_every=10, tie_weights=True, **kw))
    resumed = train(TrainConfig(steps=30, eval_every=10, tie_weights=True, resume=True, **kw))
    assert resumed["steps"] == 30 and resumed["model_config"]["tie_weights"] is True
    from charlm.cli import main

    assert main(["sample", "--checkpoint", str(out), "-n", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["samples"]) == 3


def test_cuda_image_installs_the_torch_build_of_its_cuda(tmp_path):
    """The CUDA Dockerfile and the Apptainer definition follow the base image's CUDA version."""
    import yaml

    from opsctl.render import render_site
    from opsctl.site import load

    site = yaml.safe_load((REPO / "tests" / "data" / "full_site.yml").read_text())
    site["training"]["cuda_image"] = "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    site["training"]["runtime"] = "apptainer"
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(site))
    files = {f.path: f.content for f in render_site(load(path).site) if f.host == site["training"]["host"]}
    docker, apptainer = files["containers/Dockerfile.cuda"], files["containers/charlm.def"]
    assert "ARG TORCH_CUDA=cu118" in docker and "== '11' else" in docker and "CUDA 11.8" in docker
    assert 'torch_spec="$torch_spec+cu118"' in apptainer and "== '11' else" in apptainer
    for text in (docker, apptainer, files["containers/Dockerfile.cpu"]):
        assert "TORCH_INDEX_URL" in text and "://" not in text.split("TORCH_INDEX_URL", 1)[1]


@needs_cuda
def test_cuda_training_uses_bf16_autocast_and_compile(tiny_names, tmp_path):
    kw = dict(data=tiny_names, model="transformer", steps=30, eval_every=10, quiet=True, notify=False, **SMALL_TF)
    rep = train(TrainConfig(out=str(tmp_path / "cuda"), device="cuda", compile=True, **kw))
    assert rep["device"].startswith("cuda") and rep["config"]["precision"] == "auto"
    losses = _losses(tmp_path / "cuda")
    assert losses[-1] < losses[0] < 4
    model = build_model("transformer", 10, block_size=8, **SMALL_TF).cuda()
    with autocast_for(torch.device("cuda"), "auto"):
        assert model(torch.randint(0, 10, (2, 8), device="cuda")).dtype == torch.bfloat16


@needs_2_gpus
def test_ddp_over_nccl_on_two_gpus(tiny_names, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "charlm"]
    cmd += ["train", "--data", tiny_names, "--model", "transformer", "--out", str(out), "--steps", "20"]
    cmd += ["--device", "cuda", "--n-embd", "32", "--n-layer", "2", "--n-head", "2", "--no-notify", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["world_size"] == 2 and rep["device"].startswith("cuda") and rep["steps"] == 20
    assert proc.stderr.count("charlm: rank ") == 2
