"""Loaders on the genuine small files in ../shared/data (skipped cleanly on a bare checkout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.tasks.data import file_md5, load_cifar10, load_dataset, load_mnist, read_cifar_pickle, read_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
CIFAR_MINI = SHARED / "cifar10" / "cifar-10-batches-py-mini"

needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
needs_cifar = pytest.mark.skipif(not (CIFAR_MINI / "batches.meta").is_file(), reason="no ../shared/data/cifar10 mini")

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@needs_mnist
def test_mnist_official_test_set():
    assert file_md5(MNIST_DIR / "t10k-images-idx3-ubyte.gz") == "9fb629c4189551a2d022fa330f9573f3"
    images, labels, classes = load_mnist(MNIST_DIR, "test")
    assert images.shape == (10000, 1, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert classes == tuple("0123456789")
    # Known test-set statistics; a byte-order or offset error would move them far.
    assert abs(images.mean() / 255 - 0.1325) < 1e-3 and images.max() == 255


@needs_mnist
def test_mnist_raw_and_gz_agree(tmp_path):
    import gzip

    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    assert file_md5(raw) == "27ae3e4e09519cfbb04c329615203637"  # published MD5 of the raw label file
    np.testing.assert_array_equal(read_idx(raw, 2049), read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", 2049))


@needs_mnist
def test_mnist_train_split_missing_is_clear():
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(MNIST_DIR, "train")


@needs_cifar
@pytest.mark.parametrize("encoding", ["latin1", "bytes"])
def test_cifar10_mini_batches(encoding):
    meta = read_cifar_pickle(CIFAR_MINI / "batches.meta", encoding)
    assert set(meta) == {"num_cases_per_batch", "label_names", "num_vis"}
    train = load_cifar10(CIFAR_MINI, "train", batches=["data_batch_1"], encoding=encoding)
    test = load_cifar10(CIFAR_MINI, "test", encoding=encoding)
    assert train.images.shape == (200, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.labels.tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    assert train.classes == CIFAR10_NAMES


@needs_cifar
def test_cifar10_partial_copy_needs_explicit_batches():
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        load_cifar10(CIFAR_MINI, "train")


@needs_cifar
def test_cifar10_rows_match_lossless_pngs():
    image_module = pytest.importorskip("PIL.Image")
    test = load_cifar10(CIFAR_MINI, "test")
    pngs = sorted((SHARED / "cifar10" / "test-first20-png").glob("cifar10_*.png"))
    assert len(pngs) == 20
    for png in pngs:
        _, index, label = png.stem.split("_")
        with image_module.open(png) as img:
            hwc = np.asarray(img.convert("RGB"))
        np.testing.assert_array_equal(test.images[int(index)], hwc.transpose(2, 0, 1), err_msg=png.name)
        assert test.labels[int(index)] == int(label)
    train = load_cifar10(CIFAR_MINI, "train", batches=["data_batch_1"])
    kaggle = SHARED / "cifar10" / "kaggle-train-first200"
    names = dict(line.split(",") for line in (kaggle / "trainLabels.csv").read_text().split())
    for row in (0, 1, 99, 199):
        with image_module.open(kaggle / "train" / f"{row + 1}.png") as img:
            np.testing.assert_array_equal(train.images[row], np.asarray(img.convert("RGB")).transpose(2, 0, 1))
        assert train.classes[train.labels[row]] == names[f"{row + 1}.png"]


@needs_mnist
def test_mnist_proxy_pipeline_on_real_test_set():
    """The proxy study's use: padded 32 px, 3 channels, disjoint seeded parts of the genuine test set."""
    from harness.tasks.data import split_indices

    data = load_dataset("mnist", "test", MNIST_DIR)
    search, retrain, test = split_indices(len(data), [5000, 2500, 2500], torch.Generator().manual_seed(0))
    part = data.subset(search, "search").padded(32).with_channels(3).to_float()
    assert part.images.shape == (5000, 3, 32, 32) and part.split == "search"
    assert part.images[:, :, :2].abs().max() == 0 and part.images.max() == 1.0
    assert len(set(search.tolist()) | set(retrain.tolist()) | set(test.tolist())) == 10000
