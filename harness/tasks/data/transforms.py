"""Whole-tensor image transforms needed to feed one network several data sets.

The CPU proxy study trains a CIFAR-shaped network (32 px, 3 channels) on MNIST padded to 32 px,
so MNIST needs centred padding and channel replication; normalization is shared by all sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_to(images: torch.Tensor, size: int, value: int | float = 0) -> torch.Tensor:
    """Pad the last two dimensions to ``size`` x ``size``, centred (an odd remainder goes right/bottom).

    28 -> 32 adds 2 pixels on every side, which is how LeNet-style MNIST inputs are usually made.
    """
    if images.ndim < 2:
        raise ValueError(f"pad_to needs at least 2 dimensions (H, W), got shape {tuple(images.shape)}")
    height, width = images.shape[-2], images.shape[-1]
    if size < height or size < width:
        raise ValueError(f"pad_to({size}) cannot shrink images of size {height}x{width}")
    top, left = (size - height) // 2, (size - width) // 2
    pad = (left, size - width - left, top, size - height - top)
    if not any(pad):
        return images
    return torch.nn.functional.pad(images, pad, mode="constant", value=value)


def repeat_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Replicate single-channel images ``(N, 1, H, W)`` to ``channels``; unchanged if they already match."""
    if images.ndim != 4:
        raise ValueError(f"repeat_channels needs (N, C, H, W), got shape {tuple(images.shape)}")
    have = images.shape[1]
    if have == channels:
        return images
    if have != 1:
        raise ValueError(f"cannot turn {have}-channel images into {channels} channels (only 1 -> n is defined)")
    return images.expand(-1, channels, -1, -1).contiguous()


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(images - mean) / std`` per channel of float ``(N, C, H, W)`` images (a new tensor)."""
    if not images.is_floating_point():
        raise ValueError(f"normalize needs float images (use ImageDataset.to_float first), got {images.dtype}")
    channels = images.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std need {channels} values (one per channel), got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {tuple(std)}")
    shape = (1, channels, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype).reshape(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype).reshape(shape)
    return (images - mean_t) / std_t
