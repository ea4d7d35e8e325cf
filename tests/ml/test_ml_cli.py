"""The command line: outputs, bad inputs (clear error, exit 2, no traceback), sample and eval."""

from __future__ import annotations

import json

import pytest
from charlm.cli import main
from charlm.data import read_names, split_names


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def train_args(data, out, *extra):
    return ["train", "--data", data, "--out", out, "--quiet", *extra]


@pytest.fixture
def trained(tmp_path, tiny_names, capsys):
    out = tmp_path / "m"
    code, _, err = run(
        capsys,
        *train_args(
            tiny_names,
            out,
            "--model",
            "mlp",
            "--steps",
            150,
            "--eval-every",
            50,
            "--context",
            3,
            "--n-embd",
            8,
            "--n-hidden",
            32,
        ),
    )
    assert code == 0, err
    return out


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "no usable names"),
        (b"\n\r\n  \n", "3 blank"),
        (b"anna\nb\xffb\n", "not valid UTF-8"),
        ("10MB-line", "1 longer than --max-len 64"),
        (b"solo\n", "at least 2 names"),
    ],
    ids=["empty", "blank", "latin1", "10MB-line", "one-name"],
)
def test_bad_data_is_a_clear_error(tmp_path, capsys, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"x" * (10 * 1024 * 1024) if content == "10MB-line" else content)
    code, _, err = run(capsys, *train_args(p, tmp_path / "o", "--model", "bigram"))
    assert code == 2
    assert err.startswith("charlm: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_skips_are_reported_and_crlf_is_clean(tmp_path, capsys, make_names):
    names = make_names(300)
    lines = names[:150] + ["", "   ", "y" * 200, "dot.ted"] + names[150:]
    p = tmp_path / "messy.txt"
    p.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    code, _, err = run(capsys, "train", "--data", p, "--out", tmp_path / "o", "--model", "bigram")
    assert code == 0, err
    assert "skipped 2 blank" in err and "skipped 1 longer than --max-len 64" in err
    assert "skipped 1 containing the reserved" in err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["data"]["skipped_blank"] == 2 and rep["data"]["skipped_too_long"] == 1
    assert rep["data"]["kept"] == 300
    assert rep["vocab"] == sorted(set("".join(names)))  # no '\r', no ' ', no 'y' from the skipped line


def test_bad_flags_and_missing_checkpoint(tmp_path, tiny_names, capsys):
    code, _, err = run(capsys, *train_args(tiny_names, tmp_path / "o", "--model", "mlp", "--steps", -1))
    assert code == 2 and "--steps" in err
    code, _, err = run(capsys, *train_args(tiny_names, tmp_path / "o", "--model", "transformer", "--n-embd", 30))
    assert code == 2 and "--n-embd 30 is not divisible by --n-head 4" in err
    code, _, err = run(capsys, *train_args(tiny_names, tmp_path / "o", "--model", "mlp", "--dropout", 1.5))
    assert code == 2 and "--dropout" in err
    code, _, err = run(capsys, "sample", "--checkpoint", tmp_path / "nope.pt")
    assert code == 2 and "checkpoint not found" in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "eval", "--checkpoint", junk, "--data", tiny_names)
    assert code == 2 and "cannot read checkpoint" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:  # argparse usage errors exit 2 too
        main(["train", "--data", tiny_names, "--out", str(tmp_path), "--model", "rnn"])
    assert e.value.code == 2


def test_sample_cli(trained, capsys):
    code, out, _ = run(capsys, "sample", "--checkpoint", trained, "-n", 7, "--seed", 1, "--json")
    assert code == 0
    samples = json.loads(out)["samples"]
    assert len(samples) == 7
    code, out2, _ = run(
        capsys,
        "sample",
        "--checkpoint",
        trained / "ckpt_last.pt",
        "-n",
        7,
        "--seed",
        1,
        "--top-k",
        3,
        "--temperature",
        0.5,
    )
    assert code == 0 and len(out2.splitlines()) == 7
    code, _, err = run(capsys, "sample", "--checkpoint", trained, "--temperature", 0)
    assert code == 2 and "temperature" in err


def test_eval_matches_training_report_and_skips_unknown_chars(trained, tiny_names, tmp_path, capsys):
    names, _ = read_names(tiny_names)
    test_names = split_names(names).test
    f = tmp_path / "test.txt"
    f.write_text("\n".join(test_names) + "\n")
    code, out, _ = run(capsys, "eval", "--checkpoint", trained / "ckpt_last.pt", "--data", f, "--json")
    assert code == 0
    res = json.loads(out)
    rep = json.loads((trained / "report.json").read_text())
    assert res["loss"]["nats"] == pytest.approx(rep["test_loss"]["nats"], abs=1e-6)
    assert res["evaluated_names"] == len(test_names) and res["skipped_out_of_vocabulary"] == 0

    f.write_text("\n".join(test_names + ["zoë", "xxq", "ZED"]) + "\n")
    code, out, err = run(capsys, "eval", "--checkpoint", trained / "ckpt_last.pt", "--data", f, "--json")
    assert code == 0
    res = json.loads(out)
    assert res["skipped_out_of_vocabulary"] == 3 and res["evaluated_names"] == len(test_names)
    assert set(res["unknown_chars"]) == {"z", "ë", "x", "q", "Z", "E", "D"}
    assert "skipped 3 names with characters outside" in err
    assert res["loss"]["nats"] == pytest.approx(rep["test_loss"]["nats"], abs=1e-6)

    f.write_text("ZED\nQQ\n")
    code, _, err = run(capsys, "eval", "--checkpoint", trained, "--data", f)
    assert code == 2 and "outside the checkpoint's vocabulary" in err


def test_transformer_eval_skips_names_longer_than_context(tmp_path, tiny_names, capsys):
    out = tmp_path / "t"
    args = train_args(
        tiny_names,
        out,
        "--model",
        "transformer",
        "--steps",
        5,
        "--n-embd",
        8,
        "--n-layer",
        1,
        "--n-head",
        2,
        "--block-size",
        8,
    )
    code, _, err = run(capsys, *args)
    assert code == 2 and "--block-size 8 is too small" in err and "--max-len 7" in err
    code, _, err = run(capsys, *args, "--max-len", 7)
    assert code == 0, err
    f = tmp_path / "e.txt"
    f.write_text("bana\nbanabanabana\n")
    code, out_, err = run(capsys, "eval", "--checkpoint", out, "--data", f, "--json")
    assert code == 0
    res = json.loads(out_)
    assert res["evaluated_names"] == 1 and res["skipped_longer_than_model_context"] == 1
