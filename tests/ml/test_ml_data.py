"""Data loading, vocabulary, makemore's split, tensor layouts."""

from __future__ import annotations

import pytest
import torch
from charlm.data import (
    DataError,
    PairDataset,
    SeqBuckets,
    Vocab,
    makemore_test_size,
    read_names,
    split_names,
)


def makemore_split(words):
    """The recipe of makemore.create_datasets, verbatim in spirit."""
    torch.manual_seed(3407)
    test_set_size = min(1000, int(len(words) * 0.1))
    rp = torch.randperm(len(words)).tolist()
    train_words = [words[i] for i in rp[:-test_set_size]]
    test_words = [words[i] for i in rp[-test_set_size:]]
    return train_words, test_words


def test_split_matches_makemore_on_names(names_path):
    with open(names_path) as f:
        words = [w.strip() for w in f.read().splitlines()]
    words = [w for w in words if w]
    names, stats = read_names(names_path)
    assert names == words and stats.kept == 32033
    train, test = makemore_split(words)
    split = split_names(names)
    assert split.train == train and split.test == test
    assert len(split.test) == 1000 and len(split.train) == 31033


def test_split_matches_makemore_small_and_val_slice(make_names):
    words = make_names(537, seed=3)
    train, test = makemore_split(words)
    split = split_names(words)
    assert (split.train, split.test) == (train, test)
    assert makemore_test_size(537) == 53
    with_val = split_names(words, val_size=50)
    assert with_val.test == test  # test is untouched by the validation slice
    assert with_val.val == train[-50:] and with_val.train == train[:-50]
    with pytest.raises(DataError):
        split_names(words, val_size=len(train))
    with pytest.raises(DataError, match="at least 2"):
        split_names(["solo"])


def test_crlf_blank_bom_and_whitespace(tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes("\ufeffanna\r\n\r\n  bob \r\n\n\ncara\r\n".encode())
    names, stats = read_names(str(p))
    assert names == ["anna", "bob", "cara"]
    assert stats.blank == 3 and stats.kept == 3 and stats.lines == 6
    vocab = Vocab.from_names(names)
    assert "\r" not in vocab.itos and "\ufeff" not in vocab.itos and " " not in vocab.itos
    assert vocab.itos[0] == "." and vocab.itos[1:] == sorted(set("annabobcara"))


def test_too_long_and_reserved_are_skipped_and_counted(tmp_path):
    p = tmp_path / "mixed.txt"
    p.write_text("ab\n" + "x" * 100 + "\nc.d\nef\n")
    names, stats = read_names(str(p), max_len=10)
    assert names == ["ab", "ef"]
    assert stats.too_long == 1 and stats.longest_skipped == 100 and stats.reserved_char == 1
    assert "longer than --max-len 10" in stats.summary()


def test_bad_inputs_raise_clear_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="no usable names"):
        read_names(str(empty))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n\t\n")
    with pytest.raises(DataError, match="3 blank"):
        read_names(str(blank))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"anna\nbob\nj\xe9r\xf4me\n")
    with pytest.raises(DataError, match=r"not valid UTF-8.*line 3"):
        read_names(str(latin1))
    with pytest.raises(DataError, match="not found"):
        read_names(str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="directory"):
        read_names(str(tmp_path))
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"a" * (10 * 1024 * 1024))
    with pytest.raises(DataError, match="1 longer than --max-len"):
        read_names(str(huge))


def test_vocab_encode_rejects_unknown():
    v = Vocab.from_names(["abc", "cab"])
    assert v.encode("cab") == [3, 1, 2] and v.decode([3, 1, 2, 0]) == "cab"
    assert v.unknown_chars("abz.") == {"z", "."}
    with pytest.raises(DataError, match="outside the vocabulary"):
        v.encode("abz")


def test_pair_dataset_rows():
    v = Vocab.from_names(["ab", "b"])  # . a b -> 0 1 2
    ds = PairDataset.build(["ab", "b"], v, context=3)
    assert ds.X.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 2]]
    assert ds.Y.tolist() == [1, 2, 0, 2, 0]
    assert ds.n_tokens == 5  # len(name) + 1 targets per name, nothing padded


def test_seq_buckets_have_no_padding_and_sample_by_tokens():
    names = ["ab", "cd", "efg", "h"]
    v = Vocab.from_names(names)
    ds = SeqBuckets.build(names, v)
    assert ds.lengths == [1, 2, 3]
    assert ds.n_tokens == sum(len(w) + 1 for w in names) and ds.n_names == 4
    seen = []
    for x, y in ds.batches(batch_tokens=100):
        assert x.shape == y.shape and (x[:, 0] == 0).all() and (y[:, -1] == 0).all()
        assert (x[:, 1:] == y[:, :-1]).all()
        seen += [v.decode(row) for row in y.tolist()]
    assert sorted(seen) == sorted(names)
    g = torch.Generator().manual_seed(0)
    counts = {1: 0, 2: 0, 3: 0}
    for _ in range(3000):
        x, _ = ds.sample(12, g)
        counts[x.shape[1] - 1] += 1
    # buckets are drawn in proportion to their target tokens: 2, 6, 4 of 12
    assert abs(counts[1] / 3000 - 2 / 12) < 0.03
    assert abs(counts[2] / 3000 - 6 / 12) < 0.03
    assert abs(counts[3] / 3000 - 4 / 12) < 0.03


def test_mixed_batches_pad_with_ignore_index():
    names = ["ab", "cd", "efg", "h", "ijklm"]
    v = Vocab.from_names(names)
    ds = SeqBuckets.build(names, v)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        x, y = ds.sample_mixed(20, g)
        real = y != -1
        lengths = real.sum(1)
        assert x.shape == y.shape and x.shape[1] == int(lengths.max())
        for row_x, row_y, n in zip(x.tolist(), y.tolist(), lengths.tolist(), strict=True):
            name = v.decode(row_y[: n - 1])
            assert name in names and row_y[n - 1] == 0 and row_x[0] == 0
            assert row_x[1:n] == row_y[: n - 1] and all(t == -1 for t in row_y[n:])
