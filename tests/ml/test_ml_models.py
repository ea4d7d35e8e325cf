"""Model correctness: exact count bigram, causal transformer, MLP options, sampling."""

from __future__ import annotations

import json
import math

import pytest
import torch
from charlm.data import PairDataset, SeqBuckets, Vocab, read_names, split_names
from charlm.evaluate import mean_loss
from charlm.models import build_model, count_params
from charlm.models.bigram import CountBigram
from charlm.models.transformer import Packing
from charlm.sample import sample_names


def test_count_bigram_matches_hand_computed_table():
    names = ["ab", "b", "aab"]
    v = Vocab.from_names(names)  # . a b
    ds = PairDataset.build(names, v, context=1)
    m = CountBigram(v.size, smoothing=1.0)
    m.fit(ds.X, ds.Y)
    # pairs: .a ab b. | .b b. | .a aa ab b.
    expected = torch.tensor([[0, 2, 1], [0, 1, 2], [3, 0, 0]], dtype=torch.float64)
    assert torch.equal(m.counts, expected)
    probs = m.log_probs().exp()
    assert torch.allclose(probs[0], torch.tensor([1 / 6, 3 / 6, 2 / 6], dtype=torch.float64))
    assert torch.allclose(probs[2], torch.tensor([4 / 6, 1 / 6, 1 / 6], dtype=torch.float64))
    # mean NLL over the same tokens, by hand
    nll = -sum(math.log(probs[a, b]) for a, b in zip(ds.X[:, 0].tolist(), ds.Y.tolist(), strict=True)) / 9
    assert mean_loss(m, ds, torch.device("cpu")) == pytest.approx(nll, abs=1e-6)
    m0 = CountBigram(v.size, smoothing=0.0)
    m0.fit(ds.X, ds.Y)
    assert m0.log_probs().exp()[1, 2].item() == pytest.approx(2 / 3)


def test_count_bigram_floor_on_names(names_path, tmp_path, capsys):
    from charlm.cli import main

    assert main(["train", "--data", names_path, "--model", "bigram", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["test_loss"]["nats"] == pytest.approx(2.4497, abs=0.001)
    assert rep["test_loss"]["bits"] == pytest.approx(rep["test_loss"]["nats"] / math.log(2))
    assert rep["test_loss"]["perplexity"] == pytest.approx(math.exp(rep["test_loss"]["nats"]))
    assert rep["vocab"] == list("abcdefghijklmnopqrstuvwxyz") and rep["steps"] == 0


def test_transformer_is_causal():
    torch.manual_seed(0)
    m = build_model("transformer", 10, block_size=8, n_embd=16, n_layer=2, n_head=2).eval()
    x = torch.randint(0, 10, (3, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 10  # change the future only
    with torch.no_grad():
        a, b = m(x), m(y)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 9, dtype=torch.long))
    # no names at all (`--num-samples 0` samples none): empty logits, not a reshape error
    assert m(torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3, 10)
    assert m(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, dtype=torch.bool)).shape == (0, 10)


def test_transformer_on_real_positions_only_equals_the_padded_computation():
    """Mixed-length batches: with `valid`, the position-wise layers run on the real tokens
    only; logits and every gradient must equal those of the full padded computation."""
    names = ["emma", "olivia", "ava", "isabella", "mia", "bo", "x"]
    v = Vocab.from_names(names)
    ds = SeqBuckets.build(names, v)
    x, y = ds.X_all, ds.Y_all  # padded to the longest name, targets -1 on padding
    valid = y != -1
    torch.manual_seed(0)
    a = build_model("transformer", v.size, block_size=x.shape[1], n_embd=16, n_layer=2, n_head=2)
    b = build_model("transformer", v.size, block_size=x.shape[1], n_embd=16, n_layer=2, n_head=2)
    b.load_state_dict(a.state_dict())
    full = a(x)
    packed = b(x, valid)
    assert packed.shape == (int(valid.sum()), v.size)
    assert torch.allclose(full[valid], packed, atol=1e-5)
    lf = torch.nn.functional.cross_entropy(full.reshape(-1, v.size), y.reshape(-1), ignore_index=-1)
    lp = torch.nn.functional.cross_entropy(packed, y[valid])
    assert lf.item() == pytest.approx(lp.item(), abs=1e-6)
    lf.backward()
    lp.backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), name


def test_attention_heads_are_the_textbook_causal_multi_head_attention():
    """Packing gathers the packed tokens into one row per head and name and back. An independent
    reference (split q/k/v, heads by view/transpose, torch's scaled_dot_product_attention with
    is_causal) must give the same output at every real position, with padding in the batch."""
    torch.manual_seed(0)
    B, T, C, nh = 4, 7, 24, 3
    attn = build_model("transformer", 10, block_size=8, n_embd=C, n_layer=1, n_head=nh).blocks[0].attn
    x = torch.randn(B, T, C)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, 5:] = False
    valid[3, 2:] = False
    packing = Packing(valid, nh)
    got = attn(x[valid], packing)
    q, k, v = attn.c_attn(x).split(C, dim=2)

    def heads(t):
        return t.view(B, T, nh, C // nh).transpose(1, 2)

    y = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
    want = attn.c_proj(y.transpose(1, 2).reshape(B, T, C))[valid]
    assert got.shape == (int(valid.sum()), C)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"batchnorm": True, "activation": "gelu", "dropout": 0.1, "n_layer": 3}])
def test_mlp_shapes_and_initial_loss(kwargs):
    torch.manual_seed(0)
    m = build_model("mlp", 27, context=4, n_embd=8, n_hidden=32, **kwargs)
    x = torch.randint(0, 27, (64, 4))
    logits = m(x)
    assert logits.shape == (64, 27)
    # near-uniform at init: loss close to ln(27)
    loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 27, (64,)))
    assert abs(loss.item() - math.log(27)) < 0.3
    assert count_params(m) > 0


def test_nbigram_learns_the_count_table(tmp_path, make_names):
    from charlm.train import TrainConfig, train

    p = tmp_path / "n.txt"
    p.write_text("\n".join(make_names(800)) + "\n")
    rep_nb = train(TrainConfig(data=str(p), model="nbigram", out=str(tmp_path / "nb"), steps=400, quiet=True))
    rep_cb = train(TrainConfig(data=str(p), model="bigram", out=str(tmp_path / "cb"), quiet=True, smoothing=0.1))
    # gradient descent on the single weight matrix reaches the counting solution's train loss
    assert rep_nb["train_loss"]["nats"] == pytest.approx(rep_cb["train_loss"]["nats"], abs=0.02)


def test_sampling_respects_vocab_and_seed(make_names):
    names = make_names(200)
    v = Vocab.from_names(names)
    for kind, kw in [
        ("bigram", {}),
        ("mlp", {"context": 3, "n_embd": 4, "n_hidden": 16}),
        ("transformer", {"block_size": 12, "n_embd": 16, "n_layer": 1, "n_head": 2}),
    ]:
        torch.manual_seed(0)
        m = build_model(kind, v.size, **kw)
        if kind == "bigram":
            ds = PairDataset.build(names, v, 1)
            m.fit(ds.X, ds.Y)
        a = sample_names(m, v, 15, seed=5, top_k=5, temperature=0.8)
        b = sample_names(m, v, 15, seed=5, top_k=5, temperature=0.8)
        assert a == b and len(a) == 15
        assert all(set(s) <= set(v.itos[1:]) for s in a)
        if kind == "transformer":
            assert all(len(s) <= 11 for s in a)


def test_eval_loss_is_per_token_mean(names_path):
    names, _ = read_names(names_path)
    split = split_names(names)
    v = Vocab.from_names(names)
    torch.manual_seed(0)
    m = build_model("transformer", v.size, block_size=16, n_embd=16, n_layer=1, n_head=2)
    ds = SeqBuckets.build(split.test, v)
    loss = mean_loss(m, ds, torch.device("cpu"))
    # the same number from one big padded batch with masked padding (ignore_index=-1)
    x = torch.zeros(len(split.test), 16, dtype=torch.long)
    y = torch.full((len(split.test), 16), -1, dtype=torch.long)
    for i, w in enumerate(split.test):
        ids = v.encode(w)
        x[i, 1 : len(ids) + 1] = torch.tensor(ids)
        y[i, : len(ids)] = torch.tensor(ids)
        y[i, len(ids)] = 0
    with torch.no_grad():
        ref = torch.nn.functional.cross_entropy(m(x).view(-1, v.size), y.view(-1), ignore_index=-1)
    assert loss == pytest.approx(ref.item(), abs=1e-5)
