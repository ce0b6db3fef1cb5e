"""CIFAR-10 and CIFAR-100 from the official binary batches (extracted folder or the .tar.gz), never pickles."""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from poisonlab.datasets.checksums import FIX_REDOWNLOAD, check, digest, file_digests
from poisonlab.datasets.cifar_names import CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES
from poisonlab.datasets.dataset import Dataset
from poisonlab.datasets.fetch import DownloadFailed, fetch, missing_error
from poisonlab.datasets.imagefolder import load_imagefolder
from poisonlab.datasets.tarread import read_files
from poisonlab.errors import PoisonlabError
from poisonlab.files import read_limited

PIXELS = 3 * 32 * 32
MAX_BATCH_BYTES = 50_000 * (2 + PIXELS)  # the largest official batch file (CIFAR-100 train.bin)
JPEG_COPY = "cifar10-jpeg-imagefolder.tar.gz"
JPEG_ORDER = "train_canonical_order.csv"


@dataclass(frozen=True)
class BinarySource:
    """An official CIFAR binary release: its extracted folder, batch files and verified archive."""

    name: str
    subdir: str
    files: tuple[str, ...]
    label_limits: tuple[int, ...]
    archive: str
    url: str
    md5: str  # the official one (https://www.cs.toronto.edu/~kriz/cifar.html)
    sha256: str  # beside it, as tensorflow-datasets pins it (url_checksums/cifar10.txt, cifar100.txt)


CIFAR10 = BinarySource("cifar10", "cifar-10-batches-bin", (*(f"data_batch_{i}.bin" for i in range(1, 6)),
                       "test_batch.bin"), (10,), "cifar-10-binary.tar.gz",
                       "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                       "md5:c32a1d4ab5d03f1284b67883e8d87530",
                       "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
CIFAR100 = BinarySource("cifar100", "cifar-100-binary", ("train.bin", "test.bin"), (20, 100),
                        "cifar-100-binary.tar.gz",
                        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                        "md5:03b5dce01913d631647c71ecec9e9cb8",
                        "sha256:58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec")


def parse_cifar_records(data: bytes, label_bytes: int, source: str = "CIFAR data") -> tuple[np.ndarray, np.ndarray]:
    """Split binary records into uint8 (N, 32, 32, 3) images and int64 (N, label_bytes) labels.

    Each record is `label_bytes` label bytes then 1024 red, 1024 green and 1024 blue bytes, row-major.
    """
    size = label_bytes + PIXELS
    if not data or len(data) % size:
        raise PoisonlabError(f"{source} has {len(data)} bytes, not a whole number of {size}-byte CIFAR records "
                             f"(truncated or corrupted); {FIX_REDOWNLOAD}")
    records = np.frombuffer(data, np.uint8).reshape(-1, size)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, :label_bytes].astype(np.int64)


def load_cifar10(folder: Path, download: bool) -> Dataset:
    """CIFAR-10 from the binary release, or from the JPEG image-folder copy when no binary copy is present."""
    if not _present(folder, CIFAR10) and (folder / JPEG_COPY).is_file():
        return _load_jpeg_copy(folder)
    batches, sources = _read_binary(folder, CIFAR10, download)
    x_train = np.concatenate([x for x, _ in batches[:5]])
    y_train = np.concatenate([y[:, 0] for _, y in batches[:5]])
    x_test, y_test = batches[5]
    return Dataset("cifar10", x_train, y_train, x_test, y_test[:, 0], list(CIFAR10_CLASSES), sources, [])


def load_cifar100(folder: Path, download: bool, coarse: bool) -> Dataset:
    """CIFAR-100 from the binary release, with fine (default) or coarse labels."""
    ((x_train, y_train), (x_test, y_test)), sources = _read_binary(folder, CIFAR100, download)
    column, classes = (0, CIFAR100_COARSE_CLASSES) if coarse else (1, CIFAR100_FINE_CLASSES)
    return Dataset("cifar100:coarse" if coarse else "cifar100", x_train, y_train[:, column], x_test,
                   y_test[:, column], list(classes), sources, [])


def _present(folder: Path, source: BinarySource) -> bool:
    """Whether the extracted batch files or the archive are on disk."""
    extracted = folder / source.subdir
    return all((extracted / name).is_file() for name in source.files) or (folder / source.archive).is_file()


def _read_binary(folder: Path, source: BinarySource,
                 download: bool) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Parsed (images, labels) per batch file, in `source.files` order, plus provenance digests."""
    extracted, archive = folder / source.subdir, folder / source.archive
    if all((extracted / name).is_file() for name in source.files):
        files = {name: read_limited(extracted / name, f"{source.name} file {extracted / name}", MAX_BATCH_BYTES,
                                   FIX_REDOWNLOAD)
                 for name in source.files}
        sources = {name: digest(data, "sha256") for name, data in files.items()}
    else:
        if not archive.is_file():
            _download(folder, source, download)
        label = f"{source.name} archive {archive}"
        md5, sha256 = file_digests(archive, ("md5", "sha256"))  # both checked before any member is read
        sources = {archive.name: check(md5, source.md5, label, FIX_REDOWNLOAD)}
        check(sha256, source.sha256, label, FIX_REDOWNLOAD)
        members = read_files(archive, {f"{source.subdir}/{name}" for name in source.files}, label, FIX_REDOWNLOAD,
                             MAX_BATCH_BYTES)
        files = {name: members[f"{source.subdir}/{name}"] for name in source.files}
    return [_parse_batch(source, name, data) for name, data in files.items()], sources


def _parse_batch(source: BinarySource, name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse one batch file and check its labels lie in the official ranges."""
    images, labels = parse_cifar_records(data, len(source.label_limits), f"{source.name} file {name}")
    if (labels >= np.array(source.label_limits)).any():
        raise PoisonlabError(f"{source.name} file {name} has labels beyond the {source.name} classes (corrupted); "
                             f"{FIX_REDOWNLOAD}")
    return images, labels


def _download(folder: Path, source: BinarySource, download: bool) -> None:
    """Fetch and verify the official archive, or raise the error that says what to place where."""
    reason = "downloading is disabled"
    if download:
        try:
            fetch([source.url], folder / source.archive, source.sha256)
            return
        except DownloadFailed as exc:
            reason = exc.reason
    raise missing_error(source.name, folder, [source.archive], source.url, reason)


def _load_jpeg_copy(folder: Path) -> Dataset:
    """CIFAR-10 decoded from the lossy JPEG image-folder copy, presented in the official training order."""
    if not (folder / JPEG_ORDER).is_file():
        raise PoisonlabError(f"{folder / JPEG_COPY} needs {JPEG_ORDER} beside it for the official training order; "
                             f"place it there, or place the official {CIFAR10.archive} in {folder}")
    dataset, _ = load_imagefolder(folder / JPEG_COPY, folder / JPEG_ORDER)
    if tuple(dataset.classes) != CIFAR10_CLASSES:
        raise PoisonlabError(f"{folder / JPEG_COPY} has classes {', '.join(dataset.classes)}, not the CIFAR-10 "
                             f"classes; replace it, or place the official {CIFAR10.archive} in {folder}")
    note = "CIFAR-10 from the JPEG image-folder copy (lossy), official training order"
    return replace(dataset, name="cifar10", notes=[*dataset.notes, note])
