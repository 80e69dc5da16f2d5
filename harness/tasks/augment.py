"""Training-time augmentation of image batches, drawn from the trial's own generator.

DARTS's retraining ([003] section IV-B3, METHODS.md section 0) uses "a cutout of length 16"; the
random crop (padding 4) and horizontal flip that go with it in DARTS's public code are not stated
in the documents (our choice, docs/open_choices.md; each is an option of the task). Every draw
comes from ``generator`` so a trial is deterministic and independent of its batch mates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset per image."""
    if padding <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))])


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square per image, centred anywhere (clipped at the border)."""
    if length <= 0:
        return images
    n, _, h, w = images.shape
    cy = torch.randint(0, h, (n, 1), generator=generator)
    cx = torch.randint(0, w, (n, 1), generator=generator)
    rows, cols = torch.arange(h).view(1, h), torch.arange(w).view(1, w)
    inside_y = (rows >= cy - length // 2) & (rows < cy + (length + 1) // 2)
    inside_x = (cols >= cx - length // 2) & (cols < cx + (length + 1) // 2)
    keep = ~(inside_y.unsqueeze(2) & inside_x.unsqueeze(1))  # (n, h, w)
    return images * keep.unsqueeze(1).to(images.dtype)


def augment(images: torch.Tensor, generator: torch.Generator, crop_padding: int, flip: bool,
            cutout_length: int) -> torch.Tensor:
    """Crop, flip, cutout, in DARTS's order (images on the CPU, before the move to the device)."""
    images = random_crop(images, crop_padding, generator)
    if flip:
        images = random_flip(images, generator)
    return cutout(images, cutout_length, generator)
