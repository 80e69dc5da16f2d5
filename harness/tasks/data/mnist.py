"""MNIST loader for the official IDX files (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels), raw or gzip'ed.

IDX header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then one
big-endian uint32 per dimension; the data follows in C order. MNIST images therefore carry the
magic number 2051 (0x00000803) and labels 2049 (0x00000801). The payload length is checked
against the header so a truncated download is reported as such, not as a reshape error.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .dataset import ImageArrays
from .download import download_file
from .errors import DataFormatError, DataNotFoundError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
MNIST_CLASSES = tuple(str(digit) for digit in range(10))

# Official file MD5s (of the .gz files). LeCun's site is often unreachable, hence the mirror first;
# the checksum guarantees the bytes are the official ones wherever they come from.
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {
    "train": (
        ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    ),
    "test": (
        ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
}

# IDX type code -> element dtype (multi-byte types are big-endian in the file)
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic bytes, not its name)."""
    if not path.is_file():
        raise DataNotFoundError(f"IDX file {path} does not exist", path)
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: truncated or corrupt gzip data ({type(err).__name__}: {err})", path) from None


def read_idx(path: str | os.PathLike[str], expect_magic: int | None = None) -> np.ndarray:
    """Parse an IDX file (raw or .gz) into a native-endian array of the shape its header gives."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header (truncated?)", path)
    magic = int.from_bytes(raw[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise DataFormatError(
            f"{path}: wrong magic number {magic} (0x{magic:08x}); expected {expect_magic} (0x{expect_magic:08x})",
            path,
        )
    code, ndim = raw[2], raw[3]
    if raw[0] or raw[1] or code not in _IDX_TYPES or ndim == 0:
        raise DataFormatError(f"{path}: not an IDX file (magic 0x{magic:08x})", path)
    header = 4 + 4 * ndim
    if len(raw) < header:
        message = f"{path}: truncated header: {ndim} dimensions need {header} bytes, file has {len(raw)}"
        raise DataFormatError(message, path)
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path}: {what}: header says {' x '.join(map(str, dims))} = {expected} data bytes, found {found}", path
        )
    array = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def find_idx(data_dir: str | os.PathLike[str], stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``data_dir`` or in the common ``MNIST/raw`` sub-folder, if present."""
    root = Path(data_dir)
    for folder in (root, root / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def download_mnist(data_dir: str | os.PathLike[str], split: str) -> list[Path]:
    """Fetch the two official .gz files of ``split`` into ``data_dir``, verifying their MD5s."""
    return [
        download_file([mirror + stem + ".gz" for mirror in MNIST_MIRRORS], Path(data_dir) / (stem + ".gz"), md5)
        for stem, md5 in MNIST_FILES[split]
    ]


def load_mnist(data_dir: str | os.PathLike[str], split: str = "train", *, download: bool = False) -> ImageArrays:
    """MNIST ``split`` as uint8 images (N, 1, 28, 28) and int64 labels 0-9 from the IDX files in ``data_dir``."""
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    (image_stem, _), (label_stem, _) = MNIST_FILES[split]
    image_path, label_path = find_idx(data_dir, image_stem), find_idx(data_dir, label_stem)
    if image_path is None or label_path is None:
        if not download:
            missing = [stem for stem, p in ((image_stem, image_path), (label_stem, label_path)) if p is None]
            raise DataNotFoundError(
                f"MNIST {split} files missing in {Path(data_dir)}: {', '.join(s + '[.gz]' for s in missing)} "
                "(also looked in MNIST/raw/); pass download=True to fetch the official files",
                Path(data_dir),
            )
        image_path, label_path = download_mnist(data_dir, split)
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.ndim != 3 or images.dtype != np.uint8:
        message = f"{image_path}: expected uint8 (N, H, W), header gives {images.dtype} {images.shape}"
        raise DataFormatError(message, image_path)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFormatError(
            f"{label_path}: {labels.shape} labels do not match the {images.shape[0]} images in {image_path}", label_path
        )
    if labels.size and labels.max() > 9:
        raise DataFormatError(f"{label_path}: labels must be 0-9, found {labels.max()}", label_path)
    return ImageArrays(images[:, None], labels.astype(np.int64), MNIST_CLASSES)
