"""Checksums, safe extraction and the download path, on archives built here (no network)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness.atomic import TEMP_GLOB
from harness.tasks.data import (
    ChecksumError,
    DataFormatError,
    DataNotFoundError,
    DownloadError,
    UnsafeArchiveError,
    check_md5,
    download_file,
    extract_tar,
    file_md5,
    load_cifar10,
)
from harness.tasks.data import cifar as cifar_module
from harness.tasks.data.cifar import CIFAR10_ARCHIVE_MD5, CIFAR100_ARCHIVE_MD5
from harness.tasks.data.mnist import MNIST_FILES
from harness.tasks.data.synthetic import write_cifar10


def _cifar_archive(tmp_path: Path) -> Path:
    """A cifar-10-python.tar.gz with the official layout (synthetic batches)."""
    write_cifar10(tmp_path / "src", n_per_batch=2, n_test=3)
    archive = tmp_path / "archive" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def test_official_checksums_are_the_published_ones():
    assert CIFAR10_ARCHIVE_MD5 == "c58f30108f718f92721af3b95e74349a"
    assert CIFAR100_ARCHIVE_MD5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert dict(MNIST_FILES["train"] + MNIST_FILES["test"]) == {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    }


def test_md5_and_mismatch(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_md5(path) == "900150983cd24fb0d6963f7d28e17f72"  # RFC 1321 test vector
    check_md5(path, "900150983CD24FB0D6963F7D28E17F72")
    with pytest.raises(ChecksumError, match=r"f\.bin: MD5 is 9001.*expected c58f") as info:
        check_md5(path, CIFAR10_ARCHIVE_MD5)
    assert info.value.path == path
    with pytest.raises(DataNotFoundError, match="missing.bin"):
        file_md5(tmp_path / "missing.bin")


def test_extract_round_trip(tmp_path):
    archive = _cifar_archive(tmp_path)
    written = extract_tar(archive, tmp_path / "out")
    assert {p.name for p in written} == {"batches.meta", "test_batch"} | {f"data_batch_{i}" for i in range(1, 6)}
    for path in written:
        assert path.read_bytes() == (tmp_path / "src" / "cifar-10-batches-py" / path.name).read_bytes()
    assert not list((tmp_path / "out").rglob(TEMP_GLOB))  # no temporary file of the atomic writer left


@pytest.mark.parametrize(
    "name, kind, message",
    [
        ("../evil.txt", tarfile.REGTYPE, "would escape"),
        ("ok/../../evil.txt", tarfile.REGTYPE, "would escape"),
        ("/tmp/evil.txt", tarfile.REGTYPE, "absolute path"),
        ("link", tarfile.SYMTYPE, "is a link"),
        ("hard", tarfile.LNKTYPE, "is a link"),
        ("fifo", tarfile.FIFOTYPE, "special file"),
    ],
)
def test_extract_rejects_unsafe_members(tmp_path, name, kind, message):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    archive = _tar_with(tmp_path / "bad.tar.gz", member, b"x")
    out = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match=f"bad.tar.gz: member .*{message}"):
        extract_tar(archive, out)
    assert not (tmp_path / "deep" / "evil.txt").exists() and not list(out.iterdir())


def test_extract_truncated_or_missing_archive(tmp_path):
    archive = _cifar_archive(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="cifar-10-python.tar.gz: corrupt or truncated archive"):
        extract_tar(archive, tmp_path / "out")
    archive.write_bytes(b"not a tar at all")
    with pytest.raises(DataFormatError, match="corrupt or truncated archive"):
        extract_tar(archive, tmp_path / "out")
    with pytest.raises(DataNotFoundError, match="nothing.tar.gz"):
        extract_tar(tmp_path / "nothing.tar.gz", tmp_path / "out")


def test_download_file_url_verifies_checksum(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "local" / "copy.bin"
    assert download_file(source.as_uri(), dest, file_md5(source)) == dest
    assert dest.read_bytes() == b"payload"
    bad = tmp_path / "local" / "bad.bin"
    mismatch = r"(?s)bad\.bin.*remote\.bin: checksum mismatch, MD5 [0-9a-f]{32}, expected 0{32}"
    with pytest.raises(DownloadError, match=mismatch):
        download_file(source.as_uri(), bad, "0" * 32)
    assert not bad.exists() and not list(bad.parent.glob(TEMP_GLOB))
    # The first mirror fails, the second serves the file.
    mirrors = [(tmp_path / "absent.bin").as_uri(), source.as_uri()]
    assert download_file(mirrors, tmp_path / "m.bin", file_md5(source)).read_bytes() == b"payload"


def test_cifar_local_archive_is_checked_then_extracted(tmp_path, monkeypatch):
    archive = _cifar_archive(tmp_path)
    data_dir = archive.parent
    with pytest.raises(ChecksumError, match="cifar-10-python.tar.gz"):  # not the official archive
        load_cifar10(data_dir, "test")
    assert not (data_dir / "cifar-10-batches-py").exists()
    monkeypatch.setattr(cifar_module, "CIFAR10_ARCHIVE_MD5", file_md5(archive))
    test = load_cifar10(data_dir, "test")
    assert test.images.shape == (3, 3, 32, 32) and (data_dir / "cifar-10-batches-py" / "batches.meta").is_file()


def test_cifar_download_path_offline(tmp_path, monkeypatch):
    archive = _cifar_archive(tmp_path)
    monkeypatch.setattr(cifar_module, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(cifar_module, "CIFAR10_ARCHIVE_MD5", file_md5(archive))
    data_dir = tmp_path / "fresh"
    with pytest.raises(DataNotFoundError, match="download=True"):
        load_cifar10(data_dir, "train")
    train = load_cifar10(data_dir, "train", download=True)
    assert train.images.shape == (10, 3, 32, 32)
    assert file_md5(data_dir / "cifar-10-python.tar.gz") == file_md5(archive)
    np.testing.assert_array_equal(load_cifar10(data_dir, "train").images, train.images)  # now found on disk
