"""Splits, transforms, ImageDataset and the name registry (on synthetic files in the real formats)."""

from __future__ import annotations

import pytest
import torch

from harness.registry import UnknownNameError
from harness.tasks.data import (
    DATASETS,
    NORMALIZATION,
    DataError,
    ImageDataset,
    load_dataset,
    normalize,
    pad_to,
    repeat_channels,
    search_split,
    split_indices,
)
from harness.tasks.data.synthetic import write_cifar10, write_cifar100, write_mnist


def test_split_indices_disjoint_complete_and_seeded():
    parts = split_indices(101, [0.5, 0.5], torch.Generator().manual_seed(3))
    assert [len(p) for p in parts] == [51, 50]  # the rounding remainder goes to the first tied part
    joined = torch.cat(parts)
    assert joined.dtype == torch.int64 and sorted(joined.tolist()) == list(range(101))
    again = split_indices(101, [0.5, 0.5], 3)  # an int seed is the same as a seeded generator
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    other = split_indices(101, [0.5, 0.5], 4)
    assert not torch.equal(parts[0], other[0])


def test_split_indices_sizes_and_partial_fractions():
    a, b, c = split_indices(10000, [5000, 2500, 2500], 0)
    assert (len(a), len(b), len(c)) == (5000, 2500, 2500)
    assert len(set(a.tolist()) | set(b.tolist()) | set(c.tolist())) == 10000
    parts = split_indices(10, [0.3, 0.3], 0)  # fractions below 1 leave the rest unused
    assert [len(p) for p in parts] == [3, 3] and not set(parts[0].tolist()) & set(parts[1].tolist())
    assert [len(p) for p in split_indices(10, [1 / 3] * 3, 0)] == [4, 3, 3]


@pytest.mark.parametrize(
    "parts, error",
    [([6, 5], ValueError), ([0.7, 0.4], ValueError), ([-1], ValueError), ([5, 0.5], TypeError), ([True], TypeError)],
)
def test_split_indices_rejects_bad_parts(parts, error):
    with pytest.raises(error):
        split_indices(10, parts, 0)


def test_search_split_is_half_half():
    train, valid = search_split(50000, torch.Generator().manual_seed(0))
    assert len(train) == len(valid) == 25000
    assert not set(train.tolist()) & set(valid.tolist())
    with pytest.raises(ValueError):
        search_split(10, 0, train_fraction=1.0)


def test_pad_to_centres_and_repeat_channels():
    images = torch.arange(1, 28 * 28 + 1, dtype=torch.float32).reshape(1, 1, 28, 28)
    padded = pad_to(images, 32)
    assert padded.shape == (1, 1, 32, 32)
    assert torch.equal(padded[..., 2:30, 2:30], images)
    assert padded.sum() == images.sum()  # only zeros were added
    assert pad_to(images, 28) is images
    odd = pad_to(torch.ones(1, 1, 3, 3), 6)
    assert odd[0, 0, 1:4, 1:4].sum() == 9 and odd.sum() == 9  # one before, two after
    rgb = repeat_channels(padded, 3)
    assert rgb.shape == (1, 3, 32, 32) and all(torch.equal(rgb[:, i], padded[:, 0]) for i in range(3))
    with pytest.raises(ValueError, match="shrink"):
        pad_to(images, 20)
    with pytest.raises(ValueError, match="only 1 -> n"):
        repeat_channels(rgb, 4)


def test_normalize_per_channel():
    images = torch.stack([torch.full((2, 2), 0.5), torch.full((2, 2), 1.0)]).unsqueeze(0)
    out = normalize(images, [0.5, 0.0], [1.0, 0.5])
    assert torch.equal(out[0, 0], torch.zeros(2, 2)) and torch.equal(out[0, 1], torch.full((2, 2), 2.0))
    with pytest.raises(ValueError, match="one per channel"):
        normalize(images, [0.5], [1.0])
    with pytest.raises(ValueError, match="float images"):
        normalize(images.to(torch.uint8), [0, 0], [1, 1])


def test_load_dataset_by_name(tmp_path):
    write_cifar10(tmp_path, n_per_batch=3, n_test=2)
    write_cifar100(tmp_path, n_train=4, n_test=2)
    write_mnist(tmp_path, n_train=5, n_test=3)
    cifar = load_dataset("cifar10", "train", tmp_path)
    assert isinstance(cifar, ImageDataset) and (cifar.name, cifar.split, len(cifar)) == ("cifar10", "train", 15)
    assert cifar.images.dtype == torch.uint8 and cifar.images.shape[1:] == (3, 32, 32) and cifar.num_classes == 10
    coarse = load_dataset("CIFAR100", "test", tmp_path, labels="coarse")
    assert coarse.name == "cifar100" and coarse.num_classes == 20
    mnist = load_dataset("mnist", "test", tmp_path)
    image, label = mnist[0]
    assert image.shape == (1, 28, 28) and label.dtype == torch.int64
    assert set(DATASETS.names()) == {"cifar10", "cifar100", "mnist"} and set(NORMALIZATION) == set(DATASETS.names())
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar10'"):
        load_dataset("cifar-10x", "train", tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("mnist", "validation", tmp_path)


def test_to_float_and_stats(tmp_path):
    write_cifar10(tmp_path, n_per_batch=2, n_test=6)
    data = load_dataset("cifar10", "test", tmp_path)
    floats = data.to_float()
    assert floats.images.dtype == torch.float32 and floats.images.max() <= 1.0
    assert torch.allclose(floats.images * 255, data.images.float())
    mean, std = data.channel_stats()
    normed = data.to_float(mean, std)
    per_channel = normed.images.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-5)
    with pytest.raises(DataError, match="already torch.float32"):
        floats.to_float()
    with pytest.raises(ValueError, match="both mean and std"):
        data.to_float(mean=mean)


def test_subset_and_shape_validation(tmp_path):
    write_mnist(tmp_path, n_test=8)
    data = load_dataset("mnist", "test", tmp_path)
    part = data.subset(torch.tensor([5, 1]), "search")
    assert part.split == "search" and torch.equal(part.labels, data.labels[[5, 1]])
    assert torch.equal(part.images[0], data.images[5])
    with pytest.raises(DataError, match="8 images but labels"):
        ImageDataset(data.images, data.labels[:3], data.classes, "mnist", "test")
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        ImageDataset(data.images[:, 0], data.labels, data.classes, "mnist", "test")
