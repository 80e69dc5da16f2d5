"""Image classification tasks (CIFAR-10/100, the MNIST CPU proxy) for cell searches.

Splits follow the DARTS protocol as [003] section IV-B2 states it ("the training set is split
half/half into train and validation" during search; retraining on the whole training set;
accuracy on the test set; METHODS.md section 3.4). The MNIST proxy cuts the genuine 10,000-image
test set into disjoint search / retraining / test parts (issue 12, section 4). Which rows fall
into which part is fixed by ``split_seed``, not by the trial seed, so trials differ only in the
method's own randomness (docs/open_choices.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.options import replace_options
from harness.tasks.base import Batch
from harness.tasks.data import NORMALIZATION, load_dataset, search_split, split_indices
from harness.tasks.metrics import METRICS

# The splits a method asks for: weights, alpha / one-shot validation, retraining, final test.
SPLITS = ("train", "val", "retrain", "test")
DATA_DIR_ENV = "HARNESS_DATA_DIR"


@dataclass(frozen=True)
class ImageTaskConfig:
    """Everything that defines an image task's data and batches (the study's ``options: problem``)."""

    name: str = "cifar10"
    dataset: str = "cifar10"  # the files: cifar10 | cifar100 | mnist
    # Rows per split; 0 = the protocol's size (search halves of the training set, the whole
    # training set for retraining, the whole test set). The MNIST proxy needs explicit sizes.
    n_train: int = 0
    n_val: int = 0
    n_retrain: int = 0
    n_test: int = 0
    proxy_from_test_set: bool = False  # cut every split out of the test set (the MNIST proxy)
    image_size: int = 32
    channels: int = 3
    batch_size: int = 64  # search batch ([003] section IV-B2)
    split_seed: int = 0

    def replace(self, **options) -> ImageTaskConfig:
        return replace_options(self, options, "task")

    def __post_init__(self) -> None:
        if self.dataset not in ("cifar10", "cifar100", "mnist"):
            raise ValueError(f"task option dataset must be cifar10, cifar100 or mnist, got {self.dataset!r}")
        for key in ("n_train", "n_val", "n_retrain", "n_test"):
            if getattr(self, key) < 0:
                raise ValueError(f"task option {key} must be >= 0, got {getattr(self, key)}")
        if self.batch_size < 1 or self.image_size < 8 or self.channels not in (1, 3):
            raise ValueError("task options: batch_size >= 1, image_size >= 8 and channels 1 or 3 are required")
        if self.proxy_from_test_set and 0 in (self.n_train, self.n_val, self.n_retrain, self.n_test):
            raise ValueError("a proxy cut from the test set needs n_train, n_val, n_retrain and n_test > 0")


def data_dir() -> Path:
    """Where the data files are: ``$HARNESS_DATA_DIR`` (the study CLI's ``--data-dir``) or ``data/``.
    Not part of a trial's identity: moving the files must not change trial ids."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


class ClassificationTask:
    """Cross-entropy loss, top-1 accuracy (in %); batches drawn from one split at a time."""

    capabilities = frozenset({"images", "classification", "finite-data"})
    metrics = (METRICS.get("accuracy"),)
    primary = "accuracy"

    def __init__(self, config: ImageTaskConfig, device: torch.device | str = "cpu", root: Path | None = None) -> None:
        self.config = config
        self.name = config.name
        self.device = torch.device(device)
        self.batch_size = config.batch_size
        self.root = root

    # The data is read at first use, so a study can be validated (--dry-run) without it.
    @cached_property
    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return _load_splits(self.config, self.root or data_dir())

    @cached_property
    def num_classes(self) -> int:
        return {"cifar10": 10, "cifar100": 100, "mnist": 10}[self.config.dataset]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.config.channels, self.config.image_size, self.config.image_size)

    @cached_property
    def batches_per_epoch(self) -> int:
        """An epoch of search passes over the search training split once ([003]: 50 epochs)."""
        return max(1, self.split_size("train") // self.batch_size)

    def split_size(self, split: str) -> int:
        return len(self._split(split)[1])

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return self.splits[split]

    def sample(self, generator: torch.Generator, split: str = "train") -> Batch:
        """``batch_size`` distinct random rows of ``split`` (independent across calls)."""
        images, labels = self._split(split)
        idx = torch.randperm(len(labels), generator=generator)[: self.batch_size]
        return Batch(inputs=images[idx].to(self.device), targets=labels[idx].to(self.device))

    def forward(self, model, batch: Batch, weights=None, noise: torch.Generator | None = None, mixer=None):
        """Logits; a model with an auxiliary head returns (logits, aux), of which this keeps the logits."""
        out = model(batch.inputs, weights) if weights is not None else model(batch.inputs)
        return out[0] if isinstance(out, tuple) else out

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(output, batch.targets)

    @torch.no_grad()
    def evaluate(self, model, data: torch.Generator | None = None, noise: torch.Generator | None = None,
                 weights=None, mixer=None, split: str = "val") -> dict[str, float]:
        """Accuracy (%) over the whole split in fixed order (``data`` is not needed: nothing is drawn)."""
        images, labels = self._split(split)
        correct = 0
        for start in range(0, len(labels), 256):
            batch = Batch(images[start : start + 256].to(self.device), labels[start : start + 256].to(self.device))
            correct += int((self.forward(model, batch, weights).argmax(dim=1) == batch.targets).sum())
        return {"accuracy": 100.0 * correct / max(len(labels), 1)}


def _load_splits(config: ImageTaskConfig, root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Normalized float images per split, on the CPU (moved to the device batch by batch)."""
    mean, std = NORMALIZATION[config.dataset]
    test = load_dataset(config.dataset, "test", root)
    generator = torch.Generator().manual_seed(config.split_seed)
    if config.proxy_from_test_set:
        sizes = [config.n_train, config.n_val, config.n_retrain, config.n_test]
        if sum(sizes) > len(test):
            raise ValueError(f"the proxy needs {sum(sizes)} rows but the {config.dataset} test set has {len(test)}")
        parts = split_indices(len(test), sizes, generator)
        sets = {name: test.subset(idx, split=name) for name, idx in zip(SPLITS, parts)}
    else:
        train = load_dataset(config.dataset, "train", root)
        w_idx, a_idx = search_split(len(train), generator)
        sets = {
            "train": train.subset(_first(w_idx, config.n_train), split="train"),
            "val": train.subset(_first(a_idx, config.n_val), split="val"),
            "retrain": train.subset(_first(torch.randperm(len(train), generator=generator), config.n_retrain),
                                    split="retrain"),
            "test": test.subset(_first(torch.arange(len(test)), config.n_test), split="test"),
        }
    out = {}
    for name, part in sets.items():
        part = part.padded(config.image_size).with_channels(config.channels).to_float(
            mean=_repeat(mean, config.channels), std=_repeat(std, config.channels)
        )
        out[name] = (part.images, part.labels)
    return out


def _first(idx: torch.Tensor, n: int) -> torch.Tensor:
    return idx if n == 0 else idx[:n]


def _repeat(values, channels: int) -> tuple[float, ...]:
    values = tuple(values)
    return values * channels if len(values) == 1 else values
