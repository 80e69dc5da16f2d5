"""Real loaders for the standard image data-set formats, splits, and format-true synthetic files.

* :func:`load_dataset` (``cifar10``, ``cifar100``, ``mnist``) -> :class:`ImageDataset`, channels-first.
* Format loaders returning numpy arrays: :func:`load_cifar10`, :func:`load_cifar100`, :func:`load_mnist`,
  :func:`read_idx`, :func:`read_cifar_pickle`.
* :func:`split_indices` / :func:`search_split` for seeded disjoint splits; :func:`pad_to`,
  :func:`repeat_channels` to feed MNIST to a 32 px, 3-channel network.
* :mod:`.synthetic` writes small random data in the real formats for tests and CI.

All errors derive from :class:`DataError` and name the file concerned. This package imports nothing
from harness except :mod:`harness.registry`.
"""

from .catalog import DATASETS, NORMALIZATION, load_dataset
from .cifar import load_cifar10, load_cifar100, read_cifar_pickle
from .dataset import ImageArrays, ImageDataset
from .download import check_md5, download_file, extract_tar, file_md5
from .errors import (
    ChecksumError,
    DataError,
    DataFormatError,
    DataNotFoundError,
    DownloadError,
    UnsafeArchiveError,
)
from .mnist import download_mnist, load_mnist, read_idx
from .splits import search_split, split_indices
from .transforms import normalize, pad_to, repeat_channels

__all__ = [
    "DATASETS",
    "NORMALIZATION",
    "ChecksumError",
    "DataError",
    "DataFormatError",
    "DataNotFoundError",
    "DownloadError",
    "ImageArrays",
    "ImageDataset",
    "UnsafeArchiveError",
    "check_md5",
    "download_file",
    "download_mnist",
    "extract_tar",
    "file_md5",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_mnist",
    "normalize",
    "pad_to",
    "read_cifar_pickle",
    "read_idx",
    "repeat_channels",
    "search_split",
    "split_indices",
]
