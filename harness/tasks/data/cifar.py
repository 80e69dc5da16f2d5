"""CIFAR-10 / CIFAR-100 loaders for the official "python version" pickle batches.

The batches are Python-2 pickles: their keys are py2 strings, which ``pickle.load`` turns into
``str`` with ``encoding="latin1"`` and into ``bytes`` with ``encoding="bytes"``; re-saved copies made
under Python 3 have ``str`` keys either way. Keys and names are normalized to ``str`` so every
variant loads. Unpickling goes through an allow-list of the few numpy globals an array needs, so
a downloaded or hand-made file cannot run arbitrary code.

Images come back channels-first, ``(N, 3, 32, 32)`` uint8 (see :mod:`.dataset` for why).
"""

from __future__ import annotations

import codecs
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import ImageArrays
from .download import check_md5, download_file, extract_tar
from .errors import DataError, DataFormatError, DataNotFoundError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCHES = ("test_batch",)
_ROW = 3 * 32 * 32

# The only globals a CIFAR batch needs. The function objects are taken from live arrays, so the
# old ``numpy.core`` path in the original files resolves without touching numpy's deprecated alias.
_RECONSTRUCT = np.zeros(0, np.uint8).__reduce__()[0]
_SCALAR = np.int64(0).__reduce__()[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _BatchUnpickler(pickle.Unpickler):
    def __init__(self, handle: Any, path: Path, encoding: str) -> None:
        super().__init__(handle, encoding=encoding)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataFormatError(
                f"{self._path}: refuses to unpickle {module}.{name}; a CIFAR batch only holds numpy arrays, "
                "lists and strings",
                self._path,
            ) from None


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


def read_cifar_pickle(path: str | os.PathLike[str], encoding: str = "latin1") -> dict[str, Any]:
    """Unpickle one batch or meta file into a dict with ``str`` keys (values as stored)."""
    if encoding not in ("latin1", "bytes"):
        raise ValueError(f"encoding must be 'latin1' or 'bytes', got {encoding!r}")
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"CIFAR file {path} does not exist", path)
    try:
        with open(path, "rb") as handle:
            obj = _BatchUnpickler(handle, path, encoding).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise DataFormatError(
            f"{path}: truncated or corrupt CIFAR pickle ({type(err).__name__}: {err})", path
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, found {type(obj).__name__}", path)
    return {_text(key): value for key, value in obj.items()}


def _names(meta: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    names = meta.get(key)
    if not isinstance(names, list | tuple) or not names:
        raise DataFormatError(f"{path}: missing or empty {key!r} (keys: {sorted(meta)})", path)
    return tuple(str(_text(name)) for name in names)


def _batch_arrays(batch: dict[str, Any], label_key: str, n_classes: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validate one batch; return images (N, 3, 32, 32) and int64 labels."""
    data = batch.get("data")
    if not isinstance(data, np.ndarray):
        raise DataFormatError(f"{path}: no 'data' array (keys: {sorted(batch)})", path)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        raise DataFormatError(f"{path}: 'data' must be uint8 of shape (N, {_ROW}), got {data.dtype} {data.shape}", path)
    if label_key not in batch:
        raise DataFormatError(f"{path}: no {label_key!r} (keys: {sorted(batch)})", path)
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: {label_key!r} is not a list of integers", path) from None
    if labels.shape != (data.shape[0],):
        raise DataFormatError(f"{path}: {data.shape[0]} images but {label_key!r} has shape {labels.shape}", path)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataFormatError(
            f"{path}: {label_key!r} outside [0, {n_classes}): min {labels.min()}, max {labels.max()}", path
        )
    return data.reshape(-1, 3, 32, 32), labels


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _locate(data_dir: str | os.PathLike[str], folder: str, marker: str, url: str, md5: str, download: bool) -> Path:
    """The batch folder: ``data_dir`` itself, ``data_dir/<folder>``, or extracted from the archive."""
    root = Path(data_dir)
    for candidate in (root, root / folder):
        if (candidate / marker).is_file():
            return candidate
    archive = root / url.rsplit("/", 1)[1]
    if not archive.is_file():
        if not download:
            raise DataNotFoundError(
                f"no CIFAR data in {root}: expected {root / folder}/ (with {marker}), a folder holding {marker}, "
                f"or the archive {archive.name}; pass download=True to fetch it from {url}",
                root,
            )
        download_file(url, archive, md5)
    check_md5(archive, md5)
    extract_tar(archive, root)
    if not (root / folder / marker).is_file():
        raise DataFormatError(f"{archive}: extracted, but {root / folder / marker} is missing", archive)
    return root / folder


def load_cifar10(
    data_dir: str | os.PathLike[str],
    split: str = "train",
    *,
    batches: Sequence[str] | None = None,
    encoding: str = "latin1",
    download: bool = False,
) -> ImageArrays:
    """CIFAR-10 ``split`` from ``data_dir`` (the batch folder or its parent) as uint8 (N, 3, 32, 32).

    ``batches`` picks batch files explicitly (default: ``data_batch_1..5`` for train, ``test_batch``
    for test), e.g. ``("data_batch_1",)`` for a partial copy; a missing one is an error, never skipped.
    """
    _check_split(split)
    folder = _locate(data_dir, CIFAR10_FOLDER, "batches.meta", CIFAR10_URL, CIFAR10_ARCHIVE_MD5, download)
    meta_path = folder / "batches.meta"
    classes = _names(read_cifar_pickle(meta_path, encoding), "label_names", meta_path)
    default = CIFAR10_TRAIN_BATCHES if split == "train" else CIFAR10_TEST_BATCHES
    names = default if batches is None else tuple(batches)
    if not names:
        raise ValueError("batches must name at least one batch file")
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(
            f"CIFAR-10 {split} batches missing in {folder}: {', '.join(missing)}"
            + ("" if batches is not None else " (for a partial copy, name the batches present with batches=...)"),
            folder / missing[0],
        )
    parts = [
        _batch_arrays(read_cifar_pickle(folder / name, encoding), "labels", len(classes), folder / name)
        for name in names
    ]
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return ImageArrays(np.ascontiguousarray(images), labels, classes)


def load_cifar100(
    data_dir: str | os.PathLike[str],
    split: str = "train",
    *,
    labels: str = "fine",
    encoding: str = "latin1",
    download: bool = False,
) -> ImageArrays:
    """CIFAR-100 ``split`` with ``labels="fine"`` (100 classes) or ``"coarse"`` (20 superclasses)."""
    _check_split(split)
    if labels not in ("fine", "coarse"):
        raise ValueError(f"labels must be 'fine' or 'coarse', got {labels!r}")
    folder = _locate(data_dir, CIFAR100_FOLDER, "meta", CIFAR100_URL, CIFAR100_ARCHIVE_MD5, download)
    meta_path = folder / "meta"
    classes = _names(read_cifar_pickle(meta_path, encoding), f"{labels}_label_names", meta_path)
    path = folder / split
    images, targets = _batch_arrays(read_cifar_pickle(path, encoding), f"{labels}_labels", len(classes), path)
    return ImageArrays(np.ascontiguousarray(images), targets, classes)
