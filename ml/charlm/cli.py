"""Command line: charlm train | sample | eval. Progress goes to stderr; results to files
(train) or stdout (sample, eval; --json for machine-readable output). Errors in the input
print one line `charlm: error: ...` and exit with status 2, without a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys

from charlm.errors import CharlmError

MODEL_CHOICES = ["bigram", "nbigram", "mlp", "transformer"]


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="charlm", description="character-level language models over a list of names")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", required=True, help="names file, one name per line (UTF-8)")
    t.add_argument("--model", required=True, choices=MODEL_CHOICES)
    t.add_argument(
        "--out",
        required=True,
        help="output directory (metrics.jsonl, loss.png, samples.txt, report.json, checkpoints)",
    )
    g = t.add_argument_group("length of the run (default: the model's default number of steps)")
    g.add_argument("--steps", type=int, help="optimizer steps")
    g.add_argument("--time-budget", type=float, help="seconds of training; the LR schedule decays to this budget")
    o = t.add_argument_group("optimisation (unset = the model's default, see README)")
    o.add_argument("--batch-size", type=int, help="rows per step (mlp/nbigram) or mean names per step (transformer)")
    o.add_argument("--lr", type=float, help="peak learning rate")
    o.add_argument("--min-lr-ratio", type=float, default=0.0, help="cosine decays to lr * this")
    o.add_argument("--optimizer", choices=["sgd", "momentum", "adamw"])
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--weight-decay", type=float)
    o.add_argument("--warmup", type=int, help="linear LR warmup steps")
    o.add_argument("--grad-clip", type=float, help="max global gradient norm (0 = off)")
    o.add_argument("--dropout", type=float)
    m = t.add_argument_group("model shape (unset = the model's default)")
    m.add_argument("--n-embd", type=_positive_int, help="embedding size (mlp, transformer)")
    m.add_argument("--n-layer", type=_positive_int, help="hidden layers (mlp) or blocks (transformer)")
    m.add_argument("--n-head", type=_positive_int, help="attention heads (transformer)")
    m.add_argument("--n-hidden", type=_positive_int, help="hidden layer width (mlp)")
    m.add_argument(
        "--block-size", type=_positive_int, help="max sequence length (transformer; default longest name + 1)"
    )
    m.add_argument("--context", type=_positive_int, help="context window in characters (mlp)")
    m.add_argument("--activation", choices=["tanh", "gelu"], help="hidden nonlinearity (mlp)")
    m.add_argument("--batchnorm", action="store_true", default=None, help="BatchNorm after each hidden Linear (mlp)")
    m.add_argument("--smoothing", type=float, help="add-k smoothing (bigram)")
    m.add_argument(
        "--tie-weights",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="transformer: share the token embedding and output matrices",
    )
    o.add_argument(
        "--batching",
        choices=["mixed", "bucket"],
        default="mixed",
        help="transformer batches: names drawn uniformly (default; the layers run on the real characters "
        "only, padding is never computed) or one name length per batch (same speed, learns less per step)",
    )
    d = t.add_argument_group("data")
    d.add_argument("--max-len", type=_positive_int, default=64, help="skip (and count) names longer than this")
    d.add_argument(
        "--val-size",
        type=int,
        default=0,
        help="names carved from train for model selection (0 = select on test)",
    )
    j = t.add_argument_group("job")
    j.add_argument("--seed", type=int, default=3407)
    j.add_argument("--resume", action="store_true", help="continue from OUT/ckpt_last.pt if it exists")
    j.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    j.add_argument("--threads", type=_positive_int, help="torch CPU threads per process (default: 1 on <=4 cores)")
    j.add_argument("--compile", action="store_true", help="torch.compile the model")
    j.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "fp32"],
        help="autocast of the forward passes: auto = bf16 on CUDA, fp32 on CPU; bf16 = bf16 on any device",
    )
    j.add_argument("--eval-every", type=_positive_int, default=500, help="evaluate, log and checkpoint every N steps")
    j.add_argument("--num-samples", type=int, default=20, help="names written to samples.txt")
    j.add_argument("--no-notify", action="store_true", help="do not send the webhook/Telegram notification")
    j.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    s = sub.add_parser("sample", help="sample names from a checkpoint")
    s.add_argument("--checkpoint", required=True, help="checkpoint file or training output directory")
    s.add_argument("-n", "--num", type=int, default=20)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--json", action="store_true")

    e = sub.add_parser("eval", help="loss of a checkpoint on a names file")
    e.add_argument("--checkpoint", required=True, help="checkpoint file or training output directory")
    e.add_argument("--data", required=True)
    e.add_argument("--json", action="store_true")
    return p


def _load_model(path: str):
    from charlm import checkpoint
    from charlm.data import Vocab
    from charlm.models import build_model

    ckpt = checkpoint.load(path)
    vocab = Vocab(ckpt["vocab"])
    model = build_model(ckpt["model_kind"], vocab.size, **ckpt["model_config"])
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, vocab, ckpt


def cmd_train(args) -> int:
    from charlm.train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data,
        model=args.model,
        out=args.out,
        steps=args.steps,
        time_budget=args.time_budget,
        batch_size=args.batch_size,
        lr=args.lr,
        min_lr_ratio=args.min_lr_ratio,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        grad_clip=args.grad_clip,
        dropout=args.dropout,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_hidden=args.n_hidden,
        block_size=args.block_size,
        context=args.context,
        activation=args.activation,
        batchnorm=args.batchnorm,
        smoothing=args.smoothing,
        tie_weights=args.tie_weights,
        max_len=args.max_len,
        batching=args.batching,
        val_size=args.val_size,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        threads=args.threads,
        compile=args.compile,
        precision=args.precision,
        eval_every=args.eval_every,
        num_samples=args.num_samples,
        notify=not args.no_notify,
        quiet=args.quiet,
    )
    is_main = int(os.environ.get("RANK", "0")) == 0
    try:
        report = train(cfg)
    except BaseException as e:
        if cfg.notify and is_main and not isinstance(e, SystemExit):
            from charlm.notify import notify_and_report

            notify_and_report(
                f"charlm train {cfg.model} failed: {type(e).__name__}: {e}", {"out": os.path.abspath(cfg.out)}
            )
        raise
    if is_main and report:
        test = report["test_loss"]
        msg = (
            f"charlm: {report['status']}: {report['model']} after {report['steps']} steps | test loss "
            f"{_f(test['nats'])} nats, {_f(test['bits'])} bits, ppl {_f(test['perplexity'])} | "
            f"{_f(report['tokens_per_s'], 0)} tok/s | report {report['paths']['report']}"
        )
        if not cfg.quiet:
            print(msg, file=sys.stderr)
        if cfg.notify:
            from charlm.notify import configured_channels, notify_and_report

            if configured_channels():
                notify_and_report(
                    f"charlm train {report['model']} {report['status']}",
                    {
                        "test_loss_nats": test["nats"],
                        "test_loss_bits": test["bits"],
                        "steps": report["steps"],
                        "plot": report["paths"]["plot"],
                        "report": report["paths"]["report"],
                    },
                )
    return 0


def _f(v, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def cmd_sample(args) -> int:
    from charlm.sample import sample_names

    if args.num < 0:
        raise CharlmError("-n must be >= 0")
    if args.temperature <= 0:
        raise CharlmError("--temperature must be > 0")
    model, vocab, _ = _load_model(args.checkpoint)
    names = sample_names(model, vocab, args.num, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    if args.json:
        print(json.dumps({"samples": names}))
    else:
        for n in names:
            print(n)
    return 0


def cmd_eval(args) -> int:
    from charlm.evaluate import eval_file

    model, vocab, ckpt = _load_model(args.checkpoint)
    result = eval_file(model, vocab, args.data)
    result["model"] = ckpt["model_kind"]
    if result["skipped_out_of_vocabulary"]:
        print(
            f"charlm: skipped {result['skipped_out_of_vocabulary']} names with characters outside "
            "the checkpoint's "
            f"vocabulary: {''.join(result['unknown_chars'])!r}",
            file=sys.stderr,
        )
    if result["skipped_longer_than_model_context"]:
        print(
            f"charlm: skipped {result['skipped_longer_than_model_context']} names longer than the model's context",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result))
    else:
        loss = result["loss"]
        print(
            f"{result['evaluated_names']} names, {result['tokens']} tokens: "
            f"loss {loss['nats']:.4f} nats/char, "
            f"{loss['bits']:.4f} bits/char, perplexity {loss['perplexity']:.3f}"
        )
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval}[args.command](args)
    except CharlmError as e:
        print(f"charlm: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print("charlm: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("charlm: interrupted", file=sys.stderr)
        return 130
