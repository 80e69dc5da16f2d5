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
from harness.tasks.augment import augment
from harness.tasks.base import Batch, TrainRecipe
from harness.tasks.data import NORMALIZATION, load_dataset, search_split, split_indices
from harness.tasks.metrics import METRICS

# The splits a method asks for: weights, alpha / one-shot validation, retraining, final test.
SPLITS = ("train", "val", "retrain", "test")
EVAL_CHUNK = 256  # images per forward pass when scoring a whole split
RETRAIN_SPLIT = "retrain"  # its batches are augmented and of the retraining batch size
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
    image_size: int = 32  # larger than the files: zero-padded; smaller: downscaled (the CPU proxy)
    channels: int = 3
    batch_size: int = 64  # search batch ([003] section IV-B2)
    split_seed: int = 0
    # The retraining recipe ([003] section IV-B3, METHODS.md section 0: 600 epochs, batch 96,
    # cutout 16, "dropout probability" 0.2, auxiliary towers weighted 0.4). Not stated there, our
    # choice as in DARTS's public code (docs/open_choices.md): SGD lr 0.025, momentum 0.9, weight
    # decay 3e-4 (the search's, which [003] states), cosine to 0, gradient clipping at 5, drop
    # path ramped linearly from 0, random crop with padding 4 and horizontal flips.
    retrain_epochs: int = 0  # 0: the row's epochs
    retrain_batch_size: int = 96
    retrain_lr: float = 0.025
    retrain_momentum: float = 0.9
    retrain_weight_decay: float = 3e-4
    retrain_grad_clip: float = 5.0
    drop_path: float = 0.2
    aux_weight: float = 0.4
    cutout: int = 16
    crop_padding: int = 4
    flip: bool = True

    def replace(self, **options) -> ImageTaskConfig:
        return replace_options(self, options, "task")

    def __post_init__(self) -> None:
        if self.dataset not in ("cifar10", "cifar100", "mnist"):
            raise ValueError(f"task option dataset must be cifar10, cifar100 or mnist, got {self.dataset!r}")
        for key in ("n_train", "n_val", "n_retrain", "n_test"):
            if getattr(self, key) < 0:
                raise ValueError(f"task option {key} must be >= 0, got {getattr(self, key)}")
        if min(self.batch_size, self.retrain_batch_size) < 1 or self.image_size < 8 or self.channels not in (1, 3):
            raise ValueError("task options: batch_size and retrain_batch_size >= 1, image_size >= 8 and "
                             "channels 1 or 3 are required")
        if self.retrain_epochs < 0 or not self.retrain_lr > 0 or not 0 <= self.drop_path < 1:
            raise ValueError("task options: retrain_epochs >= 0, retrain_lr > 0 and 0 <= drop_path < 1 are required")
        for key in ("retrain_momentum", "retrain_weight_decay", "retrain_grad_clip", "aux_weight", "cutout",
                    "crop_padding"):
            if getattr(self, key) < 0:
                raise ValueError(f"task option {key} must be >= 0, got {getattr(self, key)}")
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
        return self.steps_per_epoch("train")

    def split_batch_size(self, split: str) -> int:
        return self.config.retrain_batch_size if split == RETRAIN_SPLIT else self.batch_size

    def steps_per_epoch(self, split: str) -> int:
        """One pass over ``split`` (the last partial batch dropped, as DARTS's loaders do not: a
        fixed step count keeps batched trials in lockstep)."""
        return max(1, self.split_size(split) // self.split_batch_size(split))

    def split_size(self, split: str) -> int:
        return len(self._split(split)[1])

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return self.splits[split]

    def retrain_recipe(self, hp, epochs: int) -> TrainRecipe:
        """DARTS's retraining (see ImageTaskConfig); ``retrain_epochs`` 0 retrains for the row's epochs."""
        c = self.config
        return TrainRecipe(
            epochs=c.retrain_epochs or epochs, optimizer="sgd", lr=c.retrain_lr, weight_decay=c.retrain_weight_decay,
            momentum=c.retrain_momentum, schedule="cosine", lr_min=0.0, grad_clip=c.retrain_grad_clip,
            drop_path=c.drop_path,
        )

    def sample(self, generator: torch.Generator, split: str = "train") -> Batch:
        """Distinct random rows of ``split`` (independent across calls); retraining batches are augmented."""
        images, labels = self._split(split)
        idx = torch.randperm(len(labels), generator=generator)[: self.split_batch_size(split)]
        x = images[idx]
        if split == RETRAIN_SPLIT:
            c = self.config
            x = augment(x, generator, c.crop_padding, c.flip, c.cutout)
        return Batch(inputs=x.to(self.device), targets=labels[idx].to(self.device))

    def forward(self, model, batch: Batch, weights=None, noise: torch.Generator | None = None, mixer=None):
        """Logits, or (logits, auxiliary logits) from a network with an auxiliary head in training.
        A search method's ``mixer`` goes to the supernet (its edges' seam, as OpContext's in 1D)."""
        if weights is None:
            return model(batch.inputs)
        return model(batch.inputs, weights) if mixer is None else model(batch.inputs, weights, mixer=mixer)

    def loss(self, output, batch: Batch) -> torch.Tensor:
        """Cross entropy, plus ``aux_weight`` times the auxiliary head's ([003] section IV-B3: 0.4)."""
        logits, aux = output if isinstance(output, tuple) else (output, None)
        loss = F.cross_entropy(logits, batch.targets)
        return loss if aux is None else loss + self.config.aux_weight * F.cross_entropy(aux, batch.targets)

    @torch.no_grad()
    def evaluate(self, model, data: torch.Generator | None = None, noise: torch.Generator | None = None,
                 weights=None, mixer=None, split: str = "val") -> dict[str, float]:
        """Accuracy (%) over the whole split in fixed order (``data`` is not needed: nothing is drawn)."""
        images, labels = self._split(split)
        correct = 0
        for start in range(0, len(labels), EVAL_CHUNK):
            chunk = slice(start, start + EVAL_CHUNK)
            batch = Batch(images[chunk].to(self.device), labels[chunk].to(self.device))
            logits = self.forward(model, batch, weights, mixer=mixer)
            logits = logits[0] if isinstance(logits, tuple) else logits
            correct += int((logits.argmax(dim=1) == batch.targets).sum())
        return {"accuracy": 100.0 * correct / max(len(labels), 1)}


    # ------------------------------------------------------------------------- trial axis
    def sample_trials(self, generators: list[torch.Generator], split: str = "train") -> Batch:
        """Each trial's own batch from its own generator, stacked on channels: inputs (N, K*C, H, W),
        targets (K, N) (the layout of the K-trial networks, harness/spaces/trial_axis.py)."""
        batches = [self.sample(g, split) for g in generators]
        inputs = torch.cat([b.inputs for b in batches], dim=1).contiguous()
        return Batch(inputs, torch.stack([b.targets for b in batches]))

    def trial_losses(self, output, batch: Batch) -> torch.Tensor:
        """``loss`` of every trial (K,), from logits (K, N, classes) (and auxiliary logits)."""
        logits, aux = output if isinstance(output, tuple) else (output, None)
        return torch.stack([
            self.loss(logits[k] if aux is None else (logits[k], aux[k]), Batch(None, batch.targets[k]))
            for k in range(logits.shape[0])
        ])

    @torch.no_grad()
    def evaluate_trials(self, model, data=None, noise=None, weights=None, split: str = "val") -> list[dict[str, float]]:
        """``evaluate`` for a K-trial model: every trial sees the split's images in the same chunks
        and order as ``evaluate`` (``data`` and ``noise`` are not needed: nothing is drawn)."""
        images, labels = self._split(split)
        correct = None
        for start in range(0, len(labels), EVAL_CHUNK):
            batch = Batch(images[start : start + EVAL_CHUNK].to(self.device), None)
            logits = self.forward(model, batch, weights)
            logits = logits[0] if isinstance(logits, tuple) else logits
            hits = (logits.argmax(dim=2) == labels[start : start + EVAL_CHUNK].to(self.device)).sum(1)
            correct = hits if correct is None else correct + hits
        total = max(len(labels), 1)
        return [{"accuracy": 100.0 * int(c) / total} for c in correct.tolist()]


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
        if part.images.shape[-1] < config.image_size:
            part = part.padded(config.image_size)  # zeros before normalizing: the images' own background
        part = part.with_channels(config.channels).to_float(
            mean=_repeat(mean, config.channels), std=_repeat(std, config.channels)
        )
        out[name] = (_downscaled(part.images, config.image_size), part.labels)
    return out


def _downscaled(images: torch.Tensor, size: int) -> torch.Tensor:
    """Downscale with antialiasing where the files are larger (MNIST 28 px -> 16 px for the CPU
    proxy: a quarter of the pixels of 32 px, docs/open_choices.md)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _first(idx: torch.Tensor, n: int) -> torch.Tensor:
    return idx if n == 0 else idx[:n]


def _repeat(values, channels: int) -> tuple[float, ...]:
    values = tuple(values)
    return values * channels if len(values) == 1 else values
