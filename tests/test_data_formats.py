"""Format loaders on files written in the real formats by harness.tasks.data.synthetic, and their errors."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from harness.tasks.data import (
    DataFormatError,
    DataNotFoundError,
    load_cifar10,
    load_cifar100,
    load_mnist,
    read_cifar_pickle,
    read_idx,
)
from harness.tasks.data.synthetic import write_cifar10, write_cifar100, write_cifar_pickle, write_idx, write_mnist


@pytest.mark.parametrize("py2_strings", [True, False])
@pytest.mark.parametrize("encoding", ["latin1", "bytes"])
def test_cifar10_round_trip(tmp_path, py2_strings, encoding):
    folder = write_cifar10(tmp_path, n_per_batch=4, n_test=3, seed=1, py2_strings=py2_strings)
    with open(folder / "data_batch_2", "rb") as handle:
        raw = pickle.load(handle, encoding=encoding)
    key_type = bytes if (py2_strings and encoding == "bytes") else str
    assert all(type(k) is key_type for k in raw)
    expect = raw[key_type(b"data") if key_type is bytes else "data"].reshape(4, 3, 32, 32)

    train = load_cifar10(tmp_path, "train", encoding=encoding)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.labels.shape == (20,)
    np.testing.assert_array_equal(train.images[4:8], expect)  # batches concatenated in order 1..5
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    test = load_cifar10(folder, "test", encoding=encoding)  # the batch folder itself works too
    assert test.images.shape == (3, 3, 32, 32)


def test_cifar10_channel_layout(tmp_path):
    """Row = R(1024) G(1024) B(1024), each 32x32 row-major -> images[n, c, y, x]."""
    folder = write_cifar10(tmp_path, n_per_batch=1, n_test=1)
    row = np.zeros((1, 3072), np.uint8)
    row[0, 0] = 10  # R at (0, 0)
    row[0, 1024 + 33] = 20  # G at (1, 1)
    row[0, 2048 + 1023] = 30  # B at (31, 31)
    write_cifar_pickle(folder / "test_batch", {"data": row, "labels": [3], "batch_label": "x"})
    image = load_cifar10(tmp_path, "test").images[0]
    assert image[0, 0, 0] == 10 and image[1, 1, 1] == 20 and image[2, 31, 31] == 30 and image.sum() == 60


@pytest.mark.parametrize("py2_strings", [True, False])
def test_cifar100_fine_and_coarse(tmp_path, py2_strings):
    write_cifar100(tmp_path, n_train=10, n_test=6, py2_strings=py2_strings)
    fine = load_cifar100(tmp_path, "train", encoding="bytes")
    coarse = load_cifar100(tmp_path, "train", labels="coarse")
    assert fine.images.shape == (10, 3, 32, 32) and len(fine.classes) == 100 and len(coarse.classes) == 20
    np.testing.assert_array_equal(coarse.labels, fine.labels // 5)
    np.testing.assert_array_equal(fine.images, coarse.images)
    assert load_cifar100(tmp_path, "test").labels.shape == (6,)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_round_trip(tmp_path, compress):
    write_mnist(tmp_path, n_train=5, n_test=3, seed=2, compress=compress)
    images, labels, classes = load_mnist(tmp_path, "train")
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    suffix = ".gz" if compress else ""
    np.testing.assert_array_equal(images[:, 0], read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"))
    assert load_mnist(tmp_path, "test").images.shape == (3, 1, 28, 28)


def test_mnist_found_in_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", n_test=2)
    assert load_mnist(tmp_path, "test").labels.shape == (2,)


def test_idx_header_is_big_endian(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    raw = path.read_bytes()
    assert raw[:16] == bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 3, 4)
    assert read_idx(path, 2051).shape == (2, 3, 4)
    # A hand-written big-endian int16 file (type 0x0B) decodes to the right values.
    shorts = tmp_path / "s.idx"
    shorts.write_bytes(bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 3) + struct.pack(">3h", 1, -2, 300))
    assert read_idx(shorts).tolist() == [1, -2, 300]


# --- errors: each names the file and is one of our exception types -------------------------------


def test_idx_wrong_magic(tmp_path):
    write_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataFormatError, match=r"wrong magic number 2049.*expected 2051") as info:
        read_idx(labels, expect_magic=2051)
    assert str(labels) in str(info.value) and info.value.path == labels
    # Swapping the files is caught by the loader the same way.
    images = tmp_path / "train-images-idx3-ubyte.gz"
    images.write_bytes(labels.read_bytes())
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz: wrong magic"):
        load_mnist(tmp_path, "train")


@pytest.mark.parametrize("cut", [2, 10, 100])
def test_idx_truncated(tmp_path, cut):
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-cut] if cut == 100 else path.read_bytes()[:cut])
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte.*(truncated|too short)"):
        read_idx(path, 2051)


def test_idx_trailing_bytes_and_garbage(tmp_path):
    path = write_idx(tmp_path / "a-idx1-ubyte", np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataFormatError, match="trailing bytes"):
        read_idx(path)
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataFormatError, match="not an IDX file"):
        read_idx(path)


def test_gzip_truncated_and_corrupt(tmp_path):
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(200, dtype=np.uint8) % 10)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte.gz: truncated or corrupt gzip"):
        read_idx(path)
    path.write_bytes(good[:-8] + bytes(8))  # CRC and size trailer zeroed
    with pytest.raises(DataFormatError, match="corrupt gzip"):
        read_idx(path)


def test_missing_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="t10k-images-idx3-ubyte.*t10k-labels-idx1-ubyte") as info:
        load_mnist(tmp_path, "test")
    assert isinstance(info.value, FileNotFoundError) and str(tmp_path) in str(info.value)
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py.*download=True"):
        load_cifar10(tmp_path, "test")
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        load_cifar100(tmp_path, "test")
    with pytest.raises(DataNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_mnist_label_count_mismatch(tmp_path):
    write_mnist(tmp_path, n_test=4, compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte.*do not match the 4 images"):
        load_mnist(tmp_path, "test")


@pytest.mark.parametrize("cut", [1, 60, 3000])
def test_cifar_truncated_pickle(tmp_path, cut):
    folder = write_cifar10(tmp_path, n_per_batch=2, n_test=2)
    batch = folder / "test_batch"
    batch.write_bytes(batch.read_bytes()[:cut])
    with pytest.raises(DataFormatError, match="test_batch: truncated or corrupt CIFAR pickle") as info:
        load_cifar10(tmp_path, "test")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_cifar_not_a_pickle_and_hostile_pickle(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x00\x01 definitely not a pickle")
    with pytest.raises(DataFormatError, match="batch: truncated or corrupt"):
        read_cifar_pickle(path)
    path.write_bytes(pickle.dumps({"data": print}, protocol=2))
    with pytest.raises(DataFormatError, match=r"refuses to unpickle (__builtin__|builtins)\.print"):
        read_cifar_pickle(path)
    path.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(DataFormatError, match="expected a pickled dict"):
        read_cifar_pickle(path)


def test_cifar_inconsistent_batches(tmp_path):
    folder = write_cifar10(tmp_path, n_per_batch=2, n_test=2)
    data = np.zeros((2, 3072), np.uint8)
    cases = [
        ({"data": data, "labels": [1]}, "2 images but 'labels'"),
        ({"data": data, "labels": [1, 10]}, r"'labels' outside \[0, 10\)"),
        ({"data": data[:, :100], "labels": [1, 2]}, r"'data' must be uint8 of shape \(N, 3072\), got uint8 \(2, 100\)"),
        ({"labels": [1, 2]}, "no 'data' array"),
        ({"data": data}, "no 'labels'"),
    ]
    for batch, message in cases:
        write_cifar_pickle(folder / "test_batch", batch)
        with pytest.raises(DataFormatError, match=f"test_batch: {message}"):
            load_cifar10(tmp_path, "test")


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, gzip content
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + bytes([3, 4])))
    assert read_idx(path, 2049).tolist() == [3, 4]
