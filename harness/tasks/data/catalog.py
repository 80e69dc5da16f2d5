"""Data sets by name: ``load_dataset("cifar10", "train", data_dir)`` -> :class:`ImageDataset`.

A study file names its data set; the registry turns the name into a loader and answers an
unknown name with the list of known ones. Every loader takes ``data_dir`` — where the user's copy
lives — and never downloads unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness.registry import Registry

from .cifar import load_cifar10, load_cifar100
from .dataset import ImageArrays, ImageDataset
from .mnist import load_mnist

Loader = Callable[..., ImageArrays]

DATASETS: Registry[Loader] = Registry("data set")
DATASETS.register("cifar10", load_cifar10)
DATASETS.register("cifar100", load_cifar100)
DATASETS.register("mnist", load_mnist)

# Conventional per-channel statistics of the *training* sets, in [0, 1] units (CIFAR-10: the values
# DARTS normalizes with). Not recomputed here — the full training sets are not part of this repo;
# ImageDataset.channel_stats() computes them for any split that is.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
}


def load_dataset(
    name: str, split: str, data_dir: str | os.PathLike[str], *, download: bool = False, **options: Any
) -> ImageDataset:
    """Load ``split`` ("train" or "test") of the data set ``name`` from ``data_dir``.

    ``options`` go to the format loader (e.g. ``labels="coarse"`` for CIFAR-100,
    ``batches=("data_batch_1",)`` for a partial CIFAR-10 copy).
    """
    loader = DATASETS.get(name)
    arrays = loader(data_dir, split, download=download, **options)
    return ImageDataset.from_arrays(arrays, DATASETS.canonical(name), split)
