"""In-memory image data sets: raw arrays from a loader, and the tensor data set the tasks use.

Layout choice: images are **channels-first**, ``(N, C, H, W)`` uint8 — ``(N, 3, 32, 32)`` for CIFAR
and ``(N, 1, 28, 28)`` for MNIST. The CIFAR pickles store each row as R(1024) G(1024) B(1024), so
channels-first is a free reshape of the file's bytes, and it is what ``torch.nn.Conv2d`` expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from .errors import DataError
from .transforms import normalize, pad_to, repeat_channels


class ImageArrays(NamedTuple):
    """What a format loader returns: uint8 images (N, C, H, W), int64 labels (N,), class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ImageDataset:
    """Images (``(N, C, H, W)``, uint8 as loaded or float32 after :meth:`to_float`) with int64 labels.

    Indexing yields ``(image, label)`` so it can feed a ``torch.utils.data.DataLoader`` directly, but
    the whole tensor is kept in memory: the data sets used here are small enough and batching by
    slicing is much faster on CPU than per-item loading.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    split: str

    def __post_init__(self) -> None:
        where = f"{self.name}/{self.split}"
        if self.images.ndim != 4:
            raise DataError(f"{where}: images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataError(f"{where}: {self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")
        if self.labels.dtype != torch.int64:
            raise DataError(f"{where}: labels must be int64, got {self.labels.dtype}")

    @classmethod
    def from_arrays(cls, arrays: ImageArrays, name: str, split: str) -> ImageDataset:
        """Wrap a loader's numpy arrays (shares memory when the arrays are writable)."""
        images = arrays.images if arrays.images.flags.writeable else arrays.images.copy()
        labels = np.asarray(arrays.labels, dtype=np.int64)
        return cls(torch.from_numpy(images), torch.from_numpy(labels), tuple(arrays.classes), name, split)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: torch.Tensor | Sequence[int], split: str | None = None) -> ImageDataset:
        """The rows ``indices`` (e.g. one part of :func:`split_indices`), optionally renamed."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return replace(self, images=self.images[index], labels=self.labels[index], split=split or self.split)

    def to_float(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> ImageDataset:
        """float32 images in [0, 1]; then ``(x - mean) / std`` per channel when both are given."""
        if self.images.dtype != torch.uint8:
            raise DataError(f"{self.name}/{self.split}: images are already {self.images.dtype}; to_float expects uint8")
        images = self.images.to(torch.float32).div_(255.0)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is not None and std is not None:
            images = normalize(images, mean, std)
        return replace(self, images=images)

    def padded(self, size: int, value: int | float = 0) -> ImageDataset:
        """Images zero-padded (centred) to ``size`` x ``size``, e.g. MNIST 28 px to 32 px."""
        return replace(self, images=pad_to(self.images, size, value))

    def with_channels(self, channels: int) -> ImageDataset:
        """Grey images replicated to ``channels`` (3 for a CIFAR-shaped network); no-op if already so."""
        return replace(self, images=repeat_channels(self.images, channels))

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the images scaled to [0, 1] (for normalizing with this split's statistics)."""
        images = self.images.to(torch.float64)
        if self.images.dtype == torch.uint8:
            images = images / 255.0
        flat = images.transpose(0, 1).reshape(images.shape[1], -1)
        return tuple(flat.mean(1).tolist()), tuple(flat.std(1, unbiased=False).tolist())
