"""Write small, random data sets in the *real* on-disk formats, for tests and CI smoke runs.

These functions write files, they do not fake the loaders: a CI run without the real data still
goes through the genuine parsing code (pickle batches, IDX headers, gzip). By default the CIFAR
pickles are written like the originals — protocol 2 with Python-2 byte strings, so
``encoding="latin1"`` yields ``str`` keys and ``encoding="bytes"`` yields ``bytes`` keys, and the
array global is ``numpy.core.multiarray._reconstruct`` — or, with ``py2_strings=False``, like a copy
re-saved under Python 3 (``str`` keys under both encodings).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .cifar import _RECONSTRUCT, CIFAR10_FOLDER, CIFAR100_FOLDER
from .mnist import MNIST_FILES

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that stores ``bytes`` as Python-2 ``str`` opcodes, as the original batches do.

    Uses the pure-Python pickler because the C one cannot be told to write ``SHORT_BINSTRING``.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:  # the module path numpy 1.x (and the original files) use
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _py2(value: Any) -> Any:
    """Turn every ``str`` in a dict/list tree into latin-1 ``bytes`` (py2 ``str``)."""
    if isinstance(value, str):
        return value.encode("latin1")
    if isinstance(value, dict):
        return {_py2(k): _py2(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_py2(v) for v in value]
    return value


def write_cifar_pickle(path: str | os.PathLike[str], obj: dict[str, Any], py2_strings: bool = True) -> Path:
    """Pickle ``obj`` (protocol 2) as a CIFAR batch/meta file would be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        if py2_strings:
            _Py2Pickler(handle, protocol=2).dump(_py2(obj))
        else:
            pickle.dump(obj, handle, protocol=2)
    return path


def _random_batch(rng: np.random.Generator, n: int, n_classes: int) -> tuple[np.ndarray, list[int]]:
    data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    labels = [int(x) for x in rng.integers(0, n_classes, size=n)]
    return data, labels


def write_cifar10(
    root: str | os.PathLike[str], *, n_per_batch: int = 8, n_test: int = 8, seed: int = 0, py2_strings: bool = True
) -> Path:
    """Write ``root/cifar-10-batches-py/`` (5 train batches, test batch, meta) with random pixels; return it."""
    folder = Path(root) / CIFAR10_FOLDER
    rng = np.random.default_rng(seed)
    write_cifar_pickle(
        folder / "batches.meta",
        {"num_cases_per_batch": n_per_batch, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072},
        py2_strings,
    )
    names = [(f"data_batch_{i}", f"training batch {i} of 5", n_per_batch) for i in range(1, 6)]
    for name, label, n in [*names, ("test_batch", "testing batch 1 of 1", n_test)]:
        data, labels = _random_batch(rng, n, 10)
        filenames = [f"synthetic_{name}_{row}.png" for row in range(n)]
        batch = {"batch_label": label, "labels": labels, "data": data, "filenames": filenames}
        write_cifar_pickle(folder / name, batch, py2_strings)
    return folder


def write_cifar100(
    root: str | os.PathLike[str], *, n_train: int = 16, n_test: int = 8, seed: int = 0, py2_strings: bool = True
) -> Path:
    """Write ``root/cifar-100-python/`` (train, test, meta) with random pixels; coarse label = fine // 5."""
    folder = Path(root) / CIFAR100_FOLDER
    rng = np.random.default_rng(seed)
    meta = {
        "fine_label_names": [f"fine_{i:02d}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)],
    }
    write_cifar_pickle(folder / "meta", meta, py2_strings)
    for split, n in (("train", n_train), ("test", n_test)):
        data, fine = _random_batch(rng, n, 100)
        batch = {
            "filenames": [f"synthetic_{split}_{row}.png" for row in range(n)],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": fine,
            "coarse_labels": [label // 5 for label in fine],
            "data": data,
        }
        write_cifar_pickle(folder / split, batch, py2_strings)
    return folder


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` (uint8) as an IDX file; gzip'ed when ``compress`` or when the name ends in .gz."""
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx writes uint8 arrays with 1-255 dimensions, got {array.dtype} {array.shape}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def write_mnist(
    root: str | os.PathLike[str], *, n_train: int = 16, n_test: int = 8, seed: int = 0, compress: bool = True
) -> Path:
    """Write the four MNIST IDX files (``.gz`` when ``compress``) with random 28x28 digits into ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if compress else ""
    for split, n in (("train", n_train), ("test", n_test)):
        (image_stem, _), (label_stem, _) = MNIST_FILES[split]
        write_idx(root / (image_stem + suffix), rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), compress)
        write_idx(root / (label_stem + suffix), rng.integers(0, 10, size=n, dtype=np.uint8), compress)
    return root
